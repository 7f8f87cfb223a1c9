"""A hybridrec service as a real process, for benchmarks (start, wait ready, stop)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import IO

import httpx

from bench.stack import DEFAULT_REDIS_URL, delete_prefix, free_port

APPS = {
    "gateway": "services.gateway.app:create_app",
    "retrieval": "services.retrieval.app:create_app",
    "ranking": "services.ranking.app:create_app",
}
DEFAULT_REDIS = DEFAULT_REDIS_URL


def redis_available(url: str = DEFAULT_REDIS) -> bool:
    """Whether a Redis server answers PING at ``url``."""
    try:
        import redis

        return bool(redis.Redis.from_url(url, socket_timeout=1).ping())
    except Exception:  # any connection problem means "not available"
        return False


class Service:
    """One uvicorn process running one service on a free port.

    Args:
        name: ``gateway``, ``retrieval`` or ``ranking``.
        artifacts: Bundle root or folder.
        workdir: Folder for the state dir and the log file.
        redis_url: Redis to use (None: in-process cache, files in the state dir).
        env: Extra ``HYBRIDREC_*`` variables.
    """

    def __init__(self, name: str, artifacts: Path, workdir: Path, *, redis_url: str | None,
                 env: dict[str, str] | None = None) -> None:
        self.name = name
        self.port = free_port()
        self.prefix = f"hrbench-{uuid.uuid4().hex[:10]}"
        self.redis_url = redis_url
        workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / f"{name}.log"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("HYBRIDREC_")}
        self.env.update({
            "HYBRIDREC_ARTIFACTS": str(artifacts), "HYBRIDREC_STATE_DIR": str(workdir / "state"),
            "HYBRIDREC_REDIS_PREFIX": self.prefix, "HYBRIDREC_PORT": str(self.port),
            "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TF_CPP_MIN_LOG_LEVEL": "2",
            "KERAS_BACKEND": "tensorflow", "HYBRIDREC_TORCH_THREADS": "1",
        })
        if redis_url:
            self.env["HYBRIDREC_REDIS_URL"] = redis_url
        self.env.update(env or {})
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.started_at = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> Service:
        """Launch the process (returns at once)."""
        self._log = self.log_path.open("ab")
        cmd = [sys.executable, "-m", "uvicorn", "--factory", APPS[self.name], "--host",
               "127.0.0.1", "--port", str(self.port), "--no-access-log"]
        self.started_at = time.perf_counter()
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=self._log, stderr=self._log)
        return self

    def wait_ready(self, timeout: float = 600.0) -> float:
        """Block until ``/health/ready`` answers 200; returns seconds since :meth:`start`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.tail()}")
            try:
                if httpx.get(f"{self.url}/health/ready", timeout=2).status_code == 200:
                    return time.perf_counter() - self.started_at
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready after {timeout} s:\n{self.tail()}")

    def tail(self, n: int = 3000) -> str:
        """The end of the process log."""
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 15 s; deletes the service's Redis keys."""
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
        if self.redis_url:
            with contextlib.suppress(Exception):  # best effort: the keys are namespaced
                delete_prefix(self.redis_url, self.prefix)
