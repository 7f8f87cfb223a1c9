"""hybridrec's own models run in the same evaluation harness as the baselines."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.support.small_bundle import write_small_movielens
from training.evaluate_cmd import run_evaluate

pytestmark = pytest.mark.slow


def test_content_model_beats_random_on_cold_items(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HYBRIDREC_CACHE_DIR", str(tmp_path / "cache"))
    data = write_small_movielens(tmp_path / "data", n_items=300, n_users=100)
    report = run_evaluate(
        data,
        "cold-items",
        tmp_path / "out",
        models=["random", "content"],
        progress=False,
        echo=False,
        split_options={"k_core": 5},
    )
    models = report["runs"][0]["models"]
    assert set(models) == {"Random", "Content (BERT)"}
    content, rnd = models["Content (BERT)"]["test"], models["Random"]["test"]
    assert content["ndcg@10"] > rnd["ndcg@10"], (content, rnd)
    written = json.loads((tmp_path / "out" / "report.json").read_text())
    assert written["summary"]["models"]["Content (BERT)"]["role"] == "hybrid"
    assert written["summary"]["best_peer"] is None  # Random is a reference, not a peer
    assert (tmp_path / "out" / "report.png").stat().st_size > 0


def test_two_stage_fold_in_reproduces_the_offline_ranking_and_moves_with_events() -> None:
    from tests.training.models.test_two_stage import N_USERS, _data, _model
    from training.evaluation.online import TwoStageFoldIn, fold_in_adapter
    from training.models.ranking_sources import user_histories

    data, content = _data()
    model = _model(content, loss="bce")
    model.fit(data)
    scorer = fold_in_adapter(model)
    assert isinstance(scorer, TwoStageFoldIn)
    users = np.arange(N_USERS)
    hist = user_histories(data.train_interactions, data.n_users)
    served = scorer.score_histories(users, [hist[u] for u in users])
    offline = model.score(users)
    # Each source answers as offline, except that the serving path keeps only positive
    # neighbour-table scores (score_from_history) where the offline top-n also keeps
    # zero-score items at the end of the list.
    from shared.model.candidates import top_n

    for u in users[:10]:
        seen = data.train[[u]].toarray() > 0
        for name in model.source_names:
            idx, sc = top_n(model.fitted[name].score(np.array([u])), model.config.depth, seen)
            off = idx[0][np.isfinite(sc[0]) & ((sc[0] > 0) | (name != "ease"))]
            got, _ = scorer._source_list(name, int(u), hist[u], np.flatnonzero(seen[0]))
            assert list(got) == list(off), (name, u)
    top5 = [len(set(np.argsort(-offline[u])[:5]) & set(np.argsort(-served[u])[:5])) / 5
            for u in users]
    assert np.mean(top5) >= 0.5, np.mean(top5)
    # Feed a user of cluster A (items 0-14) five items of cluster B as events.
    u = 0
    events = np.setdiff1d(np.arange(15, 30), hist[u])[:5]
    moved = scorer.score_histories(np.array([u]), [np.concatenate([hist[u], events])])[0]
    assert (moved[events] <= 1.0).all()  # consumed events are never candidates
    before_top = set(np.argsort(-served[u])[:5])
    after_top = set(np.argsort(-moved)[:5])
    assert before_top != after_top
    share_b = lambda top: np.mean([i >= 15 for i in top])  # noqa: E731
    assert share_b(after_top) > share_b(before_top)
