"""The ranking network: save/load round trip, fast scorers agree, training learns planted signal."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from shared.contracts.errors import BundleError, ConfigError
from shared.model.ranker_serving import RankerScorer, benchmark
from training.models.ranker import (
    RankerConfig,
    RankingTask,
    build_ranker,
    list_ndcg,
    ndcg_at_k,
    predict_logits,
    train_ranker,
)
from training.models.ranking_lists import RankingLists

N_USERS, N_ITEMS = 30, 50
SHAPES = {"user_idx": 0, "item_idx": 0, "content": 6, "genres": 3, "dense": 4}


def _features(n: int, rng: np.random.Generator, user_features: bool = False) -> dict:
    out = {
        "user_idx": rng.integers(0, N_USERS, n).astype(np.int32),
        "item_idx": rng.integers(0, N_ITEMS, n).astype(np.int32),
        "content": rng.normal(size=(n, 6)).astype(np.float32),
        "genres": (rng.random((n, 3)) < 0.3).astype(np.float32),
        "dense": rng.normal(2.0, 3.0, size=(n, 4)).astype(np.float32),
    }
    if user_features:
        out["user_features"] = (rng.random((n, 2)) < 0.5).astype(np.float32)
    return out


def _model(
    use_ids: bool = True, user_features: bool = False, seed: int = 0, ensemble: int = 1
) -> keras.Model:
    shapes = dict(SHAPES, **({"user_features": 2} if user_features else {}))
    cfg = RankerConfig(
        id_dim=4, content_dim=5, hidden_units=(16, 8), use_ids=use_ids, seed=seed, ensemble=ensemble
    )
    return build_ranker(shapes, N_USERS, N_ITEMS, np.full(4, 2.0), np.full(4, 9.0), cfg)


def _planted_lists(n_lists: int, length: int, seed: int) -> RankingLists:
    """Lists whose relevant items have a high dense[:, 1]; retrieval order is random."""
    rng = np.random.default_rng(seed)
    feats = _features(n_lists * length, rng)
    signal = feats["dense"][:, 1]
    labels = (signal > np.quantile(signal, 0.9)).astype(np.float32)
    offsets = np.arange(0, n_lists * length + 1, length, dtype=np.int64)
    n_rel = np.add.reduceat(labels, offsets[:-1]).astype(np.int64)
    return RankingLists(feats, labels, offsets, n_rel, np.arange(n_lists) % N_USERS)


@pytest.mark.parametrize("use_ids,user_features", [(True, False), (False, True)])
def test_save_load_round_trip_gives_identical_outputs(
    tmp_path: Path, use_ids: bool, user_features: bool
) -> None:
    model = _model(use_ids, user_features)
    feats = _features(64, np.random.default_rng(1), user_features)
    before = predict_logits(model, feats)
    path = tmp_path / "ranker.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True, compile=False)
    np.testing.assert_array_equal(predict_logits(loaded, feats), before)
    assert not np.allclose(before, before[0])  # the outputs depend on the inputs


@pytest.mark.parametrize("use_ids,user_features,ensemble", [(True, True, 1), (False, False, 3)])
def test_scorer_backends_match_keras(
    tmp_path: Path, use_ids: bool, user_features: bool, ensemble: int
) -> None:
    model = _model(use_ids, user_features, seed=3, ensemble=ensemble)
    # Non-trivial weights everywhere, not just the initialisation.
    rng = np.random.default_rng(5)
    model.set_weights(
        [w + rng.normal(0, 0.1, w.shape).astype(w.dtype) for w in model.get_weights()]
    )
    path = tmp_path / "ranker.keras"
    model.save(path)
    scorer = RankerScorer(path)
    for n in (1, 37, 200, 600):  # 600 > NumpyForward.block_rows: blocked path
        feats = _features(n, np.random.default_rng(n), user_features)
        raw = np.asarray(model(feats, training=False))
        assert raw.shape == (n, ensemble)
        ref = raw.mean(axis=1)
        for backend in ("numpy", "tf_function", "eager"):
            np.testing.assert_allclose(scorer.score(feats, backend), ref, atol=1e-5, rtol=0)
    timings = benchmark(scorer, _features(20, rng, user_features), runs=3, warmup=1)
    assert set(timings) == {"predict_ms", "eager_ms", "tf_function_ms", "numpy_ms"}


def test_scorer_rejects_bad_files_and_backends(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="does not exist"):
        RankerScorer(tmp_path / "missing.keras")
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"not a zip")
    with pytest.raises(BundleError, match="cannot load"):
        RankerScorer(bad)
    with pytest.raises(ConfigError):
        RankerScorer(bad, backend="onnx")


def test_listwise_loss_matches_numpy() -> None:
    logits = np.array([[2.0, 1.0, 0.0, 5.0], [0.5, 0.1, 3.0, 1.0]], dtype=np.float32)
    labels = np.array([[1, 0, 1, 1], [0, 0, 0, 0]], dtype=np.float32)
    mask = np.array([[True, True, True, False], [True] * 4])
    got = float(RankingTask("listwise").loss(logits, labels, mask))
    z = logits[0, :3] - np.log(np.exp(logits[0, :3]).sum())
    expected = -(0.5 * z[0] + 0.5 * z[2])  # second list has no positive: skipped
    assert got == pytest.approx(expected, rel=1e-5)
    bce = float(RankingTask("bce").loss(logits, labels, mask))
    x, y = logits[mask], labels[mask]
    assert bce == pytest.approx(
        np.mean(np.maximum(x, 0) - x * y + np.log1p(np.exp(-abs(x)))), rel=1e-5
    )


def test_ndcg_matches_definition() -> None:
    ranked = np.array([[1, 0, 1, 0], [0, 0, 0, 0]])
    got = ndcg_at_k(ranked, np.array([3, 2]), k=10)
    ideal = 1 + 1 / np.log2(3) + 1 / np.log2(4)
    np.testing.assert_allclose(got, [(1 + 1 / np.log2(4)) / ideal, 0.0])


@pytest.mark.parametrize("loss,ensemble", [("listwise", 1), ("bce", 1), ("hybrid", 2)])
def test_training_on_planted_data_beats_retrieval_order(loss: str, ensemble: int) -> None:
    train = _planted_lists(120, 40, seed=10)
    valid = _planted_lists(40, 40, seed=11)
    model = _model(use_ids=False, ensemble=ensemble)
    cfg = RankerConfig(
        epochs=8, patience=8, lists_per_batch=8, learning_rate=3e-3, progress=False, loss=loss
    )
    hist = train_ranker(model, RankingTask(loss), train, valid, cfg)
    before = list_ndcg(valid)  # retrieval (given) order
    after = list_ndcg(valid, predict_logits(model, valid.features))
    assert after > before + 0.3, (before, after)
    assert hist["best_valid_ndcg@10"] == pytest.approx(after)
    assert len(hist["loss"]) >= 1 and hist["loss"][-1] < hist["loss"][0]


def _as_lookups(lists: RankingLists) -> tuple[RankingLists, RankingLists]:
    """The same lists with content and genres kept once per item (as ranking_lists keeps them)."""
    rng = np.random.default_rng(5)
    tables = {"content": rng.normal(size=(N_ITEMS, 6)).astype(np.float32),
              "genres": (rng.random((N_ITEMS, 3)) < 0.3).astype(np.float32)}
    items = lists.features["item_idx"]
    full = dict(lists.features, **{k: v[items] for k, v in tables.items()})
    slim = {k: v for k, v in lists.features.items() if k not in tables}
    return (RankingLists(full, lists.labels, lists.offsets, lists.n_relevant, lists.users),
            RankingLists(slim, lists.labels, lists.offsets, lists.n_relevant, lists.users,
                         item_lookups=tables))


def test_per_item_lookups_train_and_score_like_copied_rows() -> None:
    """Lists that keep content once per item give the same training and scores as copies."""
    train_full, train_slim = _as_lookups(_planted_lists(60, 20, seed=20))
    valid_full, valid_slim = _as_lookups(_planted_lists(20, 20, seed=21))
    assert "content" not in train_slim.features
    cfg = RankerConfig(epochs=2, patience=2, lists_per_batch=8, progress=False)
    scores, hists = [], []
    for train, valid in ((train_full, valid_full), (train_slim, valid_slim)):
        model = _model(use_ids=True, seed=4)
        hists.append(train_ranker(model, RankingTask("listwise"), train, valid, cfg))
        scores.append(predict_logits(model, valid.features, item_lookups=valid.item_lookups))
    np.testing.assert_allclose(scores[1], scores[0], rtol=1e-5, atol=1e-5)
    assert hists[1]["loss"] == pytest.approx(hists[0]["loss"], rel=1e-5)
    assert not np.allclose(scores[0], scores[0][0])
