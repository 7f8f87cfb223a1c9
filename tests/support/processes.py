"""Start hybridrec's services as real processes for end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support.redis_server import delete_prefix, free_port

APPS = {
    "gateway": "services.gateway.app:create_app",
    "retrieval": "services.retrieval.app:create_app",
    "ranking": "services.ranking.app:create_app",
}


@dataclass
class ServiceProcess:
    """One uvicorn process running one service."""

    name: str
    port: int
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    _log: object = field(default=None, repr=False)
    cmd: list[str] | None = None  # None: uvicorn on the service's app factory

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServiceProcess:
        self._log = self.log_path.open("ab")
        cmd = self.cmd or [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            APPS[self.name],
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--no-access-log",
        ]
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=self._log, stderr=self._log)
        return self

    def wait_ready(self, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        # One client for every poll: each new httpx client loads the CA store, which
        # costs 0.05 s of CPU or more, taken from the services loading beside it.
        with httpx.Client(timeout=2) as client:
            while time.monotonic() < deadline:
                if self.proc is not None and self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited early:\n{self.tail()}")
                try:
                    r = client.get(f"{self.url}/health/ready")
                    if r.status_code == 200:
                        return
                    last = r.text
                except httpx.HTTPError as exc:
                    last = repr(exc)
                time.sleep(0.3)
        raise RuntimeError(f"{self.name} not ready after {timeout}s: {last}\n{self.tail()}")

    def tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self._log is not None:
            self._log.close()  # type: ignore[attr-defined]
            self._log = None


def service_env(
    artifacts: Path, state_dir: Path, *, redis_url: str | None, prefix: str, **extra: str
) -> dict[str, str]:
    """Environment for a service process: artifacts, Redis, offline model loading."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYBRIDREC_")}
    env.update(
        {
            "HYBRIDREC_ARTIFACTS": str(artifacts),
            "HYBRIDREC_STATE_DIR": str(state_dir),
            "HYBRIDREC_REDIS_PREFIX": prefix,
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "KERAS_BACKEND": "tensorflow",
            "HYBRIDREC_TORCH_THREADS": "1",
        }
    )
    if redis_url:
        env["HYBRIDREC_REDIS_URL"] = redis_url
    env.update(extra)
    return env


def start_stack(
    artifacts: Path, workdir: Path, *, redis_url: str | None, prefix: str, **extra: str
) -> dict[str, ServiceProcess]:
    """Retrieval, ranking and gateway on free ports, all ready."""
    workdir.mkdir(parents=True, exist_ok=True)
    ports = {name: free_port() for name in ("retrieval", "ranking", "gateway")}
    base = service_env(artifacts, workdir / "state", redis_url=redis_url, prefix=prefix, **extra)
    base["HYBRIDREC_RETRIEVAL_URL"] = f"http://127.0.0.1:{ports['retrieval']}"
    base["HYBRIDREC_RANKING_URL"] = f"http://127.0.0.1:{ports['ranking']}"
    procs = {}
    for name in ("retrieval", "ranking", "gateway"):
        env = {**base, "HYBRIDREC_PORT": str(ports[name])}
        procs[name] = ServiceProcess(name, ports[name], env, workdir / f"{name}.log").start()
    try:
        for p in procs.values():
            p.wait_ready()
    except Exception:
        for p in procs.values():
            p.stop()
        raise
    return procs


@contextmanager
def running_stack(
    artifacts: Path, workdir: Path, *, redis_url: str, prefix: str, **extra: str
) -> Iterator[dict[str, ServiceProcess]]:
    """:func:`start_stack`, then stop every process and delete the test's Redis keys."""
    procs = start_stack(artifacts, workdir, redis_url=redis_url, prefix=prefix, **extra)
    try:
        yield procs
    finally:
        for p in procs.values():
            p.stop()
        delete_prefix(redis_url, prefix)
