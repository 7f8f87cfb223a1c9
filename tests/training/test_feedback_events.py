"""Exported feedback events folded into a training run (``hybridrec train --events``)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shared.contracts.errors import DataError
from shared.stores.events import EventLog
from shared.stores.export import export_events
from training.data import load_dataset
from training.data.dataset import Dataset
from training.feedback_events import fold_events, read_events


@pytest.fixture(scope="module")
def ds(bundled_zip: Path) -> Dataset:
    return load_dataset(str(bundled_zip))


def _export(tmp_path: Path, events: list[dict[str, object]]) -> Path:
    """Store events through the real event log (spool, no Redis) and export them."""
    state = tmp_path / "state"

    async def _store() -> None:
        log = EventLog(None, state)
        for ev in events:
            await log.append(ev)

    asyncio.run(_store())
    out = tmp_path / "events.parquet"
    export_events(out, redis_url=None, state_dir=str(state))
    return out


def test_rating_view_and_click_events_become_interactions(ds: Dataset, tmp_path: Path) -> None:
    user = int(ds.interactions["user_id"].iloc[0])
    seen = set(ds.interactions.loc[ds.interactions["user_id"] == user, "item_id"])
    unseen = [int(i) for i in ds.items["item_id"] if int(i) not in seen][:3]
    later = int(ds.interactions["timestamp"].max()) + 100
    path = _export(
        tmp_path,
        [
            {
                "user_id": user,
                "item_id": unseen[0],
                "type": "rating",
                "rating": 2.5,
                "timestamp": later,
            },
            {"user_id": user, "item_id": unseen[1], "type": "view", "timestamp": later + 1},
            {"user_id": user, "item_id": unseen[2], "type": "click", "timestamp": later + 2},
        ],
    )
    folded = fold_events(ds, read_events(path), implicit_rating=4.0)
    rows = folded.interactions[folded.interactions["user_id"] == user].set_index("item_id")
    assert rows.loc[unseen[0], "rating"] == pytest.approx(2.5)
    assert rows.loc[unseen[1], "rating"] == pytest.approx(4.0)
    assert rows.loc[unseen[2], "timestamp"] == later + 2
    assert len(folded.interactions) == len(ds.interactions) + 3
    assert folded.info["events_folded"] == 3 and folded.info["events_new_users"] == 0
    assert folded.interactions.dtypes.to_dict() == ds.interactions.dtypes.to_dict()

    without_implicit = fold_events(ds, read_events(path), implicit_rating=None)
    assert len(without_implicit.interactions) == len(ds.interactions) + 1
    assert without_implicit.info["events_skipped_implicit"] == 2


def test_latest_event_wins_and_unknown_items_are_dropped(ds: Dataset, tmp_path: Path) -> None:
    first = ds.interactions.iloc[0]
    user, item = int(first["user_id"]), int(first["item_id"])
    unknown_item = int(ds.items["item_id"].max()) + 1000
    new_user = int(ds.interactions["user_id"].max()) + 1
    path = _export(
        tmp_path,
        [
            {
                "user_id": user,
                "item_id": item,
                "type": "rating",
                "rating": 0.5,
                "timestamp": int(first["timestamp"]) + 10,
            },
            {
                "user_id": user,
                "item_id": unknown_item,
                "type": "rating",
                "rating": 5.0,
                "timestamp": 1,
            },
            {"user_id": new_user, "item_id": item, "type": "rating", "rating": 5.0, "timestamp": 2},
        ],
    )
    folded = fold_events(ds, read_events(path))
    inter = folded.interactions
    pair = inter[(inter["user_id"] == user) & (inter["item_id"] == item)]
    assert len(pair) == 1 and float(pair["rating"].iloc[0]) == 0.5
    assert not (inter["item_id"] == unknown_item).any()
    assert folded.info["events_dropped_unknown_item"] == 1
    assert new_user in set(folded.users["user_id"]) and folded.info["events_new_users"] == 1
    assert len(folded.users) == len(ds.users) + 1
    assert not inter.duplicated(["user_id", "item_id"]).any()


def test_bad_event_files_are_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        read_events(tmp_path / "missing.parquet")
    not_parquet = tmp_path / "x.parquet"
    not_parquet.write_text("user_id,item_id\n1,2\n")
    with pytest.raises(DataError, match="not a parquet file"):
        read_events(not_parquet)
    partial = tmp_path / "partial.parquet"
    pd.DataFrame({"user_id": [1], "item_id": [2]}).to_parquet(partial)
    with pytest.raises(DataError, match="lacks the column"):
        read_events(partial)
    odd = tmp_path / "odd.parquet"
    pd.DataFrame(
        {
            "event_id": ["1"],
            "user_id": [1],
            "item_id": [2],
            "type": ["wishlist"],
            "rating": [np.nan],
            "timestamp": [3],
        }
    ).to_parquet(odd)
    with pytest.raises(DataError, match="type outside"):
        read_events(odd)
    nan_rating = tmp_path / "nan.parquet"
    pd.DataFrame(
        {
            "event_id": ["1"],
            "user_id": [1],
            "item_id": [2],
            "type": ["rating"],
            "rating": [np.nan],
            "timestamp": [3],
        }
    ).to_parquet(nan_rating)
    with pytest.raises(DataError, match="no finite rating"):
        read_events(nan_rating)


def test_string_ids_map_onto_a_dense_dataset_and_new_users_get_new_numbers(
    tmp_path: Path,
) -> None:
    """The bookshop (SKUs, customer ids): events exported with string ids fold back in."""
    from tests.support.bookshop import write_bookshop

    shop = load_dataset(str(write_bookshop(tmp_path / "shop", n_items=40, n_users=20)))
    assert shop.id_maps is not None
    items_map, users_map = shop.id_maps["items"], shop.id_maps["users"]
    later = int(shop.interactions["timestamp"].max()) + 10
    events = [
        {"user_id": "cust-0003", "item_id": "sku-000007", "type": "view", "timestamp": later},
        {"user_id": "new:customer@shop", "item_id": "sku-000008", "type": "rating",
         "rating": 5.0, "timestamp": later + 1},
        {"user_id": "cust-0003", "item_id": "sku-999999", "type": "view", "timestamp": later + 2},
    ]
    folded = fold_events(shop, read_events(_export(tmp_path, events)))
    assert folded.info["events_folded"] == 2 and folded.info["events_dropped_unknown_item"] == 1
    assert folded.id_maps is not None
    new_users = folded.id_maps["users"]
    new_int = int(new_users.to_int(["new:customer@shop"])[0])
    assert new_int == len(users_map.strings) + 1  # the next number; known ids keep theirs
    assert new_users.to_int(["cust-0003"]).tolist() == users_map.to_int(["cust-0003"]).tolist()
    inter = folded.interactions
    pair = inter[(inter["user_id"] == new_int)
                 & (inter["item_id"] == int(items_map.to_int(["sku-000008"])[0]))]
    assert len(pair) == 1 and pair["rating"].iloc[0] == 5.0
    assert new_int in set(folded.users["user_id"])


def test_a_numeric_dataset_leaves_out_events_of_non_numeric_users(
    ds: Dataset, tmp_path: Path
) -> None:
    item = str(ds.items["item_id"].iloc[0])
    events = [{"user_id": "cust-a", "item_id": item, "type": "view", "timestamp": 1},
              {"user_id": "99999", "item_id": item, "type": "view", "timestamp": 2}]
    folded = fold_events(ds, read_events(_export(tmp_path, events)))
    assert folded.info["events_dropped_user_id"] == 1 and folded.info["events_folded"] == 1
    assert 99999 in set(folded.users["user_id"]) and folded.id_maps is None


def test_dislikes_and_hides_survive_the_event_log_and_export(ds: Dataset, tmp_path: Path) -> None:
    """POST-ed negative events -> the real event log -> `hybridrec events export` -> the
    next training run's negatives (and out of its positives); purchases add their weight."""
    first = ds.interactions.iloc[0]
    user, liked = int(first["user_id"]), int(first["item_id"])
    seen = set(ds.interactions.loc[ds.interactions["user_id"] == user, "item_id"])
    unseen = [int(i) for i in ds.items["item_id"] if int(i) not in seen][:2]
    later = int(ds.interactions["timestamp"].max()) + 100
    path = _export(tmp_path, [
        {"user_id": user, "item_id": liked, "type": "hide", "timestamp": later},
        {"user_id": user, "item_id": unseen[0], "type": "dislike", "timestamp": later + 1},
        {"user_id": user, "item_id": unseen[1], "type": "purchase", "timestamp": later + 2},
    ])
    events = read_events(path)
    assert events["type"].tolist() == ["hide", "dislike", "purchase"]
    folded = fold_events(ds, events)
    assert folded.negatives is not None
    neg = folded.negatives[folded.negatives["user_id"] == user]
    assert dict(zip(neg["item_id"], neg["event"], strict=True)) == {
        liked: "hide", unseen[0]: "dislike"}
    mine = folded.interactions[folded.interactions["user_id"] == user].set_index("item_id")
    assert liked not in mine.index and unseen[0] not in mine.index  # not positives
    assert mine.loc[unseen[1], "weight"] == pytest.approx(5.0)  # a purchase weighs 5
    assert folded.info["events_negative"] == 2
