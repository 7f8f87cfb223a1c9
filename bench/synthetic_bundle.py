"""A real-format artifact bundle with a synthetic catalogue of any size.

Interface (stable)::

    build_synthetic_bundle(out_root: Path, n_items: int, *, seed: int = 0,
                           base_bundle: Path | None = None, progress: bool = True) -> Path

returns the published bundle folder ``out_root/<version>`` (``out_root/latest``
points at it), loadable by the real retrieval and ranking services
(``HYBRIDREC_ARTIFACTS=out_root`` or the folder itself). A second call with the
same ``n_items``, ``seed`` and base bundle returns the cached bundle at once.

How it is built: the base bundle (default: ``hybridrec train --quick`` on the
bundled ml-latest-small, serving-sized candidate lists, trained once and cached
under ``bench/.cache/e2e-small``, shared with :mod:`bench.e2e`)
keeps its real items at positions ``0..n_real-1``; ``n_items - n_real``
generated items follow (:mod:`bench.synthetic_items`: noisy copies of real BERT
vectors with Zipf cluster sizes, generated titles, genres, years, popularity).
Their item-tower vectors come from the base bundle's real candidate tower (the
content path, item id 0, as for items added at run time), so the real query
tower's user vectors live in the same space. The towers' ID tables are extended
(new item rows = the "unknown item" row; history rows = the parent's row), the
feature encoder, neighbour tables and ranker feature tables get one row per
item, both Annoy indexes are built over the whole catalogue with
:func:`shared.model.search.annoy_index.params_for_catalogue`, and
:class:`~shared.contracts.bundle_writer.BundleWriter`
writes the manifest with real checksums. Build times are recorded in the
manifest under ``components.synthetic.timings_s``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench import synthetic_items as S
from bench.common import peak_rss_mb
from shared.contracts import bundle_layout as L
from shared.contracts.bundle import Bundle, load_bundle, resolve_bundle, sha256_file
from shared.contracts.bundle_writer import BundleWriter
from shared.contracts.errors import ConfigError
from shared.model.catalogue import id_array, next_numeric_id
from shared.model.search import VectorIndex
from shared.model.search import hnsw as H
from shared.model.search.annoy_index import (
    LARGE_CATALOGUE,
    AnnIndex,
    exact_topk,
    params_for_catalogue,
    recall_at_k,
)
from training.bundle_export import build_hnsw_indexes

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CACHE_DIR = PROJECT_ROOT / "bench" / ".cache"
BASE_NAME = "e2e-small"
GENERATOR_VERSION = 2  # 2: the base's users' full histories (users/seen_*.npy) copied
RECALL_QUERIES = 200
_RANKER_EXTRA = ("ranker_tables.npz", "ranker_tables.json")


def _log(progress: bool, msg: str) -> None:
    if progress:
        print(f"[synthetic] {msg}", file=sys.stderr, flush=True)


def ensure_base_bundle(cache_dir: Path | None = None, *, progress: bool = True,
                       retrain: bool = False) -> Path:
    """The base bundle: ``hybridrec train --quick`` on the bundled data, trained once.

    It is the same bundle as :func:`bench.e2e.ensure_small_bundle`'s (same root,
    same serving-sized config), so one training serves every benchmark.

    Args:
        cache_dir: Cache folder (default ``bench/.cache``); the bundle root is
            ``cache_dir/e2e-small``.
        progress: Log what happens.
        retrain: Train a new version even when one exists (older ones are pruned).

    Returns:
        The bundle folder.
    """
    from bench.e2e import SMALL_CONFIG

    cache = Path(cache_dir or CACHE_DIR)
    root = cache / BASE_NAME
    if (root / "latest").exists() and not retrain:
        return resolve_bundle(root)
    from shared.contracts.bundle import prune
    from training.pipeline import run_train

    cache.mkdir(parents=True, exist_ok=True)
    cfg = cache / f"{BASE_NAME}-config.json"
    cfg.write_text(json.dumps(SMALL_CONFIG))
    _log(progress, f"training the base bundle (hybridrec train --quick) into {root}")
    bundle = run_train(data=str(PROJECT_ROOT / "data" / "ml-latest-small.zip"), out=str(root),
                       quick=True, seed=42, config_path=str(cfg))
    prune(root, keep=1)
    return bundle


def _cache_key(n_items: int, seed: int, base: Bundle, hnsw: bool) -> str:
    dims = (base.load_npy(L.ITEM_VECTORS).shape[1], base.load_npy(L.CONTENT_VECTORS).shape[1])
    ann = "-".join(f"{t}x{k}" for t, k in (params_for_catalogue(n_items, d) for d in dims))
    graphs = f"-hnsw{H.DEFAULT_M}x{H.DEFAULT_EF_CONSTRUCTION}" if hnsw else ""
    return f"g{GENERATOR_VERSION}-n{n_items}-s{seed}-ann{ann}{graphs}-base-{base.version}"


def _cached(out_root: Path, key: str) -> Path | None:
    try:
        found = resolve_bundle(out_root)
        manifest = json.loads((found / "manifest.json").read_text())
    except Exception:  # no bundle yet, or an unreadable one: build anew
        return None
    return found if manifest.get("dataset", {}).get("synthetic_key") == key else None


def _extend_model(src: Path, dst: Path, extra_rows: dict[str, np.ndarray]) -> None:
    """Copy a ``.keras`` model, appending rows to the named Embedding tables.

    Args:
        src: The model file.
        dst: Where to save the extended model.
        extra_rows: Layer name -> [m, dim] rows appended to that layer's table.
    """
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras

    import shared.model.layers  # noqa: F401  (registers the custom layers)

    model = keras.saving.load_model(src, safe_mode=True, compile=False)
    present = {layer.name for layer in model.layers}
    todo = {name: rows for name, rows in extra_rows.items() if name in present}
    if not todo:
        shutil.copyfile(src, dst)
        return
    cfg = model.get_config()
    for layer in cfg["layers"]:
        name = layer["config"]["name"]
        if name in todo:
            layer["config"]["input_dim"] = int(layer["config"]["input_dim"]) + len(todo[name])
    new = model.__class__.from_config(cfg)
    for old_layer in model.layers:
        weights = old_layer.get_weights()
        if old_layer.name in todo:
            weights = [np.concatenate([weights[0], todo[old_layer.name]]).astype(np.float32)]
        new.get_layer(old_layer.name).set_weights(weights)
    new.save(dst)


def _embedding_table(path: Path, name: str) -> np.ndarray | None:
    import keras

    import shared.model.layers  # noqa: F401

    model = keras.saving.load_model(path, safe_mode=True, compile=False)
    names = {layer.name for layer in model.layers}
    return np.asarray(model.get_layer(name).get_weights()[0]) if name in names else None


def _item_vectors(base: Bundle, content: np.ndarray, items: pd.DataFrame, n_real: int,
                  out: np.ndarray, progress: bool) -> None:
    """Real rows from the base bundle; synthetic rows from the real candidate tower."""
    from shared.model.features import FeatureEncoder
    from shared.model.query_serving import CandidateTowerRunner

    out[:n_real] = base.load_npy(L.ITEM_VECTORS)
    encoder = FeatureEncoder.load(base.path(L.FEATURES))
    tower = CandidateTowerRunner(base.path(L.CANDIDATE_TOWER))
    genres = items["genres"].tolist()
    years = [None if pd.isna(y) else int(y) for y in items["year"].tolist()]
    n = len(items)
    for lo, hi in S.chunks(n - n_real, 32_768):
        a, b = n_real + lo, n_real + hi
        out[a:b] = tower.encode_new_items(encoder, np.asarray(content[a:b]), genres[a:b],
                                          years[a:b])
        _log(progress and hi == n - n_real, f"item-tower vectors: {n} rows")


def _encoder_json(base: Bundle, items: pd.DataFrame, n_real: int) -> dict[str, Any]:
    from shared.model.features import FeatureEncoder

    enc = FeatureEncoder.load(base.path(L.FEATURES))
    d = enc.to_dict()
    gindex = {g: j for j, g in enumerate(enc.genres)}
    new = items.iloc[n_real:]
    d["item_ids"] = d["item_ids"] + [str(i) for i in new["item_id"]]
    d["item_genres"] = d["item_genres"] + [
        sorted({gindex[g] for g in gl if g in gindex}) for gl in new["genres"]
    ]
    d["item_year_buckets"] = d["item_year_buckets"] + enc.year_buckets(
        [None if pd.isna(y) else int(y) for y in new["year"]]).tolist()
    return d


def _ranker_tables(base: Bundle, writer: BundleWriter, content: np.ndarray,
                   items: pd.DataFrame, n_real: int, rng: np.random.Generator) -> None:
    from shared.model.ranker_features import TABLES_ARRAYS, TABLES_META, RankerFeatureTables

    folder = base.path(L.RANKER).parent
    t = RankerFeatureTables.load(folder)
    n = len(items)
    gcol = {g: j for j, g in enumerate(t.genre_names)}
    genres = np.zeros((n, t.item_genres.shape[1]), np.float32)
    genres[:n_real] = t.item_genres
    for i, gl in enumerate(items["genres"].iloc[n_real:].tolist()):
        genres[n_real + i, [gcol[g] for g in gl if g in gcol]] = 1.0
    count = items["popularity"].to_numpy(np.float32).copy()
    count[:n_real] = t.item_count
    recent = np.concatenate([t.item_recent,
                             rng.binomial(count[n_real:].astype(np.int64), 0.2).astype(np.float32)])
    year = pd.to_numeric(items["year"], errors="coerce").to_numpy(np.float64, na_value=np.nan)
    year = year.astype(np.float32)
    year[:n_real] = t.item_year
    out = writer.path(f"{L.RANKER_DIR}/{TABLES_ARRAYS}")
    np.savez(out, item_content=content, item_genres=genres, item_count=count,
             item_recent=recent, item_year=year, user_features=t.user_features)
    # The trained ranker's normalisers (mean_count, year_mean) stay the base bundle's.
    shutil.copyfile(folder / TABLES_META, writer.path(f"{L.RANKER_DIR}/{TABLES_META}"))


def _recall(index: VectorIndex, vectors: np.ndarray, rng: np.random.Generator) -> float:
    q = np.asarray(vectors[np.sort(rng.choice(len(vectors), RECALL_QUERIES, replace=False))])
    q = q + rng.normal(0, 0.05, q.shape).astype(np.float32)  # near, not on, an item
    k = min(100, len(vectors))
    return float(recall_at_k(index.query_batch(q, k)[0], exact_topk(vectors, q, k)[0]))


def build_synthetic_bundle(out_root: Path, n_items: int, *, seed: int = 0,
                           base_bundle: Path | None = None, progress: bool = True,
                           hnsw: bool | None = None) -> Path:
    """Build (or reuse) a bundle of ``n_items`` items under ``out_root``; returns its folder.

    Args:
        out_root: Artifacts root to publish into (``latest`` is switched to the bundle).
        n_items: Catalogue size, at least the base bundle's item count.
        seed: Seed of every random choice (same seed, same bundle).
        base_bundle: A trained bundle (folder or artifacts root) to extend; default:
            :func:`ensure_base_bundle`.
        progress: Log stages to stderr.
        hnsw: Also build HNSW graphs over both vector sets (None: for catalogues above
            :data:`shared.model.search.annoy_index.LARGE_CATALOGUE` items).

    Raises:
        ConfigError: ``n_items`` is smaller than the base catalogue.
    """
    out_root = Path(out_root)
    base = load_bundle(base_bundle if base_bundle is not None else ensure_base_bundle(
        progress=progress), verify=False)
    if hnsw is None:
        hnsw = n_items > LARGE_CATALOGUE
    key = _cache_key(n_items, seed, base, hnsw)
    if (found := _cached(out_root, key)) is not None:
        _log(progress, f"reusing {found} ({key})")
        return found
    base_items = base.load_parquet(L.ITEMS)
    n_real = len(base_items)
    if n_items < n_real:
        raise ConfigError(f"n_items={n_items} is below the base catalogue's {n_real} items")
    rng = np.random.default_rng(seed)
    times: dict[str, float] = {}
    t0 = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t0
        times[name] = round(time.perf_counter() - t0, 2)
        _log(progress, f"{name}: {times[name]:.1f} s")
        t0 = time.perf_counter()

    _log(progress, f"building {n_items} items ({n_items - n_real} synthetic) from {base.root}")
    parents = S.assign_parents(n_items - n_real, n_real, rng)
    first_id = next_numeric_id(id_array(base_items["item_id"].to_numpy()))  # ids are strings
    syn = S.synthetic_items(base_items, parents, first_id, rng,
                            int(base_items["popularity"].max()))
    items = pd.concat([base_items, syn], ignore_index=True)
    lap("items table")
    writer = BundleWriter(out_root)
    with writer:
        writer.save_parquet(L.ITEMS, items)
        # Synthetic items come after the base's, so its users' seen positions hold.
        for rel in (L.USERS, L.SEEN_INDPTR, L.SEEN_ITEMS):
            shutil.copyfile(base.path(rel), writer.path(rel))
        top = np.argsort(-items["popularity"].to_numpy(), kind="stable")[
            : len(base.load_json(L.POPULAR))]
        writer.save_json(L.POPULAR, [
            {"item_id": str(items["item_id"].iat[i]), "title": str(items["title"].iat[i]),
             "year": None if pd.isna(items["year"].iat[i]) else int(items["year"].iat[i]),
             "genres": [str(g) for g in items["genres"].iat[i]],
             "popularity": int(items["popularity"].iat[i])} for i in top])
        base_content = base.load_npy(L.CONTENT_VECTORS)
        content = np.lib.format.open_memmap(
            writer.path(L.CONTENT_VECTORS), mode="w+", dtype=np.float32,
            shape=(n_items, base_content.shape[1]))
        content[:n_real] = base_content
        S.write_content_vectors(np.asarray(base_content), parents, content, n_real, rng)
        content.flush()
        lap("content vectors")

        vec_dim = base.load_npy(L.ITEM_VECTORS).shape[1]
        vectors = np.lib.format.open_memmap(writer.path(L.ITEM_VECTORS), mode="w+",
                                            dtype=np.float32, shape=(n_items, vec_dim))
        _item_vectors(base, content, items, n_real, vectors, progress)
        vectors.flush()
        lap("item-tower vectors (candidate tower)")

        m = n_items - n_real
        cand = base.path(L.CANDIDATE_TOWER)
        item_table = _embedding_table(cand, "item_embedding")
        cand_rows = {} if item_table is None else {
            "item_embedding": np.repeat(item_table[:1], m, axis=0)}
        _extend_model(cand, writer.path(L.CANDIDATE_TOWER), cand_rows)
        query = base.path(L.QUERY_TOWER)
        hist_rows: dict[str, np.ndarray] = {}
        for name in ("history_embedding", "item_embedding"):
            table = _embedding_table(query, name)
            if table is not None:
                hist_rows[name] = table[parents + 1]  # a synthetic item reads like its parent
        _extend_model(query, writer.path(L.QUERY_TOWER), hist_rows)
        writer.path(L.FEATURES).write_text(
            json.dumps(_encoder_json(base, items, n_real), separators=(",", ":")))
        lap("towers + feature encoder")

        for name, (nb_rel, w_rel) in L.NEIGHBOR_TABLES.items():
            if nb_rel not in base.manifest["files"]:
                continue
            nb, w = base.load_npy(nb_rel), base.load_npy(w_rel)
            out_nb = np.lib.format.open_memmap(writer.path(nb_rel), mode="w+", dtype=np.int32,
                                               shape=(n_items, nb.shape[1]))
            out_w = np.lib.format.open_memmap(writer.path(w_rel), mode="w+", dtype=np.float32,
                                              shape=(n_items, nb.shape[1]))
            S.extend_neighbors(nb, w, parents, n_real, out_nb, out_w, rng)
            out_nb.flush()
            out_w.flush()
            del out_nb, out_w
            _log(progress, f"neighbour table {name}: {n_items} x {nb.shape[1]}")
        ranker_dir = base.path(L.RANKER).parent
        for rel in base.manifest["files"]:
            if rel.startswith(L.RANKER_DIR + "/") and Path(rel).name not in _RANKER_EXTRA:
                shutil.copyfile(base.root / rel, writer.path(rel))
        _ranker_tables(base, writer, content, items, n_real, rng)
        del ranker_dir
        lap("neighbour + ranker tables")

        n_trees, search_k = params_for_catalogue(n_items, vec_dim)
        item_index = AnnIndex.build(vectors, n_trees=n_trees, seed=seed, search_k=search_k)
        item_index.save(writer.path(L.ITEM_INDEX))
        lap("annoy item-tower index")
        c_trees, c_search_k = params_for_catalogue(n_items, content.shape[1])
        content_index = AnnIndex.build(content, n_trees=c_trees, seed=seed,
                                       search_k=c_search_k)
        content_index.save(writer.path(L.CONTENT_INDEX))
        lap("annoy content index")
        metrics = {"ann_recall@100_item_tower": _recall(item_index, vectors, rng),
                   "ann_recall@100_content": _recall(content_index, content, rng)}
        annoy_params = {"item_tower": item_index.params, "content": content_index.params}
        item_index.unload()
        content_index.unload()
        lap("recall check")
        graph_params = {}
        if hnsw:
            graphs = build_hnsw_indexes(writer, vectors, content, seed=seed,
                                        progress=lambda msg: _log(progress, msg))
            t0 = time.perf_counter()
            for name, graph in graphs.items():
                times[f"hnsw {name} graph"] = round(graph.build_seconds or 0.0, 2)
            rng_h = np.random.default_rng(seed + 1)
            metrics["hnsw_recall@100_item_tower"] = _recall(graphs["item_tower"], vectors, rng_h)
            metrics["hnsw_recall@100_content"] = _recall(graphs["content"], content, rng_h)
            graph_params = {name: g.params for name, g in graphs.items()}
            del graphs
            lap("hnsw recall check")
        del content, vectors
        files = sorted(p for p in writer.tmp_dir.rglob("*") if p.is_file())
        sizes = {p.relative_to(writer.tmp_dir).as_posix(): p.stat().st_size for p in files}
        components = {k: v for k, v in base.manifest.get("components", {}).items()
                      if k not in ("annoy", "timings_s")}
        if graph_params:
            components["hnsw"] = graph_params
        components.update({
            "annoy": annoy_params,
            "n_items": n_items,
            "synthetic": {"n_real": n_real, "n_synthetic": m, "seed": seed,
                          "base_version": base.version, "timings_s": times,
                          "file_bytes": sizes, "content_noise": S.CONTENT_NOISE,
                          "cluster_zipf": S.CLUSTER_ZIPF, "peak_rss_mb": peak_rss_mb()},
        })
        t_fin = time.perf_counter()
        bundle = writer.finalize(
            dataset={"name": f"synthetic-{n_items}", "sha256": sha256_file(base.root /
                     "manifest.json"), "synthetic_key": key,
                     "base_dataset": base.manifest.get("dataset", {})},
            config={**base.manifest.get("config", {}), "ann_n_trees": None,
                    "ann_search_k": None},
            metrics=metrics, components=components)
        _log(progress, f"checksums + manifest: {time.perf_counter() - t_fin:.1f} s; "
                       f"bundle {bundle} ({sum(sizes.values()) / 1e9:.2f} GB)")
    return bundle


def main(argv: list[str] | None = None) -> int:
    """CLI: build (or reuse) a bundle and print a one-line JSON report on stdout."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m bench.synthetic_bundle")
    ap.add_argument("--out", required=True, help="artifacts root to publish into")
    ap.add_argument("--items", type=int, required=True, help="catalogue size")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--base", default=None, help="base bundle (default: trained and cached)")
    ap.add_argument("--hnsw", action=argparse.BooleanOptionalAction, default=None,
                    help="also build HNSW graphs (default: above 100,000 items)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    bundle = build_synthetic_bundle(Path(args.out), args.items, seed=args.seed,
                                    base_bundle=Path(args.base) if args.base else None,
                                    hnsw=args.hnsw)
    wall = time.perf_counter() - t0
    manifest = json.loads((bundle / "manifest.json").read_text())
    syn = manifest["components"]["synthetic"]
    built_now = wall > 0.8 * sum(syn["timings_s"].values())
    report = {
        "bundle": str(bundle), "n_items": args.items, "n_real": syn["n_real"],
        "built_in_this_run": built_now, "created_at": manifest["created_at"],
        "build_s": round(wall if built_now else sum(syn["timings_s"].values()), 1),
        "timings_s": syn["timings_s"],
        "peak_rss_mb": peak_rss_mb() if built_now else syn.get("peak_rss_mb"),
        "bundle_gb": round(sum(f["bytes"] for f in manifest["files"].values()) / 1e9, 3),
        "file_mb": {k: round(v / 1e6, 1) for k, v in syn["file_bytes"].items()},
        "annoy": manifest["components"]["annoy"], "metrics": manifest["metrics"],
        "hnsw": manifest["components"].get("hnsw"),
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
