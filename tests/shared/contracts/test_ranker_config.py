"""The typed ranker settings of a bundle: what training writes, what the services read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import pytest

from shared.contracts import bundle_layout as L
from shared.contracts.bundle import Bundle, load_bundle
from shared.contracts.errors import BundleError
from shared.contracts.ranker_config import RankerConfig


class _Files:
    """A stand-in bundle holding one JSON file."""

    version = "v-test"

    def __init__(self, data: Any) -> None:
        self.data = data

    def load_json(self, rel: str) -> Any:
        assert rel == L.RANKER_CONFIG
        return self.data


GOOD = {
    "source_names": ["two_tower", "content", "popularity"],
    "config": {
        "depth": 60,
        "max_candidates": 100,
        "min_candidates": 30,
        "fill_sources": ["popularity"],
        "history_window": 20,
        "epochs": 3,  # training-only keys are kept in the file and ignored here
    },
    "dense_names": ["x"],
}


def test_reads_what_training_writes(small_bundle: Path) -> None:
    bundle = load_bundle(small_bundle, verify=False)
    cfg = RankerConfig.of(bundle)
    raw = json.loads(bundle.path(L.RANKER_CONFIG).read_text())
    assert cfg.source_names == tuple(raw["source_names"]) and cfg.source_names
    assert cfg.config.depth == raw["config"]["depth"]
    assert cfg.config.max_candidates == raw["config"]["max_candidates"]


def test_a_good_file_with_extra_keys() -> None:
    cfg = RankerConfig.of(cast(Bundle, _Files(GOOD)))
    assert cfg.config.fill_sources == ("popularity",) and cfg.config.history_window == 20


@pytest.mark.parametrize(
    ("broken", "where"),
    [
        ({**GOOD, "source_names": []}, "source_names"),
        ({**GOOD, "config": {**GOOD["config"], "depth": 0}}, "config.depth"),
        ({k: v for k, v in GOOD.items() if k != "config"}, "config"),
        ({**GOOD, "config": {**GOOD["config"], "max_candidates": "many"}}, "max_candidates"),
    ],
)
def test_a_broken_file_is_a_bundle_error_naming_the_field(broken: Any, where: str) -> None:
    with pytest.raises(BundleError, match=rf"v-test: ranker/two_stage\.json .*{where}.*retrain"):
        RankerConfig.of(cast(Bundle, _Files(broken)))
