"""``--data`` resolution: a folder in the project's format, or a MovieLens release."""

from __future__ import annotations

from pathlib import Path

from training.data.dataset import Dataset
from training.data.generic import DEFAULT_IMPLICIT_RATING, load_generic
from training.data.movielens import load_movielens
from training.data.tables import is_dataset_folder


def load_dataset(path: str | Path, item_text: str | Path | None = None, *,
                 min_rating: float | None = None,
                 implicit_rating: float = DEFAULT_IMPLICIT_RATING) -> Dataset:
    """Load ``path``: a folder with ``interactions.*`` (or a ``schema.yaml``) is read as the
    project's format (:func:`training.data.generic.load_generic`), anything else as a
    MovieLens folder or zip (:func:`training.data.movielens.load_movielens`).

    ``item_text`` (a CSV of overviews joined through ``links``) applies to both;
    ``implicit_rating`` only to the project's format (the rating of events without one).
    """
    path = Path(path)
    if is_dataset_folder(path):
        ds = load_generic(path, implicit_rating=implicit_rating, min_rating=min_rating)
        if item_text is not None:
            from training.data.enrich import enrich_with_text

            ds = enrich_with_text(ds, item_text)
        return ds
    return load_movielens(path, item_text, min_rating=min_rating)
