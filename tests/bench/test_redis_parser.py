"""bench.redis_parser: both reply parsers measured on the real Redis, report and plot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.redis_parser import HISTORY_LENGTHS, run_parsers
from harness.processes import DEFAULT_REDIS_URL


def test_both_parsers_are_measured_at_every_history_length(tmp_path: Path) -> None:
    report = run_parsers(DEFAULT_REDIS_URL, rounds=20, out_dir=tmp_path)
    assert [r["history"] for r in report["rows"]] == list(HISTORY_LENGTHS)
    for row in report["rows"]:
        assert row["python_ms"] > 0 and row["hiredis_ms"] > 0
        assert row["ratio"] == pytest.approx(row["python_ms"] / row["hiredis_ms"], abs=0.02)
    assert json.loads((tmp_path / "redis_parser.json").read_text())["rows"] == report["rows"]
    assert (tmp_path / "redis_parser.png").stat().st_size > 1000
