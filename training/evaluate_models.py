"""hybridrec's own models for ``hybridrec evaluate``, built once the split is indexed.

They need the split's item content (BERT vectors of ``data.items``), so they are
made by factories that receive the :class:`EvalData`, unlike the baselines.
Names: ``content`` (history vs BERT vectors), ``twotower`` (retrieval model alone;
cold items use its content-only path), ``twostage`` (the full system: retrieval
sources + ranker, reported beside its own retrieval-only order), and the
``contentpopularity`` peer (it needs the same content vectors).

Every choice of the two-stage system is made on validation (never on test):

* the EASE source's λ: the dense EASE grid on validation NDCG@10;
* the variants in :data:`TWO_STAGE_VARIANTS` (ranker ID embeddings on or off;
  more variants – sources, candidate count – cost a full fit each):
  :class:`ValidationChoice` fits each, keeps the
  best on validation NDCG@10 and records every variant's validation score (on the
  first seed of a multi-seed run; later seeds reuse that variant);
* inside each fit, the ranker's epoch (early stopping on validation).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from training.evaluation.base import EvalData
from training.evaluation.harness import evaluate

HYBRID_MODELS = ("content", "twotower", "twostage")
DEFAULT_HYBRID: dict[str, tuple[str, ...]] = {
    "random": ("content", "twostage"),
    "temporal": ("content", "twostage"),
    "temporal-user": ("content", "twostage"),
    "cold-items": ("content", "twotower"),
}

#: Two-stage variants tried on validation: label -> (sources, ranker overrides,
#: pipeline overrides). ``sources`` None = the split's default (the two-tower
#: source only on time splits).
Variant = tuple[Sequence[str] | None, dict[str, Any], dict[str, Any]]
TWO_STAGE_VARIANTS: dict[str, Variant] = {
    "default": (None, {}, {}),
    "ids": (None, {"use_ids": True}, {}),
    # RP3beta's neighbour table in place of item-kNN (plus the two-tower source on time
    # splits, as in the default).
    "rp3beta": (("ease", "rp3beta", "content", "popularity"), {}, {}),
}
#: A quick variant set for ``--quick-choice`` runs and tests.
QUICK_VARIANTS: dict[str, Variant] = {"default": (None, {}, {})}


def content_vectors(data: EvalData, cache_dir: str | Path | None = None) -> np.ndarray:
    """[n_items, 384] BERT vectors of the split's items (cached on disk)."""
    from shared.model.text import TextEncoder
    from training.embeddings import embed_items

    cache = Path(cache_dir or os.environ.get("HYBRIDREC_CACHE_DIR", ".cache/hybridrec"))
    return embed_items(data.items, TextEncoder(), cache / "embeddings")


class ValidationChoice:
    """Fits every variant and keeps the one with the best validation NDCG@10.

    Args:
        variants: Label -> factory of an unfitted Recommender.
        name: Report name.
        chosen_before: Choices made before (recorded with the variant scores).
    """

    def __init__(self, variants: dict[str, Callable[[], Any]], name: str,
                 chosen_before: dict[str, Any] | None = None) -> None:
        self.name = name
        self.variants = dict(variants)
        self.variant_specs: dict[str, Any] = {}
        self.chosen: Any = None
        self.chosen_before = dict(chosen_before or {})
        self.hyperparameters: dict[str, Any] = dict(self.chosen_before)

    def fit(self, data: EvalData) -> None:
        """Fit each variant on ``data`` (train + valid only); keep the best on validation."""
        scores: dict[str, float] = {}
        best: tuple[str, Any] | None = None
        for label, factory in self.variants.items():
            model = factory()
            model.fit(data)
            scores[label] = evaluate(model, data, stage="valid", ks=(10,),
                                     progress=False)["ndcg@10"]
            if best is None or scores[label] > scores[best[0]]:
                best = (label, model)
        assert best is not None
        self.chosen = best[1]
        self.hyperparameters = {
            **self.chosen_before, "chosen_variant": best[0], "valid_ndcg@10_by_variant": scores,
            **dict(getattr(self.chosen, "hyperparameters", {}) or {})}

    def score(self, user_idx: np.ndarray) -> np.ndarray:
        """The chosen variant's scores."""
        return np.asarray(self.chosen.score(user_idx), dtype=np.float32)


