"""``make compose-test``: build the images and run the whole stack with docker compose, for real.

What it needs (it installs nothing itself): a Docker engine and compose, e.g. Debian's
``apt-get install docker.io docker-compose debootstrap`` and a running ``dockerd``;
``debootstrap`` (and root) only when the registry's ``python:3.11-slim`` cannot be pulled.

Steps, each printed with its time:

1. Base images: ``python:3.11-slim`` and ``redis:7-alpine`` if present or pullable;
   otherwise ``deploy/base_image.sh`` builds ``hybridrec-base:bookworm`` from a
   debootstrap rootfs (python3 3.11) and ``deploy/redis.Dockerfile`` a Redis on it.
2. The hybridrec image (``docker build --network host``), its Python packages from the
   package index this machine's pip uses (``pip config list`` and ``PIP_*``): remote
   indexes are passed on, local ones (``file://`` indexes, find-links folders) and
   pip's CA bundle (``cert``) are served read-only on 127.0.0.1 during the build.
3. ``compose up -d`` (project ``hybridrec-ct``; the gateway published on a free
   127.0.0.1 port): Redis, the trainer (``hybridrec train`` on the bundled
   ml-latest-small, once per volume), retrieval, ranking, gateway; then waits for
   the gateway's readiness.
4. Calls the gateway: recommendations, a feedback event, a new item (then found).
5. Kills the ranking container: an answer says ``degraded: ["ranking"]``; starts it
   again: answers are whole again.
6. ``compose down -v``: containers, network and volumes go (images stay, so a second
   run reuses the build cache).

Network traffic: the Debian mirror and the package index (builds only), loopback and
the containers' own network.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
PROJECT = "hybridrec-ct"
LOCAL_BASE = "hybridrec-base:bookworm"
LOCAL_REDIS = "hybridrec-redis:bookworm"
PIP_PORT_BASE = 38411  # loopback ports of the pip sources served to the build
GRACE_S = 10.0  # with a replica killed, answers may be degraded this long (until marked down)
INSTALL_HINT = (
    "make compose-test needs Docker and compose. On Debian/Ubuntu, as root:\n"
    "  apt-get install -y docker.io docker-compose debootstrap\n"
    "  dockerd > /tmp/dockerd.log 2>&1 &      # unless a service manager runs it\n"
    "debootstrap is needed only when python:3.11-slim cannot be pulled."
)

T0 = time.monotonic()
TIMINGS: list[tuple[str, float]] = []


class CheckFailed(RuntimeError):
    """The stack did not behave as expected (the message says what was seen)."""


def say(msg: str) -> None:
    print(f"[compose-test {time.monotonic() - T0:7.1f} s] {msg}", flush=True)


@contextmanager
def step(name: str) -> Iterator[None]:
    say(f"--> {name}")
    t = time.monotonic()
    yield
    took = time.monotonic() - t
    TIMINGS.append((name, took))
    say(f"<-- {name}: {took:.1f} s")


def run(
    cmd: list[str],
    *,
    check: bool = True,
    capture: bool = False,
    timeout: float | None = None,
    env: dict[str, str] | None = None,
    log: Path | None = None,
    show: tuple[str, ...] = (),
    quiet: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run ``cmd``; with ``log``, output goes there and lines starting with ``show`` are shown."""
    if not quiet:
        say("$ " + shlex.join(cmd))
    full_env = {**os.environ, **(env or {})}
    if log is None:
        done = subprocess.run(
            cmd, capture_output=capture, text=True, timeout=timeout, env=full_env, check=False
        )
    else:
        with (
            log.open("a") as fh,
            subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=full_env
            ) as proc,
        ):
            assert proc.stdout is not None
            for line in proc.stdout:
                fh.write(line)
                if show and line.lstrip().startswith(show):
                    say("   " + line.strip()[:160])
            rc = proc.wait(timeout)
        done = subprocess.CompletedProcess(cmd, rc, "", "")
    if check and done.returncode != 0:
        where = f" (output in {log})" if log else ""
        raise CheckFailed(
            f"`{shlex.join(cmd)}` failed with exit code {done.returncode}{where}\n"
            f"{(done.stderr or '')[-2000:]}"
        )
    return done


