"""``hybridrec evaluate``: load, split, run the baselines (plus extra models), write the report."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from shared.errors import ConfigError
from training.evaluation.base import EvalData, Recommender
from training.evaluation.baselines import (
    EASE,
    GenrePopularity,
    ItemKNN,
    Popularity,
    RandomRecommender,
)
from training.evaluation.harness import run_models
from training.evaluation.metrics import DEFAULT_KS
from training.evaluation.report import markdown_table, write_report
from training.splits import SPLIT_KINDS, make_split

#: Baseline factories by lower-case name (the ``--models`` vocabulary).
BASELINES: dict[str, Callable[[int], Recommender]] = {
    "popularity": lambda seed: Popularity(),
    "itemknn": lambda seed: ItemKNN(),
    "ease": lambda seed: EASE(),
    "genrepopularity": lambda seed: GenrePopularity(),
    "random": lambda seed: RandomRecommender(seed=seed),
}

#: Default baselines per split kind. ItemKNN and EASE score unseen items 0, so
#: they are left out of cold-items.
DEFAULT_MODELS: dict[str, tuple[str, ...]] = {
    "random": ("popularity", "itemknn", "ease"),
    "temporal": ("popularity", "itemknn", "ease"),
    "cold-items": ("genrepopularity", "random"),
}


def build_baselines(split: str, names: Sequence[str] | None = None, seed: int = 42) -> list[Any]:
    """Instantiate baselines by name (case-insensitive), or the defaults for ``split``.

    Args:
        split: Split kind.
        names: Model names from :data:`BASELINES`; None = :data:`DEFAULT_MODELS`.
        seed: Seed for seeded models.

    Returns:
        Unfitted recommenders.

    Raises:
        ConfigError: Unknown split or model name.
    """
    if split not in SPLIT_KINDS:
        raise ConfigError(f"unknown split {split!r}; expected one of {list(SPLIT_KINDS)}.")
    chosen = (
        DEFAULT_MODELS[split]
        if names is None
        else tuple(n.strip().lower() for n in names if n.strip())
    )
    unknown = [n for n in chosen if n not in BASELINES]
    if unknown:
        raise ConfigError(
            f"unknown model(s) {unknown}; expected a comma-separated subset of {sorted(BASELINES)}."
        )
    return [BASELINES[n](seed) for n in chosen]


def run_evaluate(
    data_path: str | Path,
    split: str,
    out_dir: str | Path,
    *,
    item_text: str | Path | None = None,
    seed: int = 42,
    models: Sequence[str] | None = None,
    extra_models: Sequence[Recommender] | None = None,
    split_options: dict[str, Any] | None = None,
    ks: Sequence[int] = DEFAULT_KS,
    progress: bool = True,
    echo: bool = True,
) -> dict[str, Any]:
    """Evaluate the baselines for a split (and any extra models) and write the report.

    Args:
        data_path: MovieLens folder or zip (anything ``load_dataset`` reads).
        split: ``random``, ``temporal`` or ``cold-items``.
        out_dir: Folder for ``report.json``, ``report.md`` and ``report.png``.
        item_text: Optional CSV with item overviews.
        seed: Split and model seed.
        models: Baseline names (see :data:`BASELINES`) and hybridrec's own models
            (:data:`training.evaluate_models.HYBRID_MODELS`); None = the default
            baselines for the split. The CLI adds hybridrec's models by default.
        extra_models: Additional unfitted recommenders (e.g. the two-stage model).
        split_options: Extra keyword arguments for :func:`training.splits.make_split`
            (``min_rating``, ``k_core``, ...).
        ks: Cut-offs.
        progress: Show tqdm bars on stderr.
        echo: Print the Markdown test table to stdout.

    Returns:
        The report dict (as written to ``report.json``).
    """
    from training.data import load_dataset
    from training.evaluate_models import HYBRID_MODELS, build_hybrid

    t0 = time.perf_counter()
    wanted = [n.strip().lower() for n in models] if models is not None else None
    hybrid = tuple(n for n in (wanted or []) if n in HYBRID_MODELS)
    baseline_names = [n for n in wanted if n not in HYBRID_MODELS] if wanted is not None else None
    baselines = build_baselines(split, baseline_names, seed) if baseline_names != [] else []
    ds = load_dataset(data_path, item_text=item_text)
    sp = make_split(ds, split, seed=seed, **(split_options or {}))
    data = EvalData.from_split(ds, sp)
    own = build_hybrid(hybrid, data, seed)
    report = run_models(
        [*baselines, *own, *(extra_models or [])],
        data,
        ks=ks,
        dataset=ds,
        split=sp,
        progress=progress,
    )
    report["wall_seconds"] = time.perf_counter() - t0
    write_report(report, out_dir)
    if echo:
        print(markdown_table(report, "test"))
    return report
