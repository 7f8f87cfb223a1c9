"""Two-stage recommender for the harness: retrieval sources -> merged candidates -> ranker.

Training without leakage (:meth:`TwoStageRecommender.fit`):

1. Inner holdout inside ``data.train``: per user, the last ``holdout_frac`` of the
   train interactions by time (``temporal``, matching the temporal split, whose
   test part is each user's latest interactions) or a seeded random
   ``holdout_frac`` (``random``, matching the random split) become labels; the
   rest is the history. ``holdout="auto"`` picks ``temporal`` for the ``temporal`` and
   ``temporal-user`` splits and ``random`` otherwise.
2. The candidate sources are fitted on the history only; each retrieves its top
   ``depth`` per user; :func:`shared.model.candidates.merge_candidates` merges them.
   Positives = the user's label items among the candidates, negatives = the other
   candidates. Features come from :func:`shared.model.ranker_features.candidate_features`
   with tables built from the history.
3. The sources are refitted on the full ``data.train``; candidates for the users
   with validation items, labelled by ``data.valid``, early-stop the ranker (and
   choose the loss when ``loss="auto"``). ``data.test`` is never read.

The lists themselves (holdout, candidates, labels, features) are built in
:mod:`training.models.ranking_lists`.

``score`` ranks each user's merged candidates by the ranker, above every
non-candidate (those keep the first source's order below).
:class:`RetrievalOnlyRecommender` scores the same candidates in retrieval
(fused reciprocal-rank) order, so the harness shows what the ranker adds.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from shared.contracts.errors import ConfigError, NotReadyError
from shared.model.attributes import AttributeEncoder
from shared.model.candidates import CandidateSet
from shared.model.ranker_features import (
    RankerFeatureTables,
    build_tables,
    candidate_features,
    concat_features,
)
from training.attribute_features import fit_attribute_encoder
from training.models.ranker import (
    RankerConfig,
    RankingTask,
    build_ranker,
    list_ndcg,
    predict_logits,
    train_ranker,
)
from training.models.ranking_lists import (
    RankingLists,
    candidate_sets,
    concat_lists,
    inner_holdout,
    ranking_lists,
)
from training.models.ranking_sources import user_histories

RANKER_FILE = "ranker.keras"
CONFIG_FILE = "two_stage.json"


@dataclasses.dataclass
class SourceSpec:
    """A candidate source: a name and a factory of an unfitted Recommender."""

    name: str
    factory: Callable[[], Any]


@dataclasses.dataclass
class TwoStageConfig:
    """Settings of the two-stage pipeline.

    Attributes:
        depth: Candidates each source retrieves per user.
        max_candidates: Merged candidates kept per user (best fused first).
        min_candidates: Fill sources top the merged list up to this size.
        fill_sources: Last-resort sources (popularity).
        holdout: Inner holdout: ``auto``, ``temporal`` or ``random`` (module docstring).
        holdout_frac: Share of each user's train interactions used as inner labels.
        history_window: Recent items for content similarities / the content source.
        n_folds: Inner holdouts whose lists are pooled: random draws with seeds
            ``seed + f`` (random), or rolling origins (temporal): fold ``f`` also
            drops each user's latest ``f * holdout_frac / 2`` of train first.
            None = 1 for a temporal holdout or when a source named in
            ``costly_sources`` is used (each fold refits every source), else 5.
        costly_sources: Sources too slow to refit per fold (the two-tower model).
        max_train_users: Users whose inner-holdout lists train the ranker: a seeded sample
            when more users have inner labels (None = all). Bounds the candidate, feature
            and ranker cost on large data; ml-latest-small's 610 users are all kept. The
            per-item inputs (content, genres) are kept once per item, not per list row
            (:class:`~training.models.ranking_lists.RankingLists`).
        max_valid_users: Likewise for the validation lists that early-stop the ranker.
        ranker: Ranking network settings.
        seed: Seed of the inner holdout.
    """

    depth: int = 200
    max_candidates: int = 200
    min_candidates: int = 100
    fill_sources: tuple[str, ...] = ("popularity",)
    holdout: str = "auto"
    holdout_frac: float = 0.2
    history_window: int = 20
    n_folds: int | None = None
    costly_sources: tuple[str, ...] = ("two_tower",)
    max_train_users: int | None = 10_000
    max_valid_users: int | None = 5_000
    ranker: RankerConfig = dataclasses.field(default_factory=RankerConfig)
    seed: int = 42

    def __post_init__(self) -> None:
        if self.holdout not in ("auto", "temporal", "random"):
            raise ConfigError(f"holdout must be auto, temporal or random, got {self.holdout!r}")
        if not 0.0 < self.holdout_frac < 1.0:
            raise ConfigError(f"holdout_frac must be in (0, 1), got {self.holdout_frac}")
        if self.depth < 1 or self.max_candidates < 1 or (
                self.n_folds is not None and self.n_folds < 1):
            raise ConfigError("depth, max_candidates and n_folds must be >= 1")
        self.fill_sources = tuple(self.fill_sources)
        self.costly_sources = tuple(self.costly_sources)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings."""
        d = dataclasses.asdict(self)
        d["fill_sources"] = list(self.fill_sources)
        d["costly_sources"] = list(self.costly_sources)
        d["ranker"] = self.ranker.to_dict()
        return d


