"""End to end at the gateway: latency at fixed request rates and where the time goes.

Starts retrieval, ranking and the gateway as real processes (``hybridrec serve``)
with Redis on this machine, then for each rate drives the gateway from a
separate process (:mod:`bench.loadgen`, open loop, latency from the intended
send time) with a recommendations mix, and - at the same rate, in the same run -
``GET /health/live`` through the same gateway as the baseline (the HTTP floor
of one uvicorn round trip). Every response's ``Server-Timing`` header gives the
per-stage breakdown: the gateway's own work, the internal HTTP calls, the cache
(Redis), the query tower, ANN, the other retrieval sources and merging, ranking
features and scoring, and serialisation at every hop. The breakdown is over the
undegraded answers; a stage that awaits (the internal calls, the cache) also
holds the time its event loop spent on other requests, so past saturation the
queueing shows up there.

Interface (stable; ``make bench`` calls it)::

    run_e2e(artifacts: Path | None = None, *, label="ml-latest-small",
            rates=(50, 100, 200, 400), duration_s=20.0, warmup_s=3.0,
            mix=None, out_dir=RESULTS, tag="", env_extra=None) -> dict

``artifacts=None`` uses (and on first use trains, for minutes) the small benchmark
bundle in ``bench/.cache/e2e-small``: ``hybridrec train --quick`` on the bundled
ml-latest-small with serving-sized candidate lists (depth 200, 200 candidates).
CLI::

    python -m bench.e2e [--catalogue small|synthetic] [--items 1000000]
        [--rates 50,100,200,400] [--duration 20] [--tag after]

Writes ``bench/results/e2e_<label>[_<tag>].json`` and ``.png``. Timings on a
shared 2-core machine are noisy: compare runs only with their same-run baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.common import machine
from bench.loadgen import CLIENT_KEY, LoadSpec, ids_from_bundle, parse_mix, run_load
from harness.processes import DEFAULT_REDIS_URL, ROOT, running_stack

RESULTS = ROOT / "bench" / "results"
CACHE = ROOT / "bench" / ".cache"
SMALL_CONFIG = {"two_stage": {"depth": 200, "max_candidates": 200, "min_candidates": 100}}
RECS_MIX = {"user_recs": 0.8, "anon_recs": 0.2}
GOAL_P99_MS = 25.0
GOAL_RATE = 200.0
#: The slowest share of the computed requests whose breakdown the report adds.
TAIL_SHARE = 0.02
#: The tail breakdown's extra category: the client's latency less the gateway's total.
OUTSIDE = "outside gateway"
#: Breakdown categories: name -> (stages added, stages subtracted), from the gateway's header.
BREAKDOWN: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "gateway": (("total",), ("retrieval", "ranking", "codec", "serialise", "fallback")),
    "internal HTTP": (("retrieval", "ranking"), ("retrieval.total", "ranking.total")),
    "cache (Redis)": (("retrieval.cache",), ()),
    "query tower": (("retrieval.query_tower",), ()),
    "ANN": (("retrieval.ann",), ()),
    "other sources + merge": (
        ("retrieval.total",),
        ("retrieval.cache", "retrieval.query_tower", "retrieval.ann", "retrieval.serialise"),
    ),
    "ranking": (("ranking.total",), ("ranking.serialise",)),
    "serialisation": (("serialise", "codec", "retrieval.serialise", "ranking.serialise"), ()),
}


def ensure_small_bundle(cache: Path = CACHE, *, progress: bool = True) -> Path:
    """The small benchmark bundle's root, trained with the real pipeline on first use."""
    from shared.contracts import bundle_layout as L

    root = cache / "e2e-small"
    # A bundle cached by an older hybridrec lacks files the services now require
    # (e.g. the users' full histories): a new version is trained beside it.
    if (root / "latest" / L.SEEN_ITEMS).exists():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    cfg = root.parent / "e2e-small-config.json"
    cfg.write_text(json.dumps(SMALL_CONFIG))
    cmd = [sys.executable, "-c", "import sys; from hybridrec.cli import main; sys.exit(main())",
           "train", "--quick", "--config", str(cfg), "--out", str(root),
           "--data", str(ROOT / "data" / "ml-latest-small.zip")]  # fmt: skip
    if progress:
        print(f"[e2e] training the benchmark bundle into {root} (once)", file=sys.stderr)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    subprocess.run(cmd, check=True, cwd=ROOT, env=env,
                   stdout=sys.stderr if progress else subprocess.DEVNULL)  # fmt: skip
    return root


