"""redis-py's reply parsers: the pure-Python RESP3 parser against hiredis (C), same run.

Retrieval reads a user's live state in one pipeline per request (the recent-history list,
the seen and hidden sets, the cached query vector: :mod:`shared.stores.user_state`).
This measures the CPU of that pipeline, as the services send it (RESP3, asyncio), with
each parser, for histories of several lengths; redis-py uses hiredis whenever it is
installed, which is why the project depends on ``redis[hiredis]``.

CLI::

    python -m bench.redis_parser [--redis redis://127.0.0.1:6379/0] [--rounds 2000]

Writes ``bench/results/redis_parser.json`` and ``.png``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

from bench.e2e import RESULTS

HISTORY_LENGTHS = (0, 50, 200, 1000)
SEEN = 100  # members of the seen set
VECTOR_BYTES = 256  # a 64-float32 query vector


async def _pipeline_cpu_ms(url: str, parser: type, history: int, rounds: int) -> float:
    """CPU ms per pipeline round trip (LRANGE, SMEMBERS x2, GET) with ``parser``."""
    import redis.asyncio as aioredis

    pool = aioredis.ConnectionPool.from_url(url, protocol=3, parser_class=parser)
    client = aioredis.Redis(connection_pool=pool)
    key = f"hrbench-parser-{uuid.uuid4().hex[:8]}"
    try:
        if history:
            await client.rpush(f"{key}:hist", *(f"item-{i}" for i in range(history)))
        await client.sadd(f"{key}:seen", *(f"item-{i}" for i in range(SEEN)))
        await client.set(f"{key}:vec", b"\x01" * VECTOR_BYTES)

        async def once() -> None:
            pipe = client.pipeline(transaction=False)
            pipe.lrange(f"{key}:hist", 0, -1)
            pipe.smembers(f"{key}:seen")
            pipe.smembers(f"{key}:hidden")
            pipe.get(f"{key}:vec")
            await pipe.execute()

        for _ in range(rounds // 10):  # connections, caches
            await once()
        c0 = time.process_time()
        for _ in range(rounds):
            await once()
        return (time.process_time() - c0) * 1000.0 / rounds
    finally:
        await client.delete(f"{key}:hist", f"{key}:seen", f"{key}:vec")
        await client.aclose()
        await pool.disconnect()


def run_parsers(url: str, rounds: int = 2000, out_dir: Path | None = RESULTS) -> dict[str, Any]:
    """Both parsers at every history length (alternating, twice); writes JSON and a plot."""
    from redis._parsers import _AsyncHiredisParser, _AsyncRESP3Parser
    from redis.utils import HIREDIS_AVAILABLE

    if not HIREDIS_AVAILABLE:
        raise SystemExit("hiredis is not installed: pip install 'redis[hiredis]'")
    parsers = {"python": _AsyncRESP3Parser, "hiredis": _AsyncHiredisParser}
    rows = []
    for history in HISTORY_LENGTHS:
        got: dict[str, list[float]] = {name: [] for name in parsers}
        for _ in range(2):
            for name, parser in parsers.items():
                got[name].append(asyncio.run(_pipeline_cpu_ms(url, parser, history, rounds)))
        py, hi = min(got["python"]), min(got["hiredis"])
        rows.append({"history": history, "python_ms": round(py, 4), "hiredis_ms": round(hi, 4),
                     "ratio": round(py / hi, 2) if hi > 0 else None})  # fmt: skip
        print(f"[redis_parser] history {history}: python {py:.3f} ms, hiredis {hi:.3f} ms")
    report = {"benchmark": "redis_parser", "rounds": rounds, "seen": SEEN, "rows": rows,
              "note": "CPU ms per pipeline (LRANGE, SMEMBERS x2, GET), best of 2"}  # fmt: skip
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "redis_parser.json").write_text(json.dumps(report, indent=2))
        _plot(report, out_dir / "redis_parser.png")
    return report


def _plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["rows"]
    x = range(len(rows))
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.bar([i - 0.2 for i in x], [r["python_ms"] for r in rows], 0.4, label="pure-Python RESP3")
    ax.bar([i + 0.2 for i in x], [r["hiredis_ms"] for r in rows], 0.4, label="hiredis")
    ax.set_xticks(list(x), [str(r["history"]) for r in rows])
    ax.set_xlabel("items in the user's live history")
    ax.set_ylabel("CPU ms per pipeline")
    ax.set_title("retrieval's user-state pipeline, by reply parser")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    from harness.processes import DEFAULT_REDIS_URL

    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--redis", default=DEFAULT_REDIS_URL)
    ap.add_argument("--rounds", type=int, default=2000)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    run_parsers(args.redis, args.rounds, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
