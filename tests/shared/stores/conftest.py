"""Fixtures of the store tests: a private Redis Cluster (module-scoped, torn down after)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.shared.stores.redis_cluster import LocalCluster


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """Three real ``redis-server`` masters forming one cluster on private ports."""
    cluster = LocalCluster(tmp_path_factory.mktemp("redis-cluster")).start()
    try:
        yield cluster
    finally:
        cluster.stop()
