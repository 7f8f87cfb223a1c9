"""Session-wide fixtures: a real Redis for the tests that need one.

``HYBRIDREC_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/0``) is used when a
server answers there; otherwise a private ``redis-server`` from PATH is started for
the session, and without one the run stops with a message saying how to install it.
Tests isolate themselves with a key prefix of their own and delete their keys.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.processes import delete_prefix
from harness.redis_server import INSTALL_HINT, RedisProcess, ping

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a real Redis server for this test session."""
    url = os.environ.get("HYBRIDREC_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    if ping(url):
        yield url
        return
    if shutil.which("redis-server") is None:
        pytest.exit(INSTALL_HINT.format(url=url), returncode=3)
    server = RedisProcess(tmp_path_factory.mktemp("redis")).start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    prefix = f"hrtest-{uuid.uuid4().hex[:10]}"
    yield prefix
    delete_prefix(redis_url, prefix)


@pytest.fixture(scope="session")
def bundled_zip() -> Path:
    """The committed MovieLens ml-latest-small zip."""
    path = PROJECT_ROOT / "data" / "ml-latest-small.zip"
    assert path.exists(), f"{path} is missing: it is committed with the project"
    return path


@pytest.fixture(scope="session")
def small_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real bundle trained once per session on a slice of ml-latest-small (quick mode)."""
    from tests.support.small_bundle import train_small_bundle

    return train_small_bundle(tmp_path_factory.mktemp("small-bundle"))


@pytest.fixture(scope="session")
def bookshop_bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The generated bookshop (string SKUs and customer ids) and a bundle trained on it
    once per session with ``hybridrec train --quick``: ``(data folder, artifacts root)``."""
    from hybridrec import cli
    from tests.support.bookshop import write_bookshop

    root = tmp_path_factory.mktemp("bookshop")
    data = write_bookshop(root / "bookshop")
    out = root / "artifacts"
    assert cli.main(["train", "--data", str(data), "--out", str(out), "--quick"]) == 0
    return data, out
