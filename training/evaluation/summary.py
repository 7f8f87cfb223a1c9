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
           metric: str, user_ids: Sequence[np.ndarray] | None = None
           ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per seed, (user ids, values): raw ids when ``user_ids`` maps user_idx, else user_idx."""
    out = []
    for k, pu in enumerate(per_user):
        res = pu[name][stage]
        ids = res.users if user_ids is None else np.asarray(user_ids[k])[res.users]
        out.append((ids, res.metrics[metric]))
    return out


def _interval(pairs: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, Any]:
    return bootstrap_mean([v for _, v in pairs], [u for u, _ in pairs]).to_dict()


def summarize(
    runs: Sequence[dict[str, Any]],
    per_user: Sequence[dict[str, dict[str, UserMetrics]]],
    hybrid_names: Iterable[str],
    online: Sequence[dict[str, dict[str, UserMetrics]]] | None = None,
    user_ids: Sequence[np.ndarray] | None = None,
) -> dict[str, Any]:
    """The multi-seed summary.

    Args:
        runs: One run report per seed (same models in every run).
        per_user: Per seed, ``{model: {stage: UserMetrics}}``.
        hybrid_names: Names of hybridrec's own models.
        online: Per seed, ``{model: {"with"|"without": UserMetrics}}`` (may be empty).
        user_ids: Per seed, the split's raw user ids (user_idx -> id), so that a user
            shared by several seeds is one bootstrap cluster. None = user_idx.

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
                block[metric] = _interval(_pairs(per_user, name, stage, metric, user_ids))
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
                    _pairs(per_user, name, "test", metric, user_ids),
                    _pairs(per_user, other, "test", metric, user_ids)).to_dict(),
                    models[other]["test"][metric]["mean"])
                for metric in CI_METRICS}
    return {
        "seeds": [r["split"]["seed"] for r in runs],
        "models": models,
        "best_peer": best_peer,
        "comparisons": comparisons,
        "online": summarize_online(online or [], hybrid_names, user_ids),
    }


def _relative(diff: dict[str, Any], base: float) -> dict[str, Any]:
    diff["relative"] = diff["mean"] / base if base else float("nan")
    return diff


def summarize_online(online: Sequence[dict[str, dict[str, UserMetrics]]],
                     hybrid_names: Sequence[str],
                     user_ids: Sequence[np.ndarray] | None = None) -> dict[str, Any]:
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
            w = _pairs(online, name, "with", metric, user_ids)
            wo = _pairs(online, name, "without", metric, user_ids)
            block[metric] = {
                "with": _interval(w),
                "without": _interval(wo),
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
