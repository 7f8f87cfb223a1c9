"""Process tuning in a fresh interpreter: numeric pools capped, the loaded heap frozen."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from shared.contracts.errors import ConfigError
from shared.serving.process_tuning import with_huge_pages

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = """
import gc, json, os
import numpy as np
from threadpoolctl import threadpool_info
from shared.serving.process_tuning import freeze_heap, limit_compute_threads
before = [p["num_threads"] for p in threadpool_info()]
applied = limit_compute_threads(1, import_tensorflow=True)
import tensorflow as tf
keep = [list(range(10)) for _ in range(20000)]  # long-lived objects, as a model load leaves
frozen = freeze_heap()
print(json.dumps({
    "before": before,
    "after": [p["num_threads"] for p in threadpool_info()],
    "applied": applied,
    "env": os.environ["OMP_NUM_THREADS"],
    "tf": [tf.config.threading.get_intra_op_parallelism_threads(),
           tf.config.threading.get_inter_op_parallelism_threads()],
    "frozen": frozen,
    "freeze_count": gc.get_freeze_count(),
}))
"""


def test_pools_capped_and_heap_frozen() -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["after"] and all(n == 1 for n in got["after"]), got
    assert got["applied"]["blas"] is True and got["env"] == "1"
    assert got["tf"] == [1, 1] and got["applied"]["tensorflow"] is True, got
    assert got["frozen"] >= 20000 and got["freeze_count"] >= 20000  # the heap stays frozen


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "glibc.malloc.hugetlb=1"),
        (
            {"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"},
            "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1",
        ),
        ({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}, "glibc.malloc.hugetlb=0"),  # the user's own
        ({"HYBRIDREC_HUGE_PAGES": "off"}, None),
        ({"HYBRIDREC_HUGE_PAGES": "0", "GLIBC_TUNABLES": "x=1"}, "x=1"),
        ({"HYBRIDREC_HUGE_PAGES": "yes"}, "glibc.malloc.hugetlb=1"),
    ],
)
def test_with_huge_pages_adds_the_tunable_unless_set_or_opted_out(
    env: dict[str, str], expected: str | None
) -> None:
    before = dict(env)
    out = with_huge_pages(env)
    assert out.get("GLIBC_TUNABLES") == expected
    assert env == before  # a new mapping


def test_with_huge_pages_rejects_a_value_it_does_not_know() -> None:
    with pytest.raises(ConfigError, match="HYBRIDREC_HUGE_PAGES must be 1/true/yes/on or 0/false"):
        with_huge_pages({"HYBRIDREC_HUGE_PAGES": "maybe"})


CHILD = """
import json
from shared.serving.process_tuning import huge_page_report
block = bytearray(96 << 20)  # one malloc'd block, zero-filled: every page touched
print(json.dumps(huge_page_report()))
"""


def _child_report(env: dict[str, str]) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=120, check=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_process_started_with_the_tunable_gets_huge_pages_for_large_blocks() -> None:
    drop = ("GLIBC_TUNABLES", "HYBRIDREC_HUGE_PAGES")
    base = {k: v for k, v in os.environ.items() if k not in drop}
    on = _child_report(with_huge_pages(base))
    off = _child_report(with_huge_pages({**base, "HYBRIDREC_HUGE_PAGES": "0"}))
    assert on["glibc_tunables"] == "glibc.malloc.hugetlb=1" and off["glibc_tunables"] == ""
    assert on["anon_mb"] >= 96 and off["anon_mb"] >= 96, (on, off)
    # What each kernel mode must give; this machine's mode is in the failure message.
    if on["thp_mode"] == "madvise":  # only advised memory gets huge pages: the tunable matters
        assert on["anon_huge_mb"] >= 64 and off["anon_huge_mb"] < 16, (on, off)
    elif on["thp_mode"] == "always":
        assert on["anon_huge_mb"] >= 64, (on, off)
    elif on["thp_mode"] == "never":  # the advice is ignored, and harmless
        assert on["anon_huge_mb"] == 0 and off["anon_huge_mb"] == 0, (on, off)
    else:
        raise AssertionError(f"unexpected THP mode on this machine: {on}")
