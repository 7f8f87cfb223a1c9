"""Start hybridrec's services as real processes for benchmarks (loopback only).

Each service runs through ``hybridrec serve <name>`` (:mod:`services.runner`),
which execs uvicorn, so the child's pid is the server's own and its RSS can be
read from ``/proc/<pid>/status``. Redis keys live under a prefix of the run's own
and are deleted afterwards. Benchmarks never import ``tests/``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

SERVICES = ("retrieval", "ranking", "gateway")
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def hybridrec_exe() -> list[str]:
    """The command that runs the ``hybridrec`` CLI of this interpreter."""
    return [sys.executable, "-c", "import sys; from hybridrec.cli import main; sys.exit(main())"]


@dataclass
class Service:
    """One server process (a hybridrec service or any uvicorn app)."""

    name: str
    port: int
    cmd: list[str]
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    cwd: Path = ROOT
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.name} is not started"
        return self.proc.pid

    def start(self) -> Service:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.cmd, env=self.env, stdout=self._log, stderr=subprocess.STDOUT, cwd=self.cwd
        )
        return self

    def wait_ready(self, path: str = "/health/ready", timeout_s: float = 300.0) -> None:
        deadline = time.monotonic() + timeout_s
        last = ""
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.tail()}")
            try:
                with urllib.request.urlopen(self.url + path, timeout=2) as resp:
                    if resp.status == 200:
                        return
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}"
            except (urllib.error.URLError, OSError) as exc:
                last = repr(exc)
            time.sleep(0.3)
        raise RuntimeError(f"{self.name} not ready after {timeout_s} s: {last}\n{self.tail()}")

    def tail(self, n: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self._log is not None:
            self._log.close()
            self._log = None


def base_env(**extra: str) -> dict[str, str]:
    """This environment without ``HYBRIDREC_*``, offline model loading, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYBRIDREC_")}
    env.update(
        {
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "KERAS_BACKEND": "tensorflow",
            "HYBRIDREC_LOG_LEVEL": "warning",
        }
    )
    env.update(extra)
    return env


def hybridrec_service(name: str, port: int, env: dict[str, str], workdir: Path) -> Service:
    """A ``hybridrec serve <name>`` process (not started)."""
    cmd = [*hybridrec_exe(), "serve", name, "--port", str(port)]
    return Service(name, port, cmd, {**env, "HYBRIDREC_PORT": str(port)}, workdir / f"{name}.log")


def uvicorn_app(
    name: str, factory: str, port: int, workdir: Path, env: dict[str, str] | None = None
) -> Service:
    """Any uvicorn app factory ``module:function`` as a process (not started)."""
    cmd = [
        sys.executable, "-m", "uvicorn", "--factory", factory, "--host", "127.0.0.1",
        "--port", str(port), "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    return Service(name, port, cmd, env or base_env(), workdir / f"{name}.log")


def redis_available(url: str = DEFAULT_REDIS_URL) -> bool:
    """Whether a Redis server answers PING at ``url``."""
    try:
        import redis

        return bool(redis.Redis.from_url(url, socket_timeout=1).ping())
    except Exception:  # any connection problem means "not available"
        return False


def delete_prefix(redis_url: str, prefix: str) -> None:
    """Delete every Redis key under ``prefix:``."""
    import redis

    client = redis.Redis.from_url(redis_url, socket_timeout=2)
    try:
        batch = list(client.scan_iter(f"{prefix}:*", count=1000))
        for i in range(0, len(batch), 500):
            client.delete(*batch[i : i + 500])
    finally:
        client.close()


@contextmanager
def running_services(
    artifacts: Path,
    workdir: Path,
    *,
    redis_url: str | None = DEFAULT_REDIS_URL,
    names: Sequence[str] = SERVICES,
    env_extra: dict[str, str] | None = None,
    code_root: Path | None = None,
) -> Iterator[dict[str, Service]]:
    """Start ``names`` (any of retrieval, ranking, gateway) on free ports, all ready.

    ``code_root`` runs the services from another checkout of the project (e.g. an
    export of the last commit, for before/after comparisons in one harness).

    Yields:
        The services by name; every process is stopped and the run's Redis keys
        deleted on exit.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    prefix = f"hrbench-{uuid.uuid4().hex[:8]}"
    ports = {name: free_port() for name in SERVICES}
    env = base_env(
        HYBRIDREC_ARTIFACTS=str(artifacts),
        HYBRIDREC_STATE_DIR=str(workdir / "state"),
        HYBRIDREC_REDIS_PREFIX=prefix,
        HYBRIDREC_RETRIEVAL_URL=f"http://127.0.0.1:{ports['retrieval']}",
        HYBRIDREC_RANKING_URL=f"http://127.0.0.1:{ports['ranking']}",
        **(env_extra or {}),
    )
    if redis_url:
        env["HYBRIDREC_REDIS_URL"] = redis_url
    if code_root is not None:
        env["PYTHONPATH"] = str(code_root)
    procs: dict[str, Service] = {}
    try:
        for name in SERVICES:
            if name in names:
                procs[name] = hybridrec_service(name, ports[name], env, workdir)
                procs[name].cwd = code_root or ROOT
                procs[name].start()
        for svc in procs.values():
            svc.wait_ready()
        yield procs
    finally:
        for svc in procs.values():
            svc.stop()
        if redis_url:
            delete_prefix(redis_url, prefix)
