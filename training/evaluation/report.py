"""Write an evaluation report: ``report.json``, ``report.md``, ``report.png``, ``per_user/``.

A multi-seed report (from :func:`training.evaluate_cmd.run_evaluate`)::

    {"dataset": {...}, "split": {"kind", "seeds", "params"}, "ks": [10, 20, 50],
     "summary": {...},            # training.evaluation.summary.summarize
     "runs": [run report per seed], "command": "...", "wall_seconds": s}

A run report (one seed, from :func:`training.evaluation.harness.run_models`)::

    {"dataset": {"name", "sha256", "source", "summary"},
     "split": {"kind", "seed", "params"},
     "eval_data": {"n_users", "n_items", "n_candidates"},
     "ks": [10, 20, 50],
     "models": {name: {"fit_seconds", "score_seconds": {stage: s},
                       "hyperparameters": {...},
                       "valid": {metric: value}, "test": {metric: value}}}}

``per_user/seed<S>.csv`` holds one row per (stage, model, user) with every
metric; ``per_user/seed<S>_online.csv`` the online protocol's rows.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: (column header, metric key) of the Markdown table.
TABLE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("R@10", "recall@10"),
    ("N@10", "ndcg@10"),
    ("R@20", "recall@20"),
    ("N@20", "ndcg@20"),
    ("R@50", "recall@50"),
    ("N@50", "ndcg@50"),
    ("HR@10", "hit@10"),
    ("MRR@10", "mrr@10"),
    ("Cov@10", "coverage@10"),
)


def markdown_table(report: dict[str, Any], stage: str = "test") -> str:
    """One row per model with the headline metrics of ``stage`` and the fit time.

    Args:
        report: Report dict (see module docstring).
        stage: ``test`` or ``valid``.

    Returns:
        A Markdown table (no trailing newline).
    """
    head = ["Model", *[h for h, _ in TABLE_COLUMNS], "fit s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1))
             + "|"]
    for name, entry in report.get("models", {}).items():
        metrics = entry.get(stage, {})
        cells = [name]
        for _, key in TABLE_COLUMNS:
            val = metrics.get(key)
            cells.append("n/a" if val is None else f"{val:.4f}")
        cells.append(f"{entry.get('fit_seconds', 0.0):.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _fmt_point(point: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in point.items() if not k.startswith("valid_"))


def choices_markdown(name: str, hp: dict[str, Any]) -> list[str]:
    """Markdown lines: what ``name`` chose on validation, every value tried with its score."""
    lines = []
    searches = [(label, hp[key]) for label, key in (("", "search"),
                                                    ("EASE source λ: ", "ease_source_search"))
                if isinstance(hp.get(key), dict)]
    for label, search in searches:
        tried = sorted(search.get("tried", []), key=lambda p: -p.get("valid_ndcg@10", 0.0))
        cells = "; ".join(f"{_fmt_point(p)} → {p.get('valid_ndcg@10', float('nan')):.4f}"
                          for p in tried)
        ends = search.get("axes_still_at_an_end") or []
        lines.append(f"- {name}: {label}chose {_fmt_point(search.get('chosen', {}))} "
                     f"(valid N@10 {search.get('valid_ndcg@10_chosen', float('nan')):.4f}); "
                     f"tried {cells}"
                     + (f"; **still at an end: {', '.join(ends)}**" if ends else ""))
    if "valid_ndcg@10_by_variant" in hp:
        cells = "; ".join(f"{k} → {v:.4f}" for k, v in hp["valid_ndcg@10_by_variant"].items())
        lines.append(f"- {name}: chose variant `{hp.get('chosen_variant')}`; tried {cells}")
    for loss, hist in (hp.get("history_by_loss") or {}).items():
        curve = ", ".join(f"{v:.4f}" for v in hist.get("valid_ndcg@10", []))
        lines.append(f"- {name}: ranker loss {loss}, epoch {hist.get('best_epoch')} chosen on "
                     f"valid N@10 (per epoch: {curve})")
    return lines


def run_markdown(report: dict[str, Any]) -> str:
    """One seed's section: its test and validation tables and the choices made on validation."""
    split = report.get("split", {})
    info = report.get("eval_data", {})
    out = [
        f"### Seed {split.get('seed')}",
        "",
        f"Users: {info.get('n_users')}, items: {info.get('n_items')}, ranked candidates: "
        f"{info.get('n_candidates')}.",
        "",
        "Test:",
        "",
        markdown_table(report, "test"),
        "",
        "Validation:",
        "",
        markdown_table(report, "valid"),
        "",
        "Choices made on validation (value → validation NDCG@10):",
        "",
    ]
    for name, entry in report.get("models", {}).items():
        out += choices_markdown(name, entry.get("hyperparameters", {}))
    return "\n".join(out) + "\n"


