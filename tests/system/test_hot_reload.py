"""Hot reload end to end: bundle A -> B under steady traffic, broken bundles refused.

One stack (real processes, real Redis) serves an artifacts root holding a copy of
the session's small bundle (A) and a second valid bundle B published with
``BundleWriter`` (same models, another popular list). The gateway's admin reload
switches all three services while threads send recommendations, anonymous
recommendations and similar items; then truncated and half-written bundles are
refused and the stack keeps serving B.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
import redis

from harness.processes import ServiceProcess, running_stack
from shared.contracts.bundle import MANIFEST, resolve_bundle
from shared.contracts.bundle_writer import BundleWriter, switch_latest

pytestmark = pytest.mark.slow

ADMIN_KEY = f"admin-{uuid.uuid4().hex}"
ADMIN = {"X-API-Key": ADMIN_KEY}


def publish_copy(
    src: Path,
    root: Path,
    version: str,
    *,
    reverse_popular: bool,
    replace: dict[str, bytes] | None = None,
) -> Path:
    """Publish the files of bundle ``src`` as a new bundle ``version`` (checksummed anew)."""
    manifest = json.loads((src / MANIFEST).read_text(encoding="utf-8"))
    with BundleWriter(root, version) as writer:
        for rel in manifest["files"]:
            shutil.copyfile(src / rel, writer.path(rel))
        for rel, data in (replace or {}).items():
            writer.path(rel).write_bytes(data)
        if reverse_popular:
            popular = json.loads((src / "popular.json").read_text(encoding="utf-8"))
            writer.save_json("popular.json", popular[::-1])
        return writer.finalize(
            dataset=manifest["dataset"],
            config=manifest["config"],
            metrics=manifest["metrics"],
            components=manifest["components"],
            set_latest=False,
        )


@dataclass
class Env:
    root: Path
    a: str
    b: str
    procs: dict[str, ServiceProcess]
    redis_url: str
    prefix: str
    users: list[str]
    items: list[str]
    popular_b: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def env(
    small_bundle: Path, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Env]:
    work = tmp_path_factory.mktemp("hot-reload")
    src = resolve_bundle(small_bundle)
    root = work / "artifacts"
    root.mkdir()
    shutil.copytree(src, root / src.name)
    switch_latest(root, src.name)
    b = publish_copy(src, root, f"{src.name}-b", reverse_popular=True)
    users = pd.read_parquet(src / "users.parquet")["user_id"].astype(str).tolist()
    items = pd.read_parquet(src / "items.parquet")["item_id"].astype(str).tolist()
    popular_b = [str(p["item_id"]) for p in json.loads((b / "popular.json").read_text())]
    prefix = f"hrreload-{uuid.uuid4().hex[:8]}"
    with running_stack(
        root,
        work / "run",
        redis_url=redis_url,
        prefix=prefix,
        HYBRIDREC_ADMIN_KEY=ADMIN_KEY,
        # Generous budgets: this checks the switch, not latency on a shared 2-core box,
        # and a degraded answer (a timed-out dependency) must not hide a failure.
        HYBRIDREC_RETRIEVAL_TIMEOUT_S="10",
        HYBRIDREC_RANKING_TIMEOUT_S="10",
        HYBRIDREC_DEADLINE_S="20",
    ) as procs:
        yield Env(root, src.name, b.name, procs, redis_url, prefix, users, items, popular_b)


@pytest.fixture(scope="module")
def gw(env: Env) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=env.procs["gateway"].url, timeout=60) as client:
        yield client


def versions(gw: httpx.Client) -> dict[str, str | None]:
    r = gw.get("/v1/admin/bundle", headers=ADMIN)
    assert r.status_code == 200, r.text
    return {s["service"]: s["version"] for s in r.json()["services"]}


def test_admin_endpoints_need_the_admin_key(env: Env, gw: httpx.Client) -> None:
    for headers in ({}, {"X-API-Key": "not-the-key"}):
        for method, path in (("POST", "/v1/admin/reload"), ("GET", "/v1/admin/bundle")):
            r = gw.request(method, path, headers=headers, json={} if method == "POST" else None)
            assert r.status_code == 401, r.text
            assert r.json()["error"]["code"] == "unauthorized"
        for name in ("retrieval", "ranking"):  # the internal ones too, once the key is set
            r = httpx.get(f"{env.procs[name].url}/v1/admin/bundle", headers=headers)
            assert r.status_code == 401, r.text
    r = gw.get("/v1/admin/bundle", headers=ADMIN)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["consistent"] is True
    assert [s["service"] for s in body["services"]] == ["gateway", "retrieval", "ranking"]
    assert {s["version"] for s in body["services"]} == {env.a}
    assert all(s["loaded_at"] and s["path"] == str(env.root / env.a) for s in body["services"])


@dataclass
class Outcome:
    kind: str
    started: float
    finished: float
    status: int  # 0: no HTTP answer at all
    version: str | None
    degraded: list[str]


def _send(client: httpx.Client, env: Env, kind: str, n: int) -> httpx.Response:
    if kind == "user":
        return client.get(f"/v1/users/{env.users[n % 20]}/recommendations", params={"k": 10})
    if kind == "anonymous":
        recent = env.items[n % 50 : n % 50 + 3]
        return client.post("/v1/recommendations", json={"recent_item_ids": recent, "k": 10})
    return client.get(f"/v1/items/{env.items[n % 100]}/similar", params={"k": 5})


def _traffic(env: Env, kind: str, stop: threading.Event, out: list[Outcome]) -> None:
    n = 0
    with httpx.Client(base_url=env.procs["gateway"].url, timeout=60) as client:
        while not stop.is_set():
            n += 1
            started = time.monotonic()
            try:
                r = _send(client, env, kind, n)
            except httpx.HTTPError as exc:
                out.append(Outcome(kind, started, time.monotonic(), 0, repr(exc), []))
                continue
            is_json = r.headers.get("content-type", "").startswith("application/json")
            body = r.json() if is_json else {}
            version, degraded = body.get("model_version"), list(body.get("degraded", []))
            out.append(Outcome(kind, started, time.monotonic(), r.status_code, version, degraded))


def test_reload_under_load_fails_no_request(env: Env, gw: httpx.Client) -> None:
    stop = threading.Event()
    out: list[Outcome] = []
    threads = [
        threading.Thread(target=_traffic, args=(env, kind, stop, out), daemon=True)
        for kind in ("user", "anonymous", "similar")
    ]
    for t in threads:
        t.start()
    try:
        _wait_for(lambda: all(sum(o.kind == k for o in out) >= 3 for k in _KINDS))
        before = time.monotonic()
        r = gw.post("/v1/admin/reload", headers=ADMIN, json={"bundle": env.b})
        after = time.monotonic()
        seen = len(out)
        _wait_for(lambda: all(sum(o.kind == k for o in out[seen:]) >= 3 for k in _KINDS))
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["bundle"] == env.b and body["dry_run"] is False
    assert [
        (s["service"], s["previous_version"], s["version"], s["changed"]) for s in body["services"]
    ] == [(name, env.a, env.b, True) for name in ("retrieval", "ranking", "gateway")]
    failed = [o for o in out if o.status != 200 or set(o.degraded) - {"cache"}]
    assert not failed, f"{len(failed)} of {len(out)} requests failed or degraded: {failed[:5]}"
    assert {o.version for o in out if o.finished < before} == {env.a}
    assert {o.version for o in out if o.started > after} == {env.b}
    during = [o for o in out if before <= o.started <= after]
    assert {o.version for o in during} <= {env.a, env.b}
    print(f"\n{len(out)} requests, {len(during)} during the reload, all 200")
    assert versions(gw) == {"gateway": env.b, "retrieval": env.b, "ranking": env.b}
    for name in ("retrieval", "ranking", "gateway"):
        metrics = httpx.get(f"{env.procs[name].url}/metrics").text
        assert f'hybridrec_bundle_reloads_total{{outcome="ok",service="{name}"}} 1.0' in metrics, (
            name
        )
        assert f'hybridrec_bundle_info{{service="{name}",version="{env.b}"}} 1.0' in metrics


_KINDS = ("user", "anonymous", "similar")


def _wait_for(cond: Any, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "traffic did not flow"
        time.sleep(0.05)


def test_user_vectors_are_cached_per_version(env: Env, gw: httpx.Client) -> None:
    uid = env.users[1]  # the traffic's first user: asked for under A, now under B
    for _ in range(5):
        r = gw.get(f"/v1/users/{uid}/recommendations", params={"k": 5})
        assert r.status_code == 200 and r.json()["model_version"] == env.b, r.text
        # A Redis command slower than HYBRIDREC_REDIS_TIMEOUT_S (a stalled machine) is
        # bypassed and the answer says so; such an answer is not cached, so ask again.
        if "cache" not in r.json()["degraded"]:
            break
    assert r.json()["degraded"] == [], r.text
    client = redis.Redis.from_url(env.redis_url)
    try:
        keys = sorted(k.decode() for k in client.scan_iter(f"{env.prefix}:uvec:*:u{uid}"))
        assert client.exists(f"{env.prefix}:uvec:{env.b}:u{uid}") == 1, (keys, r.text)
        assert client.exists(f"{env.prefix}:uvec:{env.a}:u{uid}") == 1, keys  # A's stays apart
    finally:
        client.close()


def _refused(gw: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    r = gw.post("/v1/admin/reload", headers=ADMIN, json=body)
    assert r.status_code == 422, r.text
    error: dict[str, Any] = r.json()["error"]
    assert error["code"] == "bundle_refused", error
    return error


def test_broken_bundles_are_refused_and_b_is_kept(env: Env, gw: httpx.Client) -> None:
    good = env.root / env.b
    truncated = publish_copy(good, env.root, f"{env.a}-c", reverse_popular=False)
    items = truncated / "items.parquet"
    items.write_bytes(items.read_bytes()[:100])  # cut short after the manifest was written
    half = env.root / f"{env.a}-d"
    shutil.copytree(good, half)
    (half / MANIFEST).unlink()  # files copied, manifest not yet written

    error = _refused(gw, {"bundle": truncated.name})
    assert error["details"]["service"] == "retrieval"
    assert "items.parquet: size mismatch" in error["message"]
    assert "nothing was switched" in error["message"]
    error = _refused(gw, {"bundle": half.name})
    assert "half-written" in error["message"] and error["details"]["service"] == "retrieval"

    switch_latest(env.root, truncated.name)  # `latest` pointing at a broken bundle
    try:
        error = _refused(gw, {})
        assert truncated.name in error["message"]
    finally:
        switch_latest(env.root, env.b)

    r = httpx.post(  # ranking refuses on its own too
        f"{env.procs['ranking'].url}/v1/admin/reload",
        headers=ADMIN,
        json={"bundle": truncated.name},
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "bundle_refused", r.text

    r = gw.post("/v1/admin/reload", headers=ADMIN, json={"bundle": "no-such-bundle"})
    assert r.status_code == 404 and r.json()["error"]["details"]["service"] == "retrieval"

    for name in ("retrieval", "ranking"):
        log = env.procs[name].log_path.read_text(errors="replace")
        line = next(ln for ln in log.splitlines() if f"refused bundle {truncated.name}" in ln)
        assert "size mismatch" in line and f"still serving {env.b}" in line
    assert f"refused bundle {half.name}" in env.procs["retrieval"].log_path.read_text()

    assert versions(gw) == {"gateway": env.b, "retrieval": env.b, "ranking": env.b}
    r = gw.get(f"/v1/users/{env.users[1]}/recommendations", params={"k": 5})
    assert r.status_code == 200 and r.json()["model_version"] == env.b
    status = httpx.get(f"{env.procs['retrieval'].url}/v1/admin/bundle", headers=ADMIN).json()
    assert truncated.name in status["last_refused"]


def test_a_bundle_ranking_cannot_load_switches_retrieval_back(env: Env, gw: httpx.Client) -> None:
    # Checksums match (it was published so), so every service verifies it; ranking's
    # load fails after retrieval already switched, and retrieval is switched back.
    bad = publish_copy(
        env.root / env.b,
        env.root,
        f"{env.a}-e",
        reverse_popular=False,
        replace={"ranker/ranker.keras": b"not a keras file"},
    )
    error = _refused(gw, {"bundle": bad.name})
    assert error["details"]["service"] == "ranking" and error["details"]["phase"] == "switch"
    assert "cannot load ranker model" in error["message"]
    assert f"retrieval switched back to {env.b}" in error["message"]
    assert versions(gw) == {"gateway": env.b, "retrieval": env.b, "ranking": env.b}


def test_ranking_keeps_candidates_it_does_not_know(env: Env) -> None:
    # Mid-switch, retrieval may already send ids of a bundle ranking has not loaded yet.
    unknown = "fresh:1000000000"
    ids = [env.items[0], unknown, env.items[1]]
    columns = {
        "item_ids": ids,
        "scores": [0.9, 0.8, 0.7],
        "sources": ["two_tower", "fresh", "two_tower"],
    }
    r = httpx.post(
        f"{env.procs['ranking'].url}/v1/rank",
        json={"user_id": env.users[0], "history": [unknown, env.items[2]], "columns": columns},
    )
    assert r.status_code == 200, r.text
    assert sorted(it["item_id"] for it in r.json()["items"]) == sorted(ids)


def test_the_gateway_falls_back_to_the_new_bundles_popular_items(
    env: Env, gw: httpx.Client
) -> None:
    assert gw.get("/health/ready").json()["model_version"] == env.b
    env.procs["retrieval"].stop()  # B's popular list is A's reversed
    r = gw.get(f"/v1/users/{env.users[0]}/recommendations", params={"k": 5})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["degraded"] == ["retrieval"] and body["model_version"] == env.b
    assert [it["item_id"] for it in body["items"]] == env.popular_b[:5]


def test_the_admin_key_is_never_logged(env: Env) -> None:
    for proc in env.procs.values():
        text = proc.log_path.read_text(errors="replace")
        assert ADMIN_KEY not in text, proc.name
        assert "unhandled error" not in text, proc.tail()
