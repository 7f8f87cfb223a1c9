"""Offline evaluation: indexed splits, ranking metrics, the harness, baselines and reports."""

from training.evaluation.base import EvalData, Recommender
from training.evaluation.baselines import (
    EASE,
    GenrePopularity,
    ItemKNN,
    Popularity,
    RandomRecommender,
)
from training.evaluation.harness import evaluate, run_models
from training.evaluation.report import write_report

__all__ = [
    "EASE",
    "EvalData",
    "GenrePopularity",
    "ItemKNN",
    "Popularity",
    "RandomRecommender",
    "Recommender",
    "evaluate",
    "run_models",
    "write_report",
]