def _ci(block: dict[str, Any]) -> str:
    return (f"{block['mean']:.4f} [{block['ci_low']:.4f}, {block['ci_high']:.4f}]"
            if "ci_low" in block else f"{block['mean']:.4f}")


def _diff(block: dict[str, Any]) -> str:
    mark = " ✔" if block["significant"] else ""
    rel = block.get("relative")
    rel_txt = f" ({rel:+.1%})" if isinstance(rel, float) and rel == rel else ""
    return (f"{block['mean']:+.4f} [{block['ci_low']:+.4f}, {block['ci_high']:+.4f}]"
            f"{rel_txt}{mark}")


def summary_table(report: dict[str, Any]) -> str:
    """Per model: test R@10 and N@10 with 95% intervals, other means, validation N@10."""
    summ = report["summary"]
    head = ["Model", "role", "R@10 [95% CI]", "N@10 [95% CI]", "R@50", "N@50", "Cov@10",
            "valid N@10"]
    lines = ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]
    for name, m in summ["models"].items():
        t, v = m.get("test", {}), m.get("valid", {})
        role = m["role"] + (" (best peer)" if name == summ.get("best_peer") else "")
        if m["role"] == "oracle":
            name = f"*{name}*"
        lines.append("| " + " | ".join([
            name, role, _ci(t["recall@10"]), _ci(t["ndcg@10"]),
            f"{t['recall@50']['mean']:.4f}", f"{t['ndcg@50']['mean']:.4f}",
            f"{t['coverage@10']['mean']:.4f}",
            f"{v['ndcg@10']['mean']:.4f}" if v else "n/a"]) + " |")
    return "\n".join(lines)


def comparison_table(report: dict[str, Any]) -> str:
    """Paired differences of each hybrid model to EASE and to the best peer."""
    lines = ["| Model | vs | ΔR@10 [95% CI] | ΔN@10 [95% CI] |", "|---|---|---:|---:|"]
    for name, comps in report["summary"]["comparisons"].items():
        for other, c in comps.items():
            lines.append(f"| {name} | {other} | {_diff(c['recall@10'])} | "
                         f"{_diff(c['ndcg@10'])} |")
    return "\n".join(lines)


def online_table(report: dict[str, Any]) -> str:
    """Online protocol: with/without the events and the gain, per model."""
    onl = report["summary"].get("online") or {}
    if not onl.get("models"):
        return ""
    lines = ["| Model | metric | without events | with events | gain [95% CI] |",
             "|---|---|---:|---:|---:|"]
    for name, block in onl["models"].items():
        for metric, b in block.items():
            lines.append(f"| {name} | {metric} | {_ci(b['without'])} | {_ci(b['with'])} | "
                         f"{_diff(b['gain'])} |")
    for name, block in onl.get("gain_vs_EASE", {}).items():
        for metric, b in block.items():
            lines.append(f"| {name} gain − EASE gain | {metric} | | | {_diff(b)} |")
    return "\n".join(lines)


def markdown_report(report: dict[str, Any]) -> str:
    """The full ``report.md``: summary with intervals, comparisons, online protocol, per seed."""
    ds = report.get("dataset", {})
    split = report.get("split", {})
    params = split.get("params", {})
    summ = report["summary"]
    out = [
        f"# Evaluation: {ds.get('name', '?')} / {split.get('kind', '?')} split",
        "",
        f"- reproduce: `{report.get('command', '')}`",
        *(["- **partial run**: the report of the seeds finished so far"]
          if report.get("complete") is False else []),
        f"- dataset sha256: `{ds.get('sha256', '') or 'n/a'}`",
        f"- seeds: {', '.join(str(s) for s in split.get('seeds', []))} (one split per seed); "
        + ", ".join(f"{k}={v}" for k, v in params.items() if k not in ("counts", "seed")),
        "- intervals: 95% stratified bootstrap over users (2000 resamples), mean over seeds;"
        " ✔ = the paired interval of the difference excludes 0 (significant).",
        "- every hyperparameter below was chosen on validation; test was read once per model"
        " and seed. *Oracle* rows read test by design: a ceiling, not a peer.",
        "",
        "## Test (mean over seeds)",
        "",
        summary_table(report),
        "",
        "## Paired differences (hybrid − other, test)",
        "",
        comparison_table(report) if summ["comparisons"] else "No hybrid model in this run.",
        "",
    ]
    onl = online_table(report)
    if onl:
        out += ["## Online protocol (first half of each test user's items fed as events)", "",
                onl, ""]
    out += ["## Per seed", ""]
    out += [run_markdown(run) for run in report.get("runs", [])]
    return "\n".join(out) + "\n"


