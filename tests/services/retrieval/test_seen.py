"""exclude_seen in retrieval: the bundle's full training history (CSR arrays), not the
recent window users.parquet keeps, and bundles written before it are refused."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from services.retrieval import pipeline
from services.retrieval.engine import RetrievalEngine
from services.retrieval.settings import RetrievalSettings
from shared.contracts import bundle_layout as L
from shared.contracts.bundle import load_bundle
from shared.contracts.errors import BundleError
from shared.contracts.internal_v1 import CandidatesRequest
from shared.stores.fresh_items import FreshItemStore
from shared.stores.user_state import UserStateStore
from tests.support.small_bundle import FEEDBACK_EVENTS


def _engine(root: Path, tmp_path: Path, store: UserStateStore | None = None) -> RetrievalEngine:
    return RetrievalEngine(
        RetrievalSettings(artifacts=str(root), redis_url=None),
        load_bundle(root),
        store or UserStateStore(None),
        FreshItemStore(None, tmp_path),
    )


def _training_items(small_bundle: Path) -> dict[str, set[str]]:
    """Every (user, item) the small bundle was trained from: all ratings, low ones too,
    and the feedback events folded in."""
    ratings = pd.read_csv(small_bundle.parent / "data" / "ml-latest-small" / "ratings.csv")
    events = pd.read_parquet(small_bundle.parent / FEEDBACK_EVENTS)
    pairs = pd.concat([ratings[["userId", "movieId"]].set_axis(["u", "i"], axis=1),
                       events[["user_id", "item_id"]].set_axis(["u", "i"], axis=1)])
    pairs = pairs.astype(str)  # ids are strings in the bundle and the API
    return {str(u): {str(i) for i in g["i"]} for u, g in pairs.groupby("u")}


def test_bundle_stores_every_training_item_of_every_user(small_bundle: Path) -> None:
    bundle = load_bundle(small_bundle)
    assert {L.SEEN_INDPTR, L.SEEN_ITEMS} <= set(bundle.manifest["files"])  # with sha256
    assert all(len(bundle.manifest["files"][f]["sha256"]) == 64
               for f in (L.SEEN_INDPTR, L.SEEN_ITEMS))
    indptr, seen = bundle.load_npy(L.SEEN_INDPTR), bundle.load_npy(L.SEEN_ITEMS)
    assert indptr.dtype == np.int64 and seen.dtype == np.int32
    users = bundle.load_parquet(L.USERS)
    item_ids = bundle.load_parquet(L.ITEMS)["item_id"].to_numpy()
    truth = _training_items(small_bundle)
    longest = 0
    for row, uid in enumerate(users["user_id"].tolist()):
        stored = set(item_ids[seen[indptr[row] : indptr[row + 1]]].tolist())
        assert stored == truth[uid], uid
        longest = max(longest, len(stored))
        assert len(users["history"].iat[row]) <= 200
    assert longest > 250, "the test data needs a user beyond the 200-item recent history"


def test_exclude_seen_leaves_out_the_whole_training_history(
    small_bundle: Path, tmp_path: Path
) -> None:
    engine = _engine(small_bundle, tmp_path)
    truth = _training_items(small_bundle)
    uid = max(truth, key=lambda u: len(truth[u]))  # > 250 items, beyond every cap
    upos = engine.user_position(uid)
    assert len(engine.histories[upos]) == 200 < len(truth[uid])
    req = CandidatesRequest(user_id=uid, k=300, exclude_seen=True)
    got = asyncio.run(pipeline.candidates(engine, req)).columns.item_ids
    unseen = set(engine.catalogue.item_ids.tolist()) - truth[uid]
    assert got, "the user has unseen items left to recommend"
    assert set(got) <= unseen, sorted(set(got) & truth[uid])
    both = asyncio.run(
        pipeline.candidates(engine, req.model_copy(update={"exclude_seen": False}))
    ).columns.item_ids
    assert set(both) & truth[uid], "without exclude_seen seen items come back"


def test_an_item_marked_seen_only_is_excluded_but_not_history(
    small_bundle: Path, tmp_path: Path
) -> None:
    """A low rating sent as seen_only: never recommended again, never in the history."""
    from services.retrieval import items

    engine = _engine(small_bundle, tmp_path)
    uid = str(engine.user_ids[0])
    req = CandidatesRequest(user_id=uid, k=50, exclude_seen=True)
    before = asyncio.run(pipeline.candidates(engine, req))
    top = before.columns.item_ids[0]
    asyncio.run(items.push_history(engine, uid, [top], seen_only=True))
    after = asyncio.run(pipeline.candidates(engine, req))
    assert top not in after.columns.item_ids
    assert after.history == before.history  # not part of what the user liked


def test_bundle_without_full_histories_asks_to_retrain(
    small_bundle: Path, tmp_path: Path
) -> None:
    bundle = load_bundle(small_bundle)
    del bundle.manifest["files"][L.SEEN_ITEMS]  # as in a bundle written before them
    with pytest.raises(BundleError, match=r"users/seen_items\.npy.*retrain with `hybridrec train`"):
        RetrievalEngine(
            RetrievalSettings(artifacts=str(small_bundle), redis_url=None),
            bundle,
            UserStateStore(None),
            FreshItemStore(None, tmp_path),
        )
