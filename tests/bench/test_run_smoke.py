"""`make bench` end to end in smoke mode: every section runs and writes valid results.

Uses the session's small real bundle as the base; the synthetic bundle it
builds is loaded by the real retrieval service (the service section) and by the
real ranking engine here. The end-to-end sections are not in smoke mode; their summary
rows are checked on a report in the shape ``bench.e2e.run_e2e`` writes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench import run
from shared.contracts import bundle_layout as L
from shared.contracts.bundle import load_bundle

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def smoke(small_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench-results")
    cache = tmp_path_factory.mktemp("bench-cache")
    code = run.main(["--smoke", "--items", "2500", "--base-bundle", str(small_bundle),
                     "--out", str(out), "--cache", str(cache)])
    assert code == 0
    return out


@pytest.mark.slow
def test_every_section_writes_json_and_plots(smoke: Path) -> None:
    for name in ("training", "ranker", "synthetic_bundle", "ann", "service", "filters",
                 "summary"):
        data = json.loads((smoke / f"{name}.json").read_text())
        assert data["benchmark"] == name
        assert data["machine"]["cpus"] >= 1
        speed = data["machine"]["cpu_speed"]
        assert speed["python_loop_ms"] > 0 and speed["numpy_scan_ms"] > 0
        assert speed["random_rows_ms"] > 0
    for png in ("training_stages", "ranker", "ann_recall_latency", "filters"):
        head = (smoke / f"{png}.png").read_bytes()[:8]
        assert head == PNG_MAGIC, png
    summary = json.loads((smoke / "summary.json").read_text())
    areas = {row[0] for row in summary["rows"]}
    assert {"training", "ranker", "bundle", "ann", "service", "filters"} <= areas
    assert (smoke / "summary.md").read_text().startswith("| area |")


@pytest.mark.slow
def test_figures_are_consistent(smoke: Path) -> None:
    ann = json.loads((smoke / "ann.json").read_text())
    assert ann["n_items"] == 2500
    for r in ann["annoy"] + ann["hnswlib"]:
        for s in r["search"]:
            assert 0.0 <= s["recall"] <= 1.0
            assert 0 < s["p50_ms"] <= s["p99_ms"]
    best = max(s["recall"] for r in ann["annoy"] for s in r["search"])
    assert best > 0.5  # the index finds most true neighbours at this size
    assert "hnsw_pick" in ann and "hnsw_defaults_match_pick" in ann
    assert ann["hnsw_code_defaults"]["ef"] > 0
    content = json.loads((smoke / "ann_content.json").read_text())
    assert [r["ef"] for r in content["hnsw"]["search"]] == [100, 250, 500, 1000]
    assert max(r["recall"] for r in content["hnsw"]["search"]) > 0.5
    # Both graphs timed in child processes without and with huge pages, same queries.
    huge = content["huge_pages"]
    assert set(huge["graphs"]) == {"content", "item_tower"}
    for st in huge["graphs"].values():
        assert st["with"]["n"] == st["without"]["n"] > 0 and st["ratio_p50"] > 0
    assert [m["glibc_tunables"] for m in huge["memory"]["with"]] == ["glibc.malloc.hugetlb=1"]
    assert [m["glibc_tunables"] for m in huge["memory"]["without"]] == [""]
    (flt,) = json.loads((smoke / "filters.json").read_text())["runs"]
    assert flt["n_items"] == 2500 and flt["index"] == "exact"
    for label, share in (("50pct", 0.5), ("1pct", 0.01)):
        run_ = flt[label]
        # the filter keeps about its share of the items; exact search finds every neighbour
        assert 0 < run_["passing"] < 2500 and abs(run_["passing_share"] - share) < share
        assert run_["recall_vs_brute_force"] == 1.0 and run_["ratio_to_none"] > 0
        assert run_["total"]["median_ms"] > 0
    svc = json.loads((smoke / "service.json").read_text())
    for phase in ("cold_known_users", "warm_known_users", "paced_mix"):
        assert svc[phase]["errors"] == 0, phase
        assert svc[phase]["n"] > 0
    assert svc["sample_response"]["n_items"] > 0
    assert svc["rss_ready_mb"] > 0
    # The same traffic against the Annoy backend, in the same run.
    assert svc["ann_backend"] == "auto" and svc["annoy_baseline"]["ann_backend"] == "annoy"
    assert svc["annoy_baseline"]["paced_mix"]["errors"] == 0
    # And against the graphs without huge pages: the service reports what it got.
    no_huge = svc["no_huge_pages_baseline"]
    assert svc["huge_pages"] is True and no_huge["huge_pages"] is False
    assert no_huge["ann_backend"] == "auto" and no_huge["paced_mix"]["errors"] == 0
    assert "GLIBC_TUNABLES=glibc.malloc.hugetlb=1" in svc["memory_check"]
    assert "GLIBC_TUNABLES=unset" in no_huge["memory_check"]
    ranker = json.loads((smoke / "ranker.json").read_text())
    for r in ranker["sizes"]:
        assert r["max_abs_diff_numpy_vs_tf"] < 1e-3  # same weights, same scores
    training = json.loads((smoke / "training.json").read_text())
    assert training["training"]["stages_s"]
    assert training["bert"]["items_per_s"] > 0


@pytest.mark.slow
def test_synthetic_bundle_is_a_real_bundle(smoke: Path) -> None:
    from services.ranking.engine import RankingEngine
    from services.ranking.settings import RankingSettings
    from shared.contracts.internal_v1 import CandidateColumns, RankRequest
    from shared.model.features import FeatureEncoder

    report = json.loads((smoke / "synthetic_bundle.json").read_text())
    bundle = load_bundle(report["bundle"], verify=True)  # every checksum
    # make bench builds the HNSW graphs at every size (--hnsw), with their recall.
    assert report["hnsw"]["content"]["n_items"] == report["hnsw"]["item_tower"]["n_items"] == 2500
    assert report["metrics"]["hnsw_recall@100_content"] > 0.5
    items = bundle.load_parquet(L.ITEMS)
    n_real = report["n_real"]
    assert len(items) == 2500 and items["item_id"].is_unique
    assert len(bundle.load_npy(L.ITEM_VECTORS)) == len(bundle.load_npy(L.CONTENT_VECTORS)) == 2500
    norms = np.linalg.norm(np.asarray(bundle.load_npy(L.CONTENT_VECTORS)), axis=1)
    assert np.allclose(norms, 1.0, atol=1e-4)
    assert FeatureEncoder.load(bundle.path(L.FEATURES)).n_items == 2500
    engine = RankingEngine(RankingSettings(artifacts=str(bundle.root)), bundle)
    new_ids = [str(i) for i in items["item_id"].iloc[n_real:n_real + 20]]
    old_ids = [str(i) for i in items["item_id"].iloc[:5]]
    ids = new_ids + old_ids[2:]
    req = RankRequest(history=old_ids[:2], columns=CandidateColumns(
        item_ids=ids, scores=[0.5] * len(ids), sources=["two_tower"] * len(ids),
        source_scores={"two_tower": [0.5] * len(ids)},
        source_ranks={"two_tower": list(range(1, len(ids) + 1))}))
    ranked = engine.rank(req)
    assert sorted(x.item_id for x in ranked.items) == sorted(new_ids + old_ids[2:])


def _e2e_report(label: str, p99s: dict[float, float]) -> dict[str, Any]:
    """A report in the shape :func:`bench.e2e.run_e2e` writes (two rates)."""
    runs = []
    for rate, p99 in p99s.items():
        runs.append({
            "rate": rate,
            "baseline": {"latency": {"p99_ms": 1.5}},
            "load": {
                "achieved_rps": rate, "errors": {"total": 0},
                "latency": {"p50_ms": p99 / 5, "p95_ms": p99 / 2, "p99_ms": p99},
                "result_cache": {"hit_rate": 0.8, "latency_by_outcome": {
                    "hit": {"p99_ms": 5.0}, "miss": {"p99_ms": p99 * 1.3}}},
            },
        })  # fmt: skip
    goal = {"rate": 200.0, "p99_ms": 25.0}
    return {"label": label, "goal": goal, "runs": runs, "machine": {"cpu_speed": {"x": 1}},
            "goal_met": p99s[200.0] <= goal["p99_ms"]}


def test_e2e_rows_name_each_catalogue_and_its_goal() -> None:
    res = {
        "e2e": run.e2e_summary(_e2e_report("ml-latest-small", {50.0: 12.0, 200.0: 14.0})),
        "e2e_synthetic": run.e2e_summary(_e2e_report("synthetic-1000000",
                                                     {50.0: 16.0, 200.0: 31.0})),
    }
    syn = res["e2e_synthetic"]["runs"][1]
    assert syn["miss_p99_ms"] == pytest.approx(40.3) and syn["hit_rate"] == 0.8
    assert syn["floor_p99_ms"] == 1.5 and syn["p95_ms"] == 15.5
    rows = [r for r in run.summarise(res) if r[0] == "e2e"]
    assert len(rows) == 6
    by_measure = {m: v for _, m, v in rows}
    assert by_measure["ml-latest-small: goal p99 <= 25 ms at 200 req/s, no errors"] == "True"
    assert by_measure["synthetic-1000000: goal p99 <= 25 ms at 200 req/s, no errors"] == "False"
    at200 = next(v for m, v in by_measure.items() if m.startswith("synthetic-1000000, ")
                 and " 200 req/s" in m)
    assert at200 == "6.2 / 31 ms (40 ms, 80 % hits; 1.5 ms), 0"
