"""Report files: JSON content, Markdown tables with intervals, PNG plot, per-user CSVs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib.image
import pandas as pd
import pytest

from training.data.dataset import Dataset
from training.evaluation.base import EvalData
from training.evaluation.baselines import EASE, ItemKNN, Popularity
from training.evaluation.harness import UserMetrics, run_models
from training.evaluation.report import (
    TABLE_COLUMNS,
    markdown_table,
    summary_table,
    write_report,
)
from training.evaluation.summary import summarize
from training.splits import make_split


@pytest.fixture
def runs(synth_ds: Dataset) -> tuple[list[dict], list[dict[str, dict[str, UserMetrics]]], list]:
    """Two seeds; ItemKNN plays the hybrid (compared with EASE and the best peer)."""
    runs, per_user, ids = [], [], []
    for seed in (3, 4):
        split = make_split(synth_ds, "random", k_core=5, seed=seed)
        data = EvalData.from_split(synth_ds, split)
        pu: dict[str, dict[str, UserMetrics]] = {}
        runs.append(run_models([Popularity(), ItemKNN(k_grid=(5, 20)), EASE(lambdas=(5., 50.))],
                               data, dataset=synth_ds, split=split, progress=False,
                               per_user=pu))
        per_user.append(pu)
        ids.append(data.user_ids)
    return runs, per_user, ids


def _report(runs: Any) -> dict:
    run_list, per_user, _ = runs
    return {"dataset": run_list[0]["dataset"],
            "split": {"kind": "random", "seeds": [3, 4], "params": {}},
            "ks": [10, 20, 50], "command": "hybridrec evaluate --seeds 2",
            "summary": summarize(run_list, per_user, ["ItemKNN"]), "runs": run_list}


def test_report_files_are_written_and_well_formed(runs: Any, tmp_path: Path) -> None:
    report = _report(runs)
    paths = write_report(report, tmp_path / "out", per_user=runs[1], user_ids=runs[2])
    assert {p.name for p in (tmp_path / "out").iterdir()} == {
        "report.json", "report.md", "report.png", "per_user"}
    loaded = json.loads(paths["json"].read_text())
    summ = loaded["summary"]
    assert summ["seeds"] == [3, 4]
    assert summ["models"]["ItemKNN"]["role"] == "hybrid"
    assert summ["best_peer"] in ("Popularity", "EASE")
    knn = summ["models"]["ItemKNN"]["test"]["ndcg@10"]
    per_seed = [r["models"]["ItemKNN"]["test"]["ndcg@10"] for r in runs[0]]
    assert knn["per_seed"] == pytest.approx(per_seed)
    assert knn["mean"] == pytest.approx(sum(per_seed) / 2)
    assert knn["ci_low"] <= knn["mean"] <= knn["ci_high"]
    comp = summ["comparisons"]["ItemKNN"]["EASE"]["recall@10"]
    assert comp["ci_low"] <= comp["mean"] <= comp["ci_high"]
    assert comp["significant"] == (comp["ci_low"] > 0 or comp["ci_high"] < 0)

    md = paths["md"].read_text()
    assert "| Model | role | R@10 [95% CI] | N@10 [95% CI] |" in md
    assert "| ItemKNN | EASE |" in md
    assert "### Seed 3" in md and "### Seed 4" in md
    assert "EASE: chose lambda=" in md

    users = pd.read_csv(tmp_path / "out" / "per_user" / "seed3.csv")
    assert set(users["stage"]) == {"valid", "test"}
    rows = users[(users["stage"] == "test") & (users["model"] == "ItemKNN")]
    assert rows["ndcg@10"].mean() == pytest.approx(per_seed[0], abs=1e-5)
    assert rows["user_id"].is_unique

    img = matplotlib.image.imread(paths["png"])
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert img.shape[0] >= 300 and img.shape[1] >= 800


def test_summary_table_has_one_row_per_model(runs: Any) -> None:
    table = summary_table(_report(runs)).splitlines()
    assert len(table) == 2 + 3
    assert any(line.startswith("| ItemKNN | hybrid |") for line in table)


def test_markdown_table_has_one_row_per_model_and_every_column(runs: Any) -> None:
    report = runs[0][0]
    table = markdown_table(report, "test").splitlines()
    assert len(table) == 2 + len(report["models"])
    for line in table:
        assert line.count("|") == len(TABLE_COLUMNS) + 3
    assert table[2].startswith("| Popularity | ")
    expected = f"{report['models']['Popularity']['test']['ndcg@50']:.4f}"
    assert table[2].split("|")[7].strip() == expected
