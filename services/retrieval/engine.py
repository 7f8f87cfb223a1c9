"""The retrieval service's state and candidate generation.

Everything is loaded once from a verified bundle. A request becomes a user
vector (query tower, cached in Redis per model version), then candidate lists
from every source the ranker was trained with - two-tower ANN, EASE and item-kNN
neighbour tables over the history, content (BERT) neighbours of the recent
items, popularity - merged exactly as in training (:mod:`shared.model.candidates`).
Fresh items added at run time are searched exactly beside the ANN indexes
(Annoy, or HNSW graphs when the bundle has them).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from services.retrieval.fresh import FreshItems
from services.retrieval.lists import most_popular, normalise
from services.retrieval.settings import RetrievalSettings
from shared.contracts import bundle_layout as L
from shared.contracts.bundle import Bundle, load_bundle
from shared.contracts.errors import ConfigError, NotFoundError
from shared.contracts.internal_v1 import dedupe_keep_last
from shared.model.candidates import CandidateSet, merge_candidates
from shared.model.catalogue import Catalogue
from shared.model.features import FeatureEncoder
from shared.model.item_knn import score_from_history
from shared.model.query_serving import CandidateTowerRunner, QueryTowerRunner
from shared.model.search import VectorIndex
from shared.model.search.annoy_index import AnnIndex
from shared.model.search.exact import ExactSearch, use_exact
from shared.model.search.hnsw import HnswIndex
from shared.model.text import TextEncoder
from shared.model.users import UserIndex
from shared.serving.timing import stage
from shared.stores.fresh_items import FreshItemStore
from shared.stores.user_state import UserStateStore

log = logging.getLogger("hybridrec.retrieval")

#: A top-k search over item vectors: exact, Annoy or HNSW (one query interface).


class RetrievalEngine:
    """Loaded bundle + stores; answers candidates, similar items, items, history."""

    def __init__(
        self,
        settings: RetrievalSettings,
        bundle: Bundle,
        store: UserStateStore,
        fresh_store: FreshItemStore,
    ) -> None:
        self.settings = settings
        self.bundle = bundle
        self.version = bundle.version
        self.store = store
        self.fresh_store = fresh_store
        self.catalogue = Catalogue.from_frame(bundle.load_parquet(L.ITEMS))
        users = bundle.load_parquet(L.USERS)
        self.user_ids = users["user_id"].to_numpy(np.int64)
        self.users = UserIndex(self.user_ids)
        self.histories = [np.asarray(h, np.int64) for h in users["history"].tolist()]
        self.encoder = FeatureEncoder.load(bundle.path(L.FEATURES))
        self.query_tower = QueryTowerRunner(bundle.path(L.QUERY_TOWER))
        self.candidate_tower = CandidateTowerRunner(bundle.path(L.CANDIDATE_TOWER))
        self.item_vectors = bundle.load_npy(L.ITEM_VECTORS)
        self.content_vectors = bundle.load_npy(L.CONTENT_VECTORS)
        self.item_index = self._index(self.item_vectors, "item_tower", L.ITEM_INDEX, L.ITEM_HNSW)
        self.content_index = self._index(
            self.content_vectors, "content", L.CONTENT_INDEX, L.CONTENT_HNSW
        )
        ranker_cfg = bundle.load_json(L.RANKER_CONFIG)
        self.source_names: tuple[str, ...] = tuple(ranker_cfg["source_names"])
        ts = ranker_cfg["config"]
        self.depth = int(ts["depth"])
        self.min_candidates = int(ts["min_candidates"])
        self.fill_sources = tuple(ts["fill_sources"])
        self.history_window = int(ts["history_window"])
        self.tables = {
            name: (bundle.load_npy(nb), bundle.load_npy(w))
            for name, (nb, w) in L.NEIGHBOR_TABLES.items()
            if name in self.source_names
        }
        self.popular_order = np.argsort(-self.catalogue.popularity, kind="stable")
        # ANN queries (milliseconds each at 1M items) run in a few threads: Annoy and
        # hnswlib release the GIL, so the two sources overlap and the event loop stays free.
        any_ann = self.item_index.offload or self.content_index.offload
        self._ann_pool = (
            ThreadPoolExecutor(settings.ann_threads, thread_name_prefix="ann")
            if settings.ann_threads > 0 and any_ann
            else None
        )
        self.fresh = FreshItems()
        self._text_encoder: Any = None
        self._text_lock = asyncio.Lock()

    # ------------------------------------------------------------------ loading
    def _index(
        self, vectors: np.ndarray, name: str, annoy_path: str, hnsw_path: str
    ) -> VectorIndex:
        """The search over ``vectors``: exact when small, else HNSW or Annoy per the settings."""
        settings, bundle = self.settings, self.bundle
        if use_exact(*vectors.shape) and not settings.force_ann:
            return ExactSearch(vectors)
        components = bundle.manifest.get("components", {})
        has_hnsw = hnsw_path in bundle.manifest.get("files", {})
        if settings.ann_backend == "hnsw" and not has_hnsw:
            raise ConfigError(
                f"HYBRIDREC_ANN_BACKEND=hnsw, but bundle {bundle.version} has no {hnsw_path}; "
                "build one with HNSW graphs (`hybridrec train --hnsw`) or set "
                "HYBRIDREC_ANN_BACKEND=auto"
            )
        if has_hnsw and settings.ann_backend != "annoy":
            ef = settings.hnsw_ef or components.get("hnsw", {}).get(name, {}).get("ef")
            return HnswIndex.load(bundle.path(hnsw_path), vectors.shape[1], ef=ef)
        search_k = settings.search_k or components.get("annoy", {}).get(name, {}).get(
            "search_k", -1
        )
        return AnnIndex.load(bundle.path(annoy_path), vectors.shape[1], search_k=search_k)

    @classmethod
    def load(
        cls, settings: RetrievalSettings, store: UserStateStore, fresh_store: FreshItemStore
    ) -> RetrievalEngine:
        """Verify and load the bundle at ``settings.artifacts``."""
        bundle = load_bundle(settings.artifacts, verify=settings.verify_bundle)
        return cls(settings, bundle, store, fresh_store)

    async def refresh_fresh_items(self) -> None:
        """Reload run-time items from their durable store."""
        self.fresh = FreshItems.from_records(await self.fresh_store.all(), self.catalogue)

    def warm_text_encoder(self) -> None:
        """Load BERT now so the first ``POST /v1/items`` does not pay for it."""
        if self._text_encoder is None:
            encoder = TextEncoder(self.settings.text_model)
            encoder.encode(["warm up"])
            self._text_encoder = encoder

    @property
    def n_items(self) -> int:
        return len(self.catalogue)

    # ------------------------------------------------------------------ users
    def user_position(self, user_id: int | None) -> int:
        """Position of a known user, -1 otherwise."""
        return self.users.position(user_id)

    def check_items(self, ids: list[int]) -> None:
        """404 naming the ids that are neither in the catalogue nor fresh."""
        if not ids:
            return
        pos = self.catalogue.positions(ids)
        unknown = [
            i for i, p in zip(ids, pos, strict=True) if p < 0 and i not in self.fresh.records
        ]
        if unknown:
            shown = ", ".join(str(i) for i in unknown[:10])
            more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
            raise NotFoundError(
                f"item ids not in the catalogue: {shown}{more}; look ids up with GET /v1/items?q="
            )

    async def user_history(
        self, user_id: int | None, extra: list[int], *, vector_key: str | None = None
    ) -> tuple[list[int], str, tuple[np.ndarray | None, str]]:
        """Known history + recent events + request items (ids, most recent last).

        With ``vector_key``, the user's cached query vector is read in the same Redis
        round trip; it comes back as ``(vector or None, cache status)``.
        """
        known: list[int] = []
        status = "none"
        cached: tuple[np.ndarray | None, str] = (None, "none")
        if user_id is not None:
            pos = self.user_position(user_id)
            if pos >= 0:
                known = self.histories[pos].tolist()
            with stage("cache"):
                recent, status, vec, vstatus = await self.store.recent_and_vector(
                    user_id, self.version, vector_key
                )
            if vector_key is not None:
                cached = (vec, vstatus)
            known += recent
        return dedupe_keep_last(known + list(extra)), status, cached

    @staticmethod
    def vector_key(user_id: int | None, cacheable: bool) -> str | None:
        """The cache key of a user's query vector, or None when it must not be cached."""
        return f"u{user_id}" if cacheable and user_id is not None else None

    async def user_vector(
        self,
        user_id: int | None,
        hist_pos: np.ndarray,
        features: dict[str, Any] | None,
        cacheable: bool,
        cached: tuple[np.ndarray | None, str] | None = None,
    ) -> tuple[np.ndarray, str]:
        """The query-tower vector, from the cache when possible.

        ``cached`` is what :meth:`user_history` already read; without it the cache is
        read here.
        """
        key = self.vector_key(user_id, cacheable)
        status: str = "none"
        if key is not None:
            if cached is None:
                with stage("cache"):
                    vec_hit, status = await self.store.get_vector(self.version, key)
            else:
                vec_hit, status = cached
            if vec_hit is not None:
                return vec_hit, status
        with stage("query_tower"):
            vec = self.query_tower.encode(
                self.encoder, [user_id], [hist_pos[-self.encoder.history_length :]], [features]
            )[0]
        if key is not None:
            with stage("cache"):
                stored = await self.store.set_vector(self.version, key, vec)
            status = "bypass" if stored == "bypass" else status
        return vec, status

    # ------------------------------------------------------------------ candidates
    async def ann_query(
        self, index: VectorIndex, q: np.ndarray, n: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """``index.query(q, n)``; an ANN query runs in the ANN threads, off the event loop."""
        return await self.start_query(index, q, n)

    def start_query(
        self, index: VectorIndex, q: np.ndarray, n: int
    ) -> asyncio.Future[tuple[np.ndarray, np.ndarray]]:
        """Submit ``index.query(q, n)`` to the ANN threads now; await the future for the answer.

        Without ANN threads (or for exact search) the query runs here and the future is
        already done.
        """
        if self._ann_pool is None or not index.offload:
            done: asyncio.Future[tuple[np.ndarray, np.ndarray]] = (
                asyncio.get_running_loop().create_future()
            )
            done.set_result(index.query(q, n))
            return done
        return asyncio.get_running_loop().run_in_executor(self._ann_pool, index.query, q, n)

    async def search(
        self,
        index: VectorIndex,
        pending: Awaitable[tuple[np.ndarray, np.ndarray]],
        q: np.ndarray,
        first: int,
        full: int,
        exclude: np.ndarray,
        allowed: np.ndarray | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The first query's answer (``pending``), or top ``full`` if it leaves < ``depth`` usable.

        An ANN query's cost grows with the neighbours asked for; most users' excluded
        items are a small part of their nearest neighbours, so a first, smaller query
        usually leaves ``depth`` candidates and the larger one runs only when it does not.
        """
        ids, scores = await pending
        if first < full and len(ids) == first:
            valid = ids >= 0
            ok = valid & ~exclude[np.where(valid, ids, 0)]
            if allowed is not None:
                ok &= allowed[np.where(valid, ids, 0)]
            if int(np.count_nonzero(ok)) < self.depth:
                ids, scores = await self.ann_query(index, q, full)
        return ids, scores

    async def source_lists(
        self, vec: np.ndarray, hist_pos: np.ndarray, exclude: np.ndarray, allowed: np.ndarray | None
    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per source, ``(item positions, scores)`` best first (catalogue items only).

        The ANN queries are submitted to the ANN threads first; the neighbour-table and
        popularity lists are computed on this thread while they run (hnswlib and Annoy
        release the GIL), so a request costs about the longer of the two, not their sum.
        The ``ann`` stage is therefore the time spent *waiting* for the ANN answers after
        the other sources were done (the part on the request's critical path).
        """
        n_excluded = int(np.count_nonzero(exclude))
        extra = n_excluded if len(hist_pos) else 0
        widen = 4 if allowed is not None else 1
        # Neighbours to fetch so that `depth` survive the exclusions and the filter: at
        # most every excluded item (capped), at first only half a depth of them.
        full = min((self.depth + min(extra, 5 * self.depth)) * widen, self.n_items)
        first = min((self.depth + min(extra, self.depth // 2)) * widen, full)
        lists: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        queries: dict[str, Coroutine[Any, Any, tuple[np.ndarray, np.ndarray]]] = {}
        try:
            with stage("ann"):
                for name, index, q in self._ann_queries(vec, hist_pos):
                    pending = self.start_query(index, q, first)
                    queries[name] = self.search(index, pending, q, first, full, exclude, allowed)
            with stage("sources"):
                for name, (nb, w) in self.tables.items():
                    if len(hist_pos):
                        lists[name] = score_from_history(
                            hist_pos, nb, w, self.n_items, k=self.depth
                        )
                if "popularity" in self.source_names:
                    top = most_popular(
                        self.popular_order, self.depth, exclude, allowed, n_excluded
                    )
                    lists["popularity"] = (top, self.catalogue.popularity[top].astype(np.float32))
        except BaseException:
            for waiting in queries.values():
                waiting.close()  # never awaited: no "coroutine was never awaited" warning
            raise
        with stage("ann"):
            found = await asyncio.gather(*queries.values())
        return {**dict(zip(queries, found, strict=True)), **lists}

    def _ann_queries(
        self, vec: np.ndarray, hist_pos: np.ndarray
    ) -> list[tuple[str, VectorIndex, np.ndarray]]:
        """``(source, index, query vector)`` of each ANN source this request uses."""
        out: list[tuple[str, VectorIndex, np.ndarray]] = []
        if "two_tower" in self.source_names:
            out.append(("two_tower", self.item_index, vec.astype(np.float32)))
        if "content" in self.source_names and len(hist_pos):
            window = self.content_vectors[hist_pos[-self.history_window :]]
            q = normalise(window.mean(axis=0)).astype(np.float32)
            out.append(("content", self.content_index, q))
        return out

    def merge(
        self,
        lists: dict[str, tuple[np.ndarray, np.ndarray]],
        exclude: np.ndarray,
        allowed: np.ndarray | None,
        k: int,
    ) -> CandidateSet:
        """Merge the source lists exactly as training did."""
        trimmed = {}
        for name, (idx, sc) in lists.items():
            keep = (idx >= 0) & np.isfinite(sc)
            idx, sc = idx[keep], sc[keep]
            ok = ~exclude[idx]
            if allowed is not None:
                ok &= allowed[idx]
            trimmed[name] = (idx[ok][: self.depth], sc[ok][: self.depth])
        return merge_candidates(
            trimmed,
            self.source_names,
            self.n_items,
            fill_sources=self.fill_sources,
            min_candidates=min(self.min_candidates, k),
            max_candidates=k,
            missing_rank=self.depth + 1,
        )

    def fresh_candidates(
        self,
        vec: np.ndarray,
        hist_pos: np.ndarray,
        exclude_ids: set[int],
        genres: list[str],
        k: int,
    ) -> list[tuple[int, float, str]]:
        """Fresh items scored exactly: ``(item_id, score, source)``, best first."""
        if not len(self.fresh.ids):
            return []
        tt = self.fresh.vectors @ vec.astype(np.float32)
        score, source = tt, np.full(len(tt), "two_tower", dtype=object)
        if len(hist_pos):
            q = normalise(self.content_vectors[hist_pos[-self.history_window :]].mean(axis=0))
            cs = self.fresh.content @ q.astype(np.float32)
            source = np.where(cs > tt, "content", source)
            score = np.maximum(tt, cs)
        want = {g.lower() for g in genres}
        out = []
        for j in np.argsort(-score, kind="stable")[:k]:
            iid = int(self.fresh.ids[j])
            rec = self.fresh.records[iid]
            if iid in exclude_ids:
                continue
            if want and not want & {g.lower() for g in rec.get("genres", [])}:
                continue
            out.append((iid, float(score[j]), str(source[j])))
        return out
