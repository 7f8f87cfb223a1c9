"""Implicit feedback: event types, their weights, and negative events.

An interaction table holds events (``view``, ``click``, ``add_to_cart``, ``purchase``,
``like``, ``rating`` with its value, ``dislike``, ``hide``, or any other lower-case word).
:func:`combine_events` turns them into what the models read, one row per (user, item):

* **positives**: every (user, item) pair with at least one positive event and no negative
  one. ``weight`` (the pair's *confidence*) is the **sum** of its events' weights (three
  views and a purchase: 1 + 1 + 1 + 5 = 8 with the defaults); a ``rating`` event weighs its
  value unless the weights say otherwise; an event type whose weight is 0 is left out.
  ``rating`` is the pair's latest rating when it has one (the positive threshold
  ``min_rating`` applies to it), else ``implicit_rating`` (4.0: positive by default);
  ``timestamp`` is the latest positive event's.
* **negatives**: every pair with a ``dislike`` or ``hide`` event (:data:`NEGATIVE_EVENTS`),
  whatever came before or after it: the user never gets the item recommended, the models
  never learn it as a positive, and the ranker learns it as a negative.

Weights come from :data:`DEFAULT_EVENT_WEIGHTS`, then the schema's ``events:`` mapping, then
``hybridrec train --event-weights view=1,purchase=5``; an event type named nowhere weighs
:data:`OTHER_EVENT_WEIGHT`. The models use the confidence as a relative sample weight
(divided by its mean over the training pairs, see :mod:`training.models.confidence`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from shared.contracts.errors import ConfigError
from training.data.schema import EVENT_PATTERN, NEGATIVE_EVENTS

VALUE = "value"
"""A weight that stands for the event's own value (the rating of a ``rating`` event)."""
DEFAULT_EVENT_WEIGHTS: dict[str, float | str] = {
    "view": 1.0, "click": 2.0, "add_to_cart": 3.0, "like": 4.0, "purchase": 5.0,
    "rating": VALUE,
}
"""Default weight of each positive event type (``rating``: its value, 0.5 to 5 stars)."""
OTHER_EVENT_WEIGHT = 1.0
"""Weight of a positive event type none of the weights name."""
EventWeights = dict[str, float | str]


def check_weights(raw: Any, source: str) -> EventWeights:
    """A checked mapping of event type -> weight (a number >= 0, or ``"value"``).

    Raises:
        ConfigError: Not a mapping, a bad event name, a negative event given a weight, or
            a weight that is neither a finite number >= 0 nor ``value``.
    """
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: event weights must be a mapping of event type to "
                          f"weight, for example {{view: 1, purchase: 5, rating: value}}; "
                          f"got {raw!r}")
    out: EventWeights = {}
    for name, value in raw.items():
        event = str(name).strip().lower()
        if not re.fullmatch(EVENT_PATTERN, event):
            raise ConfigError(f"{source}: {name!r} is not an event type (a lower-case word of "
                              "letters, digits and _, at most 32)")
        if event in NEGATIVE_EVENTS:
            raise ConfigError(f"{source}: {event} is a negative event: it excludes the item "
                              "and takes no weight; remove it from the weights")
        if isinstance(value, str) and value.strip().lower() == VALUE:
            out[event] = VALUE
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if isinstance(value, bool) or not math.isfinite(number) or number < 0:
            raise ConfigError(f"{source}: the weight of {event} must be a number >= 0 (0 leaves "
                              f"the event out) or 'value' (the event's own value); got {value!r}")
        out[event] = number
    return out


def parse_weights_flag(text: str) -> EventWeights:
    """``view=1,purchase=5,rating=value`` (the ``--event-weights`` flag) as a checked mapping."""
    pairs: dict[str, str] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, sep, value = part.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ConfigError(f"--event-weights: expected EVENT=WEIGHT pairs separated by "
                              f"commas (view=1,purchase=5,rating=value), got {part!r}")
        pairs[name.strip()] = value.strip()
    return check_weights(pairs, "--event-weights")


def resolve_weights(*layers: Mapping[str, float | str] | None) -> EventWeights:
    """The defaults overridden by each given layer in turn (schema, then flag)."""
    out: EventWeights = dict(DEFAULT_EVENT_WEIGHTS)
    for layer in layers:
        out.update(layer or {})
    return out