# ---------------------------------------------------------------- preflight and images


def compose_command() -> list[str]:
    """``docker compose`` (v2 plugin) when present, else ``docker-compose`` (v1)."""
    if shutil.which("docker") is None:
        raise CheckFailed("no `docker` on PATH.\n" + INSTALL_HINT)
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
    if probe.returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise CheckFailed(
        "neither `docker compose` nor `docker-compose` is installed.\n" + INSTALL_HINT
    )


def image_exists(tag: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", tag], capture_output=True).returncode == 0


def pullable(tag: str) -> bool:
    if image_exists(tag):
        return True
    try:
        done = run(["docker", "pull", tag], check=False, capture=True, timeout=120)
    except subprocess.TimeoutExpired:
        return False
    if done.returncode != 0:
        say(f"   cannot pull {tag}: {(done.stderr or '').strip().splitlines()[-1:]}")
    return done.returncode == 0


def base_images(args: argparse.Namespace, logdir: Path) -> tuple[str, str]:
    """(base image for the hybridrec image, Redis image), building local ones when needed."""
    base = args.base_image or os.environ.get("BASE_IMAGE") or ""
    if not base:
        if pullable("python:3.11-slim"):
            base = "python:3.11-slim"
        else:
            if not image_exists(LOCAL_BASE):
                if shutil.which("debootstrap") is None:
                    raise CheckFailed(
                        "python:3.11-slim cannot be pulled and debootstrap is missing to "
                        "build a local base image.\n" + INSTALL_HINT
                    )
                say(f"   building {LOCAL_BASE} from a debootstrap rootfs (once)")
                run(
                    ["sh", str(ROOT / "deploy" / "base_image.sh"), LOCAL_BASE],
                    log=logdir / "base_image.log",
                    show=("I: Retrieving Release", "base image"),
                )
            base = LOCAL_BASE
    redis = args.redis_image or os.environ.get("REDIS_IMAGE") or ""
    if not redis:
        if pullable("redis:7-alpine"):
            redis = "redis:7-alpine"
        else:
            run(
                [
                    "docker",
                    "build",
                    "--network",
                    "host",
                    "--build-arg",
                    f"BASE_IMAGE={base}",
                    "-f",
                    str(ROOT / "deploy" / "redis.Dockerfile"),
                    "-t",
                    LOCAL_REDIS,
                    str(ROOT / "deploy"),
                ],
                env={"DOCKER_BUILDKIT": "0"},
                log=logdir / "redis_build.log",
                show=("Step ",),
            )
            redis = LOCAL_REDIS
    out = subprocess.run(
        [
            "docker",
            "run",
            "--rm",
            base,
            "python3",
            "-c",
            "import sys; print('.'.join(map(str, sys.version_info[:3])))",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    say(f"   base image {base} (python3 {out.stdout.strip() or '?'}), Redis image {redis}")
    if not out.stdout.startswith("3.11."):
        raise CheckFailed(f"{base} has python3 {out.stdout.strip()!r}; the image needs 3.11")
    return base, redis


# ---------------------------------------------------------------- pip sources for the build


def _pip_config() -> dict[str, list[str]]:
    """index-url / extra-index-url / find-links as this machine's pip sees them."""
    found: dict[str, list[str]] = {
        "index-url": [],
        "extra-index-url": [],
        "find-links": [],
        "cert": [],
    }
    out = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True
    ).stdout
    for line in out.splitlines():
        name, _, value = line.partition("=")
        option = name.rsplit(".", 1)[-1]
        if option in found:
            found[option] = value.strip().strip("'\"").split()
    for option in found:  # the environment wins, as it does for pip
        env = os.environ.get("PIP_" + option.upper().replace("-", "_"))
        if env:
            found[option] = env.split()
    return found


class LocalSources:
    """Serves local pip indexes / wheel folders read-only on 127.0.0.1 during a build."""

    def __init__(self) -> None:
        self.servers: list[http.server.ThreadingHTTPServer] = []

    def url_for(self, source: str, *, index: bool) -> str:
        """``source`` (a URL, folder or file) as a URL a ``--network host`` build can reach."""
        parts = urlsplit(source)
        if parts.scheme in ("http", "https"):
            return source
        path = Path(parts.path if parts.scheme == "file" else source).resolve()
        if path.is_file():
            root, sub = path.parent, path.name
        elif index:
            # An index's pages link to files beside it (``../../files/x.whl``): serve its parent.
            root, sub = path.parent, path.name + "/"
        else:
            root, sub = path, ""
        handler = functools.partial(_QuietHandler, directory=str(root))
        # The same ports from run to run keep the build arguments, hence Docker's layer
        # cache, unchanged; a random port when the fixed one is taken.
        try:
            server = http.server.ThreadingHTTPServer(
                ("127.0.0.1", PIP_PORT_BASE + len(self.servers)), handler
            )
        except OSError:
            server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.servers.append(server)
        url = f"http://127.0.0.1:{server.server_address[1]}/{sub}"
        say(f"   serving {path} read-only at {url} for the build")
        return url

    def close(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return


def pip_build_args(sources: LocalSources) -> list[str]:
    """``--build-arg PIP_*`` for the Dockerfile, from this machine's pip configuration."""
    cfg = _pip_config()
    args: list[str] = []
    index = cfg["index-url"][:1]
    if index:
        args += ["--build-arg", "PIP_INDEX_URL=" + sources.url_for(index[0], index=True)]
    if cfg["extra-index-url"]:
        extra = [sources.url_for(u, index=True) for u in cfg["extra-index-url"]]
        args += ["--build-arg", "PIP_EXTRA_INDEX_URL=" + " ".join(extra)]
    if cfg["find-links"]:
        links = [sources.url_for(u, index=False) for u in cfg["find-links"]]
        args += ["--build-arg", "PIP_FIND_LINKS=" + " ".join(links)]
    if cfg["cert"]:  # e.g. the CA of a TLS-inspecting proxy in front of the index
        args += ["--build-arg", "PIP_CERT_URL=" + sources.url_for(cfg["cert"][0], index=False)]
    return args


def build_context(git_ref: str | None, logdir: Path) -> Path:
    """The working tree, or (``--git-ref``) a clean export of a commit: what was committed."""
    if git_ref is None:
        return ROOT
    dest = logdir / "context"
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", git_ref],
        capture_output=True,
        check=False,
    )
    if archive.returncode != 0:
        raise CheckFailed(f"git archive {git_ref}: {archive.stderr.decode(errors='replace')}")
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", git_ref],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    say(f"   build context: commit {commit} ({git_ref}), not the working tree")
    return dest


# ---------------------------------------------------------------- talking to the stack


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_json(method: str, url: str, body: Any = None, timeout: float = 30) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw)
        except ValueError:
            return exc.code, raw.decode(errors="replace")
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as exc:
        return 0, str(exc)


def wait_for(what: str, probe: Any, timeout: float, every: float = 2.0) -> Any:
    """Call ``probe()`` until it returns something truthy; progress every 30 s."""
    t, last_note = time.monotonic(), time.monotonic()
    while time.monotonic() - t < timeout:
        got = probe()
        if got:
            return got
        if time.monotonic() - last_note > 30:
            say(f"   still waiting for {what} ({time.monotonic() - t:.0f} s)")
            last_note = time.monotonic()
        time.sleep(every)
    raise CheckFailed(f"gave up waiting for {what} after {timeout:.0f} s")


class Stack:
    """``compose -p hybridrec-ct`` with the images and published port of this run."""

    def __init__(
        self, compose: list[str], env: dict[str, str], port: int, logdir: Path, replicas: int = 1
    ):
        self.compose, self.env, self.logdir = compose, env, logdir
        self.replicas = replicas
        self.base = f"http://127.0.0.1:{port}"

    def cmd(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return run([*self.compose, "-p", PROJECT, *args], env=self.env, **kw)

    def container(self, service: str) -> str:
        return self.cmd("ps", "-q", service, capture=True, quiet=True).stdout.strip()

    def states(self) -> str:
        out = run(
            [
                "docker",
                "ps",
                "-a",
                "--filter",
                f"label=com.docker.compose.project={PROJECT}",
                "--format",
                '{{.Label "com.docker.compose.service"}}={{.Status}}',
            ],
            capture=True,
            check=False,
            quiet=True,
        ).stdout
        return ", ".join(sorted(out.split("\n"))).strip(", ")

    def containers(self, service: str) -> list[str]:
        return self.cmd("ps", "-q", service, capture=True, quiet=True).stdout.split()

    def health(self, service: str) -> str:
        """``status/health`` of the service's container(s), one per line."""
        ids = self.containers(service)
        if not ids:
            return "absent"
        out = subprocess.run(
            [
                "docker",
                "inspect",
                "--format",
                "{{.State.Status}}/{{if .State.Health}}{{.State.Health.Status}}{{end}}",
                *ids,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        return out.stdout.strip()

    def all_healthy(self, service: str) -> bool:
        states = self.health(service).split()
        return len(states) == self.replicas and all(h == "running/healthy" for h in states)

    def seed_artifacts(self, bundle_root: Path, image: str) -> None:
        """Copy a bundle root (``latest`` + versions) into the stack's ``artifacts`` volume."""
        volume = f"{PROJECT}_artifacts"
        if not (bundle_root / "latest").exists():
            raise CheckFailed(f"--artifacts {bundle_root}: no bundle there (no `latest`)")
        run(
            [
                "docker",
                "volume",
                "create",
                "--label",
                f"com.docker.compose.project={PROJECT}",
                "--label",
                "com.docker.compose.volume=artifacts",
                volume,
            ],
            capture=True,
        )
        run(
            [
                "docker",
                "run",
                "--rm",
                "--user",
                "0",
                "-v",
                f"{volume}:/artifacts",
                "-v",
                f"{bundle_root.resolve()}:/seed:ro",
                "--entrypoint",
                "sh",
                image,
                "-c",
                "cp -a /seed/. /artifacts/ && chown -R 10001:10001 /artifacts",
            ]
        )

    def ready(self, service: str) -> bool:
        """The gateway's readiness; fails at once when a container crash-loops."""
        for name in ("retrieval", "ranking", service):
            if any(
                h.startswith(("restarting", "exited", "dead")) for h in self.health(name).split()
            ):
                logs = subprocess.run(
                    ["docker", "logs", "--tail", "15", self.container(name)],
                    capture_output=True,
                    text=True,
                    check=False,
                )
                tail = (logs.stdout + logs.stderr).strip()[-1500:]
                raise CheckFailed(f"the {name} container is {self.health(name)}:\n{tail}")
        return self.get("/health/ready")[0] == 200

    def get(self, path: str) -> tuple[int, Any]:
        return http_json("GET", self.base + path)

    def post(self, path: str, body: Any) -> tuple[int, Any]:
        return http_json("POST", self.base + path, body)


def bring_up(stack: Stack, timeout: float) -> None:
    """``compose up -d`` (it waits for the trainer and the health checks) with progress lines."""
    done = threading.Event()
    result: dict[str, Any] = {}

    def _up() -> None:
        try:
            scale = (
                ["--scale", f"retrieval={stack.replicas}", "--scale", f"ranking={stack.replicas}"]
                if stack.replicas > 1
                else []
            )
            result["done"] = stack.cmd(
                "up",
                "-d",
                "--no-build",
                *scale,
                log=stack.logdir / "compose_up.log",
                show=("Creating", "Starting", "ERROR"),
                timeout=timeout,
            )
        except Exception as exc:  # reported below
            result["error"] = exc
        finally:
            done.set()

    threading.Thread(target=_up, daemon=True).start()
    while not done.wait(30):
        trainer = (
            subprocess.run(
                [*stack.compose, "-p", PROJECT, "logs", "--tail", "1", "--no-color", "trainer"],
                capture_output=True,
                text=True,
                env={**os.environ, **stack.env},
                check=False,
            )
            .stdout.strip()
            .splitlines()
        )
        say(f"   {stack.states() or 'creating'}")
        if trainer:
            say(f"   trainer: {trainer[-1][-150:]}")
    if "error" in result:
        raise result["error"]


def check_answers(stack: Stack) -> dict[str, Any]:
    """Recommendations, an event and a new item through the gateway; returns what was seen."""
    seen: dict[str, Any] = {}
    t = time.monotonic()
    status, body = stack.get("/v1/users/1/recommendations?k=5")
    seen["recs_ms"] = round((time.monotonic() - t) * 1000, 1)
    if status != 200 or not body.get("items") or body.get("degraded"):
        raise CheckFailed(f"GET /v1/users/1/recommendations: {status} {body}")
    items = [i["item_id"] for i in body["items"]]
    say(f"   user 1: {status}, items {items}, degraded {body['degraded']} ({seen['recs_ms']} ms)")
    status, body = stack.post(
        "/v1/users/1/events", {"item_id": items[0], "type": "rating", "rating": 4.5}
    )
    if status != 202 or body.get("status") != "accepted":
        raise CheckFailed(f"POST /v1/users/1/events: {status} {body}")
    say(
        f"   event: {status} {body['status']}, event_id {body['event_id']}, "
        f"degraded {body['degraded']}"
    )
    new = {
        "title": "Compose Test: The Container Strikes Back",
        "genres": ["Sci-Fi", "Comedy"],
        "year": 2026,
        "overview": "Three services, one Redis and a trainer are started by docker compose.",
    }
    status, body = stack.post("/v1/items", new)
    if status != 201 or "item_id" not in body:
        raise CheckFailed(f"POST /v1/items: {status} {body}")
    item_id = body["item_id"]
    t = time.monotonic()
    # Each retrieval replica re-reads run-time items from Redis every 2 s: with several,
    # the one a read lands on may not have it yet. Read until every replica had it (4 in
    # a row), within 15 s.
    in_a_row = [0]
    last: list[Any] = [None]

    def visible() -> bool:
        last[0] = stack.get(f"/v1/items/{item_id}")
        status, got = last[0]
        found = status == 200 and got.get("title") == new["title"] and bool(got.get("fresh"))
        in_a_row[0] = in_a_row[0] + 1 if found else 0
        return in_a_row[0] >= (4 if stack.replicas > 1 else 1)

    try:
        wait_for("the new item on every retrieval replica", visible, 15, every=0.25)
    except CheckFailed as exc:
        raise CheckFailed(f"GET /v1/items/{item_id} after adding it: {last[0]}") from exc
    lag = time.monotonic() - t
    say(f"   new item: 201, item_id {item_id}; read back fresh=True ({lag:.1f} s to be stable)")
    seen["new_item_visible_s"] = round(lag, 2)
    status, similar = stack.get(f"/v1/items/{item_id}/similar?k=3")
    if status != 200 or not similar.get("items"):
        raise CheckFailed(f"GET /v1/items/{item_id}/similar: {status} {similar}")
    say(f"   similar to it: {[i['title'] for i in similar['items']]}")
    seen.update(items=items, new_item=item_id)
    return seen


def check_ranking_outage(stack: Stack, items: list[int], health_timeout: float) -> dict[str, Any]:
    """Kill ranking, see ``degraded``, start it again, see whole answers."""
    # anonymous requests from the first answer's items, each with its own k (uncached)
    ks = iter(range(50, 200))

    def recommend() -> tuple[int, Any]:
        return stack.post("/v1/recommendations", {"recent_item_ids": items, "k": next(ks)})

    stack.cmd("kill", "ranking")
    status, body = recommend()
    if status != 200 or "ranking" not in (body.get("degraded") or []) or not body.get("items"):
        raise CheckFailed(f"with ranking killed, expected 200 degraded [ranking]: {status} {body}")
    say(
        f"   ranking killed: POST /v1/recommendations -> {status}, {len(body['items'])} items, "
        f"degraded {body['degraded']}"
    )
    t = time.monotonic()
    stack.cmd("start", "ranking")
    wait_for("ranking healthy", lambda: stack.all_healthy("ranking"), health_timeout)

    def whole() -> bool:
        status, body = recommend()
        return status == 200 and bool(body.get("items")) and not body.get("degraded")

    wait_for("an undegraded answer after the restart", whole, 120)
    back = time.monotonic() - t
    say(f"   ranking back: answers whole again {back:.1f} s after `start`")
    return {"ranking_back_s": round(back, 1)}


def check_replica_outage(
    stack: Stack, items: list[int], health_timeout: float, seconds: float = 15.0
) -> dict[str, Any]:
    """With several replicas: kill one retrieval and one ranking container; answers go on.

    Requests for ``seconds`` after the kill, each different (so the result cache answers
    none): every one must be a 200 with items, and answers may be degraded only while the
    gateway has not yet marked the dead replicas down (the first ``GRACE_S`` seconds).
    """
    victims = {name: stack.containers(name)[0] for name in ("retrieval", "ranking")}
    run(["docker", "kill", *victims.values()], capture=True)
    t0 = time.monotonic()
    say(f"   killed one of {stack.replicas} replicas each: {victims}")
    variants = iter([(k, ex) for ex in (True, False) for k in range(3, 50)])
    answers: list[tuple[float, int, list[str]]] = []
    for k, exclude_seen in variants:
        if time.monotonic() - t0 > seconds:
            break
        status, body = stack.post(
            "/v1/recommendations",
            {"recent_item_ids": items, "k": k, "exclude_seen": exclude_seen},
        )
        ok = status == 200 and isinstance(body, dict) and bool(body.get("items"))
        degraded = list(body.get("degraded", [])) if ok else []
        answers.append((time.monotonic() - t0, status if ok else -status, degraded))
    failed = [a for a in answers if a[1] != 200]
    degraded_at = [round(a[0], 2) for a in answers if a[2]]
    reasons = sorted({r for a in answers for r in a[2]})
    say(
        f"   {len(answers)} recommendations in {answers[-1][0]:.1f} s with a replica of each "
        f"down: {len(answers) - len(failed)} x 200, {len(degraded_at)} degraded {reasons}, "
        f"the last {degraded_at[-1] if degraded_at else '-'} s after the kill"
    )
    if failed:
        raise CheckFailed(f"answers failed with a replica down: {failed[:5]}")
    if degraded_at and degraded_at[-1] > GRACE_S:
        raise CheckFailed(f"answers still degraded {degraded_at[-1]} s after the kill")
    run(["docker", "start", *victims.values()], capture=True)
    wait_for("every replica healthy again", lambda: stack.all_healthy("ranking"), health_timeout)
    wait_for("every replica healthy again", lambda: stack.all_healthy("retrieval"), health_timeout)
    say(f"   both replicas healthy again: {stack.states()}")
    return {
        "replicas": stack.replicas,
        "outage_calls": len(answers),
        "outage_degraded": len(degraded_at),
        "outage_last_degraded_s": degraded_at[-1] if degraded_at else None,
    }


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-image", help="base of the hybridrec image (default: see above)")
    parser.add_argument("--redis-image", help="Redis image (default: see above)")
    parser.add_argument(
        "--quick-train",
        action="store_true",
        help="train with --quick (a smoke-test bundle, minutes faster)",
    )
    parser.add_argument(
        "--artifacts",
        type=Path,
        help="seed the artifacts volume with this bundle root (the trainer then skips "
        "training, as it does on any volume that holds a bundle)",
    )
    parser.add_argument(
        "--git-ref",
        help="build a commit (e.g. HEAD) exported with git archive instead of the working "
        "tree, so uncommitted edits stay out of the image",
    )
    parser.add_argument(
        "--replicas",
        type=int,
        default=1,
        help="run N retrieval and N ranking containers (compose --scale); with N > 1 one of "
        "each is killed and answers must go on undegraded",
    )
    parser.add_argument(
        "--no-build", action="store_true", help="use the existing hybridrec:latest image"
    )
    parser.add_argument("--keep", action="store_true", help="leave the stack running")
    parser.add_argument("--logdir", type=Path, default=Path("/tmp/hybridrec-compose-test"))
    parser.add_argument("--up-timeout", type=float, default=2400, help="seconds for compose up")
    args = parser.parse_args(argv)
    args.logdir.mkdir(parents=True, exist_ok=True)
    for old in args.logdir.glob("*.log"):
        old.unlink()
    summary: dict[str, Any] = {"ok": False, "trained_in_compose": args.artifacts is None}
    stack: Stack | None = None
    # SIGTERM (kill, a CI timeout) unwinds through the teardown below like Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        with step("preflight"):
            compose = compose_command()
            if run(["docker", "info"], check=False, capture=True).returncode != 0:
                raise CheckFailed("the Docker engine does not answer.\n" + INSTALL_HINT)
            version = run([*compose, "version"], capture=True).stdout.strip().splitlines()[0]
            say(f"   compose: {shlex.join(compose)} ({version})")
        with step("base images"):
            base, redis = base_images(args, args.logdir)
        if args.no_build and not image_exists("hybridrec:latest"):
            raise CheckFailed("--no-build: there is no hybridrec:latest image to use")
        if not args.no_build:
            with step("build hybridrec:latest"):
                sources = LocalSources()
                context = build_context(args.git_ref, args.logdir)
                try:
                    run(
                        [
                            "docker",
                            "build",
                            "--network",
                            "host",
                            "--build-arg",
                            f"BASE_IMAGE={base}",
                            *pip_build_args(sources),
                            "-t",
                            "hybridrec:latest",
                            str(context),
                        ],
                        env={"DOCKER_BUILDKIT": "0"},
                        log=args.logdir / "build.log",
                        show=("Step ", "torch ", "Successfully built"),
                    )
                finally:
                    sources.close()
                    if context != ROOT:
                        shutil.rmtree(context, ignore_errors=True)
        port = free_port()
        env = {
            "BASE_IMAGE": base,
            "REDIS_IMAGE": redis,
            "GATEWAY_PUBLISH": f"127.0.0.1:{port}",
            "TRAIN_ARGS": "--quick" if args.quick_train else "",
        }
        stack = Stack(compose, env, port, args.logdir, args.replicas)
        stack.cmd("down", "-v", "--remove-orphans", check=False, capture=True)  # a stale run
        if args.artifacts is not None:
            with step(f"seed the artifacts volume from {args.artifacts}"):
                stack.seed_artifacts(args.artifacts, "hybridrec:latest")
        with step("compose up (trainer, then services until healthy)"):
            bring_up(stack, args.up_timeout)
        with step("gateway ready on 127.0.0.1"):
            wait_for("gateway /health/ready", lambda: stack.ready("gateway"), 300)
            say(f"   {stack.states()}")
        with step("recommendations, an event, a new item"):
            summary.update(check_answers(stack))
        if args.replicas > 1:
            with step(f"kill one of {args.replicas} retrieval and ranking replicas"):
                summary.update(check_replica_outage(stack, summary["items"], 300))
        with step("kill ranking, see degraded, restart it"):
            summary.update(check_ranking_outage(stack, summary["items"], 300))
        summary["ok"] = True
    except CheckFailed as exc:
        say(f"FAILED: {exc}")
        if stack is not None:
            stack.cmd(
                "logs",
                "--tail",
                "40",
                "--no-color",
                check=False,
                log=args.logdir / "failure_logs.log",
            )
            say(f"   last service logs in {args.logdir / 'failure_logs.log'}")
    finally:
        if stack is not None and not args.keep:
            with step("compose down -v"):
                stack.cmd("down", "-v", "--remove-orphans", check=False, capture=True)
    total = time.monotonic() - T0
    print("\nstep timings:")
    for name, took in TIMINGS:
        print(f"  {took:8.1f} s  {name}")
    print(f"  {total:8.1f} s  total")
    summary["timings_s"] = {name: round(took, 1) for name, took in TIMINGS} | {
        "total": round(total, 1)
    }
    (args.logdir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"compose test {'PASSED' if summary['ok'] else 'FAILED'} (logs in {args.logdir})")
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
