"""``--data`` resolution: a folder in the project's format, or a MovieLens release."""

from __future__ import annotations

from pathlib import Path

from training.data.dataset import Dataset
from training.data.event_weights import EventWeights, rating_weights, resolve_weights
from training.data.generic import DEFAULT_IMPLICIT_RATING, load_generic
from training.data.movielens import load_movielens
from training.data.tables import is_dataset_folder


def load_dataset(path: str | Path, item_text: str | Path | None = None, *,
                 min_rating: float | None = None,
                 implicit_rating: float = DEFAULT_IMPLICIT_RATING,
                 event_weights: EventWeights | None = None) -> Dataset:
    """Load ``path``: a folder with ``interactions.*`` (or a ``schema.yaml``) is read as the
    project's format (:func:`training.data.generic.load_generic`), anything else as a
    MovieLens folder or zip (:func:`training.data.movielens.load_movielens`).

    ``item_text`` (a CSV of overviews joined through ``links``) applies to both;
    ``implicit_rating`` only to the project's format (the rating of events without one);
    ``event_weights`` (:mod:`training.data.event_weights`) to both: a MovieLens release's
    interactions are ``rating`` events, whose ``weight`` is their value by default.
    """
    path = Path(path)
    if is_dataset_folder(path):
        ds = load_generic(path, implicit_rating=implicit_rating, min_rating=min_rating,
                          event_weights=event_weights)
        if item_text is not None:
            from training.data.enrich import enrich_with_text

            ds = enrich_with_text(ds, item_text)
        return ds
    ds = load_movielens(path, item_text, min_rating=min_rating)
    weights = resolve_weights(event_weights)
    ds.interactions = ds.interactions.assign(
        weight=rating_weights(ds.interactions["rating"].to_numpy(), weights))
    ds.info["event_weights"] = {"rating": weights["rating"]}
    return ds