def event_weight_array(events: np.ndarray, values: np.ndarray,
                       weights: Mapping[str, float | str]) -> np.ndarray:
    """[n] float64 weight of each event (NaN values weigh 0 under ``value``)."""
    out = np.full(len(events), OTHER_EVENT_WEIGHT, dtype=np.float64)
    for name in np.unique(events):
        w = weights.get(str(name), OTHER_EVENT_WEIGHT)
        mask = events == name
        out[mask] = np.nan_to_num(values[mask], nan=0.0) if w == VALUE else float(w)
    return out


def combine_events(user: np.ndarray, item: np.ndarray, timestamp: np.ndarray,
                   event: np.ndarray, value: np.ndarray, *,
                   weights: Mapping[str, float | str],
                   implicit_rating: float) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int]]:
    """Events -> (positives, negatives, counts); see the module docstring.

    Args:
        user, item: [n] int64 ids.
        timestamp: [n] int64 seconds.
        event: [n] event type names (str).
        value: [n] float64 event values (the rating of ``rating`` events; NaN if none).
        weights: Event type -> weight (:func:`resolve_weights`).
        implicit_rating: ``rating`` of positive pairs without a rating event.

    Returns:
        ``positives`` (``user_id``, ``item_id``, ``rating`` float32, ``timestamp``,
        ``weight`` float32) in the file order of each pair's latest event, ``negatives``
        (``user_id``, ``item_id``, ``timestamp``, ``event``) sorted by (user, item); and
        counts for the dataset's info.
    """
    ev = pd.DataFrame({"user_id": np.asarray(user, np.int64), "item_id": np.asarray(item, np.int64),
                       "timestamp": np.asarray(timestamp, np.int64),
                       "event": np.asarray(event, dtype=object),
                       "value": np.asarray(value, np.float64)})
    ev["row"] = np.arange(len(ev))
    is_neg = ev["event"].isin(NEGATIVE_EVENTS).to_numpy()
    neg = ev[is_neg].sort_values(["user_id", "item_id", "timestamp"], kind="stable")
    neg = neg.drop_duplicates(["user_id", "item_id"], keep="last")
    negatives = neg[["user_id", "item_id", "timestamp", "event"]].reset_index(drop=True)
    pos = ev[~is_neg]
    w = event_weight_array(pos["event"].to_numpy(dtype=object), pos["value"].to_numpy(), weights)
    zero = w <= 0
    pos = pos.assign(weight=w)[~zero]
    if len(negatives):  # a negative event wins over the pair's positive events
        key = pd.MultiIndex.from_frame(pos[["user_id", "item_id"]])
        neg_key = pd.MultiIndex.from_frame(negatives[["user_id", "item_id"]])
        overridden = key.isin(neg_key)
        n_overridden = int(overridden.sum())
        pos = pos[~overridden]
    else:
        n_overridden = 0
    pos = pos.sort_values(["user_id", "item_id", "timestamp"], kind="stable")
    is_rating = (pos["event"] == "rating").to_numpy()
    rated = pos[is_rating].drop_duplicates(["user_id", "item_id"], keep="last")
    grouped = pos.groupby(["user_id", "item_id"], sort=True)
    positives = pd.DataFrame({
        "timestamp": grouped["timestamp"].max(), "weight": grouped["weight"].sum(),
        "row": grouped["row"].last()})
    rating = pd.Series(np.float64(implicit_rating), index=positives.index)
    rating.loc[pd.MultiIndex.from_frame(rated[["user_id", "item_id"]])] = rated["value"].to_numpy()
    # in file order: each pair where its latest event is (the later row on a tie)
    positives = positives.assign(rating=rating).sort_values("row").reset_index()
    positives = pd.DataFrame({
        "user_id": positives["user_id"].to_numpy(np.int64),
        "item_id": positives["item_id"].to_numpy(np.int64),
        "rating": positives["rating"].to_numpy(np.float32),
        "timestamp": positives["timestamp"].to_numpy(np.int64),
        "weight": positives["weight"].to_numpy(np.float32)})
    counts = {"events_zero_weight_dropped": int(zero.sum()),
              "negative_events": int(is_neg.sum()),
              "negative_pairs": len(negatives),
              "positive_events_overridden_by_negative": n_overridden}
    return positives, negatives, counts


def rating_weights(ratings: np.ndarray, weights: Mapping[str, float | str]) -> np.ndarray:
    """[n] float32 confidence of rating-only interactions (MovieLens): their value, or the
    ``rating`` weight when it is a number."""
    w = weights.get("rating", VALUE)
    if w == VALUE:
        return np.asarray(ratings, np.float32)
    return np.full(len(ratings), float(w), np.float32)
