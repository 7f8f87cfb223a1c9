"""bench.train_scale: size parsing and the per-stage growth plot (the runs take hours)."""

from __future__ import annotations

import json
from pathlib import Path

from bench.train_scale import main, parse_size


def test_sizes_parse() -> None:
    assert [parse_size(s) for s in ("1M", "2.5m", "250k", "5000000")] == [
        1_000_000, 2_500_000, 250_000, 5_000_000]


def test_plot_only_redraws_from_the_json(tmp_path: Path) -> None:
    runs = [{"interactions_requested": n, "wall_s": w, "peak_rss_gb": m,
             "stages_s": {"load data": w / 10, "two-tower retrieval model": w / 2}}
            for n, w, m in ((1_000_000, 600.0, 3.1), (5_000_000, 1500.0, 6.0))]
    (tmp_path / "training_scale.json").write_text(json.dumps({"runs": runs}))
    assert main(["--plot-only", "--out", str(tmp_path)]) == 0
    png = tmp_path / "training_scale.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
