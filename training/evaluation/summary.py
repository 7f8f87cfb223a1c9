"""Multi-seed summary: per-model means with 95% intervals, paired comparisons, online gains.

Input: one run report per seed (:func:`training.evaluation.harness.run_models`)
and, per seed, the per-user metrics of every model (and of the online protocol).
Output: the ``summary`` block of ``report.json`` (see :func:`summarize`).

Model roles: hybridrec's own models are ``hybrid``; ``Random`` is a
``reference``; names starting with ``Oracle`` are ``oracle`` (a ceiling that reads
test, never a peer); every other model is a ``peer``. The *best peer* is the peer
with the highest mean test NDCG@10 – the hardest comparison for the hybrid.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from training.evaluation.harness import UserMetrics
from training.evaluation.peers import ORACLE_PREFIX
from training.evaluation.stats import bootstrap_mean, paired_difference

#: Metrics with intervals and paired comparisons.
CI_METRICS: tuple[str, ...] = ("recall@10", "ndcg@10")
#: Metrics summarised by their mean over seeds only.
MEAN_METRICS: tuple[str, ...] = ("recall@20", "ndcg@20", "recall@50", "ndcg@50", "hit@10",
                                 "mrr@10", "coverage@10")
REFERENCE = "EASE"


def model_role(name: str, hybrid_names: Iterable[str]) -> str:
    """``hybrid``, ``oracle``, ``reference`` or ``peer``."""
    if name in set(hybrid_names):
        return "hybrid"
    if name.startswith(ORACLE_PREFIX):
        return "oracle"
    if name == "Random":
        return "reference"
    return "peer"


def _pairs(per_user: Sequence[dict[str, dict[str, UserMetrics]]], name: str, stage: str,
           metric: str) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(pu[name][stage].users, pu[name][stage].metrics[metric]) for pu in per_user]


def summarize(
    runs: Sequence[dict[str, Any]],
    per_user: Sequence[dict[str, dict[str, UserMetrics]]],
    hybrid_names: Iterable[str],
    online: Sequence[dict[str, dict[str, UserMetrics]]] | None = None,
) -> dict[str, Any]:
    """The multi-seed summary.

    Args:
        runs: One run report per seed (same models in every run).
        per_user: Per seed, ``{model: {stage: UserMetrics}}``.
        hybrid_names: Names of hybridrec's own models.
        online: Per seed, ``{model: {"with"|"without": UserMetrics}}`` (may be empty).

    Returns:
        ``{"seeds", "models": {name: {"role", "test": {metric: interval or mean},
        "valid": {...}}}, "best_peer", "comparisons": {hybrid: {"EASE"|best peer:
        {metric: interval}}}, "online": {...}}`` – intervals as
        :meth:`~training.evaluation.stats.Interval.to_dict`.
    """
    hybrid_names = list(hybrid_names)
    names = list(runs[0]["models"]) if runs else []
    models: dict[str, Any] = {}
    for name in names:
        entry: dict[str, Any] = {"role": model_role(name, hybrid_names)}
        for stage in ("test", "valid"):
            if not all(stage in pu.get(name, {}) for pu in per_user):
                continue
            block: dict[str, Any] = {}
            for metric in CI_METRICS:
                block[metric] = bootstrap_mean(
                    [v for _, v in _pairs(per_user, name, stage, metric)]).to_dict()
            for metric in MEAN_METRICS:
                vals = [r["models"][name][stage].get(metric, float("nan")) for r in runs]
                block[metric] = {"mean": float(np.mean(vals)), "per_seed": vals}
            entry[stage] = block
        entry["fit_seconds"] = float(np.mean([r["models"][name]["fit_seconds"] for r in runs]))
        models[name] = entry
    peers = [n for n in names if models[n]["role"] == "peer" and "test" in models[n]]
    best_peer = max(peers, key=lambda n: models[n]["test"]["ndcg@10"]["mean"], default=None)
    comparisons: dict[str, Any] = {}
    for name in names:
        if models[name]["role"] != "hybrid" or "test" not in models[name]:
            continue
        comparisons[name] = {}
        for other in dict.fromkeys(n for n in (REFERENCE, best_peer) if n and n in peers):
            comparisons[name][other] = {
                metric: _relative(paired_difference(
                    _pairs(per_user, name, "test", metric),
                    _pairs(per_user, other, "test", metric)).to_dict(),
                    models[other]["test"][metric]["mean"])
                for metric in CI_METRICS}
    return {
        "seeds": [r["split"]["seed"] for r in runs],
        "models": models,
        "best_peer": best_peer,
        "comparisons": comparisons,
        "online": summarize_online(online or [], hybrid_names),
    }


def _relative(diff: dict[str, Any], base: float) -> dict[str, Any]:
    diff["relative"] = diff["mean"] / base if base else float("nan")
    return diff


def summarize_online(online: Sequence[dict[str, dict[str, UserMetrics]]],
                     hybrid_names: Sequence[str]) -> dict[str, Any]:
    """Online protocol: per model with/without/gain intervals; hybrid gain minus EASE gain."""
    if not online or not online[0]:
        return {}
    names = [n for n in online[0] if all(n in o for o in online)]
    out: dict[str, Any] = {"models": {}, "gain_vs_EASE": {}}
    gains: dict[str, dict[str, list[tuple[np.ndarray, np.ndarray]]]] = {}
    for name in names:
        block: dict[str, Any] = {}
        gains[name] = {}
        for metric in CI_METRICS:
            w = [(o[name]["with"].users, o[name]["with"].metrics[metric]) for o in online]
            wo = [(o[name]["without"].users, o[name]["without"].metrics[metric]) for o in online]
            block[metric] = {
                "with": bootstrap_mean([v for _, v in w]).to_dict(),
                "without": bootstrap_mean([v for _, v in wo]).to_dict(),
                "gain": paired_difference(w, wo).to_dict(),
            }
            gains[name][metric] = [
                (ua, va - vb) for (ua, va), (_, vb) in zip(w, wo, strict=True)]
        out["models"][name] = block
    if REFERENCE in gains:
        for name in names:
            if name in hybrid_names:
                out["gain_vs_EASE"][name] = {
                    m: paired_difference(gains[name][m], gains[REFERENCE][m]).to_dict()
                    for m in CI_METRICS}
    return out