class ChosenRetrievalOnly:
    """The chosen two-stage variant's candidates in retrieval order (no ranker)."""

    def __init__(self, choice: ValidationChoice, name: str) -> None:
        self.name = name
        self.choice = choice
        self.hyperparameters: dict[str, Any] = {"order": "fused reciprocal rank"}

    def fit(self, data: EvalData) -> None:
        """Fit the choice unless it already is fitted."""
        if self.choice.chosen is None:
            self.choice.fit(data)
        self.hyperparameters["sources"] = list(self.choice.chosen.source_names)

    def score(self, user_idx: np.ndarray) -> np.ndarray:
        """Candidates in fused order above the rest."""
        return np.asarray(self.choice.chosen.score(user_idx, use_ranker=False), np.float32)


def chosen_variants(models: Sequence[Any]) -> dict[str, Variant] | None:
    """``{label: variant}`` of the two-stage variant a fitted :class:`ValidationChoice` kept."""
    for m in models:
        if isinstance(m, ValidationChoice) and m.chosen is not None:
            label = m.hyperparameters["chosen_variant"]
            return {label: m.variant_specs[label]}
    return None


def ease_lambda_on_valid(data: EvalData) -> tuple[float, dict[str, Any]]:
    """λ of the EASE source: the dense EASE's validation grid search."""
    from training.evaluation.baselines import EASE

    ease = EASE(name="EASE source")
    ease.fit(data)
    return float(ease.hyperparameters["lambda"]), ease.hyperparameters["search"]


def build_hybrid(names: tuple[str, ...], data: EvalData, seed: int,
                 variants: dict[str, Variant] | None = None) -> list[Any]:
    """Unfitted hybridrec models (and the content-based peers) for ``data``."""
    if not names:
        return []
    from training.evaluation.peers import ContentPopularity
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
        elif name == "contentpopularity":
            out.append(ContentPopularity(content, seed=seed))
        elif name == "twostage":
            lam, search = ease_lambda_on_valid(data)
            time_split = str(data.split).startswith("temporal")

            specs = dict(variants or TWO_STAGE_VARIANTS)
            rp3: tuple[float, float] | None = None
            rp3_search: dict[str, Any] | None = None
            if any("rp3beta" in (v[0] or ()) for v in specs.values()):
                from training.models.rp3beta import tune_on_valid

                a, b, rp3_search = tune_on_valid(data)
                rp3 = (a, b)

            def factory(v: Variant, lam: float = lam, time_split: bool = time_split,
                        rp3: tuple[float, float] | None = rp3) -> TwoStageRecommender:
                sources, ranker_over, cfg_over = v
                base = TwoStageConfig(seed=seed)
                cfg = dataclasses.replace(
                    base, ranker=dataclasses.replace(base.ranker, **ranker_over), **cfg_over)
                if sources is not None and time_split and "two_tower" not in sources:
                    sources = ("two_tower", *sources)
                specs = default_sources(content, two_tower=time_split,
                                        two_tower_config=tt_cfg, ease_lambda=lam,
                                        names=sources, rp3beta=rp3)
                return TwoStageRecommender(specs, content, cfg, name="hybridrec two-stage")

            makers: dict[str, Callable[[], Any]] = {
                label: functools.partial(factory, v) for label, v in specs.items()}
            choice = ValidationChoice(
                makers,
                name="hybridrec two-stage",
                chosen_before={"ease_source_lambda": lam, "ease_source_search": search,
                               **({"rp3beta_source": rp3, "rp3beta_source_search": rp3_search}
                                  if rp3 is not None else {}),
                               "variants_tried": list(specs)})
            choice.variant_specs = specs
            out += [choice, ChosenRetrievalOnly(choice, "hybridrec retrieval only")]
    return out
