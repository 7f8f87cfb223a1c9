"""Process tuning in a fresh interpreter: numeric pools capped, the loaded heap frozen."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = """
import gc, json, os
import numpy as np
from threadpoolctl import threadpool_info
from shared.process_tuning import freeze_heap, limit_compute_threads
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
