"""``hybridrec serve``: the environment it gives the services, and a real service it execs."""

from __future__ import annotations

import argparse
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.processes import ServiceProcess, delete_prefix, free_port, service_env
from services.runner import _env_from_flags


def _args(**flags: object) -> argparse.Namespace:
    return argparse.Namespace(**{"host": None, "artifacts": None, "redis_url": None, **flags})


def test_flags_become_settings_and_huge_pages_are_asked_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    monkeypatch.delenv("HYBRIDREC_HUGE_PAGES", raising=False)
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "3")  # a value already set wins
    env = _env_from_flags(_args(artifacts="/bundles", redis_url="redis://h:1/0"))
    assert env["HYBRIDREC_ARTIFACTS"] == "/bundles"
    assert env["HYBRIDREC_REDIS_URL"] == "redis://h:1/0"
    assert env["TF_NUM_INTRAOP_THREADS"] == "3" and env["TF_NUM_INTEROP_THREADS"] == "1"
    assert env["GLIBC_TUNABLES"] == "glibc.malloc.hugetlb=1"


def test_huge_pages_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.arena_max=2")
    monkeypatch.setenv("HYBRIDREC_HUGE_PAGES", "0")
    assert _env_from_flags(_args())["GLIBC_TUNABLES"] == "glibc.malloc.arena_max=2"


@pytest.fixture
def served_retrieval(
    small_bundle: Path, redis_url: str, tmp_path: Path
) -> Iterator[ServiceProcess]:
    prefix = f"hrrun-{uuid.uuid4().hex[:8]}"
    port = free_port()
    env = service_env(small_bundle, tmp_path / "state", redis_url=redis_url, prefix=prefix)
    env.pop("GLIBC_TUNABLES", None)
    cmd = [
        sys.executable, "-c", "import sys; from hybridrec.cli import main; sys.exit(main())",
        "serve", "retrieval", "--port", str(port),
    ]  # fmt: skip
    proc = ServiceProcess("retrieval", port, env, tmp_path / "retrieval.log", cmd=cmd).start()
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.stop()
        delete_prefix(redis_url, prefix)


@pytest.mark.slow
def test_serve_execs_the_service_with_huge_pages_asked_for(
    served_retrieval: ServiceProcess,
) -> None:
    ready = httpx.get(f"{served_retrieval.url}/health/ready", timeout=10).json()
    assert ready["status"] == "ok", ready
    line = ready["checks"]["huge_pages"]
    assert "MB anonymous memory in huge pages" in line, line
    assert "GLIBC_TUNABLES=glibc.malloc.hugetlb=1" in line, line  # the exec'd server's own
    # The exec keeps the pid: the server is the process the test started.
    assert served_retrieval.proc is not None
    environ = Path(f"/proc/{served_retrieval.proc.pid}/environ").read_bytes().split(b"\0")
    assert b"GLIBC_TUNABLES=glibc.malloc.hugetlb=1" in environ


def test_a_bad_huge_pages_value_stops_serve_with_a_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from hybridrec.cli import main

    monkeypatch.setenv("HYBRIDREC_HUGE_PAGES", "sometimes")
    assert main(["serve", "retrieval", "--port", "1"]) == 2  # before any exec
    err = capsys.readouterr().err
    assert "HYBRIDREC_HUGE_PAGES must be 1/true/yes/on or 0/false/no/off, got 'sometimes'" in err
    assert "Traceback" not in err