def ensure_synthetic_bundle(n_items: int, base: Path | None = None) -> Path:
    """A synthetic catalogue of ``n_items`` from :mod:`bench.synthetic_bundle` (cached)."""
    from bench.synthetic_bundle import build_synthetic_bundle

    base = base or ensure_small_bundle()
    out = CACHE / f"e2e-synthetic-{n_items}"
    build_synthetic_bundle(out, n_items, base_bundle=base)
    return out


def breakdown(stages_ms: dict[str, float]) -> dict[str, float]:
    """One request's gateway stages grouped into :data:`BREAKDOWN` categories (ms)."""
    out = {}
    for name, (plus, minus) in BREAKDOWN.items():
        value = sum(stages_ms.get(s, 0.0) for s in plus) - sum(stages_ms.get(s, 0.0) for s in minus)
        out[name] = round(max(0.0, value), 4)
    return out


def breakdown_per_request(
    samples: dict[str, list[dict[str, float]]], tail_share: float = TAIL_SHARE
) -> dict[str, Any]:
    """Median and mean of each :data:`BREAKDOWN` category over undegraded requests.

    ``tail`` holds the same medians over the slowest ``tail_share`` of the requests (by
    the latency the client saw), plus ``outside gateway``: the client's latency less the
    gateway's ``total`` (waiting to be accepted and parsed, the response's way back and
    the load generator's own lag). Set beside ``median_ms``, it shows which stages
    grow in the slowest requests, i.e. where the p99 comes from.
    """
    import numpy as np

    flat = [st for per_kind in samples.values() for st in per_kind]
    rows = [breakdown(st) for st in flat]
    if not rows:
        return {"n": 0, "median_ms": {}, "mean_ms": {}}
    out: dict[str, Any] = {
        "n": len(rows),
        "median_ms": {c: round(float(np.median([r[c] for r in rows])), 4) for c in BREAKDOWN},
        "mean_ms": {c: round(float(np.mean([r[c] for r in rows])), 4) for c in BREAKDOWN},
        "total_median_ms": round(float(np.median([st.get("total", 0.0) for st in flat])), 4),
    }
    timed = [(st[CLIENT_KEY], st, r) for st, r in zip(flat, rows, strict=True) if CLIENT_KEY in st]
    if timed:
        timed.sort(key=lambda t: t[0])
        slow = timed[-max(1, round(len(timed) * tail_share)) :]
        cats = [*BREAKDOWN, OUTSIDE]
        tail_rows = [
            {**r, OUTSIDE: max(0.0, client - st.get("total", 0.0))} for client, st, r in slow
        ]
        out["tail"] = {
            "share": tail_share,
            "n": len(slow),
            "client_min_ms": round(slow[0][0], 4),
            "median_ms": {
                c: round(float(np.median([r[c] for r in tail_rows])), 4) for c in cats
            },
        }
    return out


def _merge_kinds(report: dict[str, Any], key: str) -> dict[str, float]:
    """Stage values of the recommendation kinds, weighted by their counts."""
    per_kind = report.get(key, {})
    counts = {k: report["by_kind"].get(k, {}).get("count", 0) for k in per_kind}
    total = sum(counts.values()) or 1
    names = {s for st in per_kind.values() for s in st}
    return {
        s: round(sum(per_kind[k].get(s, 0.0) * counts[k] for k in per_kind) / total, 4)
        for s in sorted(names)
    }


