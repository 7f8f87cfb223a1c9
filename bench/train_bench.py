"""Training cost: time per stage of ``hybridrec train`` and BERT throughput.

The stage times are the ones :func:`training.pipeline.run_train` records in the
bundle manifest (``components.timings_s``) of the base bundle the other
benchmarks use; BERT throughput is measured here by encoding item texts of that
bundle with the real :class:`~shared.model.text.TextEncoder` (after a warm-up).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from bench.common import log
from shared.contracts import bundle_layout as L
from shared.contracts.bundle import load_bundle

LAST_STAGE = "annoy indexes + bundle"


def train_stages(bundle_path: Path, *, wall_s: float | None = None) -> dict[str, Any]:
    """Stage timings and data size recorded in a bundle's manifest.

    The manifest is written during the last stage (Annoy indexes + bundle), so
    that stage's time is the training's wall time minus the others, when known.

    Args:
        bundle_path: The trained bundle.
        wall_s: Wall seconds of ``run_train`` when it ran in this process.
    """
    bundle = load_bundle(bundle_path, verify=False)
    m = bundle.manifest
    comp = m.get("components", {})
    times = {k: float(v) for k, v in comp.get("timings_s", {}).items()}
    if wall_s is not None and LAST_STAGE not in times:
        times[LAST_STAGE] = round(max(wall_s - sum(times.values()), 0.0), 2)
    ds = m.get("dataset", {})
    return {
        "bundle": bundle.version, "created_at": m.get("created_at"),
        "trained_in_this_run": wall_s is not None, "dataset": ds.get("name"),
        "n_users": comp.get("n_users"), "n_items": comp.get("n_items"),
        "interactions": ds.get("n_interactions"),
        "quick": m.get("config", {}).get("two_tower", {}).get("epochs") == 2,
        "stages_s": times, "total_s": round(sum(times.values()), 1),
    }


def bert_throughput(bundle_path: Path, n: int = 1000) -> dict[str, Any]:
    """Items per second of the real text encoder over ``n`` item texts of the bundle."""
    from shared.model.text import TextEncoder, item_text

    items = load_bundle(bundle_path, verify=False).load_parquet(L.ITEMS)
    rows = items.sample(n=min(n, len(items)), random_state=0, replace=False)
    texts = [item_text(r.title, r.year, list(r.genres), list(r.tags), r.overview)
             for r in rows.itertuples()]
    encoder = TextEncoder()
    encoder.encode(texts[:16])  # load the model and warm up
    t0 = time.perf_counter()
    vecs = encoder.encode(texts)
    secs = time.perf_counter() - t0
    rate = len(texts) / secs
    lengths = [len(t) for t in texts]
    log(f"BERT: {len(texts)} texts in {secs:.1f} s = {rate:.0f} items/s")
    return {"items": len(texts), "seconds": round(secs, 2), "items_per_s": round(rate, 1),
            "dim": int(vecs.shape[1]), "mean_text_chars": round(sum(lengths) / len(lengths)),
            "torch_threads": os.environ.get("HYBRIDREC_TORCH_THREADS", "cores"),
            "model": encoder.model_id}
