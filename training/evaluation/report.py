"""Write an evaluation report: ``report.json``, ``report.md`` and ``report.png``.

The report dict comes from :func:`training.evaluation.harness.run_models`::

    {"dataset": {"name", "sha256", "source", "summary"},
     "split": {"kind", "seed", "params"},
     "eval_data": {"n_users", "n_items", "n_candidates"},
     "ks": [10, 20, 50],
     "models": {name: {"fit_seconds", "score_seconds": {stage: s},
                       "hyperparameters": {...},
                       "valid": {metric: value}, "test": {metric: value}}}}
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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


def markdown_report(report: dict[str, Any]) -> str:
    """The full ``report.md`` text: what was evaluated, the test table, chosen hyperparameters."""
    ds = report.get("dataset", {})
    split = report.get("split", {})
    params = split.get("params", {})
    info = report.get("eval_data", {})
    out = [
        f"# Evaluation: {ds.get('name', '?')} / {split.get('kind', '?')} split",
        "",
        f"- dataset sha256: `{ds.get('sha256', '') or 'n/a'}`",
        f"- split: {split.get('kind')} (seed {split.get('seed')}), "
        + ", ".join(f"{k}={v}" for k, v in params.items() if k != "counts"),
        f"- users: {info.get('n_users')}, items: {info.get('n_items')}, "
        f"ranked candidates: {info.get('n_candidates')}",
        "",
        "## Test",
        "",
        markdown_table(report, "test"),
        "",
    ]
    if any("valid" in e for e in report.get("models", {}).values()):
        out += ["## Validation", "", markdown_table(report, "valid"), ""]
    out += ["## Hyperparameters", ""]
    for name, entry in report.get("models", {}).items():
        hp = entry.get("hyperparameters", {})
        out.append(f"- {name}: `{json.dumps(hp)}`")
    return "\n".join(out) + "\n"


def plot_report(report: dict[str, Any], path: Path, stage: str = "test") -> None:
    """Two panels, Recall@K and NDCG@K against K, one line per model (matplotlib Agg).

    Args:
        report: Report dict.
        path: PNG destination.
        stage: Stage to plot.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = [int(k) for k in report.get("ks", [10, 20, 50])]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
    for ax, metric, title in zip(axes, ("recall", "ndcg"), ("Recall@K", "NDCG@K"), strict=True):
        for name, entry in report.get("models", {}).items():
            vals = [entry.get(stage, {}).get(f"{metric}@{k}", float("nan")) for k in ks]
            ax.plot(ks, vals, marker="o", label=name)
        ax.set_title(title)
        ax.set_xlabel("K")
        ax.set_xticks(ks)
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel(stage)
    axes[1].legend(loc="best", fontsize="small")
    ds = report.get("dataset", {}).get("name", "?")
    fig.suptitle(f"{ds} – {report.get('split', {}).get('kind', '?')} split ({stage})")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_report(report: dict[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """Write ``report.json``, ``report.md`` and ``report.png`` into ``out_dir`` (created).

    Args:
        report: Report dict from :func:`~training.evaluation.harness.run_models`.
        out_dir: Output folder.

    Returns:
        ``{"json": path, "md": path, "png": path}``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "report.json", "md": out / "report.md", "png": out / "report.png"}
    paths["json"].write_text(json.dumps(report, indent=2, sort_keys=False, allow_nan=False) + "\n")
    paths["md"].write_text(markdown_report(report))
    plot_report(report, paths["png"])
    return paths
