"""Training at scale: time per stage and peak memory of ``hybridrec train`` by data size.

    python -m bench.train_scale [--sizes 1M,5M,25M] [--out docs/bench] [--cache DIR]
    python -m bench.train_scale --plot-only       # redraw the plot from the JSON

For each size, a MovieLens-25M-shaped dataset (``hybridrec data synth --like ml-25m
--interactions N``: 62,423 items at every size, users in proportion, seeded) is generated
once under ``--cache`` and trained on by a real ``hybridrec train`` in a child process
(``nice -n 10``), whose peak resident memory comes from ``wait4`` (the kernel's maxrss of
that process). Stage times are the ones the bundle's manifest records. The items are the
same at every size, so the BERT vectors are computed at the first size and read from the
text-hash cache (``HYBRIDREC_CACHE_DIR``) after: each run records whether its BERT stage
was cold. The machine's load average before and after each run is kept beside the times,
because other jobs share the cores. Writes ``training_scale.json`` and
``training_scale.png`` (seconds per stage against interactions, log-log, and peak RSS).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import log
from bench.train_bench import train_stages

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SIZES = "1M,5M,25M"


def parse_size(text: str) -> int:
    """``1M`` -> 1_000_000, ``250k`` -> 250_000, ``5000000`` -> 5_000_000."""
    t = text.strip().lower()
    scale = {"k": 1_000, "m": 1_000_000}.get(t[-1:], 1)
    return int(float(t[:-1] if scale > 1 else t) * scale)


def dataset(n: int, cache: Path, seed: int = 0) -> tuple[Path, float | None]:
    """The synthetic set of ``n`` interactions (generated when missing; its seconds)."""
    from training.data.synth import spec_for, write_synth

    folder = cache / f"synth-ml-25m-{n}-seed{seed}"
    if (folder / "synth.json").is_file():
        return folder, None
    t0 = time.perf_counter()
    write_synth(spec_for("ml-25m", interactions=n), folder, seed=seed)
    return folder, round(time.perf_counter() - t0, 1)


def train_once(data: Path, out: Path, log_path: Path, embed_cache: Path,
               config: str | None = None) -> dict[str, Any]:
    """Run ``hybridrec train`` in a child process; wall, CPU and peak RSS of that child."""
    cmd = ["nice", "-n", "10", sys.executable, "-m", "hybridrec.cli", "train",
           "--data", str(data), "--out", str(out)]
    if config:
        cmd += ["--config", config]
    env = {**os.environ, "HYBRIDREC_CACHE_DIR": str(embed_cache)}
    cold = not any(embed_cache.glob("embeddings/*/keys.npy"))
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    with open(log_path, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    # `nice` execs the trainer, so this child is the trainer itself (one process).
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError(f"hybridrec train exited with {code}; see {log_path}")
    return {"wall_s": round(wall, 1), "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
            "peak_rss_gb": round(usage.ru_maxrss / 1024**2, 2), "bert_cold": cold,
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()]}


def run(sizes: list[int], out: Path, cache: Path, config: str | None = None) -> dict[str, Any]:
    """Train at each size (smallest first); returns and writes the results."""
    cache.mkdir(parents=True, exist_ok=True)
    path = out / "training_scale.json"
    report: dict[str, Any] = {"machine": {"cores": os.cpu_count()}, "runs": []}
    if path.is_file():  # keep the sizes measured before, replace those measured again
        report["runs"] = [r for r in json.loads(path.read_text())["runs"]
                          if r["interactions_requested"] not in sizes]
    for n in sorted(sizes):
        data, synth_s = dataset(n, cache)
        bundle_root = cache / f"bundle-{n}"
        log(f"training at {n:,} interactions ({data}) ...")
        usage = train_once(data, bundle_root, cache / f"train-{n}.log", cache / "hybridrec",
                           config)
        stages = train_stages(bundle_root / "latest", wall_s=usage["wall_s"])
        run_ = {"interactions_requested": n, "synth_s": synth_s, **usage,
                "users": stages["n_users"], "items": stages["n_items"],
                "interactions": stages["interactions"], "stages_s": stages["stages_s"],
                "config": config}
        report["runs"] = sorted([*report["runs"], run_],
                                key=lambda r: r["interactions_requested"])
        out.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2) + "\n")
        log(f"  {n:,}: {usage['wall_s']:.0f} s wall, peak RSS {usage['peak_rss_gb']} GB, "
            f"stages {stages['stages_s']}")
        plot(report, out / "training_scale.png")
    return report


def plot(report: dict[str, Any], path: Path) -> Path:
    """Seconds per stage against interactions (log-log), and peak RSS, one line per stage."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = report["runs"]
    xs = [r["interactions_requested"] for r in runs]
    fig, (ax, mem) = plt.subplots(1, 2, figsize=(11, 4.5))
    stages = list(dict.fromkeys(s for r in runs for s in r["stages_s"]))
    for stage in stages:
        pts = [(x, r["stages_s"][stage]) for x, r in zip(xs, runs, strict=True)
               if stage in r["stages_s"]]
        ax.plot(*zip(*pts, strict=True), marker="o", label=stage)
    bert = "BERT item embeddings"
    for x, r in zip(xs, runs, strict=True):  # a warm text-hash cache is a read, not a cost
        if not r.get("bert_cold", True) and bert in r["stages_s"]:
            ax.annotate("BERT from cache", (x, r["stages_s"][bert]), fontsize=7,
                        textcoords="offset points", xytext=(4, 4))
    ax.plot(xs, [r["wall_s"] for r in runs], marker="s", color="black", label="total (wall)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("interactions")
    ax.set_ylabel("seconds")
    ax.set_title("hybridrec train: seconds per stage")
    ax.legend(fontsize=7)
    mem.plot(xs, [r["peak_rss_gb"] for r in runs], marker="o", color="tab:red")
    mem.axhline(16, color="grey", linestyle="--", label="goal: 16 GB")
    mem.set_xscale("log")
    mem.set_xlabel("interactions")
    mem.set_ylabel("peak RSS, GB")
    mem.set_title("peak resident memory")
    mem.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.train_scale",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default=DEFAULT_SIZES, help="interactions, e.g. 1M,5M,25M")
    ap.add_argument("--out", default=str(ROOT / "docs" / "bench"), help="results folder")
    ap.add_argument("--cache", default=str(ROOT / "bench" / ".cache" / "train-scale"),
                    help="datasets, bundles, logs and the BERT cache")
    ap.add_argument("--config", default=None, help="JSON config passed to hybridrec train")
    ap.add_argument("--plot-only", action="store_true", help="redraw the plot from the JSON")
    args = ap.parse_args(argv)
    out = Path(args.out)
    if args.plot_only:
        plot(json.loads((out / "training_scale.json").read_text()), out / "training_scale.png")
        return 0
    run([parse_size(s) for s in args.sizes.split(",")], out, Path(args.cache), args.config)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
