"""Merging the candidate lists of several retrieval sources into one ranked set.

The retrieval stage asks several sources for candidates (two-tower ANN,
item-kNN from the history, content neighbours of recent items, popularity as a
last resort). :func:`merge_candidates` turns their lists into one
deduplicated :class:`CandidateSet` that keeps, per candidate, every source's
score and rank (missing = score 0, rank ``missing_rank``), a bit mask of the
sources that found it and a fused retrieval score (weighted reciprocal-rank
fusion) that orders the set. Exclusions (already seen items) and filters
(allowed items) are index masks. Everything is vectorised numpy: a merge of a
few hundred candidates takes well under a millisecond.

Numpy only; services import this module.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from shared.contracts.errors import ValidationError

#: Default reciprocal-rank-fusion constant (Cormack et al. 2009).
RRF_K = 60.0


@dataclass
class CandidateSet:
    """One user's merged candidates, best fused score first.

    Attributes:
        item_idx: [m] int64 item indices, unique.
        scores: [m, S] float32 each source's score (0 where the source missed it).
        ranks: [m, S] int32 1-based rank in each source's list (``missing_rank``
            where the source missed it).
        source_mask: [m] int64 bit ``s`` set when source ``s`` retrieved the item.
        fused: [m] float32 weighted reciprocal-rank fusion score (sorted descending).
        source_names: The S source names, in column order.
        missing_rank: The rank written for sources that missed an item.
    """

    item_idx: np.ndarray
    scores: np.ndarray
    ranks: np.ndarray
    source_mask: np.ndarray
    fused: np.ndarray
    source_names: tuple[str, ...]
    missing_rank: int

    def __len__(self) -> int:
        return len(self.item_idx)

    def found_by(self, name: str) -> np.ndarray:
        """[m] bool: which candidates the named source retrieved."""
        s = self.source_names.index(name)
        return (self.source_mask >> s) & 1 == 1

    def labels(self) -> list[str]:
        """Per candidate, the ``+``-joined names of the sources that retrieved it."""
        names = self.source_names
        return [
            "+".join(n for s, n in enumerate(names) if (int(mask) >> s) & 1)
            for mask in self.source_mask
        ]

    def take(self, order: np.ndarray) -> CandidateSet:
        """The candidates at positions ``order`` (reordered or truncated)."""
        return CandidateSet(
            self.item_idx[order], self.scores[order], self.ranks[order],
            self.source_mask[order], self.fused[order], self.source_names, self.missing_rank,
        )


def _as_mask(
    value: np.ndarray | Sequence[int] | None, n_items: int, what: str
) -> np.ndarray | None:
    """A [n_items] bool mask from a bool mask or an index array (None stays None)."""
    if value is None:
        return None
    arr = np.asarray(value)
    if arr.dtype == bool:
        if arr.shape != (n_items,):
            raise ValidationError(
                f"{what} mask must have shape ({n_items},), got {arr.shape}; pass a bool "
                "mask over the catalogue or an array of item indices"
            )
        return arr
    idx = arr.astype(np.int64).reshape(-1)
    if idx.size and (idx.min() < 0 or idx.max() >= n_items):
        raise ValidationError(
            f"{what} item indices must be in [0, {n_items}), got {idx.min()}..{idx.max()}"
        )
    mask = np.zeros(n_items, dtype=bool)
    mask[idx] = True
    return mask


def merge_candidates(
    lists: Mapping[str, tuple[np.ndarray, np.ndarray]],
    source_names: Sequence[str],
    n_items: int,
    *,
    exclude: np.ndarray | Sequence[int] | None = None,
    allowed: np.ndarray | Sequence[int] | None = None,
    fill_sources: Sequence[str] = ("popularity",),
    min_candidates: int = 0,
    max_candidates: int | None = None,
    missing_rank: int | None = None,
    weights: Mapping[str, float] | None = None,
    rrf_k: float = RRF_K,
) -> CandidateSet:
    """Merge per-source candidate lists into one deduplicated, fused-ordered set.

    Args:
        lists: Source name -> ``(item_idx [n_s], score [n_s])``, each best first.
            Sources absent from ``lists`` count as empty lists.
        source_names: Every source the caller knows, fixing the column order of
            ``scores`` / ``ranks`` (so features line up across requests).
        n_items: Catalogue size.
        exclude: Items never returned (bool mask [n_items] or indices), e.g. seen items.
        allowed: Only these items may be returned (bool mask or indices); None = all.
        fill_sources: Last-resort sources: their items only join the set while it
            has fewer than ``min_candidates`` items (their scores and ranks are
            still recorded for items other sources found).
        min_candidates: Target size the fill sources top the set up to.
        max_candidates: Keep at most this many (best fused score first).
        missing_rank: Rank written where a source missed an item; default
            ``1 + `` the longest list, so it is always beyond every list.
        weights: Per-source weight in the fused score (default 1; fill sources 0.25).
        rrf_k: Reciprocal-rank fusion constant: ``fused = sum_s w_s / (rrf_k + rank_s)``.

    Returns:
        The :class:`CandidateSet`, sorted by fused score (ties by item index).

    Raises:
        ValidationError: Unknown source names, mismatched list lengths or
            indices outside the catalogue.
    """
    names = tuple(source_names)
    unknown = sorted(set(lists) - set(names))
    if unknown:
        raise ValidationError(f"candidate sources {unknown} are not in source_names {list(names)}")
    n_src = len(names)
    items_parts, score_parts, src_parts, rank_parts = [], [], [], []
    longest = 0
    for s, name in enumerate(names):
        if name not in lists:
            continue
        idx, sc = lists[name]
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        sc = np.asarray(sc, dtype=np.float32).reshape(-1)
        if idx.shape != sc.shape:
            raise ValidationError(
                f"source {name!r} gave {idx.size} items but {sc.size} scores; they must match"
            )
        if idx.size and (idx.min() < 0 or idx.max() >= n_items):
            raise ValidationError(
                f"source {name!r} returned item indices outside [0, {n_items}): "
                f"{idx.min()}..{idx.max()}"
            )
        longest = max(longest, idx.size)
        items_parts.append(idx)
        score_parts.append(sc)
        src_parts.append(np.full(idx.size, s, dtype=np.int64))
        rank_parts.append(np.arange(1, idx.size + 1, dtype=np.int64))
    miss = int(missing_rank) if missing_rank is not None else longest + 1
    empty = CandidateSet(
        np.zeros(0, np.int64), np.zeros((0, n_src), np.float32),
        np.zeros((0, n_src), np.int32), np.zeros(0, np.int64), np.zeros(0, np.float32),
        names, miss,
    )
    if not items_parts:
        return empty
    items = np.concatenate(items_parts)
    scores = np.concatenate(score_parts)
    srcs = np.concatenate(src_parts)
    ranks = np.concatenate(rank_parts)
    keep = np.ones(items.size, dtype=bool)
    ex = _as_mask(exclude, n_items, "exclude")
    if ex is not None:
        keep &= ~ex[items]
    al = _as_mask(allowed, n_items, "allowed")
    if al is not None:
        keep &= al[items]
    items, scores, srcs, ranks = items[keep], scores[keep], srcs[keep], ranks[keep]
    if items.size == 0:
        return empty
    # Duplicates inside one list keep their best (first) entry: write in reverse order.
    uniq, inv = np.unique(items, return_inverse=True)
    m = uniq.size
    out_scores = np.zeros((m, n_src), dtype=np.float32)
    out_ranks = np.full((m, n_src), miss, dtype=np.int32)
    rev = np.arange(items.size)[::-1]
    out_scores[inv[rev], srcs[rev]] = scores[rev]
    out_ranks[inv[rev], srcs[rev]] = ranks[rev]
    found = out_ranks < miss
    mask = (found.astype(np.int64) << np.arange(n_src, dtype=np.int64)[None, :]).sum(axis=1)
    fill = np.array([n in fill_sources for n in names], dtype=bool)
    w = np.array(
        [(weights or {}).get(n, 0.25 if fill[s] else 1.0) for s, n in enumerate(names)],
        dtype=np.float64,
    )
    fused = (np.where(found, w[None, :] / (rrf_k + out_ranks), 0.0)).sum(axis=1)
    primary = (found & ~fill[None, :]).any(axis=1)
    order = np.lexsort((uniq, -fused))
    if fill.any():
        # Fill-only items join in fused order until the set reaches min_candidates.
        ordered_primary = primary[order]
        n_primary = int(ordered_primary.sum())
        need = max(0, int(min_candidates) - n_primary)
        fill_pos = np.flatnonzero(~ordered_primary)[:need]
        chosen = np.zeros(m, dtype=bool)
        chosen[ordered_primary] = True
        chosen[fill_pos] = True
        order = order[chosen]
    if max_candidates is not None:
        order = order[: int(max_candidates)]
    return CandidateSet(
        uniq[order], out_scores[order], out_ranks[order], mask[order],
        fused[order].astype(np.float32), names, miss,
    )


def top_n(
    scores: np.ndarray, n: int, exclude: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Best ``n`` columns per row of a score matrix, as candidate lists.

    Args:
        scores: [B, n_items] scores (higher is better).
        n: Candidates per row.
        exclude: Optional [B, n_items] bool, True = never return.

    Returns:
        ``(idx [B, n'] int64, score [B, n'] float32)`` best first, ``n' = min(n, n_items)``;
        excluded or non-finite entries carry score ``-inf`` (callers drop them).
    """
    s = np.array(scores, dtype=np.float32, copy=True)
    if exclude is not None:
        s[exclude] = -np.inf
    s[~np.isfinite(s)] = -np.inf
    k = min(int(n), s.shape[1])
    if k <= 0:
        return np.zeros((len(s), 0), np.int64), np.zeros((len(s), 0), np.float32)
    part = np.argpartition(-s, k - 1, axis=1)[:, :k] if k < s.shape[1] else (
        np.broadcast_to(np.arange(s.shape[1]), s.shape).copy())
    part.sort(axis=1)
    vals = np.take_along_axis(s, part, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    idx = np.take_along_axis(part, order, axis=1).astype(np.int64)
    return idx, np.take_along_axis(vals, order, axis=1)


def finite_list(idx: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One row of :func:`top_n` without its ``-inf`` (excluded) entries."""
    ok = np.isfinite(score)
    return idx[ok], score[ok]