def plot_report(report: dict[str, Any], path: Path) -> None:
    """Test R@10 and N@10 per model with 95% intervals; online gains when measured."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summ = report["summary"]
    names = [n for n, m in summ["models"].items() if "test" in m]
    onl = (summ.get("online") or {}).get("models") or {}
    ncols = 3 if onl else 2
    fig, axes = plt.subplots(1, ncols, figsize=(5 * ncols, 4.5), dpi=100)
    for ax, metric, title in zip(axes, ("recall@10", "ndcg@10"), ("Recall@10", "NDCG@10"),
                                 strict=False):
        vals = [summ["models"][n]["test"][metric] for n in names]
        mean = [v["mean"] for v in vals]
        err = [[v["mean"] - v["ci_low"] for v in vals], [v["ci_high"] - v["mean"] for v in vals]]
        colors = ["tab:red" if summ["models"][n]["role"] == "hybrid" else
                  "tab:gray" if summ["models"][n]["role"] == "oracle" else "tab:blue"
                  for n in names]
        ax.barh(range(len(names)), mean, xerr=err, color=colors, capsize=3)
        ax.set_yticks(range(len(names)), [n[:28] for n in names], fontsize="small")
        ax.invert_yaxis()
        ax.set_title(f"{title} (test, 95% CI)")
        ax.grid(True, axis="x", alpha=0.3)
    if onl:
        ax = axes[2]
        labels = list(onl)
        gains = [onl[n]["ndcg@10"]["gain"] for n in labels]
        ax.barh(range(len(labels)), [g["mean"] for g in gains],
                xerr=[[g["mean"] - g["ci_low"] for g in gains],
                      [g["ci_high"] - g["mean"] for g in gains]], color="tab:green", capsize=3)
        ax.set_yticks(range(len(labels)), [n[:28] for n in labels], fontsize="small")
        ax.invert_yaxis()
        ax.set_title("Online: NDCG@10 gain from events")
        ax.grid(True, axis="x", alpha=0.3)
    ds = report.get("dataset", {}).get("name", "?")
    seeds = len(report.get("split", {}).get("seeds", []))
    fig.suptitle(f"{ds} – {report.get('split', {}).get('kind', '?')} split, {seeds} seed(s)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_per_user(out: Path, seed: int, per_user: dict[str, dict[str, Any]],
                   user_ids: Any, name: str = "") -> Path:
    """``per_user/seed<S>[_name].csv``: one row per (stage/condition, model, user)."""
    import pandas as pd

    frames = []
    for model, stages in per_user.items():
        for stage, res in stages.items():
            df = pd.DataFrame(res.metrics)
            df.insert(0, "user_id", np.asarray(user_ids)[res.users] if len(res.users) else [])
            df.insert(0, "model", model)
            df.insert(0, "stage", stage)
            frames.append(df)
    path = out / "per_user" / f"seed{seed}{'_' + name if name else ''}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()).to_csv(
        path, index=False, float_format="%.6g")
    return path


def _finite(obj: Any) -> Any:
    """NaN/inf to None, recursively (report.json stays strict JSON)."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def write_report(report: dict[str, Any], out_dir: str | Path,
                 per_user: Sequence[dict[str, dict[str, Any]]] | None = None,
                 online: Sequence[dict[str, dict[str, Any]]] | None = None,
                 user_ids: Sequence[Any] | None = None) -> dict[str, Path]:
    """Write ``report.json``, ``report.md``, ``report.png`` and the per-user CSVs.

    Args:
        report: Multi-seed report dict (module docstring).
        out_dir: Output folder (created).
        per_user: Per seed, ``{model: {stage: UserMetrics}}``.
        online: Per seed, ``{model: {"with"|"without": UserMetrics}}``.
        user_ids: Per seed, the raw user ids of the split (user_idx -> id).

    Returns:
        ``{"json", "md", "png"}`` paths (plus ``per_user`` when written).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "report.json", "md": out / "report.md", "png": out / "report.png"}
    paths["json"].write_text(json.dumps(_finite(report), indent=1, allow_nan=False) + "\n")
    paths["md"].write_text(markdown_report(report))
    plot_report(report, paths["png"])
    seeds = report.get("split", {}).get("seeds", [])
    for k, s in enumerate(seeds):
        ids = user_ids[k] if user_ids is not None else None
        if per_user is not None and k < len(per_user):
            paths["per_user"] = write_per_user(out, s, per_user[k], ids)
        if online is not None and k < len(online) and online[k]:
            write_per_user(out, s, online[k], ids, name="online")
    return paths
