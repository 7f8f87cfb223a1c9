"""The ``hybridrec`` command line: flags reach the pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hybridrec import cli


@pytest.mark.parametrize(
    ("flags", "hnsw"), [([], None), (["--hnsw"], True), (["--no-hnsw"], False)]
)
def test_train_hnsw_flag_reaches_the_pipeline(
    flags: list[str], hnsw: bool | None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import training.pipeline

    seen: dict[str, Any] = {}

    def fake_train(**kwargs: Any) -> Path:
        seen.update(kwargs)
        return tmp_path / "bundle"

    monkeypatch.setattr(training.pipeline, "run_train", fake_train)
    code = cli.main(["train", "--data", str(tmp_path / "d.zip"), "--out", str(tmp_path), *flags])
    assert code == 0 and seen["hnsw"] is hnsw
    assert capsys.readouterr().out.strip() == str(tmp_path / "bundle")


def test_train_config_hnsw_key_is_accepted(tmp_path: Path) -> None:
    from training.pipeline import TrainConfig

    cfg = tmp_path / "cfg.json"
    cfg.write_text('{"hnsw": true}')
    assert TrainConfig.from_file(str(cfg)).hnsw is True
    assert TrainConfig.from_file(str(cfg)).wants_hnsw(10) is True
    default = TrainConfig.from_file(None)
    assert default.hnsw is None
    assert default.wants_hnsw(100_000) is False and default.wants_hnsw(100_001) is True
    cfg.write_text('{"hnsw": false}')
    assert TrainConfig.from_file(str(cfg)).wants_hnsw(10**7) is False
