"""An open-loop, fixed-rate HTTP load generator for the gateway (loopback only).

Requests are scheduled at fixed intended times ``t0 + i / rate`` and sent whether
or not earlier ones have answered (open loop); each latency is measured from the
request's *intended* send time, so a stalled server is charged for the requests
that queued behind it (no coordinated omission). The generator runs in a process
of its own (:func:`run_load` starts ``python -m bench.loadgen``) on uvloop with
aiohttp (the client the gateway itself uses), so it costs well under a millisecond of
CPU per request and is not the bottleneck.

Request kinds (weights configurable, ``--mix user_recs=0.6,anon_recs=0.2,...``):

* ``user_recs``: ``GET /v1/users/{id}/recommendations?k=10`` for a known user;
* ``anon_recs``: ``POST /v1/recommendations`` with 3-5 recent items;
* ``similar``: ``GET /v1/items/{id}/similar?k=10``;
* ``item``: ``GET /v1/items/{id}``;
* ``event``: ``POST /v1/users/{id}/events`` (a click);
* ``live``: ``GET /health/live`` (the HTTP floor, as a baseline).

The report has the throughput achieved, latency p50/p95/p99/max overall and per
kind (``latency_from_send`` also gives it from the actual send, which differs by
the generator's own lateness), errors by status, degraded answers (a 200 in
which the gateway fell back because a dependency was down or too slow) by
reason, the median of every ``Server-Timing`` stage per kind, the generator's
own send lag, and for the given server processes their RSS sampled from
``/proc/<pid>/status`` (growth after warm-up) and their CPU time per request.
Bounded in count and time; a target that is not a loopback address is refused.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from bench.procstats import (
    cpu_report,
    kernel_report,
    memory_report,
    percentiles,
    proc_counters,
    rss_mb,
)

MAX_DURATION_S = 3600.0
MAX_RATE = 5000.0
KINDS = ("user_recs", "anon_recs", "similar", "item", "event", "live")
DEFAULT_MIX = {"user_recs": 0.6, "anon_recs": 0.15, "similar": 0.1, "item": 0.1, "event": 0.05}
#: In a stage sample: the latency the client saw, from the intended send time (ms).
CLIENT_KEY = "client"


@dataclass
class LoadSpec:
    """One load run.

    Attributes:
        url: Gateway base URL (loopback only).
        rate: Requests per second (intended, fixed spacing).
        duration_s: Measured time after the warm-up.
        warmup_s: Sent but not counted in latencies (connections, caches, JIT).
        mix: Weights per request kind.
        user_ids: Known user ids to ask for.
        item_ids: Catalogue item ids to use.
        pids: Server processes whose RSS is sampled, by name.
        timeout_s: A request not answered by then counts as an error (``timeout``).
        max_in_flight: Above this many outstanding requests new sends are dropped (``overload``).
        sample_every_s: RSS sampling period.
        seed: Random seed of the request mix.
        keep_stage_samples: Also return every undegraded computed recommendation's stages
            (ms), each with the latency the client saw (:data:`CLIENT_KEY`).
        timeline_bucket_s: Width of the time buckets of the report's ``timeline``.
        skew: Zipf exponent of who and what is asked for: the i-th of ``user_ids`` /
            ``item_ids`` (most active / most popular first) is picked with weight
            ``1 / (i + 1) ** skew``; 0 = uniform. Anonymous sessions' recent items are
            always drawn uniformly (they seldom repeat exactly).
        no_cache: Send ``Cache-Control: no-cache`` with recommendation requests, so the
            gateway computes every answer (the uncached baseline).
    """

    url: str
    rate: float
    duration_s: float
    warmup_s: float = 2.0
    mix: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_MIX))
    user_ids: list[str] = field(default_factory=list)
    item_ids: list[str] = field(default_factory=list)
    pids: dict[str, int] = field(default_factory=dict)
    timeout_s: float = 5.0
    max_in_flight: int = 2000
    sample_every_s: float = 1.0
    seed: int = 0
    keep_stage_samples: bool = False
    timeline_bucket_s: float = 10.0
    skew: float = 0.0
    no_cache: bool = False

    def validate(self) -> None:
        """Refuse non-loopback targets and unbounded runs."""
        check_loopback(self.url)
        if not 0 <= self.skew <= 5:
            raise ValueError(f"skew must be in [0, 5], got {self.skew}")
        if not 0 < self.rate <= MAX_RATE:
            raise ValueError(f"rate must be in (0, {MAX_RATE}], got {self.rate}")
        if not 0 < self.duration_s + self.warmup_s <= MAX_DURATION_S:
            raise ValueError(f"warm-up + duration must be in (0, {MAX_DURATION_S}] s")
        unknown = set(self.mix) - set(KINDS)
        if unknown or not any(w > 0 for w in self.mix.values()):
            raise ValueError(f"mix needs positive weights of {KINDS}; unknown: {sorted(unknown)}")
        needs_users = self.mix.get("user_recs", 0) > 0 or self.mix.get("event", 0) > 0
        if needs_users and not self.user_ids:
            raise ValueError("user_recs/event need user_ids")
        if any(self.mix.get(k, 0) > 0 for k in ("anon_recs", "similar", "item", "event")) and (
            not self.item_ids
        ):
            raise ValueError("anon_recs/similar/item/event need item_ids")


def check_loopback(url: str) -> None:
    """Raise ValueError unless ``url`` is ``http://`` on a loopback address."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme != "http":
        raise ValueError(f"only http:// targets are allowed, got {url!r}")
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise ValueError(f"refusing to send load to {host!r}: only loopback targets are allowed")


