"""Write the trained components into one versioned artifact bundle.

The layout is :mod:`shared.contracts.bundle_layout`; each component saves itself into its
folder and this module checks the files landed where the services look for them.

Training works on int64 ids; the bundle carries the dataset's own string ids
(:mod:`shared.contracts.ids`): ``items.parquet`` ``item_id``, ``users.parquet`` ``user_id``
and ``history``, ``popular.json`` and the feature encoder's id lists are mapped back here
through the dataset's id maps (:mod:`training.data.ids`; MovieLens ids become ``"296"``).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shared.contracts import bundle_layout as L
from shared.contracts.bundle_writer import BundleWriter
from shared.contracts.errors import BundleError
from shared.model.features import FeatureEncoder
from shared.model.search import VectorIndex
from shared.model.search.annoy_index import AnnIndex, exact_topk, recall_at_k
from shared.model.search.hnsw import HnswIndex
from training.data.dataset import Dataset
from training.data.ids import IdMap, dataset_id_map
from training.evaluation.base import EvalData
from training.item_attributes import attribute_columns, row_attributes
from training.known_users import all_pairs, bundle_users, user_item_csr
from training.models.ranking_sources import user_histories

RECALL_QUERIES = 500
RECALL_K = 100


def _histories(edata: EvalData, ds: Dataset, max_len: int) -> list[list[str]]:
    """Per user, train + valid item ids (the dataset's own) by time, most recent last
    (serving history)."""
    inter = edata.train_interactions[["user_idx", "item_idx", "timestamp"]]
    v = edata.valid.tocoo()
    valid = pd.DataFrame(
        {
            "user_id": edata.user_ids[v.row],
            "item_id": edata.item_ids[v.col],
            "user_idx": v.row,
            "item_idx": v.col,
        }
    )
    stamps = ds.interactions[["user_id", "item_id", "timestamp"]]
    valid = valid.merge(stamps, on=["user_id", "item_id"], how="left")
    # Validation items are each user's latest: after every train one, in their own order.
    valid["timestamp"] = (1 << 62) + valid["timestamp"].fillna(0).astype(np.int64)
    valid = valid[["user_idx", "item_idx", "timestamp"]]
    both = pd.concat([inter, valid], ignore_index=True)
    hist = user_histories(both, edata.n_users)
    ids = dataset_id_map(ds.id_maps, "items").to_str(edata.item_ids)
    return [ids[h[-max_len:]].tolist() for h in hist]


def _string_ids(writer: BundleWriter, ds: Dataset, edata: EvalData) -> tuple[IdMap, IdMap]:
    """Rewrite the feature encoder the two-tower export saved with the dataset's own ids;
    returns the (users, items) id maps."""
    users_map = dataset_id_map(ds.id_maps, "users")
    items_map = dataset_id_map(ds.id_maps, "items")
    path = writer.path(L.FEATURES)
    encoder = FeatureEncoder.load(path)
    encoder.with_ids(
        users_map.to_str([int(u) for u in encoder.user_ids]).tolist(),
        items_map.to_str([int(i) for i in encoder.item_ids]).tolist(),
    ).save(path)
    return users_map, items_map


def seen_csr(
    interactions: pd.DataFrame, user_ids: np.ndarray, item_ids: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Every catalogue item each user interacted with, as CSR arrays (``exclude_seen``);
    :func:`training.known_users.user_item_csr` over ``interactions``."""
    return user_item_csr(interactions, user_ids, item_ids)


def _ann_recall(
    index: VectorIndex, vectors: np.ndarray, queries: np.ndarray
) -> float:
    k = min(RECALL_K, len(vectors))
    ann_ids, _ = index.query_batch(queries, k)
    exact_ids, _ = exact_topk(vectors, queries, k)
    return float(recall_at_k(ann_ids, exact_ids))


def build_hnsw_indexes(
    writer: BundleWriter,
    item_vectors: np.ndarray,
    content: np.ndarray,
    *,
    seed: int,
    progress: Any = None,
) -> dict[str, HnswIndex]:
    """Build and save the optional HNSW graphs over both vector sets.

    Args:
        writer: The open bundle; files go to ``L.ITEM_HNSW`` and ``L.CONTENT_HNSW``.
        item_vectors: float32 [n_items, d_item] item-tower vectors.
        content: float32 [n_items, d_content] BERT vectors.
        seed: hnswlib's seed.
        progress: Called with a one-line message per finished graph, if given.

    Returns:
        ``{"item_tower": index, "content": index}`` (saved, still loaded).
    """
    built = {}
    for name, vectors, rel in (
        ("item_tower", item_vectors, L.ITEM_HNSW),
        ("content", content, L.CONTENT_HNSW),
    ):
        def rows(done: int, name: str = name, n: int = len(vectors)) -> None:
            if progress is not None and done < n:
                progress(f"hnsw {name} graph: {done:,} / {n:,} rows")

        index = HnswIndex.build(np.asarray(vectors, np.float32), seed=seed, progress=rows)
        index.save(writer.path(rel))
        built[name] = index
        if progress is not None:
            progress(f"hnsw {name} graph: {len(vectors)} x {vectors.shape[1]} in "
                     f"{index.build_seconds:.1f} s")
    return built


def _say(msg: str) -> None:
    """A progress line of the export stage (its steps are single library calls)."""
    print(f"  {msg}", file=sys.stderr, flush=True)


def export_bundle(
    *,
    out: str,
    ds: Dataset,
    edata: EvalData,
    content: np.ndarray,
    text_model_id: str,
    two_tower: Any,
    two_stage: Any,
    cfg: Any,
    seed: int,
    timings: dict[str, float],
) -> Path:
    """Write every artifact and publish the bundle; returns its folder."""
    writer = BundleWriter(out)
    with writer:
        two_tower.export(writer.path(L.TWO_TOWER_DIR + "/.keep").parent)
        users_map, items_map = _string_ids(writer, ds, edata)
        counts = np.asarray((edata.train + edata.valid).sum(axis=0)).ravel().astype(np.int64)
        items = edata.items[["item_id", "title", "year", "genres", "tags", "overview"]].copy()
        items["item_id"] = items_map.to_str(items["item_id"])
        items["popularity"] = counts
        attr_columns, attr_decls = attribute_columns(ds, edata.items)
        items = pd.concat([items, attr_columns.set_axis(items.index)], axis=1)
        writer.save_parquet(L.ITEMS, items)

        users = bundle_users(ds, edata)  # the models' users, then the others (known_users)
        user_rows = users["user_id"].to_numpy(np.int64)
        users["user_id"] = users_map.to_str(users["user_id"])
        users["history"] = _histories(edata, ds, max_len=200) + [
            [] for _ in range(len(users) - edata.n_users)]
        writer.save_parquet(L.USERS, users)
        indptr, seen = user_item_csr(all_pairs(ds), user_rows, edata.item_ids)
        writer.save_npy(L.SEEN_INDPTR, indptr)
        writer.save_npy(L.SEEN_ITEMS, seen)
        indptr, hidden = user_item_csr(ds.negatives, user_rows, edata.item_ids)
        writer.save_npy(L.HIDDEN_INDPTR, indptr)
        writer.save_npy(L.HIDDEN_ITEMS, hidden)
        _say(f"items, users and seen histories written ({len(users):,} users)")

        top = np.argsort(-counts, kind="stable")[: cfg.popular_size]
        popular = [
            {
                "item_id": str(items["item_id"].iat[i]),
                "title": str(items["title"].iat[i]),
                "year": None if pd.isna(items["year"].iat[i]) else int(items["year"].iat[i]),
                "genres": [str(g) for g in items["genres"].iat[i]],
                "popularity": int(counts[i]),
                "attributes": row_attributes(attr_columns, attr_decls, int(i)),
                "available": bool(attr_columns[L.AVAILABLE].iat[i]),
            }
            for i in top
        ]
        writer.save_json(L.POPULAR, popular)
        writer.save_npy(L.CONTENT_VECTORS, np.asarray(content, dtype=np.float32))

        for name, (nb_rel, w_rel) in L.NEIGHBOR_TABLES.items():
            src = two_stage.fitted.get(name)
            if src is None:
                continue
            np.save(writer.path(nb_rel), np.asarray(src.neighbors, np.int32), allow_pickle=False)
            np.save(writer.path(w_rel), np.asarray(src.weights, np.float32), allow_pickle=False)
        two_stage.export(writer.path(L.RANKER_DIR + "/.keep").parent)

        item_vectors = np.asarray(two_tower.item_vectors, dtype=np.float32)
        rng = np.random.default_rng(seed)
        trees, search_k = cfg.ann_params(len(item_vectors), item_vectors.shape[1])
        item_index = AnnIndex.build(item_vectors, n_trees=trees, seed=seed, search_k=search_k)
        item_index.save(writer.path(L.ITEM_INDEX))
        _say(f"Annoy index over {len(item_vectors):,} item-tower vectors built ({trees} trees)")
        trees, search_k = cfg.ann_params(len(content), content.shape[1])
        content_index = AnnIndex.build(
            np.asarray(content, np.float32), n_trees=trees, seed=seed, search_k=search_k
        )
        content_index.save(writer.path(L.CONTENT_INDEX))
        _say(f"Annoy index over {len(content):,} content vectors built ({trees} trees)")
        users_q = rng.choice(edata.n_users, min(RECALL_QUERIES, edata.n_users), replace=False)
        items_q = rng.choice(edata.n_items, min(RECALL_QUERIES, edata.n_items), replace=False)
        metrics = {
            "ann_recall@100_item_tower": _ann_recall(
                item_index, item_vectors, two_tower.user_vectors[users_q]
            ),
            "ann_recall@100_content": _ann_recall(
                content_index, np.asarray(content, np.float32), content[items_q]
            ),
        }
        components: dict[str, Any] = {}
        if cfg.wants_hnsw(len(item_vectors)):
            graphs = build_hnsw_indexes(
                writer, item_vectors, np.asarray(content, np.float32), seed=seed,
                progress=_say,
            )
            metrics["hnsw_recall@100_item_tower"] = _ann_recall(
                graphs["item_tower"], item_vectors, two_tower.user_vectors[users_q]
            )
            metrics["hnsw_recall@100_content"] = _ann_recall(
                graphs["content"], np.asarray(content, np.float32), content[items_q]
            )
            components["hnsw"] = {name: g.params for name, g in graphs.items()}
        hp = two_stage.hyperparameters
        for key in ("valid_ndcg@10_retrieval", "valid_ndcg@10_by_loss", "loss_used"):
            if key in hp:
                metrics[key] = hp[key]
        tt_hp = two_tower.hyperparameters
        metrics["two_tower_training_seconds"] = tt_hp.get("training_seconds")

        missing = [
            rel
            for rel in (L.QUERY_TOWER, L.CANDIDATE_TOWER, L.FEATURES, L.ITEM_VECTORS, L.RANKER)
            if not writer.path(rel).exists()
        ]
        if missing:
            raise BundleError(
                f"the training components did not write {missing}; "
                "shared/contracts/bundle_layout.py and "
                "the components' save methods disagree"
            )
        return writer.finalize(
            dataset={
                "name": ds.name,
                "sha256": ds.source_sha256,
                "path": ds.source_path,
                **{k: v for k, v in ds.summary().items() if k != "name"},
            },
            config={**dataclasses.asdict(cfg), "seed": seed},
            metrics=metrics,
            components={
                **components,
                L.ATTRIBUTES_COMPONENT: attr_decls,
                "annoy": {"item_tower": item_index.params, "content": content_index.params},
                "text_model": text_model_id,
                "content_dim": int(content.shape[1]),
                "item_vector_dim": int(item_vectors.shape[1]),
                "sources": list(two_stage.source_names),
                "n_items": int(edata.n_items),
                "n_users": int(edata.n_users),
                "timings_s": dict(timings),
            },
        )
