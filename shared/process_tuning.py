"""Per-process tuning of the services: numeric thread pools and the garbage collector.

Thread pools. A service answers many small requests on one event loop. Multi-threaded BLAS and
TensorFlow's thread pools don't make a 300-candidate request faster, but their idle
workers spin-wait after each call: measured here, one retrieval request took 8 ms of
wall time and 14 ms of CPU, and under load the spinning threads took the core the
other services needed. :func:`limit_compute_threads` caps every pool at
``HYBRIDREC_COMPUTE_THREADS`` (default 1) before the models load.

Garbage collector. TensorFlow, Keras and a loaded bundle leave millions of
long-lived Python objects; every full collection walked them all and stopped the
event loop for 100-600 ms every few seconds under load (requests queued behind it).
:func:`freeze_heap` moves what exists after a model load into the collector's
permanent generation, so collections only look at what requests allocate.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
import time

log = logging.getLogger("hybridrec.threads")

_ENV = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
)


def limit_compute_threads(n: int, *, import_tensorflow: bool = False) -> dict[str, object]:
    """Cap BLAS/OpenMP, TensorFlow and PyTorch at ``n`` threads in this process.

    Environment variables cover libraries not loaded yet; threadpoolctl resizes the
    BLAS and OpenMP pools already loaded; TensorFlow (imported now when
    ``import_tensorflow``, as the services that run models do) and PyTorch are
    resized when imported (TensorFlow only before its runtime has started).

    Returns:
        What was applied, for the start-up log.
    """
    n = max(1, int(n))
    for name in _ENV:
        os.environ[name] = str(n)
    applied: dict[str, object] = {"threads": n}
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=n)  # stays in force: not used as a context manager
        applied["blas"] = True
    except ImportError:  # pragma: no cover - a dependency of scikit-learn
        applied["blas"] = False
    if "tensorflow" in sys.modules or import_tensorflow:
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(n)
            tf.config.threading.set_inter_op_parallelism_threads(n)
            applied["tensorflow"] = True
        except RuntimeError:  # the runtime started: the environment did not apply
            applied["tensorflow"] = "already initialised"
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)
        applied["torch"] = True
    log.info("compute threads per library: %s", applied)
    return applied


def freeze_heap() -> int:
    """Collect, then exempt every object alive now from later collections.

    Called after a bundle is adopted (start-up and each hot reload): the previous
    freeze is lifted first so the replaced engine's cycles can be collected.

    Returns:
        The number of objects frozen.
    """
    start = time.perf_counter()
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    count = gc.get_freeze_count()
    log.info(
        "garbage collector: %d objects frozen after the load (%.0f ms)",
        count,
        (time.perf_counter() - start) * 1000.0,
    )
    return count
