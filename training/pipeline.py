"""``hybridrec train``: raw MovieLens data -> a verified artifact bundle.

Stages (each timed and reported): load data -> BERT item embeddings -> two-tower
retrieval model -> candidate sources + hybrid ranker (two-stage fit without
leakage) -> Annoy indexes (with recall against exact search) -> bundle.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from shared.contracts.errors import ConfigError
from training.catalogue_data import catalogue_eval_data, serving_interactions, temporal_holdout
from training.data.event_weights import EventWeights, resolve_weights
from training.feedback_events import DEFAULT_IMPLICIT_RATING, fold_events, read_events
from training.models.ranker import RankerConfig
from training.models.towers import TwoTowerConfig
from training.models.two_stage import TwoStageConfig


@dataclasses.dataclass
class TrainConfig:
    """Settings of ``hybridrec train`` (override with ``--config file.json``).

    Attributes:
        min_rating: Ratings at or above this are positive interactions.
        valid_frac: Latest share of each user's interactions held out for early stopping.
        text_model: Sentence-transformers model name or path (None = bundled MiniLM).
        ann_n_trees: Annoy trees of both indexes (None: by catalogue size and vector
            width, :func:`shared.model.search.annoy_index.params_for_catalogue`).
        ann_search_k: Annoy search_k recorded for serving (None: likewise).
        hnsw: Also build HNSW graphs over both vector sets; retrieval serves from them
            for catalogues too large for exact search (None: above
            :data:`shared.model.search.annoy_index.LARGE_CATALOGUE` items;
            ``--hnsw`` / ``--no-hnsw``).
        ease_max_items: EASE is solved over at most this many items (O(n^2) memory, O(n^3)
            time): the whole catalogue up to this size, else its most popular items, with
            item-kNN covering the tail (``SparseEASERecommender`` in
            :mod:`training.models.ranking_sources`).
        popular_size: Items in the gateway's popular fallback list.
        two_tower: Overrides of :class:`TwoTowerConfig`.
        two_stage: Overrides of :class:`TwoStageConfig` (``ranker`` nested).
    """

    min_rating: float | None = 3.0
    valid_frac: float = 0.1
    text_model: str | None = None
    ann_n_trees: int | None = None
    ann_search_k: int | None = None
    hnsw: bool | None = None
    ease_max_items: int = 12_000
    popular_size: int = 1000
    two_tower: dict[str, Any] = dataclasses.field(default_factory=dict)
    two_stage: dict[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_file(cls, path: str | None, *, quick: bool = False) -> TrainConfig:
        """Defaults, then ``quick`` settings, then the JSON file's values."""
        raw: dict[str, Any] = {}
        if quick:
            raw = {
                "two_tower": {"epochs": 2, "verbose": 0},
                "two_stage": {"depth": 50, "max_candidates": 80, "ranker": {"epochs": 2}},
            }
        if path:
            try:
                user = json.loads(Path(path).read_text())
            except (OSError, ValueError) as exc:
                raise ConfigError(f"cannot read config {path}: {exc}") from exc
            unknown = set(user) - {f.name for f in dataclasses.fields(cls)}
            if unknown:
                raise ConfigError(f"unknown keys in {path}: {sorted(unknown)}")
            for k, v in user.items():
                raw[k] = {**raw.get(k, {}), **v} if isinstance(v, dict) else v
        return cls(**raw)

    def ann_params(self, n_items: int, dim: int) -> tuple[int, int]:
        """``(n_trees, search_k)`` of an index over ``n_items`` vectors of width ``dim``."""
        from shared.model.search.annoy_index import params_for_catalogue

        n_trees, search_k = params_for_catalogue(n_items, dim)
        return self.ann_n_trees or n_trees, self.ann_search_k or search_k

    def wants_hnsw(self, n_items: int) -> bool:
        """Whether the bundle gets HNSW graphs: as configured, else above 100k items."""
        from shared.model.search.annoy_index import LARGE_CATALOGUE

        return self.hnsw if self.hnsw is not None else n_items > LARGE_CATALOGUE

    def two_tower_config(self) -> TwoTowerConfig:
        # An epoch over at most 1M examples: all of them up to ~1.3M interactions, a fresh
        # sample each epoch above (25M interactions give 18M examples).
        return TwoTowerConfig(**{"verbose": 0, "max_examples_per_epoch": 1_000_000,
                                 **self.two_tower})

    def two_stage_config(self) -> TwoStageConfig:
        # Serving predicts what a user does next, so the ranker's inner labels are each
        # user's latest interactions unless the config says otherwise.
        opts = {"holdout": "temporal", **self.two_stage}
        ranker = RankerConfig(**opts.pop("ranker", {}))
        return TwoStageConfig(ranker=ranker, **opts)


