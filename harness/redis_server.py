"""Private ``redis-server`` processes (tests that need persistence, a kill or a cluster)."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import redis

from harness.processes import free_port

INSTALL_HINT = (
    "hybridrec's tests need a Redis server. None answers at {url} and there is no "
    "`redis-server` on PATH to start a private one. Install it (Debian/Ubuntu: "
    "`sudo apt-get install redis-server`; macOS: `brew install redis`) or point "
    "HYBRIDREC_TEST_REDIS_URL at a running server, then run `make test` again."
)



def ping(url: str, timeout: float = 0.5) -> bool:
    """True when a Redis server answers at ``url``."""
    try:
        return bool(
            redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout).ping()
        )
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError):
        return False


class RedisProcess:
    """A private redis-server on its own port and folder.

    Args:
        workdir: Folder for its data and log.
        appendonly: Turn on append-only persistence with ``appendfsync always``.
        port: Port to listen on (a free one by default).
        extra_args: More ``redis-server`` options (e.g. a cluster node's).
    """

    def __init__(
        self,
        workdir: Path,
        *,
        appendonly: bool = False,
        port: int | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError(INSTALL_HINT.format(url="(private server)"))
        self.exe = exe
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.appendonly = appendonly
        self.extra_args = list(extra_args)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisProcess:
        args = [
            self.exe,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.workdir),
            "--save",
            "",
            "--logfile",
            str(self.workdir / "redis.log"),
        ]
        if self.appendonly:
            args += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            args += ["--appendonly", "no"]
        args += self.extra_args
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ping(self.url, 0.2):
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on port {self.port}: {self.log_tail()}")

    def log_tail(self, n: int = 2000) -> str:
        """The end of the server's log file."""
        log = self.workdir / "redis.log"
        return log.read_text(errors="replace")[-n:] if log.exists() else "(no log)"

    def kill(self) -> None:
        """SIGKILL, as in a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM and wait."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

