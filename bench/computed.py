"""Every answer computed: what the split into services costs against the model work alone.

One run measures, on one bundle:

1. the **floor** (:mod:`bench.floor`, in a child process): the query tower, searches,
   sources, merge, ranker features and forward pass for the load generator's
   recommendation requests, called in one process with no HTTP, JSON or Redis; back to
   back (caches hot), and again spaced at each stack's per-process ``cpu`` phase rate
   (``paced``: each serving process is woken that often, and the same work costs more
   when a process starts it with cold CPU caches, so this is the like-for-like floor);
2. for each code root (this checkout, and optionally older ones for a before/after in
   the same run), and for the one-process deployment (``hybridrec serve combined`` with
   one worker per core, run ``combined``), the whole stack with every answer computed
   (``Cache-Control: no-cache``), after every known user was asked for once (their query
   vectors cached, as the floor's are) and 10 s without traffic (``idle``: the CPU the
   processes burn anyway, taken off the per-answer figures):

   - ``cpu``: recommendations only (80 % known users, 20 % anonymous sessions) at
     :data:`CPU_RATE` req/s; the gateway's, retrieval's and ranking's CPU time (from
     ``/proc``) per answer, and their sum (a combined stack runs this phase on one
     worker at one core's share of the rate: see :func:`run_stack_phases`);
   - ``goal``: the full request mix of ``make bench-load`` at :data:`GOAL_RATE` req/s;
     p99 and errors (the goal: p99 <= 25 ms, 0 errors);
   - ``saturation``: recommendations offered at 1.3x what the CPU cost allows on this
     machine's cores; the undegraded (computed) answers per second actually served.

:func:`summarise` turns that into the figures the issue asks for: CPU per computed answer
against the floor, back to back and paced (goal <= :data:`GOAL_RATIO`), computed
throughput against what that CPU cost allows (goal >= :data:`GOAL_THROUGHPUT_SHARE`),
the computed p99 at 200 req/s.

CLI (``make bench`` runs :func:`run_computed` as its ``computed`` section)::

    python -m bench.computed [--artifacts BUNDLE_ROOT] [--code-root before=/tmp/floor/old]
        [--combined-root before=/tmp/old] [--combined] [--duration 20] [--tag ab]

Writes ``bench/results/computed[_<tag>].json`` and ``.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.e2e import GOAL_P99_MS, GOAL_RATE, RECS_MIX, RESULTS, ensure_small_bundle
from bench.loadgen import DEFAULT_MIX, LoadSpec, ids_from_bundle, run_load
from bench.procstats import cpu_s
from harness.processes import DEFAULT_REDIS_URL, ROOT, public_endpoint, running_stack

SERVICES = ("gateway", "retrieval", "ranking")
CPU_RATE = 100.0
#: CPU per computed answer may be at most this many times the floor's.
GOAL_RATIO = 1.5
#: Computed answers per second must reach this share of what their CPU cost allows.
GOAL_THROUGHPUT_SHARE = 0.8
#: The saturation phase offers this multiple of the rate the CPU cost allows.
OVERLOAD = 1.3
CURRENT = "current"
COMBINED = "combined"


def floor_in_child(
    artifacts: Path, *, requests: int = 600, seed: int = 7, code_root: Path | None = None,
    paced_rates: tuple[float, ...] = (),
) -> dict[str, Any]:
    """:func:`bench.floor.run_floor` in a child process (its own threads, imports, memory).

    ``code_root`` runs another checkout's engines (it needs its own ``bench/floor.py``);
    ``paced_rates``: also measured with the answers spaced at these rates (per second).
    """
    cmd = [sys.executable, "-m", "bench.floor", "--artifacts", str(artifacts),
           "--requests", str(requests), "--seed", str(seed)]  # fmt: skip
    for rate in paced_rates:
        cmd += ["--paced", f"{rate:g}"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "TF_CPP_MIN_LOG_LEVEL": "2", "KERAS_BACKEND": "tensorflow"}  # fmt: skip
    if code_root is not None:
        env["PYTHONPATH"] = str(code_root)
    done = subprocess.run(cmd, cwd=code_root or ROOT, env=env, check=True,
                          stdout=subprocess.PIPE, text=True)  # fmt: skip
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def warm_users(gateway: str, users: list[str]) -> float:
    """Ask for every user's recommendations once (computed); returns the seconds taken."""
    t0 = time.perf_counter()
    for user in users:
        req = urllib.request.Request(
            f"{gateway}/v1/users/{user}/recommendations?k=10",
            headers={"Cache-Control": "no-cache"},
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                resp.read()
        except OSError:
            pass  # a user the bundle cannot answer for still warms the others
    return time.perf_counter() - t0


def idle_cores(pids: dict[str, int], seconds: float = 10.0) -> dict[str, float]:
    """Cores each process uses with no traffic, over ``seconds``."""
    before = {name: cpu_s(pid) for name, pid in pids.items()}
    time.sleep(seconds)
    out = {}
    for name, pid in pids.items():
        c0, c1 = before[name], cpu_s(pid)
        if c0 is not None and c1 is not None:
            out[name] = round((c1 - c0) / seconds, 4)
    return out


def computed_rps(load: dict[str, Any]) -> float:
    """Undegraded successful answers per second of a loadgen report."""
    completed = max(1, int(load["completed"]))
    good = max(0, int(load["ok"]) - int(load["degraded"]["total"]))
    return float(load["achieved_rps"]) * good / completed


def summarise(
    floor: dict[str, Any], phases: dict[str, dict[str, Any]], cores: int,
    process_rate: float | None = None,
) -> dict[str, Any]:
    """The headline figures of one code root's phases against the floor.

    Args:
        floor: :func:`bench.floor.run_floor`'s report (``cpu_ms_per_answer``, and
            ``paced`` figures by rate when measured).
        phases: Loadgen reports by phase: ``cpu`` (its ``cpu`` per service), ``goal``
            and ``saturation`` (either may be missing).
        cores: CPU cores the stack shares.
        process_rate: Requests per second each serving process got in the ``cpu`` phase
            (the split's services each see every request; a combined stack's workers
            share them): the floor paced at that rate gives ``ratio_to_paced_floor``.
    """
    cpu_phase = phases["cpu"]
    cpu = cpu_phase["cpu"]
    # CPU per request counts every answer; shed (degraded) answers are cheap, so the CPU
    # is charged to the computed ones only (an upper bound when some were shed).
    completed = int(cpu_phase["completed"])
    computed = max(0, int(cpu_phase["ok"]) - int(cpu_phase["degraded"]["total"]))
    scale = completed / computed if computed else None
    # What a process burns with no traffic (timers, reload polls, idle threads) is not the
    # answers' cost: with an ``idle`` phase it is taken off (the marginal CPU per answer).
    idle = (phases.get("idle") or {}).get("cores", {})
    rps = float(cpu_phase["achieved_rps"])
    per_service: dict[str, float | None] = {}
    # The split's three services (all must be there), or a combined stack's workers.
    names = list(SERVICES) if any(s in cpu for s in SERVICES) else sorted(cpu)
    for s in names:
        v = cpu.get(s, {}).get("cpu_ms_per_request")
        if v is None or not scale:
            per_service[s] = None
            continue
        background = 1000.0 * float(idle.get(s, 0.0)) / rps if rps > 0 else 0.0
        per_service[s] = round(max(0.0, v - background) * scale, 4)
    known = [v for v in per_service.values() if v is not None]
    total = round(sum(known), 4) if known and len(known) == len(names) else None
    floor_ms = float(floor["cpu_ms_per_answer"])
    ratio = round(total / floor_ms, 3) if total and floor_ms > 0 else None
    allowed = round(cores * 1000.0 / total, 1) if total else None
    out: dict[str, Any] = {
        "floor_cpu_ms": floor_ms,
        "cpu_ms_per_answer": per_service,
        "cpu_ms_per_answer_total": total,
        "split_overhead_ms": round(total - floor_ms, 4) if total else None,
        "ratio_to_floor": ratio,
        "ratio_goal_met": ratio is not None and ratio <= GOAL_RATIO,
        "allowed_rps": allowed,
        "cpu_phase_rate": cpu_phase.get("rate"),
        "cpu_phase_p99_ms": cpu_phase["latency"].get("p99_ms"),
        "cpu_phase_computed_share": round(computed / completed, 4) if completed else None,
        "idle_cores": idle or None,
    }
    paced = (floor.get("paced") or {}).get(f"{process_rate:g}") if process_rate else None
    if paced is not None and total:
        # The same work at the same wake-up rate per process: what the split adds, alone.
        out["floor_paced_rate"] = paced["rate"]
        out["floor_paced_cpu_ms"] = paced["cpu_ms_per_answer"]
        out["ratio_to_paced_floor"] = round(total / float(paced["cpu_ms_per_answer"]), 3)
    sat = phases.get("saturation")
    if sat is not None and allowed:
        rps = computed_rps(sat)
        out["computed_rps"] = round(rps, 1)
        out["throughput_share"] = round(rps / allowed, 3)
        out["throughput_goal_met"] = rps / allowed >= GOAL_THROUGHPUT_SHARE
    goal = phases.get("goal")
    if goal is not None:
        p99 = goal["latency"].get("p99_ms")
        errors = int(goal["errors"]["total"])
        out["goal_rate"] = goal.get("rate", GOAL_RATE)
        out["goal_p99_ms"] = p99
        out["goal_errors"] = errors
        out["goal_degraded"] = int(goal["degraded"]["total"])
        out["p99_goal_met"] = p99 is not None and p99 <= GOAL_P99_MS and errors == 0
    return out


def _phase(gateway: str, pids: dict[str, int], users: list[str], items: list[str], *,
           rate: float, duration_s: float, mix: dict[str, float], seed: int,
           log: Path) -> dict[str, Any]:  # fmt: skip
    spec = LoadSpec(url=gateway, rate=rate, duration_s=duration_s, warmup_s=3.0, mix=mix,
                    user_ids=users, item_ids=items, pids=pids, seed=seed, no_cache=True)
    rep = run_load(spec, log_path=log)
    keep = ("rate", "duration_s", "completed", "ok", "achieved_rps", "latency", "by_kind",
            "errors", "degraded", "cpu", "kernel", "stages_ms", "generator")  # fmt: skip
    return {k: rep[k] for k in keep if k in rep} | {"rate": rate}


def run_stack_phases(
    artifacts: Path, *, code_root: Path | None, duration_s: float, cores: int,
    redis_url: str = DEFAULT_REDIS_URL, seed: int = 7, cpu_rate: float = CPU_RATE,
    combined: bool = False,
) -> dict[str, dict[str, Any]]:
    """Start the stack from ``code_root`` (None: this checkout) and run the three phases.

    ``cpu_rate`` should leave the stack unsaturated (nothing shed), so that every answer
    of the ``cpu`` phase is computed; on a machine shared with other work, lower it.
    ``combined``: the one-process deployment. Its ``cpu`` phase runs on one worker at
    ``cpu_rate / cores`` (the share of the rate each of its ``cores`` workers is meant to
    get; one process at the full rate would be near saturation and shed), because with
    one worker per core the kernel hashes the generator's few keep-alive connections to
    the workers, so one worker may get all of them or a share that changes from run to
    run, and a process's CPU per answer depends on how often it is woken
    (:func:`process_rate`); the ``goal`` and ``saturation`` phases then run on one worker
    per core.
    """
    users, items = ids_from_bundle(artifacts)
    workdir = Path(tempfile.mkdtemp(prefix="hr-computed-"))
    log = workdir / "loadgen.log"
    phases: dict[str, dict[str, Any]] = {}

    def stack(workers: int) -> Any:
        return running_stack(artifacts, workdir / f"workers-{workers}", redis_url=redis_url,
                             serve=True, code_root=code_root, combined=combined,
                             workers=workers, HYBRIDREC_LOG_LEVEL="warning")  # fmt: skip

    with stack(1) as svcs:
        gw, pids = public_endpoint(svcs)
        warm_s = warm_users(gw, users)
        phases["idle"] = {"cores": idle_cores(pids)}
        phases["cpu"] = _phase(gw, pids, users, items, duration_s=duration_s,
                               rate=process_rate(cpu_rate, cores, combined),
                               mix=dict(RECS_MIX), seed=seed, log=log)  # fmt: skip
        phases["cpu"]["warm_users_s"] = round(warm_s, 1)
        if not combined or cores == 1:
            _load_phases(phases, gw, pids, users, items, cores=cores, duration_s=duration_s,
                         seed=seed, log=log)  # fmt: skip
            return phases
    with stack(cores) as svcs:
        gw, pids = public_endpoint(svcs)
        warm_users(gw, users)
        _load_phases(phases, gw, pids, users, items, cores=cores, duration_s=duration_s,
                     seed=seed, log=log)  # fmt: skip
    return phases


def process_rate(cpu_rate: float, cores: int, combined: bool) -> float:
    """Requests per second each serving process gets in the ``cpu`` phase: every one of
    them for the split's services, one core's share for a combined stack's one worker."""
    return cpu_rate / cores if combined else cpu_rate


def _load_phases(phases: dict[str, dict[str, Any]], gw: str, pids: dict[str, int],
                 users: list[str], items: list[str], *, cores: int, duration_s: float,
                 seed: int, log: Path) -> None:  # fmt: skip
    """The ``goal`` phase, then ``saturation`` at 1.3x what the ``cpu`` phase's cost allows."""
    phases["goal"] = _phase(gw, pids, users, items, rate=GOAL_RATE, duration_s=duration_s,
                            mix=dict(DEFAULT_MIX), seed=seed + 1, log=log)  # fmt: skip
    total = sum(v.get("cpu_ms_per_request") or 0.0 for v in phases["cpu"]["cpu"].values())
    sat_rate = min(1000.0, OVERLOAD * cores * 1000.0 / total) if total else 400.0
    phases["saturation"] = _phase(gw, pids, users, items, rate=round(sat_rate),
                                  duration_s=duration_s / 2, mix=dict(RECS_MIX),
                                  seed=seed + 2, log=log)  # fmt: skip


def run_computed(
    artifacts: Path | None = None, *, code_roots: dict[str, Path | None] | None = None,
    duration_s: float = 20.0, out_dir: Path | None = RESULTS, tag: str = "",
    floor_root: Path | None = None, cpu_rate: float = CPU_RATE, combined: bool = False,
    combined_roots: dict[str, Path] | None = None,
) -> dict[str, Any]:
    """Floor + every code root's phases, summarised; writes JSON and a plot.

    ``code_roots``: label -> checkout (None: this one), run one after the other in that
    order; ``floor_root``: the checkout whose engines the floor calls (None: this one);
    ``combined_roots``: label -> checkout run as one process (an older combined, for a
    before/after in one run); ``combined``: then this checkout as one process
    (:data:`COMBINED`). Combined stacks run one worker per core.
    """
    artifacts = artifacts or ensure_small_bundle()
    code_roots = {CURRENT: None} if code_roots is None else code_roots
    cores = os.cpu_count() or 1
    t0 = time.time()
    load_at_start = os.getloadavg()
    stacks = [(label, root, False) for label, root in code_roots.items()]
    stacks += [(label, root, True) for label, root in (combined_roots or {}).items()]
    stacks += [(COMBINED, None, True)] if combined else []
    # The floor is also measured with its answers spaced at each process's cpu-phase rate.
    rates = {label: process_rate(cpu_rate, cores, one) for label, _, one in stacks}
    floor = floor_in_child(artifacts, code_root=floor_root,
                           paced_rates=tuple(sorted(set(rates.values()))))  # fmt: skip
    print(f"[computed] floor: {floor['cpu_ms_per_answer']:.2f} ms CPU per answer "
          f"(parts, mean ms: {floor['parts_mean_ms']})", file=sys.stderr, flush=True)  # fmt: skip
    runs: dict[str, Any] = {}
    for label, root, one_process in stacks:
        phases = run_stack_phases(artifacts, code_root=root, duration_s=duration_s, cores=cores,
                                  cpu_rate=cpu_rate, combined=one_process)  # fmt: skip
        runs[label] = {"code_root": str(root or ROOT), "phases": phases, "combined": one_process,
                       "summary": summarise(floor, phases, cores, rates[label])}  # fmt: skip
        print(f"[computed] {label}: {json.dumps(runs[label]['summary'])}", file=sys.stderr,
              flush=True)  # fmt: skip
    report = {
        "benchmark": "computed", "artifacts": str(artifacts), "cores": cores,
        "load_average_at_start": load_at_start, "wall_s": round(time.time() - t0, 1),
        "goal": {"ratio": GOAL_RATIO, "throughput_share": GOAL_THROUGHPUT_SHARE,
                 "p99_ms": GOAL_P99_MS, "rate": GOAL_RATE},
        "floor": floor, "runs": runs,
    }  # fmt: skip
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        stem = "computed" + (f"_{tag}" if tag else "")
        (out_dir / f"{stem}.json").write_text(json.dumps(report, indent=2))
        plot_computed(report, out_dir / f"{stem}.png")
    return report


def plot_computed(report: dict[str, Any], path: Path) -> Path:
    """CPU per computed answer by service beside the floor (and 1.5x it); p99 at 200 req/s."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = report["runs"]
    floor = report["floor"]["cpu_ms_per_answer"]
    labels = list(runs)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2))
    x = list(range(len(labels) + 1))
    ax.bar(0, floor, color="0.5", label="floor (model work, one process)")
    per = {lab: runs[lab]["summary"]["cpu_ms_per_answer"] for lab in labels}
    parts = list(dict.fromkeys(n for lab in labels for n in per[lab]))
    for i, name in enumerate(parts):
        vals = [runs[lab]["summary"]["cpu_ms_per_answer"].get(name) or 0.0 for lab in labels]
        bottoms = [sum(runs[lab]["summary"]["cpu_ms_per_answer"].get(n) or 0.0
                       for n in parts[:i]) for lab in labels]  # fmt: skip
        ax.bar(x[1:], vals, bottom=bottoms, color=f"C{i}", label=name)
    ax.axhline(GOAL_RATIO * floor, color="tab:red", ls=":", lw=1,
               label=f"goal: {GOAL_RATIO:g}x the floor")  # fmt: skip
    tops = [floor, *(runs[lab]["summary"]["cpu_ms_per_answer_total"] or 0.0 for lab in labels)]
    ax.set_ylim(0, 1.6 * max(tops))  # room for the legend above the bars
    ax.set_xticks(x, ["floor", *labels])
    ax.set_ylabel("CPU ms per computed answer")
    ax.set_title("CPU per computed answer (sum over processes)")
    ax.legend(fontsize=8)
    p99 = [runs[lab]["summary"].get("goal_p99_ms") or 0.0 for lab in labels]
    bx.bar(range(len(labels)), p99, color="C3")
    bx.axhline(GOAL_P99_MS, color="tab:red", ls=":", lw=1, label=f"goal {GOAL_P99_MS:g} ms")
    bx.set_yscale("log")
    bx.set_xticks(range(len(labels)), labels)
    bx.set_ylabel("p99 ms")
    bx.set_title(f"full mix, every answer computed, {GOAL_RATE:g} req/s")
    bx.legend(fontsize=8)
    fig.suptitle(f"hybridrec: the split's cost, all services + Redis on {report['cores']} cores")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--artifacts", type=Path, default=None, help="bundle root (default: small)")
    ap.add_argument("--code-root", action="append", default=[],
                    help="LABEL=PATH: also run that checkout's services (before this one's)")
    ap.add_argument("--skip-current", action="store_true",
                    help="run only the --code-root checkouts, not this one")  # fmt: skip
    ap.add_argument("--floor-root", type=Path, default=None,
                    help="the checkout whose engines the floor calls (default: this one)")
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--cpu-rate", type=float, default=CPU_RATE,
                    help="req/s of the cpu phase (low enough that nothing is shed)")
    ap.add_argument("--combined", action="store_true",
                    help="also run this checkout as one process (hybridrec serve combined)")
    ap.add_argument("--combined-root", action="append", default=[],
                    help="LABEL=PATH: also run that checkout as one process (before this one)")
    ap.add_argument("--tag", default="")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    roots: dict[str, Path | None] = {}
    for item in args.code_root:
        label, _, path = item.partition("=")
        roots[label] = Path(path).resolve()
    if not args.skip_current:
        roots[CURRENT] = None
    combined_roots = {}
    for item in args.combined_root:
        label, _, path = item.partition("=")
        combined_roots[label] = Path(path).resolve()
    artifacts = args.artifacts.resolve() if args.artifacts else None
    report = run_computed(artifacts, code_roots=roots, duration_s=args.duration, out_dir=args.out,
                          tag=args.tag, floor_root=args.floor_root and args.floor_root.resolve(),
                          cpu_rate=args.cpu_rate, combined=args.combined,
                          combined_roots=combined_roots)
    for label, run in report["runs"].items():
        print(label, json.dumps(run["summary"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