def run_e2e(
    artifacts: Path | None = None,
    *,
    label: str = "ml-latest-small",
    rates: Sequence[float] = (50, 100, 200, 400),
    duration_s: float = 20.0,
    warmup_s: float = 3.0,
    mix: dict[str, float] | None = None,
    redis_url: str = DEFAULT_REDIS_URL,
    out_dir: Path | None = RESULTS,
    tag: str = "",
    env_extra: dict[str, str] | None = None,
    baseline: bool = True,
    code_root: Path | None = None,
) -> dict[str, Any]:
    """Run the end-to-end benchmark; returns (and writes) the report."""
    artifacts = artifacts or ensure_small_bundle()
    users, items = ids_from_bundle(artifacts)
    mix = mix or dict(RECS_MIX)
    workdir = Path(tempfile.mkdtemp(prefix="hr-e2e-"))
    machine_info = machine()  # before the services start: the CPU calibration runs alone
    runs: list[dict[str, Any]] = []
    t_start = time.time()
    with running_stack(
        artifacts, workdir, redis_url=redis_url, serve=True, code_root=code_root,
        **{"HYBRIDREC_LOG_LEVEL": "warning", **(env_extra or {})},
    ) as svcs:
        pids = {name: svc.pid for name, svc in svcs.items()}
        gateway = svcs["gateway"].url
        for rate in rates:
            row: dict[str, Any] = {"rate": rate}
            if baseline:
                base_spec = LoadSpec(url=gateway, rate=rate, duration_s=duration_s / 2,
                                     warmup_s=1.0, mix={"live": 1.0})  # fmt: skip
                row["baseline"] = _slim(run_load(base_spec, log_path=workdir / "loadgen.log"))
            spec = LoadSpec(
                url=gateway, rate=rate, duration_s=duration_s, warmup_s=warmup_s, mix=mix,
                user_ids=users, item_ids=items, pids=pids, seed=int(rate),
                keep_stage_samples=True,
            )  # fmt: skip
            rep = run_load(spec, log_path=workdir / "loadgen.log")
            per_request = breakdown_per_request(rep.pop("stage_samples", {}))
            row.update(
                load=_slim(rep),
                stages_median_ms=_merge_kinds(rep, "stages_ms"),
                stages_mean_ms=_merge_kinds(rep, "stages_mean_ms"),
                breakdown=per_request,
                breakdown_median_ms=per_request["median_ms"],
            )
            runs.append(row)
            _print_row(label, row)
    report = {
        "benchmark": "e2e",
        "label": label,
        "tag": tag,
        "artifacts": str(artifacts),
        "mix": mix,
        "duration_s": duration_s,
        "warmup_s": warmup_s,
        "cpus": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
        "machine": machine_info,
        "wall_s": round(time.time() - t_start, 1),
        "goal": {"rate": GOAL_RATE, "p99_ms": GOAL_P99_MS},
        "goal_met": _goal_met(runs),
        "runs": runs,
        "env_extra": env_extra or {},
        "code_root": str(code_root or ROOT),
    }
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        stem = f"e2e_{label}" + (f"_{tag}" if tag else "")
        (out_dir / f"{stem}.json").write_text(json.dumps(report, indent=2))
        plot_e2e(report, out_dir / f"{stem}.png")
    return report


def _slim(rep: dict[str, Any]) -> dict[str, Any]:
    """A loadgen report without the raw memory samples (kept: their summary)."""
    memory = {
        name: {k: v for k, v in m.items() if k != "samples"} for name, m in rep["memory"].items()
    }
    return {**{k: v for k, v in rep.items() if k not in ("memory", "stages_mean_ms")},
            "memory": memory}  # fmt: skip


def _goal_met(runs: list[dict[str, Any]]) -> bool | None:
    at = [r for r in runs if r["rate"] == GOAL_RATE]
    if not at:
        return None
    load = at[0]["load"]
    return bool(load["errors"]["total"] == 0 and load["latency"].get("p99_ms", 1e9) <= GOAL_P99_MS)


