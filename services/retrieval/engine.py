"""The retrieval service's loaded state: :class:`RetrievalEngine`.

Everything a request reads is loaded once from a verified bundle: the catalogue and the
known users' histories, the feature encoder and both towers, the item-tower and content
(BERT) vectors with their search indexes (exact below a size, else HNSW or Annoy), the
neighbour tables and popularity order, the ranker's candidate settings, plus the stores
(Redis) and the run-time fresh items. A reload builds a new engine beside the old one and
swaps it in. What a request does with it is :mod:`services.retrieval.pipeline`
(candidates) and :mod:`services.retrieval.items` (item operations).
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from services.retrieval.filtering import LiveItems
from services.retrieval.fresh import FreshItems
from services.retrieval.settings import RetrievalSettings
from shared.contracts import bundle_layout as L
from shared.contracts.bundle import Bundle, load_bundle
from shared.contracts.errors import BundleError, ConfigError, NotFoundError
from shared.contracts.ranker_config import RankerConfig
from shared.model.catalogue import Catalogue, id_array
from shared.model.features import FeatureEncoder
from shared.model.query_serving import CandidateTowerRunner, QueryTowerRunner
from shared.model.search import VectorIndex
from shared.model.search.annoy_index import AnnIndex
from shared.model.search.exact import ExactSearch, use_exact
from shared.model.search.hnsw import HnswIndex
from shared.model.text import TextEncoder
from shared.model.users import UserIndex
from shared.stores.fresh_items import FreshItemStore
from shared.stores.user_state import UserStateStore

log = logging.getLogger("hybridrec.retrieval")


def _seen_tables(bundle: Bundle, n_users: int, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """The users' training items as CSR arrays (``bundle_layout.SEEN_*``), checked."""
    files = bundle.manifest.get("files", {})
    missing = [rel for rel in (L.SEEN_INDPTR, L.SEEN_ITEMS) if rel not in files]
    if missing:
        raise BundleError(
            f"bundle {bundle.version} has no {' or '.join(missing)}: it was written by an "
            "older hybridrec, before bundles stored every user's full training history "
            "(exclude_seen needs it); retrain with `hybridrec train` and point "
            "HYBRIDREC_ARTIFACTS at the new bundle"
        )
    return _user_item_table(bundle, L.SEEN_INDPTR, L.SEEN_ITEMS, n_users, n_items)


