"""The two-stage ranker's training lists: inner holdout, merged candidates, labelled lists.

:class:`RankingLists` holds many users' candidate lists, flattened, with per-item inputs
kept once as lookups;
:func:`inner_holdout` splits ``data.train`` into history and labels (no leakage: the
labels are train rows); :func:`candidate_sets` merges the fitted sources' top ``depth``
per user (:func:`shared.model.candidates.merge_candidates`); :func:`ranking_lists` labels
them and computes their features (:func:`shared.model.ranker_features.candidate_features`);
:func:`concat_lists` pools several folds' lists. :class:`training.models.two_stage.
TwoStageRecommender` runs them (module docstring there for the whole procedure).
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp
from tqdm import tqdm

from shared.model.candidates import CandidateSet, finite_list, merge_candidates, top_n
from shared.model.ranker_features import (
    RankerFeatureTables,
    candidate_features,
    concat_features,
)
from training.models.confidence import add_negatives
from training.models.ranking_sources import user_histories

if TYPE_CHECKING:
    from training.models.two_stage import TwoStageConfig


def gather_rows(features: dict[str, np.ndarray], item_lookups: dict[str, np.ndarray],
                names: Sequence[str], lo: int, hi: int) -> dict[str, np.ndarray]:
    """Inputs ``names`` of rows ``lo:hi``; those in ``item_lookups`` gathered by ``item_idx``."""
    items = features["item_idx"][lo:hi] if item_lookups else None
    return {k: (item_lookups[k][items] if k in item_lookups else features[k][lo:hi])
            for k in names}


@dataclass
class RankingLists:
    """Candidate lists of many users, flattened.

    Attributes:
        features: Ranker inputs, each [R, ...] (R = total candidates).
        labels: [R] float32 1.0 for relevant candidates.
        offsets: [L + 1] int64 list boundaries: list ``l`` is rows
            ``offsets[l]:offsets[l+1]``, in retrieval (fused) order.
        n_relevant: [L] int64 relevant items per user, retrieved or not (NDCG's ideal).
        users: [L] int64 user_idx of each list.
        item_lookups: Per-item inputs kept once instead of once per row (``{"content":
            [n_items, 384]}``): input ``k`` of row ``r`` is ``item_lookups[k][item_idx[r]]``
            and is absent from ``features``. 10,000 lists of 200 candidates would
            otherwise copy the 384-float content vector 2M times (3 GB, then again
            into tensors).
    """

    features: dict[str, np.ndarray]
    labels: np.ndarray
    offsets: np.ndarray
    n_relevant: np.ndarray
    users: np.ndarray
    item_lookups: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.users)

    def padded_rows(self, lists: np.ndarray,
                    width: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Row indices of the given lists padded to ``width`` (default: the longest).

        Returns:
            ``(rows [b, width] int64, mask [b, width] bool)``; padding rows point at 0.
        """
        lens = self.offsets[lists + 1] - self.offsets[lists]
        width = int(lens.max(initial=1)) if width is None else int(width)
        pos = np.arange(width)[None, :]
        mask = pos < lens[:, None]
        rows = np.where(mask, self.offsets[lists][:, None] + pos, 0)
        return rows, mask


def inner_holdout(data: Any, frac: float, kind: str, seed: int, skip_frac: float = 0.0) -> Any:
    """Split ``data.train`` into history (returned as ``train``) and labels (as ``valid``).

    Args:
        data: The EvalData.
        frac: Share of each user's train rows that become labels (users keep >= 1 row).
        kind: ``temporal`` (latest rows) or ``random`` (seeded draw).
        seed: Seed of the random draw.
        skip_frac: Share of each user's latest rows (in the same order) dropped
            before the labels are taken: an earlier origin for rolling temporal folds.

    Returns:
        A copy of ``data`` with ``train``/``train_interactions`` = history,
        ``valid`` = labels and an empty ``test``.
    """
    inter = data.train_interactions.reset_index(drop=True)
    u = inter["user_idx"].to_numpy(np.int64)
    key = (inter["timestamp"].to_numpy(np.float64) if kind == "temporal"
           else np.random.default_rng(seed).random(len(inter)))
    order = np.lexsort((inter["item_idx"].to_numpy(np.int64), key, u))
    us = u[order]
    starts = np.searchsorted(us, us, side="left")
    sizes = np.bincount(us, minlength=data.n_users)[us]
    pos = np.arange(len(us)) - starts
    n_skip = np.minimum(np.floor(skip_frac * sizes).astype(np.int64), sizes - 1)
    n_lab = np.minimum(np.floor(frac * sizes).astype(np.int64), sizes - n_skip - 1)
    is_label = np.zeros(len(inter), dtype=bool)
    is_label[order] = (pos >= sizes - n_skip - n_lab) & (pos < sizes - n_skip)
    is_skip = np.zeros(len(inter), dtype=bool)
    is_skip[order] = pos >= sizes - n_skip
    shape = (data.n_users, data.n_items)

    def csr(mask: np.ndarray) -> sp.csr_matrix:
        part = inter[mask]
        return sp.csr_matrix((np.ones(len(part), np.float32),
                              (part["user_idx"].to_numpy(), part["item_idx"].to_numpy())),
                             shape=shape)

    hist = ~is_label & ~is_skip
    return dataclasses.replace(
        data, train=csr(hist), valid=csr(is_label),
        test=sp.csr_matrix(shape, dtype=np.float32),
        train_interactions=inter[hist].reset_index(drop=True),
    )


def candidate_sets(srcs: dict[str, Any], data: Any, users: np.ndarray,
                   source_names: Sequence[str], cfg: TwoStageConfig) -> list[CandidateSet]:
    """Merged candidates of ``users`` from fitted ``srcs`` (train items excluded)."""
    seen = data.train[users].toarray() > 0
    tops = {}
    for name in source_names:
        idx, sc = top_n(srcs[name].score(users), cfg.depth, seen)
        tops[name] = (idx, sc)
    out = []
    for b, _u in enumerate(users):
        lists = {n: finite_list(tops[n][0][b], tops[n][1][b]) for n in source_names}
        out.append(merge_candidates(
            lists, tuple(source_names), data.n_items,
            fill_sources=cfg.fill_sources, min_candidates=cfg.min_candidates,
            max_candidates=cfg.max_candidates, missing_rank=cfg.depth + 1))
    return out


def ranking_lists(srcs: dict[str, Any], data: Any, tables: RankerFeatureTables,
                  labels: sp.csr_matrix, desc: str, source_names: Sequence[str],
                  cfg: TwoStageConfig, negatives: sp.csr_matrix | None = None,
                  max_users: int | None = None) -> RankingLists:
    """Ranking lists of the users with labels (a seeded sample of ``max_users``).

    ``negatives`` ([n_users, n_items] CSR of disliked / hidden pairs, or None) are added to
    the lists as label-0 candidates.
    """
    hist = user_histories(data.train_interactions, data.n_users)
    users = np.flatnonzero(np.diff(labels.indptr) > 0)
    if max_users is not None and len(users) > max_users:
        rng = np.random.default_rng(cfg.seed)
        users = np.sort(rng.choice(users, max_users, replace=False))
    # Per-item inputs are kept once, as lookups by item_idx, not copied into every row.
    lookups = {"content": tables.item_content, "genres": tables.item_genres}
    parts, labs, lens = [], [], []
    for lo in tqdm(range(0, len(users), 256), desc=desc, file=sys.stderr, leave=False,
                   disable=not cfg.ranker.progress):
        chunk = users[lo:lo + 256]
        sets = candidate_sets(srcs, data, chunk, source_names, cfg)
        if negatives is not None:  # hidden/disliked items: label-0 rows
            sets = add_negatives(sets, srcs, data, chunk, negatives, cfg.depth)
        for u, cs in zip(chunk, sets, strict=True):
            feats = candidate_features(tables, int(u), hist[u], cs)
            parts.append({k: v for k, v in feats.items() if k not in lookups})
            rel = labels.indices[labels.indptr[u]:labels.indptr[u + 1]]
            labs.append(np.isin(cs.item_idx, rel).astype(np.float32))
            lens.append(len(cs))
    return RankingLists(
        features=concat_features(parts), labels=np.concatenate(labs),
        offsets=np.concatenate([[0], np.cumsum(lens)]).astype(np.int64),
        n_relevant=np.diff(labels.indptr)[users].astype(np.int64), users=users,
        item_lookups=lookups)


def concat_lists(parts: list[RankingLists]) -> RankingLists:
    """Pool the lists of several inner folds."""
    if len(parts) == 1:
        return parts[0]
    sizes = np.cumsum([0] + [len(p.labels) for p in parts[:-1]])
    return RankingLists(
        features=concat_features([p.features for p in parts]),
        labels=np.concatenate([p.labels for p in parts]),
        offsets=np.concatenate([parts[0].offsets[:1]] + [
            p.offsets[1:] + s for p, s in zip(parts, sizes, strict=True)]),
        n_relevant=np.concatenate([p.n_relevant for p in parts]),
        users=np.concatenate([p.users for p in parts]),
        item_lookups=parts[0].item_lookups)