def _print_row(label: str, row: dict[str, Any]) -> None:
    lat = row["load"]["latency"]
    base = row.get("baseline", {}).get("latency", {})
    print(
        f"[e2e {label}] {row['rate']:5.0f} req/s: achieved {row['load']['achieved_rps']:6.1f}  "
        f"p50 {lat.get('p50_ms', 0):7.2f}  p95 {lat.get('p95_ms', 0):7.2f}  "
        f"p99 {lat.get('p99_ms', 0):7.2f} ms  errors {row['load']['errors']['total']}  "
        f"degraded {row['load']['degraded']['total']}  "
        f"cache hits {row['load'].get('result_cache', {}).get('hit_rate', 0):.0%}  "
        f"CPU ms/req {_cpu_cells(row)}  major faults/s {_fault_cells(row)}  "
        f"(baseline /health/live p50 {base.get('p50_ms', 0):.2f} p99 {base.get('p99_ms', 0):.2f})",
        file=sys.stderr,
        flush=True,
    )
    tail = row.get("breakdown", {}).get("tail")
    if tail:
        med, slow = row["breakdown"]["median_ms"], tail["median_ms"]
        cells = "  ".join(
            f"{c} {med.get(c, 0.0):.1f}->{slow[c]:.1f}" for c in slow if slow[c] >= 0.5
        )
        print(
            f"[e2e {label}]   slowest {tail['share']:.0%} of computed answers "
            f"(>= {tail['client_min_ms']:.1f} ms), median ms -> tail median ms: {cells}",
            file=sys.stderr,
            flush=True,
        )


def _cpu_cells(row: dict[str, Any]) -> str:
    cpu = row["load"].get("cpu", {})
    return "/".join(
        f"{cpu.get(n, {}).get('cpu_ms_per_request') or float('nan'):.1f}"
        for n in ("gateway", "retrieval", "ranking")
    )


def _fault_cells(row: dict[str, Any]) -> str:
    kernel = row["load"].get("kernel", {})
    return "/".join(
        f"{kernel.get(n, {}).get('major_faults_per_s', float('nan')):.1f}"
        for n in ("gateway", "retrieval", "ranking")
    )


