"""Online protocol: does feedback sent as events move the next recommendations?

For each test user with at least two test interactions, the test items are put
in time order (ties by item id); the first half (rounded down) are fed as
*events* – appended to the end of the user's history, exactly as the retrieval
service appends ``POST /v1/users/{id}/events`` items to the Redis history – and
the second half are the relevance targets. Each model is scored twice on the
same users and targets, once with the events folded in and once without; the
events are excluded from both rankings (the user has consumed them either way),
as are the train and validation items. The *gain* is the per-user difference.

Models fold histories through :class:`HistoryScorer` adapters, never by
refitting:

* :class:`EASEFoldIn` – ``x_u B`` from the updated history (EASE's own fold-in).
* :class:`TwoStageFoldIn` – the served path: every candidate source answers from
  the updated history with the code the retrieval service runs
  (:func:`shared.model.item_knn.score_from_history` for the EASE and item-kNN
  tables, the mean content vector of the recent window, the query tower over the
  recent items, popularity), :func:`shared.model.candidates.merge_candidates`
  merges them and the ranker scores them with
  :func:`shared.model.ranker_features.candidate_features` over the updated history.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import scipy.sparse as sp

from shared.model.candidates import finite_list, merge_candidates, top_n
from shared.model.item_knn import score_from_history
from shared.model.ranker_features import candidate_features, concat_features
from training.evaluation.base import EvalData
from training.evaluation.harness import UserMetrics, evaluate_users
from training.evaluation.metrics import DEFAULT_KS


class HistoryScorer(Protocol):
    """A fitted model that scores users from an explicit history (item_idx, oldest first)."""

    name: str

    def score_histories(self, users: np.ndarray, histories: Sequence[np.ndarray]
                        ) -> np.ndarray:
        """[B, n_items] float32 scores of ``users`` given their ``histories``."""
        ...


@dataclass
class OnlineSplit:
    """Events and targets of the online protocol.

    Attributes:
        events: [n_users] per user the first half of the test items (item_idx, time order).
        targets: [n_users, n_items] CSR of the second halves.
        seen: [n_users, n_items] CSR of train + valid + events (never ranked).
        histories: [n_users] train item_idx in time order (no events).
    """

    events: list[np.ndarray]
    targets: sp.csr_matrix
    seen: sp.csr_matrix
    histories: list[np.ndarray]

    def with_events(self) -> list[np.ndarray]:
        """Histories with the events appended (most recent last)."""
        return [np.concatenate([h, e]) for h, e in zip(self.histories, self.events, strict=True)]


def online_split(data: EvalData, test_interactions: Any) -> OnlineSplit:
    """Build the protocol's events/targets from the split's test rows.

    Args:
        data: The indexed split.
        test_interactions: The split's test rows (``user_id``, ``item_id``, ``timestamp``).

    Returns:
        The :class:`OnlineSplit` (users with < 2 test items have no events nor targets).
    """
    from training.models.ranking_sources import user_histories

    u = np.searchsorted(data.user_ids, test_interactions["user_id"].to_numpy(np.int64))
    i = np.searchsorted(data.item_ids, test_interactions["item_id"].to_numpy(np.int64))
    t = test_interactions["timestamp"].to_numpy(np.int64)
    order = np.lexsort((i, t, u))
    u, i = u[order], i[order]
    bounds = np.searchsorted(u, np.arange(data.n_users + 1))
    events: list[np.ndarray] = []
    rows, cols = [], []
    for k in range(data.n_users):
        items = i[bounds[k]:bounds[k + 1]]
        half = len(items) // 2 if len(items) >= 2 else 0
        events.append(items[:half].astype(np.int64))
        if half:
            rows.append(np.full(len(items) - half, k))
            cols.append(items[half:])
    shape = (data.n_users, data.n_items)
    r = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    c = np.concatenate(cols) if cols else np.zeros(0, np.int64)
    targets = sp.csr_matrix((np.ones(len(r), np.float32), (r, c)), shape=shape)
    er = np.repeat(np.arange(data.n_users), [len(e) for e in events])
    ec = np.concatenate(events) if events else np.zeros(0, np.int64)
    ev = sp.csr_matrix((np.ones(len(er), np.float32), (er, ec)), shape=shape)
    seen = sp.csr_matrix(data.train + data.valid + ev)
    seen.data[:] = 1.0
    return OnlineSplit(events, targets, seen,
                       user_histories(data.train_interactions, data.n_users))


class _Folded:
    """A :class:`HistoryScorer` with fixed histories, as a Recommender for the harness."""

    def __init__(self, scorer: HistoryScorer, histories: list[np.ndarray]) -> None:
        self.name = scorer.name
        self.scorer = scorer
        self.histories = histories

    def fit(self, data: EvalData) -> None:  # pragma: no cover - never called
        """Already fitted."""

    def score(self, user_idx: np.ndarray) -> np.ndarray:
        users = np.asarray(user_idx, dtype=np.int64)
        return self.scorer.score_histories(users, [self.histories[u] for u in users])


def run_online(scorer: HistoryScorer, data: EvalData, osplit: OnlineSplit,
               ks: Sequence[int] = DEFAULT_KS) -> dict[str, UserMetrics]:
    """Per-user metrics on the second halves, ``with`` and ``without`` the events."""
    out = {}
    for label, hist in (("without", osplit.histories), ("with", osplit.with_events())):
        out[label] = evaluate_users(_Folded(scorer, hist), data, stage="test", ks=ks,
                                    progress=False, relevant=osplit.targets, seen=osplit.seen)
    return out


def _binary_rows(histories: Sequence[np.ndarray], n_items: int) -> sp.csr_matrix:
    rows = np.repeat(np.arange(len(histories)), [len(h) for h in histories])
    cols = np.concatenate(histories) if len(histories) else np.zeros(0, np.int64)
    x = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)),
                      shape=(len(histories), n_items))
    x.data[:] = 1.0
    return x


class EASEFoldIn:
    """EASE re-scored from an updated history: ``x_u B``."""

    def __init__(self, ease: Any) -> None:
        self.name = ease.name
        self.b = ease._b

    def score_histories(self, users: np.ndarray, histories: Sequence[np.ndarray]
                        ) -> np.ndarray:
        """[B, n_items] float32."""
        return np.asarray(_binary_rows(histories, self.b.shape[0]) @ self.b, dtype=np.float32)


class TwoStageFoldIn:
    """The two-stage pipeline answering from an updated history, as the services do."""

    def __init__(self, two_stage: Any) -> None:
        self.name = two_stage.name
        self.ts = two_stage
        self.n_items = two_stage._data.n_items

    def _source_list(self, name: str, user: int, hist: np.ndarray, seen: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
        src = self.ts.fitted[name]
        depth = self.ts.config.depth
        if hasattr(src, "neighbors") and hasattr(src, "weights") and name != "two_tower":
            return score_from_history(hist, src.neighbors, src.weights, self.n_items,
                                      k=depth, exclude=seen)
        if name == "content":
            window = src.content[hist[-src.history_window:]]
            q = window.mean(axis=0) if len(window) else np.zeros(src.content.shape[1])
            s = src.content @ (q / max(float(np.linalg.norm(q)), 1e-9))
        elif name == "two_tower":
            s = self._two_tower(src, user, hist)
        else:  # popularity and any history-independent source
            s = src.score(np.array([user]))[0]
        mask = np.zeros((1, self.n_items), dtype=bool)
        mask[0, seen] = True
        idx, sc = top_n(np.asarray(s, np.float32)[None, :], depth, mask)
        return finite_list(idx[0], sc[0])

    @staticmethod
    def _two_tower(src: Any, user: int, hist: np.ndarray) -> np.ndarray:
        from training.models.towers import tower_inputs

        padded = src.encoder.pad_histories([hist[-src.encoder.history_length:]])
        arrays = src.encoder.query_arrays(np.array([user + 1]), padded)
        vec = np.asarray(src.query_tower.predict(tower_inputs(src.query_tower, arrays),
                                                 verbose=0), np.float32)
        return np.asarray(vec @ src.item_vectors.T, np.float32)[0]

    def score_histories(self, users: np.ndarray, histories: Sequence[np.ndarray]
                        ) -> np.ndarray:
        """[B, n_items] float32: candidates in (1, 2] by the ranker, the rest -1."""
        cfg = self.ts.config
        out = np.full((len(users), self.n_items), -1.0, dtype=np.float32)
        train = self.ts._data.train
        feats, sets = [], []
        for u, hist in zip(users, histories, strict=True):
            seen = np.union1d(train.indices[train.indptr[u]:train.indptr[u + 1]], hist)
            lists = {n: self._source_list(n, int(u), hist, seen) for n in self.ts.source_names}
            cs = merge_candidates(lists, self.ts.source_names, self.n_items,
                                  fill_sources=cfg.fill_sources,
                                  min_candidates=cfg.min_candidates,
                                  max_candidates=cfg.max_candidates,
                                  missing_rank=cfg.depth + 1, exclude=seen)
            sets.append(cs)
            if len(cs):
                feats.append(candidate_features(self.ts.tables, int(u), hist, cs))
        from training.models.ranker import predict_logits

        logits = predict_logits(self.ts.model, concat_features(feats)) if feats else None
        pos = 0
        for b, cs in enumerate(sets):
            m = len(cs)
            if not m:
                continue
            assert logits is not None
            order = np.argsort(-logits[pos:pos + m], kind="stable")
            pos += m
            rank_score = np.empty(m, dtype=np.float32)
            rank_score[order] = 2.0 - np.arange(m, dtype=np.float32) / m
            out[b, cs.item_idx] = rank_score
        return out


def fold_in_adapter(model: Any) -> HistoryScorer | None:
    """The :class:`HistoryScorer` of a fitted model, or None when it has none."""
    from training.evaluation.baselines import EASE
    from training.models.two_stage import TwoStageRecommender

    model = getattr(model, "chosen", None) or model  # a validation choice: its winner
    if isinstance(model, EASE):
        return EASEFoldIn(model)
    if isinstance(model, TwoStageRecommender):
        return TwoStageFoldIn(model)
    return None
