"""``make bench-load`` and ``make bench-soak``: the gateway under fixed-rate load.

``load``: the whole stack (``hybridrec serve`` retrieval, ranking, gateway and
Redis on this machine) driven from a separate process (:mod:`bench.loadgen`) at
each rate for a bounded time with the full request mix (known-user and
anonymous recommendations, similar items, item lookups, events); reports
throughput, p50/p95/p99/max, errors by status, degraded answers, CPU per
request and memory growth per service (``bench/results/load.json`` + ``.png``).
Two series over the same stack: ``cached`` (the gateway's result cache on, users
and items drawn with Zipf skew ``--skew``, the way traffic concentrates on active
users and popular items) and, as the baseline, ``uncached`` (every recommendation
computed: ``Cache-Control: no-cache``). First, the ``cold`` phase: a fresh stack
(started for it, ready = warm), a result cache with nothing in it and users drawn
uniformly, driven at once at ``--cold-rate`` for ``--cold-duration`` seconds with no
warm-up excluded from the figures: what the first seconds after a deploy or a restart
look like (p99 and errors; answers shed as ``degraded: ["overload"]`` are counted apart).
Before the burst, the first computed answer after ready is timed against the median
of the next 100 (:func:`first_vs_next`).

``soak``: one rate for a long time (default 10 minutes at 100 requests/s after a
1-minute warm-up); the verdict is ``zero errors`` and ``memory growth < 10 %``
after the warm-up for every service (``bench/results/soak.json`` + ``.png``).

    python -m bench.load load [--rates 50,100,200,400] [--duration 20]
                              [--cold-rate 200] [--cold-duration 10] [--combined]
    python -m bench.load soak [--rate 100] [--duration 600] [--warmup 60]

Loopback only; every run is bounded in count and time and stops by itself.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.e2e import RESULTS, ensure_small_bundle
from bench.loadgen import DEFAULT_MIX, LoadSpec, ids_from_bundle, parse_mix, run_load
from harness.processes import DEFAULT_REDIS_URL, public_endpoint, running_stack

MAX_GROWTH_PCT = 10.0
DEFAULT_SKEW = 1.0
MODES = ("cached", "uncached")


def _spec(url: str, artifacts: Path, pids: dict[str, int], **kw: Any) -> LoadSpec:
    users, items = ids_from_bundle(artifacts)
    return LoadSpec(url=url, user_ids=users, item_ids=items, pids=pids, **kw)


FIRST_PROBES = 101


def _deployment(combined: bool) -> dict[str, Any]:
    """``running_stack`` arguments of the split (default) or of one process per core."""
    return {"combined": True, "workers": os.cpu_count() or 1} if combined else {}


def first_vs_next(url: str, item_ids: list[str], n: int = FIRST_PROBES) -> dict[str, Any]:
    """The first computed answer after ready against the median of the next ``n - 1``.

    Sequential anonymous recommendations (a different single recent item each, so none
    is in the result cache and no user's cache the burst needs is filled); ready means
    warm when the first is not much slower than the rest (goal: at most 3x the median).
    """
    import httpx

    times, degraded = [], 0
    with httpx.Client(base_url=url, timeout=30) as client:
        for j in range(n):
            item = item_ids[j % len(item_ids)]
            t0 = time.perf_counter()
            r = client.post("/v1/recommendations", json={"recent_item_ids": [item]})
            times.append((time.perf_counter() - t0) * 1000)
            degraded += r.status_code != 200 or bool(r.json().get("degraded"))
    rest = sorted(times[1:])
    median = rest[len(rest) // 2] if rest else float("nan")
    return {
        "first_ms": round(times[0], 2),
        "median_next_ms": round(median, 2),
        "ratio": round(times[0] / median, 2) if rest else None,
        "degraded_or_error": degraded,
        "n": n,
    }


def run_cold_start(
    artifacts: Path,
    *,
    rate: float = 200.0,
    duration_s: float = 10.0,
    mix: dict[str, float] | None = None,
    redis_url: str = DEFAULT_REDIS_URL,
    combined: bool = False,
) -> dict[str, Any]:
    """Fresh services, an empty result cache, uniform users, at ``rate`` from the start.

    Nothing is excluded as warm-up: the figures cover the first request on. The stack is
    its own (a fresh Redis key prefix, so no cached answer exists) and stopped after.
    """
    workdir = Path(tempfile.mkdtemp(prefix="hr-cold-"))
    started = time.perf_counter()
    with running_stack(
        artifacts, workdir, redis_url=redis_url, serve=True, HYBRIDREC_LOG_LEVEL="warning",
        **_deployment(combined),
    ) as svcs:
        ready_s = time.perf_counter() - started
        url, pids = public_endpoint(svcs)
        _, items = ids_from_bundle(artifacts)
        first = first_vs_next(url, items[::-1])  # least popular first
        rep = run_load(
            _spec(url, artifacts, pids, rate=rate, duration_s=duration_s,
                  warmup_s=0.0, mix=mix or dict(DEFAULT_MIX), seed=int(rate) + 1, skew=0.0,
                  no_cache=False),
            log_path=workdir / "loadgen.log",
        )  # fmt: skip
    rep["mode"] = "cold"
    rep["start_to_ready_s"] = round(ready_s, 1)
    rep["first_request"] = first
    lat = rep["latency"]
    print(
        f"[load] cold     {rate:5.0f} req/s: achieved {rep['achieved_rps']:6.1f}  "
        f"p50 {lat.get('p50_ms', 0):7.2f}  p99 {lat.get('p99_ms', 0):7.2f} ms  "
        f"errors {rep['errors']['total']}  degraded {rep['degraded']['total']}  "
        f"(fresh stack ready in {ready_s:.1f} s; first answer after ready "
        f"{first['first_ms']:.1f} ms = {first['ratio']}x the median of the next "
        f"{first['n'] - 1})",
        file=sys.stderr,
        flush=True,
    )
    return rep


def run_rates(
    artifacts: Path | None = None,
    *,
    rates: tuple[float, ...] = (50, 100, 200, 400),
    duration_s: float = 20.0,
    warmup_s: float = 3.0,
    mix: dict[str, float] | None = None,
    out_dir: Path | None = RESULTS,
    redis_url: str = DEFAULT_REDIS_URL,
    skew: float = DEFAULT_SKEW,
    modes: tuple[str, ...] = MODES,
    cold_rate: float = 200.0,
    cold_duration_s: float = 10.0,
    combined: bool = False,
) -> dict[str, Any]:
    """The cold-start phase (``cold_duration_s`` > 0), then each mode and each rate in turn
    against one stack; returns (and writes) ``load.json`` (``combined``: the one-process
    deployment, one worker per core, written as ``load_combined.json``)."""
    if not modes or set(modes) - set(MODES):
        raise ValueError(f"modes must be some of {MODES}, got {modes}")
    artifacts = artifacts or ensure_small_bundle()
    cold = (
        run_cold_start(
            artifacts, rate=cold_rate, duration_s=cold_duration_s, mix=mix, redis_url=redis_url,
            combined=combined,
        )
        if cold_duration_s > 0
        else None
    )
    workdir = Path(tempfile.mkdtemp(prefix="hr-load-"))
    runs = []
    with running_stack(
        artifacts, workdir, redis_url=redis_url, serve=True, HYBRIDREC_LOG_LEVEL="warning",
        **_deployment(combined),
    ) as svcs:
        url, pids = public_endpoint(svcs)
        for mode in modes:
            for rate in rates:
                rep = run_load(
                    _spec(url, artifacts, pids, rate=rate, duration_s=duration_s,
                          warmup_s=warmup_s, mix=mix or dict(DEFAULT_MIX), seed=int(rate),
                          skew=skew, no_cache=mode == "uncached"),
                    log_path=workdir / "loadgen.log",
                )  # fmt: skip
                rep["mode"] = mode
                runs.append(rep)
                lat = rep["latency"]
                print(
                    f"[load] {mode:8s} {rate:5.0f} req/s: achieved {rep['achieved_rps']:6.1f}  "
                    f"p50 {lat.get('p50_ms', 0):7.2f}  p95 {lat.get('p95_ms', 0):7.2f}  "
                    f"p99 {lat.get('p99_ms', 0):7.2f} ms  errors {rep['errors']['total']}  "
                    f"degraded {rep['degraded']['total']}  "
                    f"cache hits {rep['result_cache']['hit_rate']:.0%}",
                    file=sys.stderr,
                    flush=True,
                )
    report = {
        "benchmark": "load",
        "deployment": "combined" if combined else "split",
        "artifacts": str(artifacts),
        "skew": skew,
        "modes": list(modes),
        "cpus": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
        "cold_start": cold,
        "runs": runs,
    }
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        stem = "load_combined" if combined else "load"
        (out_dir / f"{stem}.json").write_text(json.dumps(report, indent=2))
        plot_load(report, out_dir / f"{stem}.png")
    return report


def run_soak(
    artifacts: Path | None = None,
    *,
    rate: float = 100.0,
    duration_s: float = 600.0,
    warmup_s: float = 60.0,
    mix: dict[str, float] | None = None,
    out_dir: Path | None = RESULTS,
    redis_url: str = DEFAULT_REDIS_URL,
    skew: float = DEFAULT_SKEW,
    no_cache: bool = False,
) -> dict[str, Any]:
    """One long run; the verdict needs zero errors and < 10 % memory growth after warm-up."""
    artifacts = artifacts or ensure_small_bundle()
    workdir = Path(tempfile.mkdtemp(prefix="hr-soak-"))
    started = time.time()
    with running_stack(
        artifacts, workdir, redis_url=redis_url, serve=True, HYBRIDREC_LOG_LEVEL="warning"
    ) as svcs:
        pids = {name: svc.pid for name, svc in svcs.items()}
        rep = run_load(
            _spec(svcs["gateway"].url, artifacts, pids, rate=rate, duration_s=duration_s,
                  warmup_s=warmup_s, mix=mix or dict(DEFAULT_MIX), sample_every_s=5.0,
                  timeline_bucket_s=30.0, skew=skew, no_cache=no_cache),
            log_path=workdir / "loadgen.log",
        )  # fmt: skip
    growth = {name: m.get("growth_pct") for name, m in rep["memory"].items()}
    verdict = {
        "zero_errors": rep["errors"]["total"] == 0,
        "memory_growth_under_10pct": all(
            g is not None and g < MAX_GROWTH_PCT for g in growth.values()
        ),
        "memory_growth_pct": growth,
        "errors": rep["errors"],
        "degraded": rep["degraded"],
    }
    verdict["pass"] = verdict["zero_errors"] and verdict["memory_growth_under_10pct"]
    report = {
        "benchmark": "soak",
        "skew": skew,
        "no_cache": no_cache,
        "artifacts": str(artifacts),
        "cpus": os.cpu_count(),
        "wall_s": round(time.time() - started, 1),
        "verdict": verdict,
        "run": rep,
    }
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "soak.json").write_text(json.dumps(report, indent=2))
        plot_soak(report, out_dir / "soak.png")
    return report


def plot_load(report: dict[str, Any], path: Path) -> Path:
    """Latency percentiles and throughput vs rate; errors; RSS over each run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = report["runs"]
    fig, (ax, ex, mx) = plt.subplots(1, 3, figsize=(15, 4.5))
    modes = list(dict.fromkeys(r.get("mode", "cached") for r in runs))
    for m, mode in enumerate(modes):
        sub = [r for r in runs if r.get("mode", "cached") == mode]
        rates = [r["rate_target"] for r in sub]
        for q, style in (("p50_ms", "o-"), ("p99_ms", "^--")):
            ax.plot(rates, [r["latency"].get(q, float("nan")) for r in sub], style,
                    color=f"C{m}", label=f"{mode} {q[:3]}")  # fmt: skip
    ax.axhline(25, color="grey", ls=":", label="goal: p99 25 ms")
    ax.set_yscale("log")
    ax.set_xlabel("offered load, requests/s")
    ax.set_ylabel("latency from intended send, ms")
    ax.legend(loc="upper left", fontsize=7)
    ax.set_title(f"latency (full request mix, skew {report.get('skew', 0):g})")
    width = 0.4
    xs = list(range(len(runs)))
    ex.bar([x - width / 2 for x in xs], [r["errors"]["total"] for r in runs], width,
           label="errors")  # fmt: skip
    ex.bar([x + width / 2 for x in xs], [r["degraded"]["total"] for r in runs], width,
           label="degraded answers")  # fmt: skip
    ex.set_xticks(xs, [f"{r.get('mode', '')[:1]}{r['rate_target']:g}" for r in runs])
    ex.set_xlabel("offered load, requests/s")
    ex.set_title("errors and degraded answers")
    ex.legend(fontsize=8)
    offset = 0.0
    for i, r in enumerate(runs):
        for j, (name, m) in enumerate(sorted(r["memory"].items())):
            pts = m.get("samples", [])
            mx.plot([offset + t for t, _ in pts], [mb for _, mb in pts], color=f"C{j}",
                    label=name if i == 0 else None)  # fmt: skip
        offset += r["warmup_s"] + r["duration_s"] + 1
    mx.set_xlabel("seconds (runs back to back)")
    mx.set_ylabel("RSS, MiB")
    mx.set_title("service memory")
    mx.legend(fontsize=8)
    fig.suptitle(f"hybridrec gateway under load on {report['cpus']} cores (all services + Redis)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_soak(report: dict[str, Any], path: Path) -> Path:
    """RSS per service over time and latency per time bucket."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rep = report["run"]
    fig, (mx, lx) = plt.subplots(1, 2, figsize=(13, 4.5))
    for name, m in sorted(rep["memory"].items()):
        pts = m.get("samples", [])
        mx.plot([t for t, _ in pts], [mb for _, mb in pts],
                label=f"{name} ({m.get('growth_pct', float('nan')):+.1f} %)")  # fmt: skip
    mx.axvline(rep["warmup_s"], color="grey", ls=":", label="end of warm-up")
    mx.set_xlabel("seconds")
    mx.set_ylabel("RSS, MiB")
    mx.set_title("memory (growth after warm-up)")
    mx.legend(fontsize=8)
    tl = rep["timeline"]
    ts = [b["t_s"] + rep["warmup_s"] for b in tl]
    for q in ("p50_ms", "p95_ms", "p99_ms"):
        lx.plot(ts, [b.get(q, float("nan")) for b in tl], label=q[:3])
    lx.set_yscale("log")
    lx.set_xlabel("seconds")
    lx.set_ylabel("latency, ms")
    lx.set_title("latency per 30 s")
    lx.legend(fontsize=8)
    v = report["verdict"]
    fig.suptitle(
        f"soak {rep['rate_target']:g} req/s for {rep['duration_s']:g} s"
        f"{' (every answer computed)' if report.get('no_cache') else ' (result cache on)'}: "
        f"{'PASS' if v['pass'] else 'FAIL'} (errors {v['errors']['total']}, "
        f"max growth {max((g or 0) for g in v['memory_growth_pct'].values()):.1f} %)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    lo = sub.add_parser("load", help="fixed rates, bounded time each")
    lo.add_argument("--rates", default="50,100,200,400")
    lo.add_argument("--duration", type=float, default=20.0)
    lo.add_argument("--warmup", type=float, default=3.0)
    lo.add_argument("--modes", default=",".join(MODES), help="cached, uncached or both")
    lo.add_argument("--cold-rate", type=float, default=200.0,
                    help="req/s of the cold-start phase (fresh stack, empty cache)")  # fmt: skip
    lo.add_argument("--cold-duration", type=float, default=10.0,
                    help="seconds of the cold-start phase; 0 skips it")  # fmt: skip
    lo.add_argument("--combined", action="store_true",
                    help="serve all three in one process per core (hybridrec serve combined)")
    so = sub.add_parser("soak", help="one rate for a long time, with a verdict")
    so.add_argument("--rate", type=float, default=100.0)
    so.add_argument("--duration", type=float, default=600.0)
    so.add_argument("--warmup", type=float, default=60.0)
    so.add_argument("--no-cache", action="store_true",
                    help="every recommendation computed (Cache-Control: no-cache)")  # fmt: skip
    for p in (lo, so):
        p.add_argument("--artifacts", type=Path, default=None, help="bundle root (default: small)")
        p.add_argument("--mix", default=None, help="e.g. user_recs=0.6,item=0.4")
        p.add_argument("--skew", type=float, default=DEFAULT_SKEW, help="Zipf skew of users")
        p.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    mix = parse_mix(args.mix) if args.mix else None
    if args.cmd == "load":
        run_rates(
            args.artifacts,
            rates=tuple(float(r) for r in args.rates.split(",")),
            duration_s=args.duration,
            warmup_s=args.warmup,
            mix=mix,
            out_dir=args.out,
            skew=args.skew,
            modes=tuple(m.strip() for m in args.modes.split(",") if m.strip()),
            cold_rate=args.cold_rate,
            cold_duration_s=args.cold_duration,
            combined=args.combined,
        )
        return 0
    report = run_soak(
        args.artifacts,
        rate=args.rate,
        duration_s=args.duration,
        warmup_s=args.warmup,
        mix=mix,
        out_dir=args.out,
        skew=args.skew,
        no_cache=args.no_cache,
    )
    print(json.dumps(report["verdict"], indent=2))
    return 0 if report["verdict"]["pass"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
