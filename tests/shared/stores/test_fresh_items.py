"""FreshItemStore in a real Redis and in an fsync'd file: ids, restarts, concurrency."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest

from harness.processes import free_port
from shared.contracts.errors import ConflictError
from shared.stores.fresh_items import FreshItemStore, decode_vector, encode_vector
from shared.stores.redis_conn import RedisGuard, RedisUnavailable

# generous: a busy 2-core machine must not turn a slow answer into "Redis down"
TIMEOUT_S = 2.0

T = TypeVar("T")


@pytest.fixture(params=["file", "redis"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _run(
    backend: str,
    redis_url: str,
    prefix: str,
    state_dir: Path,
    body: Callable[[FreshItemStore], Awaitable[T]],
) -> T:
    """Run ``body`` against a new store instance (a new "process") in a fresh loop."""

    async def main() -> T:
        guard = RedisGuard(redis_url, timeout_s=TIMEOUT_S) if backend == "redis" else None
        store = FreshItemStore(guard, state_dir, prefix=prefix)
        try:
            return await body(store)
        finally:
            if guard is not None:
                await guard.close()

    return asyncio.run(main())


def _record(title: str) -> dict[str, Any]:
    return {
        "title": title,
        "genres": ["Drama"],
        "year": 2024,
        "content_vector": encode_vector(np.linspace(-1, 1, 6, dtype=np.float32)),
    }


def _free(_: str) -> bool:
    return False


def test_ids_start_above_first_id_increase_and_records_are_kept(
    backend: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    async def body(store: FreshItemStore) -> dict[str, Any]:
        added = [await store.add(_record(f"New {i}"), 1000, _free) for i in range(3)]
        return {
            "added": added,
            "get": await store.get(added[1]["item_id"]),
            "missing": await store.get("999999"),
            "all": await store.all(),
        }

    out = _run(backend, redis_url, redis_prefix, tmp_path, body)
    ids = [r["item_id"] for r in out["added"]]
    assert ids == ["1000", "1001", "1002"]  # strings: the decimal text of a counter
    added_at = out["added"][0].pop("added_at")
    assert out["added"][0] == {**_record("New 0"), "item_id": "1000"} and added_at > 0
    assert {k: v for k, v in out["get"].items() if k != "added_at"} == {
        **_record("New 1"), "item_id": "1001"}
    assert out["missing"] is None
    assert [r["item_id"] for r in out["all"]] == ids
    assert [r["title"] for r in out["all"]] == ["New 0", "New 1", "New 2"]
    vec = decode_vector(out["all"][2]["content_vector"])
    np.testing.assert_array_equal(vec, np.linspace(-1, 1, 6, dtype=np.float32))


def test_own_ids_are_kept_and_a_taken_id_is_a_conflict(
    backend: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    catalogue = {"sku-1", "12"}

    async def body(store: FreshItemStore) -> dict[str, Any]:
        own = await store.add({**_record("own"), "item_id": "sku-2"}, 10, catalogue.__contains__)
        errors = []
        for taken in ("sku-2", "sku-1"):  # added before / in the catalogue
            try:
                await store.add({**_record("dup"), "item_id": taken}, 10, catalogue.__contains__)
            except ConflictError as exc:
                errors.append(exc)
        # assigned ids skip the catalogue's ("12") and never reuse one
        assigned = [(await store.add(_record(t), 11, catalogue.__contains__))["item_id"]
                    for t in ("a", "b")]
        return {"own": own, "errors": errors, "assigned": assigned, "all": await store.all()}

    out = _run(backend, redis_url, redis_prefix, tmp_path, body)
    assert out["own"]["item_id"] == "sku-2"
    assert len(out["errors"]) == 2
    for err, taken in zip(out["errors"], ("sku-2", "sku-1"), strict=True):
        assert err.http_status == 409 and err.code == "conflict" and repr(taken) in err.message
    assert out["assigned"] == ["11", "13"]
    assert [(r["item_id"], r["title"]) for r in out["all"]] == [
        ("sku-2", "own"), ("11", "a"), ("13", "b")]


def test_empty_store(backend: str, redis_url: str, redis_prefix: str, tmp_path: Path) -> None:
    async def body(store: FreshItemStore) -> tuple[list[Any], Any]:
        return await store.all(), await store.get("1")

    assert _run(backend, redis_url, redis_prefix, tmp_path, body) == ([], None)


def test_records_survive_a_restart_and_ids_continue(
    backend: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    async def first(store: FreshItemStore) -> list[str]:
        return [(await store.add(_record(t), 50, _free))["item_id"] for t in ("a", "b")]

    async def second(store: FreshItemStore) -> tuple[list[dict[str, Any]], str, Any]:
        before = await store.all()
        new = await store.add(_record("c"), 50, _free)
        return before, new["item_id"], await store.get("51")

    assert _run(backend, redis_url, redis_prefix, tmp_path, first) == ["50", "51"]
    before, new_id, got = _run(backend, redis_url, redis_prefix, tmp_path, second)
    assert [(r["item_id"], r["title"]) for r in before] == [("50", "a"), ("51", "b")]
    assert new_id == "52"
    assert got is not None and got["title"] == "b"


def test_ids_follow_a_grown_catalogue_and_never_go_back(
    backend: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    async def body(store: FreshItemStore) -> list[str]:
        return [
            (await store.add(_record("x"), 10, _free))["item_id"],
            (await store.add(_record("y"), 500, _free))["item_id"],  # a newer, bigger bundle
            (await store.add(_record("z"), 10, _free))["item_id"],  # an older one again
        ]

    assert _run(backend, redis_url, redis_prefix, tmp_path, body) == ["10", "500", "501"]


def test_concurrent_adds_get_unique_ids(
    backend: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    """The catalogue grew past the counter while 20 adds run at once: no id twice."""

    async def body(store: FreshItemStore) -> tuple[str, list[str], list[str]]:
        first = (await store.add(_record("seed"), 10, _free))["item_id"]
        if store.guard is not None:  # open 20 pooled connections so the adds truly interleave
            await asyncio.gather(*(store.guard.run(lambda r: r.ping()) for _ in range(20)))
        added = await asyncio.gather(*(store.add(_record(f"c{i}"), 1000, _free) for i in range(20)))
        return first, [r["item_id"] for r in added], [r["item_id"] for r in await store.all()]

    first, ids, stored = _run(backend, redis_url, redis_prefix, tmp_path, body)
    assert first == "10"
    assert sorted(ids, key=int) == [str(i) for i in range(1000, 1020)]
    assert sorted(stored, key=int) == ["10", *(str(i) for i in range(1000, 1020))]


def test_two_prefixes_do_not_share_ids(redis_url: str, redis_prefix: str, tmp_path: Path) -> None:
    async def body(store: FreshItemStore) -> str:
        return str((await store.add(_record("a"), 7, _free))["item_id"])

    assert _run("redis", redis_url, redis_prefix, tmp_path, body) == "7"
    assert _run("redis", redis_url, f"{redis_prefix}:other", tmp_path, body) == "7"


def test_file_backend_is_json_lines_and_survives_a_torn_line(tmp_path: Path) -> None:
    async def body(store: FreshItemStore) -> list[str]:
        await store.add(_record("a"), 1, _free)
        with store.path.open("ab") as fh:  # crash in the middle of a write
            fh.write(b'{"title": "tor')
        b = await store.add(_record("b"), 1, _free)
        return [b["item_id"], *(r["item_id"] for r in await store.all())]

    new_id, *stored = _run("file", "", "p", tmp_path, body)
    assert new_id == "2"
    assert stored == ["1", "2"]  # the record after the torn fragment is readable
    assert (tmp_path / "fresh_items.jsonl").read_text().endswith("\n")


def test_redis_down_add_raises_redis_unavailable(tmp_path: Path) -> None:
    async def main() -> None:
        guard = RedisGuard(f"redis://127.0.0.1:{free_port()}/0", cooldown_s=0.1)
        try:
            await FreshItemStore(guard, tmp_path).add(_record("a"), 1, _free)
        finally:
            await guard.close()

    with pytest.raises(RedisUnavailable):
        asyncio.run(main())
    assert not (tmp_path / "fresh_items.jsonl").exists()  # no silent fallback to a file


def test_vector_codec_round_trip() -> None:
    v = np.random.default_rng(0).standard_normal(384).astype(np.float32)
    text = encode_vector(v)
    assert isinstance(text, str)
    out = decode_vector(text)
    assert out.dtype == np.float32 and out.shape == (384,)
    np.testing.assert_array_equal(out, v)
    np.testing.assert_array_equal(decode_vector(encode_vector(v.astype(np.float64))), v)


def test_item_changes_merge_by_attribute_and_survive_a_restart(
    backend: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    """PATCH /v1/items changes: attributes merged by name, the rest replaced, empty lists
    and removals (None) kept, in Redis and in the state file (issue 19.5)."""

    async def write(store: FreshItemStore) -> dict[str, Any]:
        await store.patch("sku-1", {"available": False, "attributes": {"price": 9.5}})
        await store.patch("sku-1", {"attributes": {"authors": [], "year": None}})
        await store.patch("sku 2", {"available": True})
        return await store.patch("sku-1", {"available": True})

    last = _run(backend, redis_url, redis_prefix, tmp_path, write)
    want = {"available": True, "attributes": {"price": 9.5, "authors": [], "year": None}}
    assert {k: last[k] for k in want} == want
    got = _run(backend, redis_url, redis_prefix, tmp_path, lambda s: s.patches())
    assert set(got) == {"sku-1", "sku 2"}
    assert {k: got["sku-1"][k] for k in want} == want and got["sku 2"]["available"] is True


def test_concurrent_item_changes_lose_no_attribute(
    redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    async def body(store: FreshItemStore) -> dict[str, dict[str, Any]]:
        await asyncio.gather(*(store.patch("x", {"attributes": {f"a{i}": float(i)}})
                               for i in range(20)))
        return await store.patches()

    got = _run("redis", redis_url, redis_prefix, tmp_path, body)
    assert got["x"]["attributes"] == {f"a{i}": float(i) for i in range(20)}