def _hidden_tables(bundle: Bundle, n_users: int, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """The users' hidden items (``bundle_layout.HIDDEN_*``, negative events), checked; none
    when the bundle predates them."""
    if L.HIDDEN_INDPTR not in bundle.manifest.get("files", {}):
        return np.zeros(n_users + 1, np.int64), np.zeros(0, np.int32)
    return _user_item_table(bundle, L.HIDDEN_INDPTR, L.HIDDEN_ITEMS, n_users, n_items)


def _user_item_table(
    bundle: Bundle, indptr_rel: str, items_rel: str, n_users: int, n_items: int
) -> tuple[np.ndarray, np.ndarray]:
    """A per-user item list of the bundle as CSR arrays (int64 indptr, int32 positions),
    checked against the user and item counts."""
    indptr = np.asarray(bundle.load_npy(indptr_rel, mmap=False), np.int64)
    items = np.asarray(bundle.load_npy(items_rel, mmap=False), np.int32)
    if (
        indptr.shape != (n_users + 1,)
        or indptr[0] != 0
        or indptr[-1] != len(items)
        or (len(items) and (items.min() < 0 or items.max() >= n_items))
    ):
        raise BundleError(
            f"bundle {bundle.version}: {indptr_rel} / {items_rel} do not match "
            f"{n_users} users and {n_items} items (indptr shape {indptr.shape}, "
            f"{len(items)} item positions); the bundle is inconsistent, retrain"
        )
    return indptr, items


def _history_positions(catalogue: Catalogue, histories: list[Any]) -> list[np.ndarray]:
    """Each known user's history (item ids, most recent last) as int32 catalogue positions:
    compact, and ids are read back from the catalogue (ids unknown to it are left out)."""
    lengths = np.asarray([len(h) for h in histories], np.int64)
    flat: Any = np.concatenate([np.asarray(h) for h in histories]) if len(histories) else []
    pos = catalogue.positions(flat).astype(np.int32)
    return [p[p >= 0] for p in np.split(pos, np.cumsum(lengths)[:-1])] if len(histories) else []


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
        self.catalogue = Catalogue.from_frame(
            bundle.load_parquet(L.ITEMS),
            bundle.manifest.get("components", {}).get(L.ATTRIBUTES_COMPONENT),
        )
        users = bundle.load_parquet(L.USERS)
        self.user_ids = id_array(users["user_id"].to_numpy())
        self.users = UserIndex(self.user_ids)
        self.histories = _history_positions(self.catalogue, users["history"].tolist())
        self.seen_indptr, self.seen_items = _seen_tables(bundle, len(self.user_ids), self.n_items)
        self.hidden_indptr, self.hidden_items = _hidden_tables(
            bundle, len(self.user_ids), self.n_items)
        self.encoder = FeatureEncoder.load(bundle.path(L.FEATURES))
        self.query_tower = QueryTowerRunner(bundle.path(L.QUERY_TOWER))
        self.candidate_tower = CandidateTowerRunner(bundle.path(L.CANDIDATE_TOWER))
        self.item_vectors = bundle.load_npy(L.ITEM_VECTORS)
        self.content_vectors = bundle.load_npy(L.CONTENT_VECTORS)
        self.item_index = self._index(self.item_vectors, "item_tower", L.ITEM_INDEX, L.ITEM_HNSW)
        self.content_index = self._index(
            self.content_vectors, "content", L.CONTENT_INDEX, L.CONTENT_HNSW
        )
        ranker = RankerConfig.of(bundle)
        self.source_names = ranker.source_names
        self.depth = ranker.config.depth
        self.min_candidates = ranker.config.min_candidates
        self.fill_sources = ranker.config.fill_sources
        self.history_window = ranker.config.history_window
        self.tables = {
            name: (bundle.load_npy(nb), bundle.load_npy(w))
            for name, (nb, w) in L.NEIGHBOR_TABLES.items()
            if name in self.source_names
        }
        self.popular_order = np.argsort(-self.catalogue.popularity, kind="stable")
        # ANN queries run in a few threads: Annoy and hnswlib release the GIL, so the two
        # sources overlap and the event loop stays free (docs/scaling.md).
        any_ann = self.item_index.offload or self.content_index.offload
        self._ann_pool = (
            ThreadPoolExecutor(settings.ann_threads, thread_name_prefix="ann")
            if settings.ann_threads > 0 and any_ann
            else None
        )
        self.fresh = FreshItems()
        self.live = LiveItems.build(self.catalogue, {})  # PATCH /v1/items changes, refreshed
        self._text_encoder: TextEncoder | None = None
        self._text_lock = asyncio.Lock()

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

    def warm_text_encoder(self) -> None:
        """Load BERT now so the first ``POST /v1/items`` does not pay for it."""
        if self._text_encoder is None:
            encoder = TextEncoder(self.settings.text_model)
            encoder.encode(["warm up"])
            self._text_encoder = encoder

    async def text_encoder(self) -> TextEncoder:
        """The BERT encoder of new items' text (loaded on first use if not warmed)."""
        async with self._text_lock:
            if self._text_encoder is None:
                self._text_encoder = TextEncoder(self.settings.text_model)
        return self._text_encoder

    @property
    def n_items(self) -> int:
        return len(self.catalogue)

    # ------------------------------------------------------------------ users
    def user_position(self, user_id: str | None) -> int:
        """Position of a known user, -1 otherwise."""
        return self.users.position(user_id)

    def seen_positions(self, user_pos: int) -> np.ndarray:
        """Item positions (int32) a known user interacted with in the training data."""
        if user_pos < 0:
            return self.seen_items[:0]
        return self.seen_items[self.seen_indptr[user_pos] : self.seen_indptr[user_pos + 1]]

    def hidden_positions(self, user_pos: int) -> np.ndarray:
        """Item positions (int32) a known user hid or disliked in the training data."""
        if user_pos < 0:
            return self.hidden_items[:0]
        return self.hidden_items[self.hidden_indptr[user_pos] : self.hidden_indptr[user_pos + 1]]

    def check_items(self, ids: list[str]) -> None:
        """404 naming the ids that are neither in the catalogue nor fresh."""
        if not ids:
            return
        pos = self.catalogue.positions(ids)
        unknown = [
            i for i, p in zip(ids, pos, strict=True) if p < 0 and i not in self.fresh
        ]
        if unknown:
            shown = ", ".join(repr(i) for i in unknown[:10])
            more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
            raise NotFoundError(
                f"item ids not in the catalogue: {shown}{more}; look ids up with GET /v1/items?q="
            )

    # ------------------------------------------------------------------ ANN queries
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