class _Picker:
    """Zipf-weighted choice from a list (first = most likely); uniform at skew 0."""

    def __init__(self, values: list[str], skew: float) -> None:
        self.values = values
        w = 1.0 / np.arange(1, len(values) + 1, dtype=np.float64) ** skew
        self.cum = np.cumsum(w / w.sum()).tolist() if values else []

    def one(self, rng: random.Random) -> str:
        return rng.choices(self.values, cum_weights=self.cum)[0]


def _request(
    kind: str, rng: random.Random, users: _Picker, items: _Picker
) -> tuple[str, str, bytes | None]:
    if kind == "user_recs":
        return "GET", f"/v1/users/{users.one(rng)}/recommendations?k=10", None
    if kind == "anon_recs":
        # Uniform, not skewed: a session's recent items rarely repeat another's exactly.
        recent = rng.sample(items.values, k=min(len(items.values), rng.randint(3, 5)))
        return "POST", "/v1/recommendations", json.dumps(
            {"recent_item_ids": recent, "k": 10}
        ).encode()
    if kind == "similar":
        return "GET", f"/v1/items/{items.one(rng)}/similar?k=10", None
    if kind == "item":
        return "GET", f"/v1/items/{items.one(rng)}", None
    if kind == "event":
        body = json.dumps({"item_id": items.one(rng), "type": "click"}).encode()
        return "POST", f"/v1/users/{users.one(rng)}/events", body
    return "GET", "/health/live", None


JSON = {"content-type": "application/json"}


@dataclass(frozen=True)
class _Answer:
    """A read response: status, body and headers."""

    status: int
    body: bytes
    headers: Mapping[str, str]


def _degraded(body: bytes) -> list[str]:
    """The ``degraded`` reasons of a recommendations answer (``invalid`` if unreadable)."""
    try:
        return [str(r) for r in json.loads(body).get("degraded", [])]
    except (ValueError, AttributeError):
        return ["invalid"]