class TwoStageRecommender:
    """Retrieval sources + merged candidates + hybrid ranker, behind the Recommender protocol.

    Args:
        sources: Candidate sources (name + factory); the first one orders the
            non-candidates below the ranked candidates.
        item_content: [n_items, D] content vectors aligned to the split's items.
        config: Pipeline and ranker settings.
        prefit: Optional already-fitted sources (by name) for the full-train stage,
            e.g. the two-tower model the pipeline trains anyway.
        name: Report name.
    """

    def __init__(self, sources: Sequence[SourceSpec], item_content: np.ndarray,
                 config: TwoStageConfig | None = None, prefit: dict[str, Any] | None = None,
                 name: str = "TwoStage") -> None:
        if not sources:
            raise ConfigError("TwoStageRecommender needs at least one candidate source")
        self.name = name
        self.sources = list(sources)
        self.source_names = tuple(s.name for s in self.sources)
        self.content = np.asarray(item_content, dtype=np.float32)
        self.config = config or TwoStageConfig()
        self.prefit = dict(prefit or {})
        self.hyperparameters: dict[str, Any] = self.config.to_dict()
        self.model: Any = None
        self.tables: RankerFeatureTables | None = None
        self.attributes: AttributeEncoder | None = None
        self.fitted: dict[str, Any] = {}
        #: [n_users, n_items] CSR of the users' negative pairs (dislike, hide), or None:
        #: added to the ranker's training lists as label-0 candidates (models/confidence.py).
        self.negatives: sp.csr_matrix | None = None
        self._data: Any = None
        self._hist: list[np.ndarray] = []
        self.timings: dict[str, float] = {}

    def _fit_sources(self, data: Any, use_prefit: bool) -> dict[str, Any]:
        out = {}
        for spec in self.sources:
            if use_prefit and spec.name in self.prefit:
                out[spec.name] = self.prefit[spec.name]
                continue
            t0 = time.perf_counter()
            rec = spec.factory()
            rec.fit(data)
            out[spec.name] = rec
            secs = time.perf_counter() - t0
            self.timings[f"fit_{spec.name}"] = self.timings.get(f"fit_{spec.name}", 0.0) + secs
            if self.config.ranker.progress:
                print(f"  source {spec.name} fitted on {data.train.nnz:,} interactions "
                      f"in {secs:.1f} s", file=sys.stderr, flush=True)
        return out

    # ------------------------------------------------------------------- fitting
    def holdout_kind(self, data: Any) -> str:
        """The inner holdout used for ``data`` (``temporal`` for a temporal split)."""
        if self.config.holdout != "auto":
            return self.config.holdout
        return "temporal" if str(data.split).startswith("temporal") else "random"

    def fit(self, data: Any) -> None:
        """Inner holdout -> sources on history -> ranker lists; refit sources; train ranker."""
        cfg = self.config
        if len(self.content) != data.n_items:
            raise ConfigError(f"item_content has {len(self.content)} rows but the split has "
                              f"{data.n_items} items; embed data.items (aligned to item_idx)")
        t_start = time.perf_counter()
        self.timings = {}
        # One attribute encoder (fitted on data.train) for every fold's tables and the final
        # ones, so the ranker's input shapes agree; data.valid and data.test are never read.
        self.attributes = fit_attribute_encoder(data)
        kind = self.holdout_kind(data)
        costly = set(cfg.costly_sources) & set(self.source_names)
        n_folds = cfg.n_folds or (1 if kind == "temporal" or costly else 5)
        train_parts = []
        for fold in range(n_folds):
            inner = inner_holdout(data, cfg.holdout_frac, kind, cfg.seed + fold,
                                  skip_frac=fold * cfg.holdout_frac / 2 if kind == "temporal"
                                  else 0.0)
            srcs = self._fit_sources(inner, use_prefit=False)
            tables = self._tables(inner)
            train_parts.append(ranking_lists(srcs, inner, tables, inner.valid, "inner lists",
                                             self.source_names, cfg, self.negatives,
                                             cfg.max_train_users))
            del srcs
        train = concat_lists(train_parts)
        self.fitted = self._fit_sources(data, use_prefit=True)
        self.tables = self._tables(data)
        self._data = data
        self._hist = user_histories(data.train_interactions, data.n_users)
        valid = ranking_lists(self.fitted, data, self.tables, data.valid, "valid lists",
                              self.source_names, cfg, self.negatives, cfg.max_valid_users)
        t_train = time.perf_counter()
        losses = ("listwise", "bce") if cfg.ranker.loss == "auto" else (cfg.ranker.loss,)
        results = {}
        for loss in losses:
            model = self._new_model(train, data)
            hist = train_ranker(model, RankingTask(loss), train, valid, cfg.ranker)
            results[loss] = (hist["best_valid_ndcg@10"], model, hist)
        best_loss = max(results, key=lambda k: results[k][0])
        self.model = results[best_loss][1]
        self.timings["train_ranker"] = time.perf_counter() - t_train
        self.timings["fit_total"] = time.perf_counter() - t_start
        self.hyperparameters = {
            **cfg.to_dict(), "holdout_used": kind, "folds_used": n_folds, "loss_used": best_loss,
            "train_lists": len(train), "train_rows": len(train.labels),
            "train_positive_rate": float(train.labels.mean()),
            "valid_lists": len(valid),
            "valid_ndcg@10_retrieval": list_ndcg(valid),
            "valid_ndcg@10_by_loss": {k: v[0] for k, v in results.items()},
            "history_by_loss": {k: v[2] for k, v in results.items()},
            "timings": {k: round(v, 2) for k, v in self.timings.items()},
        }

    def _tables(self, data: Any) -> RankerFeatureTables:
        return build_tables(data.items, data.users, data.train_interactions, self.content,
                            self.source_names, history_window=self.config.history_window,
                            attributes=self.attributes)

    def _new_model(self, train: RankingLists, data: Any) -> Any:
        assert self.tables is not None
        dense = train.features["dense"].astype(np.float64)
        return build_ranker(self.tables.input_shapes(), data.n_users, data.n_items,
                            dense.mean(axis=0), dense.var(axis=0), self.config.ranker,
                            attributes=self.tables.attributes)

    # ------------------------------------------------------------------- scoring
    def candidates(self, user_idx: np.ndarray) -> list[CandidateSet]:
        """Merged candidates of the full-train sources for each user."""
        if self._data is None:
            raise NotReadyError(f"{self.name} is not fitted; call fit(data) first")
        return candidate_sets(self.fitted, self._data, np.asarray(user_idx, dtype=np.int64),
                              self.source_names, self.config)

    def _base_scores(self, users: np.ndarray) -> np.ndarray:
        """[B, n_items] non-candidate order in [-1, 0) from the first source; seen = -inf."""
        first = self.fitted[self.source_names[0]].score(users)
        ranks = np.argsort(np.argsort(-first, axis=1, kind="stable"), axis=1)
        base = (-(ranks + 1.0) / first.shape[1]).astype(np.float32)
        seen = self._data.train[users]
        base[np.repeat(np.arange(len(users)), np.diff(seen.indptr)), seen.indices] = -np.inf
        return base

    def score(self, user_idx: np.ndarray, *, use_ranker: bool = True) -> np.ndarray:
        """[B, n_items] float32: ranked candidates in (1, 2], the rest below 0, seen -inf.

        Args:
            user_idx: [B] user positions.
            use_ranker: False orders the candidates by the fused retrieval score instead.
        """
        if self.model is None or self.tables is None:
            raise NotReadyError(f"{self.name} is not fitted; call fit(data) first")
        users = np.asarray(user_idx, dtype=np.int64)
        out = self._base_scores(users)
        sets = self.candidates(users)
        if use_ranker:
            feats = [candidate_features(self.tables, int(u), self._hist[u], cs)
                     for u, cs in zip(users, sets, strict=True) if len(cs)]
            logits = predict_logits(self.model, concat_features(feats)) if feats else None
        pos = 0
        for b, cs in enumerate(sets):
            m = len(cs)
            if not m:
                continue
            if use_ranker:
                assert logits is not None
                s = logits[pos:pos + m]
                pos += m
            else:
                s = cs.fused
            order = np.argsort(-s, kind="stable")
            rank_score = np.empty(m, dtype=np.float32)
            rank_score[order] = 2.0 - np.arange(m, dtype=np.float32) / m
            out[b, cs.item_idx] = rank_score
        return out

    def retrieval_only(self, name: str | None = None) -> RetrievalOnlyRecommender:
        """The same candidates in retrieval order, as a separate Recommender."""
        return RetrievalOnlyRecommender(self, name=name or f"{self.name}-retrieval-only")

    def export(self, out_dir: str | Path) -> dict[str, str]:
        """Save the ranker (``.keras``), the feature tables and the settings (json)."""
        if self.model is None or self.tables is None:
            raise NotReadyError(f"{self.name} is not fitted; call fit(data) first")
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        self.model.save(out / RANKER_FILE)
        paths = self.tables.save(out)
        cfg = self.config
        merge = {"source_names": list(self.source_names), "depth": cfg.depth,
                 "fill_sources": list(cfg.fill_sources), "min_candidates": cfg.min_candidates,
                 "max_candidates": cfg.max_candidates, "missing_rank": cfg.depth + 1}
        meta = {"source_names": list(self.source_names), "merge": merge,
                "config": cfg.to_dict(),
                "dense_names": self.tables.dense_names(),
                "hyperparameters": {k: v for k, v in self.hyperparameters.items()
                                    if k != "history_by_loss"}}
        (out / CONFIG_FILE).write_text(json.dumps(meta, indent=2, default=float))
        return {"ranker": str(out / RANKER_FILE), "config": str(out / CONFIG_FILE), **paths}


class RetrievalOnlyRecommender:
    """A fitted :class:`TwoStageRecommender`'s candidates in fused retrieval order (no ranker).

    ``fit`` fits the wrapped pipeline only when it is not fitted on ``data`` yet.
    """

    def __init__(self, two_stage: TwoStageRecommender, name: str = "RetrievalOnly") -> None:
        self.name = name
        self.two_stage = two_stage
        self.hyperparameters: dict[str, Any] = {"order": "fused reciprocal rank",
                                                "sources": list(two_stage.source_names)}

    def fit(self, data: Any) -> None:
        """Fit the wrapped two-stage pipeline unless it already is fitted on ``data``."""
        if self.two_stage._data is not data:
            self.two_stage.fit(data)

    def score(self, user_idx: np.ndarray) -> np.ndarray:
        """[B, n_items] float32, candidates in fused order above the rest."""
        return self.two_stage.score(user_idx, use_ranker=False)
