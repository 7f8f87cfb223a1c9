"""What an internal HTTP call costs the caller: httpx vs aiohttp (the gateway's client).

One real uvicorn server per target runs in its own process; this process runs N
concurrent callers (closed loop) with one client library at a time, for a fixed
time, rounds interleaved so drift hits every client alike. Per client and target
it reports requests/s, latency p50/p99, the *client's* CPU seconds per request
(``time.process_time`` of this process, which only runs the callers) and the
server's (``/proc/<pid>/stat``), with ratios to httpx measured in the same run.
Every call JSON-encodes its body and decodes the answer, as the gateway does.

Targets: a trivial JSON endpoint (``GET /json``) and, when a bundle is given, the
real ranking service's ``POST /v1/rank`` with a 200-candidate body built from the
bundle's items.

    python -m bench.client_cost [--artifacts cache/bench/ml-latest-small] \
        [--concurrency 32] [--duration 4] [--rounds 3]

Writes ``bench/results/client_cost.json`` and ``client_cost.png``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np

from harness.processes import ServiceProcess, base_env, free_port, serve_cmd, uvicorn_cmd
from shared.contracts import bundle_layout as L

RESULTS = Path(__file__).resolve().parent / "results"
CLIENTS = ("httpx", "aiohttp")
Call = Callable[[], Awaitable[Any]]


def trivial_app() -> Any:
    """A FastAPI app with one small JSON endpoint (the HTTP floor)."""
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/json")
    async def small() -> dict[str, Any]:
        return {"status": "ok", "items": [1, 2, 3], "model_version": "v1"}

    return app


def rank_body(artifacts: Path, n: int = 200, seed: int = 0) -> dict[str, Any]:
    """A realistic ``POST /v1/rank`` body: n bundle items with every source's evidence."""
    import pandas as pd

    bundle = artifacts / "latest" if (artifacts / "latest").exists() else artifacts
    items = pd.read_parquet(bundle / L.ITEMS, columns=["item_id", "title", "year", "genres"])
    cfg = json.loads((bundle / L.RANKER_CONFIG).read_text())
    users = pd.read_parquet(bundle / L.USERS, columns=["user_id", "history"])
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(items), size=min(n, len(items)), replace=False)
    sources = list(cfg["source_names"])
    found = rng.random((len(pick), len(sources))) < 0.6
    found[:, 0] |= ~found.any(axis=1)  # every candidate has at least one source
    columns = {
        "item_ids": [str(i) for i in items.item_id.to_numpy()[pick]],
        "scores": [float(1.0 / (rank + 1)) for rank in range(len(pick))],
        "sources": [sources[int(np.argmax(row))] for row in found],
        "source_scores": {
            s: [float(rng.random()) if f else None for f in found[:, c]]
            for c, s in enumerate(sources)
        },
        "source_ranks": {
            s: [int(rng.integers(1, 100)) if f else None for f in found[:, c]]
            for c, s in enumerate(sources)
        },
    }
    user = users.iloc[0]
    return {
        "user_id": str(user.user_id),
        "history": [str(i) for i in list(user.history)[-50:]],
        "columns": columns,
    }


