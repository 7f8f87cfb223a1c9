"""``hybridrec serve``: run one service, all three as separate processes, or all in one.

Flags map onto the services' settings through ``HYBRIDREC_<NAME>`` environment
variables, so a flag and its variable are the same setting. ``all`` starts
retrieval and ranking first, then the gateway, prints the URLs (the dashboard's
first) and a sample curl once the gateway is ready, and stops every child on
Ctrl-C or SIGTERM. ``combined`` runs all three in one process (:mod:`services.combined`)
on the gateway's port; ``--workers N`` runs N such processes sharing it
(:mod:`services.worker`).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlparse

from services.gateway.settings import GatewaySettings
from services.ranking.settings import RankingSettings
from services.retrieval.settings import RetrievalSettings
from shared.serving.process_tuning import with_huge_pages

APPS = {
    "gateway": "services.gateway.app:create_app",
    "retrieval": "services.retrieval.app:create_app",
    "ranking": "services.ranking.app:create_app",
    "combined": "services.combined.app:create_app",
}


def _default(settings: type[Any], name: str) -> Any:
    """A setting's default, read from the service's settings class (one source of truth)."""
    return settings.model_fields[name].default


DEFAULT_PORTS = {
    "gateway": _default(GatewaySettings, "port"),
    "retrieval": _default(RetrievalSettings, "port"),
    "ranking": _default(RankingSettings, "port"),
    "combined": _default(GatewaySettings, "port"),
}
#: How often each of several worker processes polls `latest` (s), unless set.
WORKERS_WATCH_LATEST_S = 5.0
FLAG_ENV = {
    "host": "HYBRIDREC_HOST",
    "artifacts": "HYBRIDREC_ARTIFACTS",
    "redis_url": "HYBRIDREC_REDIS_URL",
    "retrieval_url": "HYBRIDREC_RETRIEVAL_URL",
    "ranking_url": "HYBRIDREC_RANKING_URL",
}


def _env_from_flags(args: argparse.Namespace) -> dict[str, str]:
    env = dict(os.environ)
    for attr, var in FLAG_ENV.items():
        value = getattr(args, attr, None)
        if value is not None:
            env[var] = str(value)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("KERAS_BACKEND", "tensorflow")
    # Each process runs one small forward pass at a time; TensorFlow's default thread
    # pools (one thread per core) only add contention with the other services on the
    # same cores (figures: docs/scaling.md#measurements-behind-code-choices). A value
    # already set in the environment wins.
    env.setdefault("TF_NUM_INTRAOP_THREADS", "1")
    env.setdefault("TF_NUM_INTEROP_THREADS", "1")
    # Transparent huge pages for malloc's large blocks (the HNSW graphs): glibc reads
    # the tunable when a process starts, so it is set here, before the exec.
    return with_huge_pages(env)


def _uvicorn_cmd(service: str, host: str, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        APPS[service],
        "--host",
        host,
        "--port",
        str(port),
        "--no-access-log",
        "--timeout-graceful-shutdown",
        "5",
    ]


def _worker_cmd(service: str, host: str, port: int) -> list[str]:
    """One of several processes serving ``service`` on one port (:mod:`services.worker`)."""
    return [sys.executable, "-m", "services.worker", APPS[service], host, str(port)]


def _wait_ready(url: str, timeout_s: float, procs: list[subprocess.Popen[bytes]]) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            return False
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    return False


def serve(args: argparse.Namespace) -> int:
    """Run ``args.service`` (all, combined, gateway, retrieval or ranking); an exit code.

    One process of one service execs uvicorn (the pid stays the server's); ``--workers N``
    starts N processes that each bind the port with ``SO_REUSEPORT`` (:mod:`services.worker`)
    and supervises them; ``all`` starts and supervises the three services.
    """
    env = _env_from_flags(args)
    host = env.get("HYBRIDREC_HOST", "127.0.0.1")
    if args.service != "all":
        port = args.port or int(env.get("HYBRIDREC_PORT", DEFAULT_PORTS[args.service]))
        env["HYBRIDREC_PORT"] = str(port)
        workers = getattr(args, "workers", None) or 1
        if workers <= 1:
            os.execvpe(sys.executable, _uvicorn_cmd(args.service, host, port), env)
        # Each process holds its own engines and a reload call reaches the one that answers
        # it: every process follows the artifacts root's `latest` instead (unless set).
        env.setdefault("HYBRIDREC_WATCH_LATEST_S", str(WORKERS_WATCH_LATEST_S))
        cmds = [(_worker_cmd(args.service, host, port), env)] * workers
        base = f"http://{_client_host(host)}:{port}"
        banner = f"\nhybridrec {args.service} is up: {base} ({workers} processes)\n"
        return _supervise(cmds, f"{base}/health/ready", banner)

    retrieval_url = env.setdefault(
        "HYBRIDREC_RETRIEVAL_URL", _default(GatewaySettings, "retrieval_url")
    ).split(",")[0]  # `serve all` starts one copy of each: the first URL's port
    ranking_url = env.setdefault(
        "HYBRIDREC_RANKING_URL", _default(GatewaySettings, "ranking_url")
    ).split(",")[0]
    ports = {
        "retrieval": urlparse(retrieval_url).port or DEFAULT_PORTS["retrieval"],
        "ranking": urlparse(ranking_url).port or DEFAULT_PORTS["ranking"],
        "gateway": args.port or DEFAULT_PORTS["gateway"],
    }
    cmds = [
        (_uvicorn_cmd(name, host, ports[name]), {**env, "HYBRIDREC_PORT": str(ports[name])})
        for name in ("retrieval", "ranking", "gateway")
    ]
    base = f"http://{_client_host(host)}:{ports['gateway']}"
    banner = (
        f"\nhybridrec is up:\n  dashboard {base}/ui/   (open it in a browser)\n"
        f"  gateway   {base}   (docs: {base}/docs)\n"
        f"  retrieval {retrieval_url}\n  ranking   {ranking_url}\n\n"
        f"Try:\n  curl '{base}/v1/users/1/recommendations?k=10'\n"
        f"Stop with Ctrl-C.\n"
    )
    return _supervise(cmds, f"{base}/health/ready", banner)


def _client_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::") else host


def _supervise(cmds: list[tuple[list[str], dict[str, str]]], ready_url: str, banner: str) -> int:
    """Start every command, print ``banner`` once ``ready_url`` answers 200, and run until
    Ctrl-C / SIGTERM (exit 0) or until one child exits (the others are stopped; exit 1)."""
    procs: list[subprocess.Popen[bytes]] = []
    stopping = False

    def _stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        for cmd, env in cmds:
            procs.append(subprocess.Popen(cmd, env=env))
        if _wait_ready(ready_url, 180, procs):
            print(banner, flush=True)
        elif not stopping:
            print("hybridrec: a service failed to become ready; see the log above", file=sys.stderr)
            return 1
        while not stopping:
            if any(p.poll() is not None for p in procs):
                print("hybridrec: a service exited; stopping the others", file=sys.stderr)
                return 1
            time.sleep(0.5)
        return 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
