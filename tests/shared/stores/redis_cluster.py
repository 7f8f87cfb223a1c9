"""A private three-master Redis Cluster of real ``redis-server`` processes, for tests.

Each node listens on 127.0.0.1 on a free port whose cluster bus port (+10000) is free
too; ``redis-cli --cluster create`` assigns the 16384 slots to the three masters (no
replicas), each with append-only persistence (``appendfsync always``). Nodes can be
killed and started again on the same port and folder, where their ``nodes.conf``
brings back their identity and slots.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis
from redis.cluster import RedisCluster

from harness.redis_server import INSTALL_HINT, RedisProcess


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def cluster_ports(n: int) -> list[int]:
    """``n`` free ports below 55536 whose bus ports (+10000) are free as well."""
    ports: list[int] = []
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port < 55_536 and port not in ports and _port_free(port + 10_000):
            ports.append(port)
            if len(ports) == n:
                return ports
    raise RuntimeError(f"found only {len(ports)} of {n} free port pairs for a Redis Cluster")


def cluster_node(port: int, workdir: Path, node_timeout_ms: int) -> RedisProcess:
    """One ``redis-server --cluster-enabled yes``, durable like the deployment (an
    acknowledged XADD survives a SIGKILL)."""
    return RedisProcess(
        workdir,
        port=port,
        appendonly=True,
        extra_args=[
            "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(node_timeout_ms),
        ],
    )  # fmt: skip


class LocalCluster:
    """Three masters on private ports; :attr:`url` is the ``redis+cluster://`` form."""

    def __init__(self, workdir: Path, *, masters: int = 3, node_timeout_ms: int = 1000) -> None:
        exe, cli = shutil.which("redis-server"), shutil.which("redis-cli")
        if exe is None or cli is None:
            raise RuntimeError(INSTALL_HINT.format(url="(a private Redis Cluster)"))
        self.cli = cli
        self.nodes = [
            cluster_node(port, workdir / f"node-{port}", node_timeout_ms)
            for port in cluster_ports(masters)
        ]

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}/0"

    def start(self) -> LocalCluster:
        for node in self.nodes:
            node.start()
        addrs = [f"127.0.0.1:{n.port}" for n in self.nodes]
        done = subprocess.run(
            [self.cli, "--cluster", "create", *addrs, "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {done.stdout}{done.stderr}")
        self.wait_ok()
        return self

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Until every node reports ``cluster_state:ok`` and knows all masters."""
        deadline = time.monotonic() + timeout
        states: list[str] = []
        while time.monotonic() < deadline:
            states = []
            for node in self.nodes:
                try:
                    info = redis.Redis(port=node.port, socket_timeout=0.5).cluster("info")
                except (redis.ConnectionError, redis.TimeoutError):
                    info = {}
                states.append(
                    f"{node.port}: {info.get('cluster_state')}/{info.get('cluster_known_nodes')}"
                )
                if info.get("cluster_state") != "ok" or int(
                    info.get("cluster_known_nodes", 0)
                ) < len(self.nodes):
                    break
            else:
                return
            time.sleep(0.1)
        raise RuntimeError(f"Redis Cluster not ok after {timeout:.0f} s: {states}")

    def client(self) -> RedisCluster:
        """A synchronous cluster client, for checks from the test's side."""
        return RedisCluster(host="127.0.0.1", port=self.nodes[0].port, decode_responses=True)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