def plot_e2e(report: dict[str, Any], path: Path) -> Path:
    """Latency vs rate per percentile (with the baseline), and the stacked stage breakdown."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    runs = report["runs"]
    rates = [r["rate"] for r in runs]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(14.5, 4.8))
    for q, style in (("p50_ms", "o-"), ("p95_ms", "s-"), ("p99_ms", "^-")):
        ax.plot(rates, [r["load"]["latency"].get(q, np.nan) for r in runs], style, label=q[:3])
    if any("baseline" in r for r in runs):
        ax.plot(rates, [r.get("baseline", {}).get("latency", {}).get("p99_ms", np.nan)
                        for r in runs], "k--", label="p99 /health/live (baseline)")  # fmt: skip
    ax.axhline(GOAL_P99_MS, color="tab:red", lw=0.8, ls=":", label="goal p99 25 ms")
    ax.set_yscale("log")
    ax.set_xlabel("offered load, requests/s")
    ax.set_ylabel("latency from intended send, ms")
    ax.set_title(f"gateway recommendations, {report['label']}")
    ax.legend(fontsize=8)
    tails = [r.get("breakdown", {}).get("tail", {}).get("median_ms", {}) for r in runs]
    has_tail = any(tails)
    cats = [*BREAKDOWN, OUTSIDE] if has_tail else list(BREAKDOWN)
    x = np.arange(len(runs))
    # Per rate: the medians of all computed answers, and (hatched) of the slowest ones.
    width = 0.38 if has_tail else 0.76
    left, right = (x - width / 2, x + width / 2) if has_tail else (x, x)
    bottoms = (np.zeros(len(runs)), np.zeros(len(runs)))
    for i, cat in enumerate(cats):
        color = f"C{i % 10}"
        med = np.asarray([r["breakdown_median_ms"].get(cat, 0.0) for r in runs])
        bx.bar(left, med, width, bottom=bottoms[0], color=color, label=cat)
        bottoms[0][:] += med
        if has_tail:
            slow = np.asarray([t.get(cat, 0.0) for t in tails])
            bx.bar(right, slow, width, bottom=bottoms[1], color=color, hatch="//",
                   edgecolor="white", linewidth=0)  # fmt: skip
            bottoms[1][:] += slow
    bx.set_xticks(x, [f"{r:g}" for r in rates])
    share = max(r.get("breakdown", {}).get("tail", {}).get("share", 0.0) for r in runs)
    bx.set_xlabel("offered load, requests/s" + (
        f"  (left: median answer; hatched: slowest {share:.0%})" if has_tail else ""))
    bx.set_ylabel("ms (medians per stage, stacked)")
    bx.set_title("where the time goes (Server-Timing)")
    bx.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    tag = f" [{report['tag']}]" if report.get("tag") else ""
    fig.suptitle(f"hybridrec end to end{tag}: all services + Redis on {report['cpus']} cores")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def summary_table(report: dict[str, Any]) -> str:
    """A markdown table of the runs (latency and the breakdown medians)."""
    cats = list(BREAKDOWN)
    head = ["rate", "achieved", "p50", "p95", "p99", "max", "errors", "degraded", "floor p99",
            "CPU ms/req gw/ret/rank", *cats]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in report["runs"]:
        lat, load = r["load"]["latency"], r["load"]
        base = r.get("baseline", {}).get("latency", {})
        cells = [f"{r['rate']:g}", f"{load['achieved_rps']:.0f}"]
        cells += [f"{lat.get(q, float('nan')):.1f}" for q in ("p50_ms", "p95_ms", "p99_ms")]
        cells += [f"{lat.get('max_ms', float('nan')):.1f}"]
        cells += [str(load["errors"]["total"]), str(load["degraded"]["total"])]
        cells += [f"{base.get('p99_ms', float('nan')):.1f}", _cpu_cells(r)]
        cells += [f"{r['breakdown_median_ms'].get(c, float('nan')):.2f}" for c in cats]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--catalogue", choices=["small", "synthetic"], default="small")
    ap.add_argument("--items", type=int, default=1_000_000, help="synthetic catalogue size")
    ap.add_argument("--artifacts", type=Path, default=None, help="use this bundle root instead")
    ap.add_argument("--rates", default="50,100,200,400")
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--mix", default=None, help="e.g. user_recs=0.8,anon_recs=0.2")
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--tag", default="")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--env", action="append", default=[], help="NAME=VALUE for the services")
    ap.add_argument("--code-root", type=Path, default=None, help="run the services from here")
    args = ap.parse_args(argv)
    # absolute: the services may run from another checkout (--code-root), another cwd
    artifacts = args.artifacts.resolve() if args.artifacts else None
    label = artifacts.name.removeprefix("e2e-") if artifacts else "custom"
    if artifacts is None and args.catalogue == "synthetic":
        artifacts, label = ensure_synthetic_bundle(args.items), f"synthetic-{args.items}"
    elif artifacts is None:
        label = "ml-latest-small"
    report = run_e2e(
        artifacts,
        label=label,
        rates=[float(r) for r in args.rates.split(",")],
        duration_s=args.duration,
        warmup_s=args.warmup,
        mix=parse_mix(args.mix) if args.mix else None,
        out_dir=args.out,
        tag=args.tag,
        env_extra=dict(e.split("=", 1) for e in args.env),
        baseline=not args.no_baseline,
        code_root=args.code_root,
    )
    print(summary_table(report))
    print(f"goal (p99 <= {GOAL_P99_MS:g} ms at {GOAL_RATE:g} req/s, no errors): "
          f"{report['goal_met']}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