class StageTimer:
    """Times named stages and prints progress lines to stderr."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}
        self._t0 = time.perf_counter()

    def step(self, what: str) -> None:
        """A progress line inside a stage without a bar: what finished, seconds so far."""
        print(f"  {what} ({time.perf_counter() - self._t0:.1f} s into the stage)",
              file=sys.stderr, flush=True)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        print(f"[hybridrec train] {name} ...", file=sys.stderr, flush=True)
        t0 = self._t0 = time.perf_counter()
        yield
        self.times[name] = round(time.perf_counter() - t0, 2)
        print(f"[hybridrec train] {name}: {self.times[name]:.1f} s", file=sys.stderr, flush=True)


def run_train(
    *,
    data: str,
    out: str,
    item_text: str | None = None,
    seed: int = 42,
    config_path: str | None = None,
    quick: bool = False,
    hnsw: bool | None = None,
    include_fresh: bool = False,
    events: Sequence[str] = (),
    implicit_rating: float | None = DEFAULT_IMPLICIT_RATING,
    event_weights: EventWeights | None = None,
) -> Path:
    """Train every model on ``data`` and write a bundle under ``out``; returns its folder.

    ``event_weights`` (``--event-weights``) override the defaults and the schema's
    ``events:`` (:mod:`training.data.event_weights`)."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import keras

    from shared.model.text import TextEncoder
    from training.bundle_export import export_bundle
    from training.data import load_dataset
    from training.embeddings import embed_items
    from training.models.confidence import negatives_matrix
    from training.models.ranking_sources import default_sources
    from training.models.retrieval_recommenders import TwoTowerRecommender
    from training.models.two_stage import TwoStageRecommender

    cfg = TrainConfig.from_file(config_path, quick=quick)
    if hnsw is not None:
        cfg = dataclasses.replace(cfg, hnsw=hnsw)
    keras.utils.set_random_seed(seed)
    timer = StageTimer()
    with timer.stage("load data"):
        ds = load_dataset(
            data,
            item_text=item_text,
            **({} if implicit_rating is None else {"implicit_rating": implicit_rating}),
            event_weights=event_weights,
        )
        timer.step(f"read and validated {ds.name}: {len(ds.interactions):,} interactions")
        if include_fresh:
            from training.fresh_items import fold_fresh_items, read_fresh_items

            ds = fold_fresh_items(
                ds,
                read_fresh_items(
                    os.environ.get("HYBRIDREC_REDIS_URL"),
                    os.environ.get("HYBRIDREC_STATE_DIR", "state"),
                    os.environ.get("HYBRIDREC_REDIS_PREFIX", "hybridrec"),
                ),
            )
            print(
                f"  run-time items folded in: {ds.info.get('fresh_items_folded', 0)}",
                file=sys.stderr,
            )
        for path in events:
            ds = fold_events(
                ds,
                read_events(path),
                implicit_rating=implicit_rating,
                event_weights=resolve_weights(
                    ds.info.get("event_weights"), event_weights  # type: ignore[arg-type]
                ),
            )
            print(
                f"  feedback events from {path}: {ds.info['events_folded']} folded, "
                f"{ds.info['events_dropped_unknown_item']} on unknown items dropped",
                file=sys.stderr,
            )
        inter = serving_interactions(ds, cfg.min_rating)
        train_df, valid_df = temporal_holdout(inter, cfg.valid_frac)
        timer.step("split each user's latest interactions off for validation")
        edata = catalogue_eval_data(ds, train_df, valid_df, seed=seed)
        print(
            f"  {ds.name}: {edata.n_users} users, {edata.n_items} items, "
            f"{len(train_df)} train / {len(valid_df)} valid interactions",
            file=sys.stderr,
        )
        # edata holds what training reads (and ds what the bundle needs): drop the
        # intermediate frames, a few GB at 25M interactions.
        del inter, train_df, valid_df
        gc.collect()
    with timer.stage("BERT item embeddings"):
        encoder = TextEncoder(cfg.text_model)
        # Vectors are cached by text hash: under HYBRIDREC_CACHE_DIR when set (shared with
        # `hybridrec evaluate` and between bundle folders), else beside the bundles.
        shared = os.environ.get("HYBRIDREC_CACHE_DIR")
        cache = Path(shared) / "embeddings" if shared else Path(out) / ".cache" / "embeddings"
        content = embed_items(edata.items, encoder, cache)
    with timer.stage("two-tower retrieval model"):
        tt_cfg = dataclasses.replace(cfg.two_tower_config(), seed=seed)
        two_tower = TwoTowerRecommender(tt_cfg, content)
        two_tower.fit(edata)
    with timer.stage("candidate sources + hybrid ranker"):
        names = ["two_tower", "ease", "item_knn", "content", "popularity"]
        ts_cfg = dataclasses.replace(cfg.two_stage_config(), seed=seed)
        sources = default_sources(
            content, two_tower_config=tt_cfg, history_window=ts_cfg.history_window, names=names,
            ease_max_items=cfg.ease_max_items,
        )
        two_stage = TwoStageRecommender(sources, content, ts_cfg, prefit={"two_tower": two_tower})
        two_stage.negatives = negatives_matrix(ds.negatives, edata.user_ids, edata.item_ids)
        two_stage.fit(edata)
    with timer.stage("annoy indexes + bundle"):
        bundle = export_bundle(
            out=out,
            ds=ds,
            edata=edata,
            content=content,
            text_model_id=encoder.model_id,
            two_tower=two_tower,
            two_stage=two_stage,
            cfg=cfg,
            seed=seed,
            timings=timer.times,
        )
    _print_summary(bundle, timer.times)
    return bundle


def _print_summary(bundle: Path, times: dict[str, float]) -> None:
    manifest = json.loads((bundle / "manifest.json").read_text())
    size = sum(int(f["bytes"]) for f in manifest["files"].values())
    print("\n[hybridrec train] summary", file=sys.stderr)
    for name, secs in times.items():
        print(f"  {name:<36} {secs:8.1f} s", file=sys.stderr)
    print(f"  {'total':<36} {sum(times.values()):8.1f} s", file=sys.stderr)
    print(
        f"  bundle {manifest['version']}: {len(manifest['files'])} files, {size / 1e6:.1f} MB",
        file=sys.stderr,
    )
    for key, value in manifest.get("metrics", {}).items():
        if isinstance(value, int | float):
            print(f"  {key:<36} {value:.4f}", file=sys.stderr)
    print(file=sys.stderr, flush=True)
