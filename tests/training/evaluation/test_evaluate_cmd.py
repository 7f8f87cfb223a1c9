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


def test_cold_items_run_over_two_seeds_writes_the_report(
    bundled_zip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = run_evaluate(bundled_zip, "cold-items", tmp_path, seeds=2,
                          models=["genrepopularity", "random", "oracle"], progress=False)
    summ = report["summary"]
    oracle = "Oracle: test popularity (ceiling, reads test)"
    assert list(summ["models"]) == ["GenrePopularity", "Random", oracle]
    assert summ["models"][oracle]["role"] == "oracle"
    assert summ["best_peer"] == "GenrePopularity"  # the oracle and Random are never peers
    assert report["split"]["seeds"] == [42, 43]
    runs = report["runs"]
    assert [r["split"]["seed"] for r in runs] == [42, 43]
    assert runs[0]["eval_data"]["n_candidates"] < runs[0]["eval_data"]["n_items"]
    # different seeds hold out different items
    assert runs[0]["models"]["Random"]["test"] != runs[1]["models"]["Random"]["test"]
    assert len(report["dataset"]["sha256"]) == 64
    out = capsys.readouterr().out
    assert "| GenrePopularity | peer (best peer) |" in out and "| Random | reference |" in out
    on_disk = json.loads((tmp_path / "report.json").read_text())
    assert on_disk["summary"]["models"]["Random"] == summ["models"]["Random"]
    assert on_disk["summary"]["online"] == {}  # no online protocol for cold items
    for name in ("report.md", "report.png", "per_user/seed42.csv", "per_user/seed43.csv"):
        assert (tmp_path / name).stat().st_size > 0


def test_extra_models_plug_in(bundled_zip: Path, tmp_path: Path) -> None:
    report = run_evaluate(
        bundled_zip,
        "temporal",
        tmp_path,
        models=["Popularity", "EASE"],
        extra_models=[TopTrainPopular()],
        progress=False,
        echo=False,
    )
    run = report["runs"][0]
    assert list(run["models"]) == ["Popularity", "EASE", "ExtraPop"]
    pop, extra = run["models"]["Popularity"], run["models"]["ExtraPop"]
    assert extra["test"] == pop["test"]
    assert extra["hyperparameters"] == {"source": "extra"}
    # The online protocol ran for EASE (it folds events into a history), not for the others.
    online = report["summary"]["online"]["models"]
    assert list(online) == ["EASE"]
    assert set(online["EASE"]["ndcg@10"]) == {"with", "without", "gain"}
    with pytest.raises(ConfigError, match="factory"):
        run_evaluate(bundled_zip, "random", tmp_path / "x", seeds=2, models=["popularity"],
                     extra_models=[TopTrainPopular()], progress=False, echo=False,
                     online=False)


def test_default_models_per_split_and_unknown_names() -> None:
    peers = ["Popularity", "ItemKNN", "EASE", "ALS", "RP3beta"]
    assert [m.name for m in build_baselines("random")] == peers
    assert [m.name for m in build_baselines("temporal")] == peers
    # ContentPopularity is built with hybridrec's models (it needs the content vectors).
    assert [m.name for m in build_baselines("cold-items")] == [
        "GenrePopularity", "Random", "Oracle: test popularity (ceiling, reads test)"]
    with pytest.raises(ConfigError, match="seeds"):
        run_evaluate("unused", "random", "unused", seeds=0)
    with pytest.raises(ConfigError, match="unknown model"):
        build_baselines("random", ["ease", "bpr"])
    with pytest.raises(ConfigError, match="unknown split"):
        build_baselines("leave-one-out")


def test_cli_evaluate_flags() -> None:
    from hybridrec.cli import build_parser

    args = build_parser().parse_args(
        ["evaluate", "--split", "temporal-user", "--seeds", "3", "--no-online"])
    assert (args.split, args.seeds, args.online, args.seed) == ("temporal-user", 3, False, 42)
    defaults = build_parser().parse_args(["evaluate"])
    assert (defaults.seeds, defaults.online) == (1, True)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["evaluate", "--seeds", "three"])
