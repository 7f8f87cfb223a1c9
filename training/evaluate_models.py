"""hybridrec's own models for ``hybridrec evaluate``, built once the split is indexed.

They need the split's item content (BERT vectors of ``data.items``), so they are
made by factories that receive the :class:`EvalData`, unlike the baselines.
Names: ``content`` (history vs BERT vectors), ``twotower`` (retrieval model alone;
cold items use its content-only path), ``twostage`` (the full system: retrieval
sources + ranker, reported beside its own retrieval-only order).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from training.evaluation.base import EvalData

HYBRID_MODELS = ("content", "twotower", "twostage")
DEFAULT_HYBRID: dict[str, tuple[str, ...]] = {
    "random": ("content", "twostage"),
    "temporal": ("content", "twostage"),
    "cold-items": ("content", "twotower"),
}


def content_vectors(data: EvalData, cache_dir: str | Path | None = None) -> np.ndarray:
    """[n_items, 384] BERT vectors of the split's items (cached on disk)."""
    from shared.text import TextEncoder
    from training.embeddings import embed_items

    cache = Path(cache_dir or os.environ.get("HYBRIDREC_CACHE_DIR", ".cache/hybridrec"))
    return embed_items(data.items, TextEncoder(), cache / "embeddings")


def build_hybrid(names: tuple[str, ...], data: EvalData, seed: int) -> list[Any]:
    """Unfitted hybridrec models for ``data``."""
    if not names:
        return []
    from training.models.ranking_sources import ContentRecommender, default_sources
    from training.models.retrieval_recommenders import TwoTowerRecommender
    from training.models.towers import TwoTowerConfig
    from training.models.two_stage import TwoStageConfig, TwoStageRecommender

    content = content_vectors(data)
    tt_cfg = TwoTowerConfig(verbose=0, seed=seed)
    out: list[Any] = []
    for name in names:
        if name == "content":
            out.append(ContentRecommender(content, name="Content (BERT)"))
        elif name == "twotower":
            out.append(TwoTowerRecommender(tt_cfg, content, name="TwoTower"))
        elif name == "twostage":
            # The two-tower source helps the temporal protocol (next items) and was
            # slower and worse on validation for the random one, so it is left out there.
            ts = TwoStageRecommender(
                default_sources(
                    content, two_tower=data.split == "temporal", two_tower_config=tt_cfg
                ),
                content,
                TwoStageConfig(seed=seed),
                name="hybridrec two-stage",
            )
            out += [ts, ts.retrieval_only("hybridrec retrieval only")]
    return out
