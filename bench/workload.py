"""What the benchmarks query with: real query-tower user vectors and request bodies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from shared.contracts import bundle_layout as L
from shared.contracts.bundle import load_bundle
from shared.model.catalogue import id_array


def user_histories(bundle_path: Path) -> tuple[np.ndarray, list[np.ndarray]]:
    """Known user ids and their histories (item ids, most recent last) of a bundle, as
    string arrays (ids are strings: :mod:`shared.contracts.ids`)."""
    users = load_bundle(bundle_path, verify=False).load_parquet(L.USERS)
    ids = id_array(users["user_id"].to_numpy())
    return ids, [id_array(np.asarray(h)) for h in users["history"].tolist()]


def user_queries(bundle_path: Path, n: int, seed: int = 0) -> np.ndarray:
    """[n, d] user vectors from the bundle's real query tower.

    Every known user once (id + history), then anonymous users whose history is a
    random run of 3-30 consecutive items of a random known user's history, until
    there are ``n`` queries.
    """
    from shared.model.features import FeatureEncoder
    from shared.model.query_serving import QueryTowerRunner

    bundle = load_bundle(bundle_path, verify=False)
    encoder = FeatureEncoder.load(bundle.path(L.FEATURES))
    tower = QueryTowerRunner(bundle.path(L.QUERY_TOWER))
    ids, hists = user_histories(bundle_path)
    pos = [encoder.item_index(h) for h in hists]
    pos = [p[p >= 0] for p in pos]
    rng = np.random.default_rng(seed)
    user_ids: list[str | None] = [str(u) for u in ids[:n]]
    queries = list(pos[:n])
    while len(queries) < n:
        h = pos[int(rng.integers(len(pos)))]
        if not len(h):
            continue
        size = int(rng.integers(3, 31))
        start = int(rng.integers(max(len(h) - size, 0) + 1))
        queries.append(h[start:start + size])
        user_ids.append(None)
    return tower.encode(encoder, user_ids, queries)


def content_queries(bundle_path: Path, n: int, window: int = 20, seed: int = 0) -> np.ndarray:
    """[n, D] queries of the content source: mean content vector of a user's recent items.

    As the retrieval service builds them (the last ``window`` history items),
    from known users' histories and random runs of them.
    """
    bundle = load_bundle(bundle_path, verify=False)
    items = bundle.load_parquet(L.ITEMS)
    content = bundle.load_npy(L.CONTENT_VECTORS)
    item_ids = id_array(items["item_id"].to_numpy())
    order = np.argsort(item_ids)
    sorted_ids = item_ids[order]
    _, hists = user_histories(bundle_path)
    rng = np.random.default_rng(seed)
    out = []
    for j in range(n):
        h = hists[j] if j < len(hists) else hists[int(rng.integers(len(hists)))]
        if j >= len(hists) and len(h) > 3:
            size = int(rng.integers(3, min(len(h), window) + 1))
            start = int(rng.integers(len(h) - size + 1))
            h = h[start:start + size]
        at = np.clip(np.searchsorted(sorted_ids, h), 0, len(sorted_ids) - 1)
        pos = order[at][sorted_ids[at] == h][-window:]
        q = np.asarray(content[pos], np.float32).mean(axis=0) if len(pos) else content[0]
        out.append(q / max(float(np.linalg.norm(q)), 1e-9))
    return np.asarray(out, np.float32)


def candidate_requests(bundle_path: Path, n: int, seed: int = 0,
                       k: int = 300) -> list[dict[str, Any]]:
    """``POST /v1/candidates`` bodies: known users (70%), anonymous with history (30%)."""
    ids, hists = user_histories(bundle_path)
    rng = np.random.default_rng(seed)
    out: list[dict[str, Any]] = []
    for _ in range(n):
        j = int(rng.integers(len(ids)))
        if rng.random() < 0.7 or not len(hists[j]):
            out.append({"user_id": str(ids[j]), "k": k})
        else:
            h = hists[j]
            size = int(rng.integers(3, 21))
            start = int(rng.integers(max(len(h) - size, 0) + 1))
            out.append({"history": [str(x) for x in h[start:start + size]], "k": k})
    return out
