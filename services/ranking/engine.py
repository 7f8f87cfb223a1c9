"""The ranking service's state: the ranker, its feature tables, the catalogue.

A request's candidates arrive with every retrieval source's score and rank; the
engine rebuilds the :class:`~shared.model.candidates.CandidateSet` exactly as training
saw it (in one process with retrieval, ``hybridrec serve combined``, it takes
retrieval's own), computes the features with :func:`shared.model.ranker_features.candidate_features`
and scores them with a fixed numpy forward pass, BLAS single-threaded (no
``model.predict``; see :mod:`shared.model.ranker_serving`). Fresh items
(added after the bundle was built) have no learned features: they keep their
retrieval position, scored just above the catalogue candidate they displaced.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from services.ranking.settings import RankingSettings
from shared.contracts import bundle_layout as L
from shared.contracts.bundle import Bundle, load_bundle
from shared.contracts.internal_v1 import RankRequest, RankResponse
from shared.contracts.ranker_config import RankerConfig
from shared.model.candidates import CandidateSet
from shared.model.catalogue import Catalogue
from shared.model.ranker_features import RankerFeatureTables
from shared.model.ranker_serving import RankerScorer
from shared.model.users import UserIndex
from shared.serving.timing import stage


class RankingEngine:
    """Loaded ranker + lookups; :meth:`rank` answers one request."""

    def __init__(self, settings: RankingSettings, bundle: Bundle) -> None:
        self.bundle = bundle
        self.version = bundle.version
        self.catalogue = Catalogue.from_frame(
            bundle.load_parquet(L.ITEMS),
            bundle.manifest.get("components", {}).get(L.ATTRIBUTES_COMPONENT),
        )
        users = bundle.load_parquet(L.USERS)
        self.users = UserIndex(users["user_id"].to_numpy())
        self.tables = RankerFeatureTables.load(bundle.path(L.RANKER).parent)
        backend = "numpy" if settings.scorer == "auto" else settings.scorer
        self.scorer = RankerScorer(bundle.path(L.RANKER), self.tables, backend=backend)
        ranker = RankerConfig.of(bundle)
        self.source_names = ranker.source_names
        self.missing_rank = ranker.config.depth + 1

    @classmethod
    def load(cls, settings: RankingSettings) -> RankingEngine:
        """Verify and load the bundle at ``settings.artifacts``."""
        return cls(settings, load_bundle(settings.artifacts, verify=settings.verify_bundle))

    def user_position(self, user_id: str | None) -> int:
        """Position of a known user, -1 for anonymous/unknown."""
        return self.users.position(user_id)

    def candidate_set(self, cols: _Columns, pos: np.ndarray) -> CandidateSet:
        """The catalogue candidates as the CandidateSet training built."""
        keep = np.flatnonzero(pos >= 0)
        names = self.source_names
        m, s = len(keep), len(names)
        scores = np.zeros((m, s), np.float32)
        ranks = np.full((m, s), self.missing_rank, np.int32)
        for col, name in enumerate(names):
            given = cols.source_ranks.get(name)
            if not given:
                continue
            rank = np.asarray([0 if r is None else r for r in given], np.int64)[keep]
            there = rank > 0  # ranks start at 1; 0 = not proposed by this source
            ranks[there, col] = np.minimum(rank[there], self.missing_rank)
            sc = cols.source_scores.get(name)
            if sc:
                vals = np.asarray([0.0 if v is None else v for v in sc], np.float32)[keep]
                scores[there, col] = vals[there]
        found = ranks < self.missing_rank
        mask = (found.astype(np.int64) << np.arange(s, dtype=np.int64)[None, :]).sum(axis=1)
        return CandidateSet(pos[keep], scores, ranks, mask, cols.fused[keep], names,
                            self.missing_rank)  # fmt: skip

    def arrays_in_process(self, req: RankRequest) -> CandidateSet | None:
        """The candidates' arrays as retrieval built them, when it ran in this process on
        this bundle version with this ranker's sources (``hybridrec serve combined``)."""
        cs = req.columns.arrays(self.version)
        if (
            not isinstance(cs, CandidateSet)
            or cs.source_names != self.source_names
            or cs.missing_rank != self.missing_rank
            or len(cs) != len(req.columns)
        ):
            return None
        return cs

    def rank(self, req: RankRequest) -> RankResponse:
        """Score and sort the candidates; fresh items keep their retrieval position."""
        with stage("features"):
            ids = req.columns.item_ids
            cs = self.arrays_in_process(req)
            if cs is not None:
                pos = cs.item_idx
            else:
                pos = self.catalogue.positions(ids)
                cs = self.candidate_set(_Columns.of(req), pos)
            hist = self.catalogue.positions(req.history)
            hist = hist[hist >= 0]
            upos = self.user_position(req.user_id)
            given = req.user_features.model_dump(exclude_none=True) if req.user_features else None
            feats = self.scorer.features(upos, hist, cs, given) if len(cs) else None
        logits = np.zeros(0, np.float32)
        if feats is not None:
            with stage("score"):
                logits = self.scorer.score(feats)
        order = np.argsort(-logits, kind="stable")
        ranked = list(
            zip(
                self.catalogue.item_ids[cs.item_idx[order]].tolist(),
                logits[order].tolist(),
                strict=True,
            )
        )
        for j in np.flatnonzero(pos < 0):  # fresh items, in retrieval order
            at = min(int(j), len(ranked))
            above = ranked[at][1] if at < len(ranked) else (ranked[-1][1] - 1 if ranked else 0.0)
            ranked.insert(at, (ids[j], above + 1e-4))
        if req.k is not None:
            ranked = ranked[: req.k]
        return RankResponse.model_validate(
            {
                "items": [
                    {"item_id": i, "score": s, "rank": r + 1} for r, (i, s) in enumerate(ranked)
                ],
                "model_version": self.version,
            }
        )


@dataclass
class _Columns:
    """A rank request's candidates as parallel arrays."""

    item_ids: list[str]
    fused: np.ndarray  # [n] float32
    source_scores: dict[str, list[float | None]]
    source_ranks: dict[str, list[int | None]]

    @classmethod
    def of(cls, req: RankRequest) -> _Columns:
        c = req.columns
        return cls(c.item_ids, np.asarray(c.scores, np.float32), c.source_scores, c.source_ranks)
