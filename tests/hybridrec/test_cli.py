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


def test_events_export_round_trips_string_ids_into_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``hybridrec events export`` writes the ids the API took; training maps them back."""
    import asyncio

    from shared.stores.events import EventLog
    from tests.support.bookshop import write_bookshop
    from training.data import load_dataset
    from training.feedback_events import fold_events, read_events

    monkeypatch.delenv("HYBRIDREC_REDIS_URL", raising=False)
    state = tmp_path / "state"
    events = [
        {"user_id": "cust-0002", "item_id": "sku-000005", "type": "click", "timestamp": 10**9},
        {"user_id": "296", "item_id": "sku-000006", "type": "view", "timestamp": 10**9 + 1},
    ]

    async def store() -> None:
        log = EventLog(None, state)
        for ev in events:
            await log.append(ev)

    asyncio.run(store())
    out = tmp_path / "events.parquet"
    assert cli.main(["events", "export", "--out", str(out), "--state-dir", str(state)]) == 0
    assert "2 events written" in capsys.readouterr().out
    exported = read_events(out)
    assert exported["user_id"].tolist() == ["cust-0002", "296"]
    assert exported["item_id"].tolist() == ["sku-000005", "sku-000006"]
    shop = load_dataset(str(write_bookshop(tmp_path / "shop", n_items=40, n_users=20)))
    folded = fold_events(shop, exported)
    assert folded.info["events_folded"] == 2 and folded.id_maps is not None
    back = folded.id_maps["users"].to_str(folded.interactions["user_id"].to_numpy())
    assert {"cust-0002", "296"} <= set(back)  # "296" is a new customer of a dense map
