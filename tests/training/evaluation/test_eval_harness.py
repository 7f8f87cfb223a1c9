"""The evaluation harness: masking, candidates, skipping, batching, ties and run_models."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from shared.contracts.errors import ConfigError, DataError
from training.data.dataset import Dataset
from training.evaluation.base import EvalData, Recommender
from training.evaluation.harness import evaluate, run_models, stage_candidates
from training.splits import make_split


class MatrixModel:
    """Scores = a fixed [n_users, n_items] matrix (a test double that may peek at anything)."""

    def __init__(self, name: str, scores: np.ndarray) -> None:
        self.name = name
        self.scores = scores.astype(np.float32)
        self.hyperparameters = {"kind": "fixed"}
        self.fitted = False

    def fit(self, data: EvalData) -> None:
        self.fitted = True

    def score(self, user_idx: np.ndarray) -> np.ndarray:
        return self.scores[user_idx]


def _dense(m: sp.csr_matrix) -> np.ndarray:
    return np.asarray(m.toarray(), dtype=np.float32)


def test_matrix_model_is_a_recommender() -> None:
    assert isinstance(MatrixModel("m", np.zeros((1, 1))), Recommender)


def test_seen_items_are_masked_even_when_scored_highest(synth_data: EvalData) -> None:
    d = synth_data
    # Train items best, then valid, then test: only masking can make test items rank first.
    scores = 100 * _dense(d.train) + 10 * _dense(d.valid) + _dense(d.test)
    res = evaluate(MatrixModel("cheater", scores), d, stage="test", ks=(50,), progress=False)
    assert res["recall@50"] == pytest.approx(1.0)
    assert res["ndcg@50"] == pytest.approx(1.0)
    # Valid stage masks train only, so valid items rank first.
    res_v = evaluate(MatrixModel("cheater", scores), d, stage="valid", ks=(50,), progress=False)
    assert res_v["ndcg@50"] == pytest.approx(1.0)
    # Control: a model that ranks the test items last scores zero at K=10.
    worst = -_dense(d.test)
    res_w = evaluate(MatrixModel("worst", worst), d, stage="test", ks=(10,), progress=False)
    assert res_w["recall@10"] == 0.0


def test_users_without_relevant_items_are_skipped(synth_data: EvalData) -> None:
    d = synth_data
    test = d.test.tolil()
    test[0, :] = 0
    d2 = EvalData(**{**d.__dict__, "test": sp.csr_matrix(test)})
    d2.test.eliminate_zeros()
    res = evaluate(MatrixModel("m", _dense(d.test)), d2, ks=(10,), progress=False)
    assert res["n_users"] == float(np.count_nonzero(np.diff(d2.test.indptr)))
    assert res["n_users"] == d.n_users - 1


def test_batching_does_not_change_results(synth_data: EvalData) -> None:
    rng = np.random.default_rng(3)
    model = MatrixModel("rand", rng.random((synth_data.n_users, synth_data.n_items)))
    a = evaluate(model, synth_data, batch_size=7, progress=False)
    b = evaluate(model, synth_data, batch_size=1024, progress=False)
    a.pop("score_seconds")
    b.pop("score_seconds")
    assert a == b


def test_ties_are_not_broken_by_item_id(synth_data: EvalData) -> None:
    # Every user's test items are the 10 lowest item ids: an id tie-break would give a
    # constant model perfect recall.
    n_users, n_items = 30, 200
    test = np.zeros((n_users, n_items), dtype=np.float32)
    test[:, :10] = 1
    train = np.zeros_like(test)
    train[:, 100:110] = 1
    empty = sp.csr_matrix(np.zeros_like(test))
    data = EvalData(
        **{
            **synth_data.__dict__,
            "user_ids": np.arange(n_users),
            "item_ids": np.arange(n_items),
            "train": sp.csr_matrix(train),
            "valid": empty,
            "test": sp.csr_matrix(test),
        }
    )
    const = np.zeros((n_users, n_items), dtype=np.float32)
    res = evaluate(MatrixModel("const", const), data, ks=(10,), progress=False)
    assert res["recall@10"] < 0.5
    again = evaluate(MatrixModel("const", const), data, ks=(10,), progress=False)
    assert res["recall@10"] == again["recall@10"]


def test_cold_candidates_restrict_the_ranking(synth_ds: Dataset) -> None:
    split = make_split(synth_ds, "cold-items", k_core=5, seed=1)
    data = EvalData.from_split(synth_ds, split)
    assert data.candidate_items is not None and split.cold_items is not None
    assert np.array_equal(data.item_ids[data.candidate_items], split.cold_items)
    # Warm items scored far above: they must not take any top-K slot.
    warm_first = np.ones((data.n_users, data.n_items), dtype=np.float32) * 50
    warm_first[:, data.candidate_items] = 0
    warm_first += _dense(data.test)
    res = evaluate(MatrixModel("warm", warm_first), data, ks=(10,), progress=False)
    n_cold_rel = np.diff(data.test.indptr)
    assert res["n_candidates"] == len(data.candidate_items)
    assert res["n_users"] == float(np.count_nonzero(n_cold_rel))
    assert res["ndcg@10"] == pytest.approx(1.0)
    # The valid stage ranks the warm items only.
    warm = stage_candidates(data, "valid")
    assert warm is not None
    assert not np.isin(warm, data.candidate_items).any()
    assert len(warm) + len(data.candidate_items) == data.n_items


def test_bad_scores_and_arguments_are_reported(synth_data: EvalData) -> None:
    d = synth_data
    with pytest.raises(DataError, match="shape"):
        evaluate(MatrixModel("narrow", np.zeros((d.n_users, 3))), d, progress=False)
    nan = np.zeros((d.n_users, d.n_items))
    nan[0, 0] = np.nan
    with pytest.raises(DataError, match="NaN"):
        evaluate(MatrixModel("nan", nan), d, progress=False)
    with pytest.raises(ConfigError, match="stage"):
        evaluate(MatrixModel("ok", nan), d, stage="train", progress=False)


def test_run_models_fits_and_reports_each_stage(synth_ds: Dataset) -> None:
    split = make_split(synth_ds, "random", k_core=5)
    data = EvalData.from_split(synth_ds, split)
    models = [MatrixModel("a", _dense(data.test)), MatrixModel("a", -_dense(data.test))]
    report = run_models(models, data, ks=(5, 10), dataset=synth_ds, split=split, progress=False)
    assert all(m.fitted for m in models)
    assert list(report["models"]) == ["a", "a-2"]
    entry = report["models"]["a"]
    assert set(entry) >= {"fit_seconds", "score_seconds", "hyperparameters", "valid", "test"}
    assert set(entry["score_seconds"]) == {"valid", "test"}
    assert entry["test"]["recall@10"] > report["models"]["a-2"]["test"]["recall@10"]
    assert entry["hyperparameters"] == {"kind": "fixed"}
    assert report["dataset"]["sha256"] == "0" * 64
    assert report["split"]["params"]["k_core"] == 5
    assert report["ks"] == [5, 10]


def test_per_user_metrics_are_kept_and_average_to_the_report(synth_ds: Dataset) -> None:
    split = make_split(synth_ds, "random", k_core=5)
    data = EvalData.from_split(synth_ds, split)
    per_user: dict = {}
    fitted: list[str] = []
    oracle = MatrixModel("oracle", _dense(data.test))
    report = run_models([oracle], data, ks=(10,), progress=False, per_user=per_user,
                        after_fit=lambda name, model: fitted.append(name))
    assert fitted == ["oracle"]
    res = per_user["oracle"]["test"]
    assert np.array_equal(res.users, np.flatnonzero(np.diff(data.test.indptr) > 0))
    assert res.metrics["recall@10"].mean() == pytest.approx(
        report["models"]["oracle"]["test"]["recall@10"])
    # a model scoring each user's test items highest hits every test item within the top 10
    small = np.diff(data.test.indptr)[res.users] <= 10
    assert (res.metrics["recall@10"][small] == 1.0).all()