async def _run(spec: LoadSpec) -> dict[str, Any]:
    import aiohttp

    from shared.serving.timing import parse_header

    rng = random.Random(spec.seed)
    user_pick, item_pick = _Picker(spec.user_ids, spec.skew), _Picker(spec.item_ids, spec.skew)
    no_cache = {"cache-control": "no-cache"}
    cache: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    lat_by_cache: dict[str, list[float]] = defaultdict(list)
    kinds = [k for k in KINDS if spec.mix.get(k, 0) > 0]
    weights = [spec.mix[k] for k in kinds]
    total_s = spec.warmup_s + spec.duration_s
    n_total = round(spec.rate * total_s)
    pool = aiohttp.ClientSession(
        base_url=spec.url,
        connector=aiohttp.TCPConnector(limit=512),
        timeout=aiohttp.ClientTimeout(total=None, connect=2.0),
        auto_decompress=False,
    )
    lat: dict[str, list[float]] = defaultdict(list)
    stages: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    errors: dict[str, int] = defaultdict(int)
    warmup_errors: dict[str, int] = defaultdict(int)
    degraded: dict[str, int] = defaultdict(int)
    samples: dict[str, list[dict[str, float]]] = defaultdict(list)
    timeline: dict[int, dict[str, list[Any]]] = defaultdict(lambda: {"lat": [], "err": []})
    lags: list[float] = []
    service: list[float] = []
    in_flight = 0
    done_times: list[float] = []
    memory: dict[str, list[tuple[float, float]]] = {name: [] for name in spec.pids}
    cpu: dict[str, list[tuple[float, float]]] = {name: [] for name in spec.pids}
    counters: dict[str, list[tuple[float, float, float, int]]] = {n: [] for n in spec.pids}
    tasks: set[asyncio.Task[None]] = set()

    async def one(kind: str, method: str, path: str, body: bytes | None, due: float) -> None:
        nonlocal in_flight
        counted = due - t0 >= spec.warmup_s
        errs = errors if counted else warmup_errors
        status = "ok"
        resp = None
        sent = time.perf_counter()
        try:
            async with asyncio.timeout(spec.timeout_s):
                recs = kind in ("user_recs", "anon_recs")
                headers = {**(JSON if body is not None else {}),
                           **(no_cache if spec.no_cache and recs else {})}
                async with pool.request(method, path, data=body, headers=headers) as answer:
                    resp = _Answer(answer.status, await answer.read(), answer.headers)
            if resp.status >= 400:
                status = str(resp.status)
        except TimeoutError:
            status = "timeout"
        except (aiohttp.ClientError, OSError) as exc:
            status = type(exc).__name__
        finally:
            in_flight -= 1
        end = time.perf_counter()
        if status != "ok":
            errs[status] += 1
        if not counted:
            return
        done_times.append(end)
        bucket = timeline[int((due - t0 - spec.warmup_s) // spec.timeline_bucket_s)]
        if status == "ok":
            bucket["lat"].append(end - due)
        else:
            bucket["err"].append(status)
        if status == "ok" and resp is not None:
            clean = True
            if kind in ("user_recs", "anon_recs") and b'"degraded":[]' not in resp.body:
                for reason in _degraded(resp.body):
                    degraded[reason] += 1
                    clean = False
            lat[kind].append(end - due)
            service.append(end - sent)
            outcome = resp.headers.get("x-hybridrec-cache")
            if outcome:
                cache[kind][outcome] += 1
                lat_by_cache[outcome].append(end - due)
            st = resp.headers.get("server-timing")
            if st:
                parsed = parse_header(st)
                for name, sec in parsed.items():
                    stages[kind][name].append(sec)
                computed = outcome != "hit"  # a cache hit runs none of the pipeline's stages
                recs = kind in ("user_recs", "anon_recs")
                if spec.keep_stage_samples and clean and computed and recs:
                    sample = {k: round(v * 1000.0, 4) for k, v in parsed.items()}
                    sample[CLIENT_KEY] = round((end - due) * 1000.0, 4)
                    samples[kind].append(sample)

    async def sample_memory() -> None:
        while True:
            now = time.perf_counter() - t0
            for name, pid in spec.pids.items():
                mb, got = rss_mb(pid), proc_counters(pid)
                if mb is not None and got is not None:
                    memory[name].append((round(now, 2), round(mb, 2)))
                    cpu[name].append((now, got[0] + got[1]))
                    counters[name].append((now, *got))
            await asyncio.sleep(spec.sample_every_s)

    cpu0 = time.process_time()
    t0 = time.perf_counter() + 0.05
    sampler = asyncio.create_task(sample_memory())
    dropped = counted_sent = 0
    for i in range(n_total):
        due = t0 + i / spec.rate
        wait = due - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        lags.append(max(0.0, time.perf_counter() - due))
        counted_sent += due - t0 >= spec.warmup_s
        kind = rng.choices(kinds, weights)[0]
        if in_flight >= spec.max_in_flight:
            dropped += 1
            (errors if due - t0 >= spec.warmup_s else warmup_errors)["overload"] += 1
            continue
        in_flight += 1
        method, path, body = _request(kind, rng, user_pick, item_pick)
        task = asyncio.create_task(one(kind, method, path, body, due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(set(tasks), timeout=spec.timeout_s + 1.0)
    end_wall = time.perf_counter()
    await asyncio.sleep(min(spec.sample_every_s, 0.5))  # one more memory sample after the load
    sampler.cancel()
    await pool.close()
    measured_start = t0 + spec.warmup_s
    window = max(1e-9, (max(done_times) if done_times else end_wall) - measured_start)
    all_lat = [x for v in lat.values() for x in v]
    return {
        "url": spec.url,
        "rate_target": spec.rate,
        "duration_s": spec.duration_s,
        "warmup_s": spec.warmup_s,
        "mix": {k: spec.mix[k] for k in kinds},
        "sent": counted_sent,
        "completed": len(done_times),
        "ok": len(all_lat),
        "achieved_rps": round(len(done_times) / window, 2),
        "latency": percentiles(all_lat),
        "latency_from_send": percentiles(service),
        "by_kind": {k: percentiles(lat[k]) for k in kinds},
        "errors": {"total": sum(errors.values()), "by_status": dict(errors)},
        "degraded": {"total": sum(degraded.values()), "by_reason": dict(degraded)},
        "skew": spec.skew,
        "no_cache": spec.no_cache,
        "result_cache": {
            "by_kind": {k: dict(v) for k, v in cache.items()},
            "hit_rate": round(
                sum(v.get("hit", 0) for v in cache.values())
                / max(1, sum(sum(v.values()) for v in cache.values())),
                4,
            ),
            "latency_by_outcome": {o: percentiles(v) for o, v in lat_by_cache.items()},
        },
        "warmup_errors": dict(warmup_errors),
        "stages_ms": {
            k: {s: round(float(np.median(v)) * 1000.0, 4) for s, v in st.items()}
            for k, st in stages.items()
        },
        "stages_mean_ms": {
            k: {s: round(float(np.mean(v)) * 1000.0, 4) for s, v in st.items()}
            for k, st in stages.items()
        },
        "generator": {
            "cpu_s": round(time.process_time() - cpu0, 3),
            "send_lag_p99_ms": round(float(np.percentile(lags, 99)) * 1000.0, 3) if lags else 0,
            "dropped": dropped,
        },
        "memory": memory_report(memory, spec.warmup_s),
        "cpu": cpu_report(cpu, spec.warmup_s, [d - t0 for d in done_times]),
        "kernel": kernel_report(counters, spec.warmup_s),
        "timeline": [
            {
                "t_s": round(b * spec.timeline_bucket_s, 1),
                "errors": len(timeline[b]["err"]),
                **percentiles(timeline[b]["lat"]),
            }
            for b in sorted(timeline)
        ],
        **({"stage_samples": dict(samples)} if spec.keep_stage_samples else {}),
    }


def run_in_process(spec: LoadSpec) -> dict[str, Any]:
    """Run the load in this process (on uvloop when available)."""
    spec.validate()
    try:
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(_run(spec))
    except ImportError:
        return asyncio.run(_run(spec))


def run_load(spec: LoadSpec, *, log_path: Path | None = None) -> dict[str, Any]:
    """Run the load from a separate process (``python -m bench.loadgen``); returns its report."""
    spec.validate()
    with tempfile.TemporaryDirectory(prefix="hr-loadgen-") as tmp:
        spec_path, out_path = Path(tmp) / "spec.json", Path(tmp) / "report.json"
        spec_path.write_text(json.dumps(asdict(spec)))
        cmd = [sys.executable, "-m", "bench.loadgen", "--spec", str(spec_path), "--out",
               str(out_path)]  # fmt: skip
        limit = spec.warmup_s + spec.duration_s + spec.timeout_s + 60.0
        with open(log_path or os.devnull, "ab") as log:
            subprocess.run(
                cmd, check=True, timeout=limit, stdout=log, stderr=subprocess.STDOUT,
                cwd=Path(__file__).resolve().parents[1],
            )  # fmt: skip
        return dict(json.loads(out_path.read_text()))


def ids_from_bundle(artifacts: Path, n: int = 2000, seed: int = 0) -> tuple[list[str], list[str]]:
    """Up to ``n`` known user ids and ``n`` item ids of a bundle (root or folder).

    A random sample of each, users ordered most active first (longest history) and
    items most popular first, the order :class:`LoadSpec`'s ``skew`` weights by.
    """
    import pandas as pd

    from shared.contracts import bundle_layout as L

    folder = artifacts / "latest" if (artifacts / "latest").exists() else artifacts
    users = pd.read_parquet(folder / L.USERS, columns=["user_id", "history"])
    items = pd.read_parquet(folder / L.ITEMS, columns=["item_id", "popularity"])
    rng = np.random.default_rng(seed)
    pick_u = users.iloc[rng.choice(len(users), size=min(n, len(users)), replace=False)]
    pick_i = items.iloc[rng.choice(len(items), size=min(n, len(items)), replace=False)]
    activity = pick_u["history"].map(len).to_numpy()
    pick_u = pick_u.iloc[np.argsort(-activity, kind="stable")]
    pick_i = pick_i.iloc[np.argsort(-pick_i["popularity"].to_numpy(), kind="stable")]
    return [str(u) for u in pick_u["user_id"]], [str(i) for i in pick_i["item_id"]]


def parse_mix(text: str) -> dict[str, float]:
    """``"user_recs=0.6,item=0.4"`` -> weights."""
    out = {}
    for part in text.split(","):
        name, _, weight = part.partition("=")
        out[name.strip()] = float(weight or 1.0)
    return out


def main(argv: list[str] | None = None) -> int:
    """CLI: ``--spec file`` (from :func:`run_load`) or flags against a running gateway."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--spec", type=Path, help="LoadSpec as JSON (written by run_load)")
    ap.add_argument("--url", default="http://127.0.0.1:8000")
    ap.add_argument("--rate", type=float, default=50.0)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--skew", type=float, default=0.0, help="Zipf exponent of users/items")
    ap.add_argument("--no-cache", action="store_true", help="bypass the gateway result cache")
    ap.add_argument("--mix", default=",".join(f"{k}={v}" for k, v in DEFAULT_MIX.items()))
    ap.add_argument("--artifacts", type=Path, default=Path("artifacts"), help="for ids")
    ap.add_argument("--pid", action="append", default=[], help="name=pid to sample RSS of")
    ap.add_argument("--out", type=Path, default=None, help="write the JSON report here")
    args = ap.parse_args(argv)
    if args.spec:
        spec = LoadSpec(**json.loads(args.spec.read_text()))
    else:
        users, items = ids_from_bundle(args.artifacts)
        spec = LoadSpec(
            url=args.url, rate=args.rate, duration_s=args.duration, warmup_s=args.warmup,
            mix=parse_mix(args.mix), user_ids=users, item_ids=items, skew=args.skew,
            no_cache=args.no_cache,
            pids={p.split("=")[0]: int(p.split("=")[1]) for p in args.pid},
        )  # fmt: skip
    report = run_in_process(spec)
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.write_text(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
