"""BundleReloader: verify aside, swap once, refuse broken bundles, one reload at a time, watch."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from shared.contracts.bundle import MANIFEST, Bundle
from shared.contracts.bundle_writer import BundleWriter, switch_latest
from shared.contracts.errors import NotFoundError, NotReadyError, ValidationError
from shared.serving.admin_deps import require_internal_admin
from shared.serving.app_factory import create_app
from shared.serving.reload import (
    BundleRefusedError,
    BundleReloader,
    ReloadInProgressError,
    ReloadMetrics,
    artifacts_root,
    latest_name,
)

DATASET = {"name": "toy", "sha256": "ab" * 32}


@dataclass
class Engine:
    version: str
    popular: list[int]


def make_bundle(root: Path, version: str, popular: list[int], *, latest: bool = True) -> Path:
    writer = BundleWriter(root, version)
    writer.save_json("popular.json", popular)
    writer.path("model.bin").write_bytes(bytes(range(256)) * 8)
    return writer.finalize(dataset=DATASET, config={}, metrics={}, components={}, set_latest=latest)


def build(bundle: Bundle) -> Engine:
    popular = bundle.load_json("popular.json")
    if popular == ["unloadable"]:
        raise RuntimeError("the model file does not load")
    return Engine(bundle.version, popular)


class Holder:
    """Stands in for ``app.state``: the one attribute handlers read."""

    def __init__(self) -> None:
        self.engine: Engine | None = None
        self.swaps = 0

    def swap(self, engine: Engine) -> None:
        self.engine = engine
        self.swaps += 1


@pytest.fixture
def root(tmp_path: Path) -> Path:
    base = tmp_path / "artifacts"
    make_bundle(base, "A", [1, 2, 3])
    make_bundle(base, "B", [3, 2, 1], latest=False)
    return base


def started(
    root: Path, holder: Holder, registry: CollectorRegistry | None = None, **kw: Any
) -> BundleReloader[Engine]:
    metrics = ReloadMetrics(registry) if registry is not None else None
    reloader = BundleReloader(
        service="svc", artifacts=root, build=build, swap=holder.swap, metrics=metrics, **kw
    )
    reloader.adopt(Engine("A", [1, 2, 3]), "A", root / "A")
    return reloader


def count(registry: CollectorRegistry, outcome: str) -> float:
    value = registry.get_sample_value(
        "hybridrec_bundle_reloads_total", {"service": "svc", "outcome": outcome}
    )
    return value or 0.0


def test_reload_by_name_swaps_once_and_reports(root: Path) -> None:
    holder, registry = Holder(), CollectorRegistry()
    reloader = started(root, holder, registry)
    in_flight = holder.engine
    res = asyncio.run(reloader.reload("B"))
    assert (res.previous_version, res.version, res.changed, res.dry_run) == ("A", "B", True, False)
    assert res.path == str(root / "B") and res.loaded_at is not None
    assert holder.engine == Engine("B", [3, 2, 1]) and holder.swaps == 2
    assert in_flight == Engine("A", [1, 2, 3])  # a request holding the old engine keeps it
    status = reloader.status()
    assert (status.version, status.path, status.error) == ("B", str(root / "B"), None)
    assert count(registry, "ok") == 1
    info = {"service": "svc", "version": "B"}
    assert registry.get_sample_value("hybridrec_bundle_info", info) == 1
    assert registry.get_sample_value("hybridrec_bundle_info", {**info, "version": "A"}) is None


def test_omitted_bundle_follows_latest_and_same_bundle_is_a_no_op(root: Path) -> None:
    holder = Holder()
    reloader = started(root, holder)
    res = asyncio.run(reloader.reload())
    assert (res.version, res.changed) == ("A", False) and holder.swaps == 1
    switch_latest(root, "B")
    assert latest_name(root) == "B"
    assert asyncio.run(reloader.reload()).version == "B"
    assert holder.engine is not None and holder.engine.version == "B"


def test_dry_run_verifies_without_switching(root: Path) -> None:
    holder = Holder()
    reloader = started(root, holder)
    res = asyncio.run(reloader.reload("B", dry_run=True))
    assert (res.version, res.changed, res.dry_run, res.loaded_at) == ("B", False, True, None)
    assert holder.engine is not None and holder.engine.version == "A" and holder.swaps == 1


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[10] ^= 0xFF
    path.write_bytes(bytes(data))


def _break_manifest(bundle: Path) -> None:
    text = (bundle / MANIFEST).read_text()
    (bundle / MANIFEST).write_text(text[: len(text) // 2])


def _rename_version(bundle: Path) -> None:
    manifest = json.loads((bundle / MANIFEST).read_text())
    manifest["version"] = "A"
    (bundle / MANIFEST).write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda b: _truncate(b / "model.bin"), "model.bin: size mismatch"),
        (lambda b: _flip_byte(b / "model.bin"), "model.bin: sha256 mismatch"),
        (lambda b: (b / "model.bin").unlink(), "model.bin: missing file"),
        (lambda b: (b / MANIFEST).unlink(), "has no manifest.json: the bundle is half-written"),
        (_break_manifest, "manifest is truncated or corrupted"),
        (_rename_version, "its manifest says version 'A' but the folder is 'C'"),
        (lambda b: (b / "popular.json").write_text('["unloadable"]\n'), "popular.json: size"),
    ],
    ids=[
        "truncated",
        "checksum",
        "missing-file",
        "half-written",
        "bad-manifest",
        "misnamed",
        "edited",
    ],
)
def test_a_broken_bundle_is_refused_and_the_old_one_kept(
    root: Path, caplog: pytest.LogCaptureFixture, damage: Any, reason: str
) -> None:
    holder, registry = Holder(), CollectorRegistry()
    reloader = started(root, holder, registry)
    damage(make_bundle(root, "C", [9], latest=False))
    with (
        caplog.at_level(logging.ERROR, logger="hybridrec.reload"),
        pytest.raises(BundleRefusedError) as err,
    ):
        asyncio.run(reloader.reload("C"))
    assert err.value.http_status == 422 and err.value.code == "bundle_refused"
    assert reason in err.value.message and "it still serves A" in err.value.message
    assert err.value.details["bundle"].startswith("C (")
    assert holder.engine is not None and holder.engine.version == "A" and holder.swaps == 1
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    line = errors[0].getMessage()
    assert "svc refused bundle C" in line and reason in line and "still serving A" in line
    assert "\n" not in line
    assert count(registry, "failed") == 1 and count(registry, "ok") == 0
    assert reloader.status().last_refused is not None
    assert asyncio.run(reloader.reload("B")).version == "B"  # a good bundle still loads after
    assert reloader.status().last_refused is None


def test_a_bundle_that_verifies_but_does_not_build_is_refused(root: Path) -> None:
    holder = Holder()
    reloader = started(root, holder)
    make_bundle(root, "U", ["unloadable"], latest=False)
    with pytest.raises(BundleRefusedError, match="RuntimeError: the model file does not load"):
        asyncio.run(reloader.reload("U"))
    assert holder.engine is not None and holder.engine.version == "A"


def test_names_that_are_not_bundles(root: Path) -> None:
    reloader = started(root, Holder())
    with pytest.raises(NotFoundError, match=r"no bundle 'Z' under .*bundles there: A, B"):
        asyncio.run(reloader.reload("Z"))
    for bad in ("../A", "latest", "LATEST", ".tmp-A", "a/b"):
        with pytest.raises(ValidationError):
            asyncio.run(reloader.reload(bad))


def test_root_without_latest_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "r"
    make_bundle(root, "A", [1], latest=False)
    reloader = started(root, Holder())
    with pytest.raises(BundleRefusedError, match="no `latest` link"):
        asyncio.run(reloader.reload())


def test_only_one_reload_at_a_time(root: Path) -> None:
    gate, entered = threading.Event(), threading.Event()

    def slow_build(bundle: Bundle) -> Engine:
        entered.set()
        assert gate.wait(10)
        return build(bundle)

    holder = Holder()
    reloader = started(root, holder)
    reloader.build = slow_build

    async def main() -> tuple[str, str]:
        first = asyncio.create_task(reloader.reload("B"))
        await asyncio.to_thread(entered.wait, 10)
        with pytest.raises(ReloadInProgressError) as err:
            await reloader.reload("A")
        assert err.value.http_status == 409
        assert await reloader.check_latest() is None  # the watcher skips while busy
        gate.set()
        return (await first).version, holder.engine.version if holder.engine else ""

    assert asyncio.run(main()) == ("B", "B")
    assert asyncio.run(reloader.reload("A")).version == "A"  # free again


def test_no_reload_before_the_first_bundle_loads(root: Path) -> None:
    holder = Holder()
    reloader = BundleReloader(service="svc", artifacts=root, build=build, swap=holder.swap)
    with pytest.raises(NotReadyError):
        asyncio.run(reloader.reload("B"))
    assert reloader.status().error == "still loading the first bundle"
    reloader.startup_failed()  # a failed start can be repaired by a reload
    assert asyncio.run(reloader.reload("B")).previous_version is None
    assert holder.engine is not None and holder.engine.version == "B"


def test_watcher_follows_latest_and_does_not_retry_a_refused_bundle(root: Path) -> None:
    holder, registry = Holder(), CollectorRegistry()
    reloader = started(root, holder, registry)
    make_bundle(root, "C", [7], latest=False)
    _truncate(root / "C" / "model.bin")

    async def main() -> list[str | None]:
        seen = []
        for target in (None, "B", None, "C", None, "A"):
            if target is not None:
                switch_latest(root, target)
            res = await reloader.check_latest()
            seen.append(res.version if res else None)
        return seen

    assert asyncio.run(main()) == [None, "B", None, None, None, "A"]
    assert count(registry, "failed") == 1 and count(registry, "ok") == 2
    assert holder.engine is not None and holder.engine.version == "A"


def test_watch_task_reloads_in_the_background(root: Path) -> None:
    holder = Holder()
    reloader = started(root, holder)
    assert reloader.start_watching(0) is None

    async def main() -> str:
        task = reloader.start_watching(0.02)
        assert task is not None
        switch_latest(root, "B")
        for _ in range(200):
            await asyncio.sleep(0.02)
            if holder.engine is not None and holder.engine.version == "B":
                break
        task.cancel()
        return holder.engine.version if holder.engine else ""

    assert asyncio.run(main()) == "B"
    assert reloader.status().watch_latest_s == 0.02


def test_a_single_bundle_folder_is_reloaded_in_place(root: Path) -> None:
    assert artifacts_root(root / "A") == root and artifacts_root(root) == root
    holder = Holder()
    reloader = BundleReloader(service="svc", artifacts=root / "A", build=build, swap=holder.swap)
    reloader.adopt(Engine("A", [1, 2, 3]), "A", root / "A")
    assert not reloader.follows_latest
    assert asyncio.run(reloader.reload()).changed is False
    assert asyncio.run(reloader.reload("B")).version == "B"  # a sibling by name
    assert asyncio.run(reloader.check_latest()) is None
    asyncio.run(reloader.watch(0.01))  # returns at once: nothing to watch


@asynccontextmanager
async def _no_lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield


def test_admin_key_guard() -> None:
    app = create_app(
        service="svc",
        title="t",
        description="d",
        version="1",
        lifespan=_no_lifespan,
        max_body_bytes=4096,
    )

    @app.get("/guarded", dependencies=[Depends(require_internal_admin)])
    def guarded() -> dict[str, bool]:
        return {"ok": True}

    with TestClient(app) as client:
        app.state.admin_key = None
        assert client.get("/guarded").status_code == 200  # internal network: open
        app.state.admin_key = "s3cret-admin"
        for headers in ({}, {"X-API-Key": "wrong"}):
            r = client.get("/guarded", headers=headers)
            assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
            assert "s3cret" not in r.text
        assert client.get("/guarded", headers={"X-API-Key": "s3cret-admin"}).status_code == 200
