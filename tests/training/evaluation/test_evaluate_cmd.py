"""run_evaluate end to end on the bundled ml-latest-small zip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from shared.contracts.errors import ConfigError
from training.evaluate_cmd import build_baselines, run_evaluate
from training.evaluation.base import EvalData


class TopTrainPopular:
    """An extra model: popularity computed by the model itself (checks the plug-in path)."""

    name = "ExtraPop"

    def __init__(self) -> None:
        self.counts = np.zeros(0, dtype=np.float32)
        self.hyperparameters = {"source": "extra"}

    def fit(self, data: EvalData) -> None:
        self.counts = np.asarray(data.train.sum(axis=0), dtype=np.float32).ravel()

    def score(self, user_idx: np.ndarray) -> np.ndarray:
        return np.tile(self.counts, (len(user_idx), 1))


def test_cold_items_run_writes_report_with_default_models(
    bundled_zip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = run_evaluate(bundled_zip, "cold-items", tmp_path, progress=False)
    assert list(report["models"]) == ["GenrePopularity", "Random"]
    assert report["split"]["kind"] == "cold-items"
    assert report["eval_data"]["n_candidates"] < report["eval_data"]["n_items"]
    assert len(report["dataset"]["sha256"]) == 64
    out = capsys.readouterr().out
    assert "| GenrePopularity |" in out and "| Random |" in out
    on_disk = json.loads((tmp_path / "report.json").read_text())
    assert on_disk["models"]["Random"]["test"] == report["models"]["Random"]["test"]
    assert (tmp_path / "report.md").exists() and (tmp_path / "report.png").exists()


def test_extra_models_plug_in(bundled_zip: Path, tmp_path: Path) -> None:
    report = run_evaluate(
        bundled_zip,
        "temporal",
        tmp_path,
        models=["Popularity"],
        extra_models=[TopTrainPopular()],
        progress=False,
        echo=False,
    )
    assert list(report["models"]) == ["Popularity", "ExtraPop"]
    pop, extra = report["models"]["Popularity"], report["models"]["ExtraPop"]
    assert extra["test"] == pop["test"]
    assert extra["hyperparameters"] == {"source": "extra"}
    assert report["split"]["params"]["test_frac"] == 0.2


def test_default_models_per_split_and_unknown_names() -> None:
    assert [m.name for m in build_baselines("random")] == ["Popularity", "ItemKNN", "EASE"]
    assert [m.name for m in build_baselines("temporal")] == ["Popularity", "ItemKNN", "EASE"]
    assert [m.name for m in build_baselines("cold-items")] == ["GenrePopularity", "Random"]
    with pytest.raises(ConfigError, match="unknown model"):
        build_baselines("random", ["ease", "bpr"])
    with pytest.raises(ConfigError, match="unknown split"):
        build_baselines("leave-one-out")
