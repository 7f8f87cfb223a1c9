"""Start hybridrec's services as real processes (loopback only), alone or as a stack.

A :class:`ServiceProcess` runs one command (by default uvicorn on a service's app factory;
:func:`serve_cmd` gives ``hybridrec serve <name>``, which execs uvicorn, so the child's pid
is the server's own and its RSS and CPU can be read from ``/proc``). :func:`running_stack`
starts retrieval, ranking and gateway on free ports (or the one-process ``combined``),
waits until each is ready, and on exit stops them and deletes the run's Redis keys.
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
from typing import IO, Any

from services.runner import APPS

SERVICES = ("retrieval", "ranking", "gateway")
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def uvicorn_cmd(factory: str, port: int) -> list[str]:
    """uvicorn on an app factory ``module:function`` (a service's, or any other)."""
    return [
        sys.executable, "-m", "uvicorn", "--factory", factory, "--host", "127.0.0.1",
        "--port", str(port), "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip


def serve_cmd(name: str, port: int, workers: int = 1) -> list[str]:
    """``hybridrec serve <name>`` with this interpreter (what operators run)."""
    cli = "import sys; from hybridrec.cli import main; sys.exit(main())"
    extra = ["--workers", str(workers)] if workers > 1 else []
    return [sys.executable, "-c", cli, "serve", name, "--port", str(port), *extra]


@dataclass
class ServiceProcess:
    """One server process; ``cmd`` None runs uvicorn on the service's app factory."""

    name: str
    port: int
    env: dict[str, str]
    log_path: Path
    cmd: list[str] | None = None
    cwd: Path = ROOT
    proc: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.name} is not started"
        return self.proc.pid

    def start(self) -> ServiceProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        cmd = self.cmd or uvicorn_cmd(APPS[self.name], self.port)
        self.proc = subprocess.Popen(
            cmd, env=self.env, stdout=self._log, stderr=subprocess.STDOUT, cwd=self.cwd
        )
        return self

    def wait_ready(self, timeout: float = 180.0, path: str = "/health/ready") -> None:
        """Poll ``path`` until it answers 200; raise with the log's tail otherwise."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.tail()}")
            try:
                with urllib.request.urlopen(self.url + path, timeout=2) as resp:
                    if resp.status == 200:
                        return
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}: {exc.read()[:300]!r}"
            except (urllib.error.URLError, OSError) as exc:
                last = repr(exc)
            time.sleep(0.3)
        raise RuntimeError(f"{self.name} not ready after {timeout} s: {last}\n{self.tail()}")

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
            self._log.close()
            self._log = None


def server_pids(pid: int) -> list[int]:
    """The processes that serve requests: ``pid`` itself, or its worker children when it
    supervises them (uvicorn ``--workers``; multiprocessing's resource tracker left out)."""
    kids: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids += [int(k) for k in (task / "children").read_text().split()]
        except OSError:
            continue
    workers = []
    for kid in sorted(kids):
        try:
            cmdline = Path(f"/proc/{kid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"resource_tracker" not in cmdline:
            workers.append(kid)
    return workers or [pid]


def public_endpoint(svcs: dict[str, ServiceProcess]) -> tuple[str, dict[str, int]]:
    """A running stack's public URL and its serving processes by name: the split's three
    services, or a combined stack's workers (``combined``, ``combined-2``, ...)."""
    if "combined" in svcs:
        pids = server_pids(svcs["combined"].pid)
        names = ["combined", *(f"combined-{i}" for i in range(2, len(pids) + 1))]
        return svcs["combined"].url, dict(zip(names, pids, strict=True))
    return svcs["gateway"].url, {name: svc.pid for name, svc in svcs.items()}


def base_env(**extra: str) -> dict[str, str]:
    """This environment without ``HYBRIDREC_*``, with offline model loading, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYBRIDREC_")}
    env.update(
        {
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "KERAS_BACKEND": "tensorflow",
        }
    )
    env.update(extra)
    return env


def service_env(
    artifacts: Path, state_dir: Path, *, redis_url: str | None, prefix: str, **extra: str
) -> dict[str, str]:
    """Environment of a service process: its bundle, state folder, Redis and key prefix."""
    env = base_env(
        HYBRIDREC_ARTIFACTS=str(artifacts),
        HYBRIDREC_STATE_DIR=str(state_dir),
        HYBRIDREC_REDIS_PREFIX=prefix,
    )
    if redis_url:
        env["HYBRIDREC_REDIS_URL"] = redis_url
    env.update(extra)
    return env


def start_stack(
    artifacts: Path,
    workdir: Path,
    *,
    redis_url: str | None,
    prefix: str,
    names: Sequence[str] = SERVICES,
    serve: bool = False,
    code_root: Path | None = None,
    combined: bool = False,
    workers: int = 1,
    **extra: str,
) -> dict[str, ServiceProcess]:
    """``names`` (of retrieval, ranking, gateway) on free ports, all ready.

    ``serve`` starts them through ``hybridrec serve`` instead of uvicorn directly;
    ``code_root`` runs them from another checkout of the project (before/after runs).
    ``combined`` starts one process instead, ``combined`` (all three in one,
    ``hybridrec serve combined``, ``workers`` copies sharing its port), whatever ``names``.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    order = ("combined",) if combined else tuple(n for n in SERVICES if n in names)
    ports = {name: free_port() for name in (*SERVICES, "combined")}
    base = service_env(artifacts, workdir / "state", redis_url=redis_url, prefix=prefix)
    base["HYBRIDREC_RETRIEVAL_URL"] = f"http://127.0.0.1:{ports['retrieval']}"
    base["HYBRIDREC_RANKING_URL"] = f"http://127.0.0.1:{ports['ranking']}"
    base.update(extra)
    if code_root is not None:
        base["PYTHONPATH"] = str(code_root)
    procs: dict[str, ServiceProcess] = {}
    try:
        for name in order:
            port = ports[name]
            procs[name] = ServiceProcess(
                name,
                port,
                {**base, "HYBRIDREC_PORT": str(port)},
                workdir / f"{name}.log",
                cmd=serve_cmd(name, port, workers) if serve or workers > 1 else None,
                cwd=code_root or ROOT,
            ).start()
        for p in procs.values():
            p.wait_ready(timeout=300.0)
    except BaseException:
        for p in procs.values():
            p.stop()
        raise
    return procs


@contextmanager
def running_stack(
    artifacts: Path,
    workdir: Path,
    *,
    redis_url: str | None = DEFAULT_REDIS_URL,
    prefix: str | None = None,
    **kwargs: object,
) -> Iterator[dict[str, ServiceProcess]]:
    """:func:`start_stack`, then stop every process and delete the run's Redis keys."""
    prefix = prefix or f"hrrun-{uuid.uuid4().hex[:8]}"
    procs = start_stack(artifacts, workdir, redis_url=redis_url, prefix=prefix, **kwargs)  # type: ignore[arg-type]
    try:
        yield procs
    finally:
        for p in procs.values():
            p.stop()
        if redis_url:
            delete_prefix(redis_url, prefix)


def redis_available(url: str = DEFAULT_REDIS_URL) -> bool:
    """Whether a Redis server answers PING at ``url``."""
    from harness.redis_server import ping

    return ping(url, timeout=1.0)


def delete_prefix(url: str, prefix: str) -> None:
    """Delete every Redis key under ``prefix:`` (a run's own namespace)."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=2)
    try:
        batch = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        for i in range(0, len(batch), 500):
            client.delete(*batch[i : i + 500])
    finally:
        client.close()


@contextmanager
def app_in_thread(app: Any, host: str = "127.0.0.1", port: int | None = None) -> Iterator[str]:
    """Serve an ASGI app with uvicorn in a daemon thread of this process; yields its URL."""
    import threading

    import uvicorn

    port = port or free_port()
    config = uvicorn.Config(
        app, host=host, port=port, log_level="critical", lifespan="on",
        timeout_graceful_shutdown=1,
    )  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"uvicorn did not start on {host}:{port}")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
