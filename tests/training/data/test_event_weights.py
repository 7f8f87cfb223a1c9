"""Event weights and negative events: from raw events to positives (with confidence) and
negatives, through the schema, the --event-weights flag and the exported-events fold."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shared.contracts.errors import ConfigError, DataError
from training.data.event_weights import (
    DEFAULT_EVENT_WEIGHTS,
    combine_events,
    parse_weights_flag,
    resolve_weights,
)
from training.data.generic import load_generic
from training.data.schema import parse_schema
from training.feedback_events import fold_events


def _events(rows: list[tuple[int, int, int, str, float]]) -> dict[str, np.ndarray]:
    u, i, t, e, v = zip(*rows, strict=True)
    return {"user": np.array(u), "item": np.array(i), "timestamp": np.array(t),
            "event": np.array(e, dtype=object), "value": np.array(v, dtype=float)}


def test_weights_sum_per_pair_and_ratings_weigh_their_value() -> None:
    nan = float("nan")
    ev = _events([(1, 10, 1, "view", nan), (1, 10, 2, "view", nan), (1, 10, 3, "purchase", nan),
                  (1, 11, 4, "rating", 2.0), (1, 11, 5, "view", nan), (2, 10, 6, "rating", 4.5),
                  (2, 12, 7, "shared", nan)])
    pos, neg, counts = combine_events(**ev, weights=resolve_weights(), implicit_rating=4.0)
    got = {(r.user_id, r.item_id): (r.weight, r.rating, r.timestamp) for r in pos.itertuples()}
    assert got == {(1, 10): (7.0, 4.0, 3),  # 1 + 1 + 5; no rating -> implicit_rating
                   (1, 11): (3.0, 2.0, 5),  # rating 2 (its value) + view 1; the rating kept
                   (2, 10): (4.5, 4.5, 6),
                   (2, 12): (1.0, 4.0, 7)}  # an event type named nowhere weighs 1
    assert neg.empty and counts["negative_pairs"] == 0
    assert pos["weight"].dtype == np.float32 and pos["rating"].dtype == np.float32


def test_a_negative_event_wins_over_the_pairs_positive_events_whatever_the_order() -> None:
    nan = float("nan")
    ev = _events([(1, 10, 1, "purchase", nan), (1, 10, 2, "hide", nan),
                  (1, 11, 1, "dislike", nan), (1, 11, 9, "view", nan),
                  (1, 12, 3, "view", nan), (3, 13, 4, "hide", nan)])
    pos, neg, counts = combine_events(**ev, weights=resolve_weights(), implicit_rating=4.0)
    assert list(zip(pos["user_id"], pos["item_id"], strict=True)) == [(1, 12)]
    assert neg[["user_id", "item_id", "event"]].values.tolist() == [
        [1, 10, "hide"], [1, 11, "dislike"], [3, 13, "hide"]]
    assert counts["positive_events_overridden_by_negative"] == 2


def test_a_weight_of_zero_leaves_the_event_type_out() -> None:
    nan = float("nan")
    ev = _events([(1, 10, 1, "view", nan), (1, 11, 2, "purchase", nan)])
    pos, _, counts = combine_events(**ev, weights=resolve_weights({"view": 0.0}),
                                    implicit_rating=4.0)
    assert pos["item_id"].tolist() == [11] and counts["events_zero_weight_dropped"] == 1


def test_the_flag_parses_and_refuses_what_it_cannot_use() -> None:
    assert parse_weights_flag("view=1, purchase=7.5,rating=value") == {
        "view": 1.0, "purchase": 7.5, "rating": "value"}
    assert resolve_weights({"view": 2.0}, {"purchase": 9.0})["view"] == 2.0
    assert DEFAULT_EVENT_WEIGHTS["rating"] == "value"
    for bad, words in (("view", "EVENT=WEIGHT"), ("view=-1", ">= 0"), ("view=abc", ">= 0"),
                       ("hide=3", "negative event"), ("Bad Name=1", "not an event type"),
                       ("view=nan", ">= 0")):
        with pytest.raises(ConfigError, match=words):
            parse_weights_flag(bad)


def test_schema_events_section(tmp_path: Path) -> None:
    schema = parse_schema({"events": {"view": 0.5, "rating": "value"}})
    assert schema.events == {"view": 0.5, "rating": "value"}
    with pytest.raises(DataError, match="weight of view"):
        parse_schema({"events": {"view": "lots"}}, "schema.yaml")
    folder = tmp_path / "shop"
    folder.mkdir()
    pd.DataFrame({"sku": ["a", "b"], "title": ["A", "B"]}).to_csv(folder / "items.csv",
                                                                 index=False)
    pd.DataFrame({"user_id": ["u1", "u1", "u1", "u2"], "item_id": ["a", "a", "b", "b"],
                  "timestamp": [1, 2, 3, 4],
                  "event": ["view", "purchase", "view", "hide"]}).to_csv(
        folder / "interactions.csv", index=False)
    (folder / "schema.yaml").write_text(
        "items: {columns: {item_id: sku}}\nevents: {view: 2, purchase: 10}\n")
    ds = load_generic(folder)
    assert ds.interactions["weight"].tolist() == [12.0, 2.0]  # the schema's weights
    ds = load_generic(folder, event_weights={"view": 1.0})  # the flag over the schema
    assert ds.interactions["weight"].tolist() == [11.0, 1.0]
    assert ds.negatives is not None and len(ds.negatives) == 1
    assert len(ds.users) == 2  # u2 (only a hide) is a user too
    assert ds.info["negative_pairs"] == 1


def test_exported_negative_events_survive_the_fold(tmp_path: Path) -> None:
    from tests.support.bookshop import write_bookshop

    shop = load_generic(write_bookshop(tmp_path / "shop", n_items=40, n_users=20))
    users, items = shop.id_maps["users"], shop.id_maps["items"]  # type: ignore[index]
    first = shop.interactions.iloc[0]
    uid, iid = users.to_str([first.user_id])[0], items.to_str([first.item_id])[0]
    later = int(shop.interactions["timestamp"].max()) + 10
    events = pd.DataFrame({
        "event_id": ["1-0", "1-1", "1-2"], "user_id": [uid, uid, "cust-new"],
        "item_id": [iid, "sku-000002", "sku-000003"], "type": ["hide", "purchase", "dislike"],
        "rating": np.array([np.nan] * 3, np.float32), "timestamp": [later, later + 1, later]})
    folded = fold_events(shop, events)
    assert folded.negatives is not None
    folded_users = folded.id_maps["users"]  # type: ignore[index]  # extended with cust-new
    neg = set(zip(folded_users.to_str(folded.negatives["user_id"]),
                  items.to_str(folded.negatives["item_id"]), strict=True))
    assert {(uid, iid), ("cust-new", "sku-000003")} <= neg
    inter = folded.interactions
    pairs = set(zip(inter["user_id"], inter["item_id"], strict=True))
    assert (first.user_id, first.item_id) not in pairs  # the hide removed the positive
    bought = inter[(inter["user_id"] == first.user_id)
                   & (inter["item_id"] == items.to_int(["sku-000002"])[0])]
    assert len(bought) == 1 and bought["weight"].iloc[0] >= 5.0  # the purchase's weight added
    assert folded.info["events_negative"] == 2
