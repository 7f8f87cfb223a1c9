"""Report files: JSON content, Markdown table and PNG plot."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.image
import pytest

from training.data.dataset import Dataset
from training.evaluation.base import EvalData
from training.evaluation.baselines import ItemKNN, Popularity
from training.evaluation.harness import run_models
from training.evaluation.report import TABLE_COLUMNS, markdown_table, write_report
from training.splits import make_split


@pytest.fixture
def report(synth_ds: Dataset) -> dict:
    split = make_split(synth_ds, "random", k_core=5, seed=3)
    data = EvalData.from_split(synth_ds, split)
    return run_models(
        [Popularity(), ItemKNN(k_grid=(5, 20))], data, dataset=synth_ds, split=split, progress=False
    )


def test_report_files_are_written_and_well_formed(report: dict, tmp_path: Path) -> None:
    paths = write_report(report, tmp_path / "out")
    assert {p.name for p in (tmp_path / "out").iterdir()} == {
        "report.json",
        "report.md",
        "report.png",
    }
    loaded = json.loads(paths["json"].read_text())
    assert loaded["dataset"]["name"] == "synthetic"
    assert loaded["dataset"]["sha256"] == "0" * 64
    assert loaded["split"] == {"kind": "random", "seed": 3, "params": loaded["split"]["params"]}
    assert loaded["split"]["params"]["k_core"] == 5
    assert loaded["split"]["params"]["min_rating"] == 3.0
    assert set(loaded["models"]) == {"Popularity", "ItemKNN"}
    knn = loaded["models"]["ItemKNN"]
    assert knn["hyperparameters"]["k"] in (5, 20)
    for k in (10, 20, 50):
        for metric in ("recall", "ndcg", "hit", "mrr", "coverage"):
            assert 0.0 <= knn["test"][f"{metric}@{k}"] <= 1.0
    assert knn["fit_seconds"] >= 0.0 and knn["score_seconds"]["test"] >= 0.0
    assert knn["test"] == report["models"]["ItemKNN"]["test"]

    md = paths["md"].read_text()
    assert "| Model | R@10 | N@10 | R@20 | N@20 | R@50 | N@50 | HR@10 | MRR@10 | Cov@10 |" in md
    rows = [ln for ln in md.splitlines() if ln.startswith("| ItemKNN |")]
    assert len(rows) == 2  # test and validation tables
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    assert float(cells[1]) == pytest.approx(knn["test"]["recall@10"], abs=5e-5)
    assert float(cells[2]) == pytest.approx(knn["test"]["ndcg@10"], abs=5e-5)

    png = paths["png"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = matplotlib.image.imread(png)
    assert img.shape[0] >= 300 and img.shape[1] >= 800


def test_markdown_table_has_one_row_per_model_and_every_column(report: dict) -> None:
    table = markdown_table(report, "test").splitlines()
    assert len(table) == 2 + len(report["models"])
    for line in table:
        assert line.count("|") == len(TABLE_COLUMNS) + 3
    assert table[2].startswith("| Popularity | ")
    expected = f"{report['models']['Popularity']['test']['ndcg@50']:.4f}"
    assert table[2].split("|")[7].strip() == expected