def _cpu_ticks(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _make_call(client: str, url: str, method: str, path: str, body: Any) -> tuple[Call, Call]:
    """``(call, close)`` for one client library against ``url + path``."""
    if client == "httpx":
        import httpx

        hc = httpx.AsyncClient(
            base_url=url,
            timeout=5.0,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
        )

        async def call_httpx() -> Any:
            resp = await hc.request(method, path, json=body)
            return resp.status_code, resp.json()

        return call_httpx, hc.aclose
    if client == "aiohttp":
        import aiohttp

        session = aiohttp.ClientSession(
            base_url=url,
            connector=aiohttp.TCPConnector(limit=64),
            timeout=aiohttp.ClientTimeout(total=5.0),
        )
        headers = {"content-type": "application/json"}

        async def call_aiohttp() -> Any:
            data = json.dumps(body).encode() if body is not None else None
            async with session.request(method, path, data=data, headers=headers) as resp:
                return resp.status, json.loads(await resp.read())

        return call_aiohttp, session.close
    raise ValueError(f"unknown client {client!r}: one of {CLIENTS}")


async def _drive(call: Call, concurrency: int, duration_s: float) -> tuple[list[float], int]:
    """Closed loop: ``concurrency`` callers for ``duration_s``; latencies (s) and errors."""
    lat: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + duration_s

    async def caller() -> None:
        nonlocal errors
        while True:
            t0 = time.perf_counter()
            if t0 >= stop_at:
                return
            try:
                status, _ = await call()
                if status != 200:
                    errors += 1
            except Exception:
                errors += 1
            lat.append(time.perf_counter() - t0)

    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return lat, errors


async def _measure(
    client: str,
    server: ServiceProcess,
    method: str,
    path: str,
    body: Any,
    concurrency: int,
    duration_s: float,
) -> dict[str, float]:
    call, close = await _make_call(client, server.url, method, path, body)
    try:
        await _drive(call, concurrency, min(1.0, duration_s / 4))  # warm-up: open connections
        cpu0, srv0, t0 = time.process_time(), _cpu_ticks(server.pid), time.perf_counter()
        lat, errors = await _drive(call, concurrency, duration_s)
        wall = time.perf_counter() - t0
        cpu, srv = time.process_time() - cpu0, _cpu_ticks(server.pid) - srv0
    finally:
        await close()
    n = len(lat)
    arr = np.asarray(lat) * 1000.0
    return {
        "requests": n,
        "errors": errors,
        "rps": n / wall,
        "p50_ms": float(np.percentile(arr, 50)),
        "p99_ms": float(np.percentile(arr, 99)),
        "client_cpu_ms_per_req": 1000.0 * cpu / n,
        "client_cores": cpu / wall,
        "server_cpu_ms_per_req": 1000.0 * srv / n,
        "server_cores": srv / wall,
    }


def _median_rows(rounds: list[dict[str, float]]) -> dict[str, float]:
    return {k: float(statistics.median(r[k] for r in rounds)) for k in rounds[0]}


def run_client_cost(
    *,
    artifacts: Path | None = None,
    concurrency: int = 32,
    duration_s: float = 4.0,
    rounds: int = 3,
    clients: tuple[str, ...] = CLIENTS,
    out_dir: Path | None = RESULTS,
) -> dict[str, Any]:
    """Measure every client against every target; returns (and writes) the report."""
    import uvloop

    workdir = Path(tempfile.mkdtemp(prefix="hr-client-cost-"))
    targets: list[tuple[str, ServiceProcess, str, str, Any]] = []
    port = free_port()
    trivial = ServiceProcess(
        "trivial", port, base_env(), workdir / "trivial.log",
        cmd=uvicorn_cmd("bench.client_cost:trivial_app", port),
    )
    targets.append(("trivial GET /json", trivial, "GET", "/json", None))
    if artifacts is not None:
        env = base_env(HYBRIDREC_ARTIFACTS=str(artifacts), HYBRIDREC_STATE_DIR=str(workdir))
        port = free_port()
        ranking = ServiceProcess(
            "ranking", port, {**env, "HYBRIDREC_PORT": str(port)}, workdir / "ranking.log",
            cmd=serve_cmd("ranking", port),
        )
        targets.append(("ranking POST /v1/rank", ranking, "POST", "/v1/rank", rank_body(artifacts)))
    results: dict[str, dict[str, list[dict[str, float]]]] = {t[0]: {} for t in targets}
    try:
        for _, svc, *_ in targets:
            svc.start()
        trivial.wait_ready(path="/json")
        if artifacts is not None:
            targets[1][1].wait_ready()
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            for r in range(rounds):
                order = clients[r % len(clients) :] + clients[: r % len(clients)]
                for name, svc, method, path, body in targets:
                    for client in order:
                        row = runner.run(
                            _measure(client, svc, method, path, body, concurrency, duration_s)
                        )
                        results[name].setdefault(client, []).append(row)
                        print(
                            f"round {r + 1} {name:24s} {client:12s} {row['rps']:7.0f} req/s  "
                            f"p50 {row['p50_ms']:6.2f} ms  p99 {row['p99_ms']:6.2f} ms  "
                            f"client {row['client_cpu_ms_per_req']:.3f} ms CPU/req",
                            flush=True,
                        )
    finally:
        for _, svc, *_ in targets:
            svc.stop()
    report: dict[str, Any] = {
        "benchmark": "client_cost",
        "concurrency": concurrency,
        "duration_s": duration_s,
        "rounds": rounds,
        "loop": "uvloop",
        "cpus": os.cpu_count(),
        "targets": {},
    }
    for name, per_client in results.items():
        med = {c: _median_rows(rows) for c, rows in per_client.items()}
        base = med.get("httpx")
        for row in med.values():
            if base:
                row["rps_vs_httpx"] = row["rps"] / base["rps"]
                row["client_cpu_vs_httpx"] = (
                    row["client_cpu_ms_per_req"] / base["client_cpu_ms_per_req"]
                )
        report["targets"][name] = {"median": med, "rounds": per_client}
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "client_cost.json").write_text(json.dumps(report, indent=2))
        _plot(report, out_dir / "client_cost.png")
    return report


def _plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    targets = list(report["targets"])
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    metrics = [
        ("rps", "requests/s (higher is better)"),
        ("client_cpu_ms_per_req", "client CPU ms per request"),
        ("p99_ms", "p99 latency, ms"),
    ]
    width = 0.8 / len(CLIENTS)
    for ax, (key, title) in zip(axes, metrics, strict=True):
        for j, client in enumerate(CLIENTS):
            vals = [report["targets"][t]["median"].get(client, {}).get(key, 0.0) for t in targets]
            ax.bar(np.arange(len(targets)) + j * width, vals, width, label=client)
        ax.set_xticks(np.arange(len(targets)) + width, [t.split(" ", 1)[0] for t in targets])
        ax.set_title(title)
    axes[0].legend()
    fig.suptitle(
        f"Internal HTTP client cost: {report['concurrency']} concurrent callers, one process "
        f"(medians of {report['rounds']} rounds)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--artifacts", type=Path, default=None, help="bundle root for /v1/rank")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--duration", type=float, default=4.0, help="seconds per measurement")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    report = run_client_cost(
        artifacts=args.artifacts,
        concurrency=args.concurrency,
        duration_s=args.duration,
        rounds=args.rounds,
        out_dir=args.out,
    )
    for name, t in report["targets"].items():
        print(f"\n{name}")
        for client, row in t["median"].items():
            print(
                f"  {client:12s} {row['rps']:7.0f} req/s  p50 {row['p50_ms']:6.2f}  "
                f"p99 {row['p99_ms']:6.2f} ms  client {row['client_cpu_ms_per_req']:.3f} ms "
                f"CPU/req ({row.get('client_cpu_vs_httpx', 1):.2f}x httpx)  "
                f"server {row['server_cpu_ms_per_req']:.3f} ms CPU/req"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
