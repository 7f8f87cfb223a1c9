"""Per-process tuning of the services: numeric thread pools and the garbage collector.

Thread pools. A service answers many small requests on one event loop. Multi-threaded BLAS and
TensorFlow's thread pools don't make a 300-candidate request faster, but their idle
workers spin-wait after each call, so a request costs more CPU than wall time and under
load the spinning threads take the core the other services need (figures:
``docs/scaling.md#measurements-behind-code-choices``). :func:`limit_compute_threads`
caps every pool at ``HYBRIDREC_COMPUTE_THREADS`` (default 1) before the models load.

Garbage collector. TensorFlow, Keras and a loaded bundle leave millions of
long-lived Python objects; every full collection walked them all and stopped the
event loop every few seconds under load, with requests queued behind it (figures:
``docs/performance-history.md``, ``gc.freeze()``).
:func:`freeze_heap` moves what exists after a model load into the collector's
permanent generation, so collections only look at what requests allocate.

Huge pages. An HNSW search visits thousands of graph nodes scattered over gigabytes;
with 4 KiB pages nearly every visit misses the TLB. :func:`with_huge_pages` asks glibc's
malloc to back its large allocations with transparent huge pages
(``GLIBC_TUNABLES=glibc.malloc.hugetlb=1``, read once when a process starts, so
``hybridrec serve`` sets it for the processes it starts); ``bench.huge_pages`` measures
the graphs' queries with and without (figures: ``docs/scaling.md``, "Huge pages for the
HNSW graphs"). :func:`huge_page_report` reads back how much of the heap got them.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
import time

from shared.contracts.errors import ConfigError

log = logging.getLogger("hybridrec.threads")

HUGETLB_TUNABLE = "glibc.malloc.hugetlb"
HUGE_PAGES_ENV = "HYBRIDREC_HUGE_PAGES"
THP_MODE_FILE = "/sys/kernel/mm/transparent_hugepage/enabled"

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


def with_huge_pages(env: dict[str, str]) -> dict[str, str]:
    """``env`` with glibc's malloc asked for transparent huge pages, unless opted out.

    Adds ``glibc.malloc.hugetlb=1`` to ``GLIBC_TUNABLES`` (keeping the tunables already
    there) unless ``HYBRIDREC_HUGE_PAGES`` is ``0``/``false``/``no``/``off`` or the
    tunable is already set. Harmless where it cannot apply: the kernel's THP mode
    ``never`` ignores the advice, and other C libraries ignore the variable.

    Returns:
        A new mapping; ``env`` is not changed.

    Raises:
        ConfigError: ``HYBRIDREC_HUGE_PAGES`` is neither a true nor a false word.
    """
    out = dict(env)
    flag = out.get(HUGE_PAGES_ENV, "1").strip().lower()
    if flag in ("0", "false", "no", "off"):
        return out
    if flag not in ("1", "true", "yes", "on"):
        raise ConfigError(
            f"{HUGE_PAGES_ENV} must be 1/true/yes/on or 0/false/no/off, got {flag!r}; "
            "set one of those, or unset it (default: on)"
        )
    current = out.get("GLIBC_TUNABLES", "")
    names = {part.split("=", 1)[0] for part in current.split(":") if part}
    if HUGETLB_TUNABLE not in names:
        out["GLIBC_TUNABLES"] = ":".join(p for p in (current, f"{HUGETLB_TUNABLE}=1") if p)
    return out


def thp_mode() -> str:
    """The kernel's transparent-huge-page mode (always, madvise, never), or unknown."""
    try:
        with open(THP_MODE_FILE, encoding="ascii") as f:
            text = f.read()
    except OSError:
        return "unknown"
    start, end = text.find("["), text.find("]")
    return text[start + 1 : end] if 0 <= start < end else "unknown"


def huge_page_report(pid: int | str = "self") -> dict[str, object]:
    """How much of a process's anonymous memory is in transparent huge pages.

    Returns:
        ``anon_mb`` and ``anon_huge_mb`` (from ``/proc/<pid>/smaps_rollup``, None where
        unreadable), the kernel's ``thp_mode`` and the ``GLIBC_TUNABLES`` in effect.
    """
    fields: dict[str, float | None] = {"Anonymous": None, "AnonHugePages": None}
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as f:
            for line in f:
                name, _, rest = line.partition(":")
                if name in fields:
                    fields[name] = round(int(rest.split()[0]) / 1024.0, 1)
    except OSError:
        pass
    return {
        "anon_mb": fields["Anonymous"],
        "anon_huge_mb": fields["AnonHugePages"],
        "thp_mode": thp_mode(),
        "glibc_tunables": os.environ.get("GLIBC_TUNABLES", ""),
    }
