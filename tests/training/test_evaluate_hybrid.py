"""hybridrec's own models run in the same evaluation harness as the baselines."""

from __future__ import annotations

import json
from pathlib import Path

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
    models = report["models"]
    assert set(models) == {"Random", "Content (BERT)"}
    content, rnd = models["Content (BERT)"]["test"], models["Random"]["test"]
    assert content["ndcg@10"] > rnd["ndcg@10"], (content, rnd)
    written = json.loads((tmp_path / "out" / "report.json").read_text())
    assert "Content (BERT)" in written["models"]
    assert (tmp_path / "out" / "report.png").stat().st_size > 0
