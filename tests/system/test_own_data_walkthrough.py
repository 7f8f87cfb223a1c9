"""docs/own-data.md's walkthrough, run as written: two CSV files to recommendations.

The test reads the walkthrough out of the page (between ``<!-- walkthrough: begin -->`` and
``<!-- walkthrough: end -->``), writes two CSV files with exactly the headers the page
shows (rows generated like the bookshop's, by a newcomer's default column names, no
schema), then runs every ``hybridrec`` command of the page's shell blocks in order in a
fresh folder, as real processes, and calls every ``curl`` URL against the running gateway.
The only changes to the page's commands: ``--quick`` on ``train`` (a faster, smaller fit),
free ports and a private Redis key prefix for ``serve all``.

What must hold for each call: 200, string ids, k items, and every item satisfies the
call's attribute filter according to the CSV the test wrote.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pandas as pd
import pytest

from harness.processes import delete_prefix, free_port
from tests.support.bookshop import bookshop_tables

pytestmark = pytest.mark.slow

DOC = Path(__file__).resolve().parents[2] / "docs" / "own-data.md"
BLOCK = re.compile(r"<!-- walkthrough: begin -->(.*?)<!-- walkthrough: end -->", re.S)
FENCE = re.compile(r"^\s*`([^`]+)`\s*\n+\s*```(\w+)\n(.*?)```", re.S | re.M)
SHELL = re.compile(r"```bash\n(.*?)```", re.S)
DOC_GATEWAY = "127.0.0.1:8000"


def walkthrough() -> tuple[dict[str, str], list[str]]:
    """The CSV headers by file name, and the shell commands, of the page's walkthrough."""
    found = BLOCK.search(DOC.read_text(encoding="utf-8"))
    assert found, f"{DOC} has no walkthrough block"
    text = found.group(1)
    headers = {name: body.strip().splitlines()[0]
               for name, lang, body in FENCE.findall(text) if lang == "csv"}
    commands = [line.split("  #")[0].strip()
                for block in SHELL.findall(text) for line in block.splitlines()
                if line.strip() and not line.strip().startswith("#")]
    return headers, commands


def write_shop(folder: Path, headers: dict[str, str]) -> pd.DataFrame:
    """The two CSV files, with the page's headers; returns the items table."""
    t = bookshop_tables(11, n_items=160, n_users=60, views_per_user=20)
    items = t["items"].rename(columns={"sku": "item_id", "authors": "author"})
    inter = t["interactions"].rename(
        columns={"customer": "user_id", "sku": "item_id", "ts": "timestamp", "action": "event"})
    tables = {"interactions.csv": inter, "items.csv": items}
    folder.mkdir(parents=True)
    for rel, header in headers.items():
        name = Path(rel).name
        assert name in tables, f"the walkthrough shows {rel}; the test knows {sorted(tables)}"
        cols = header.split(",")
        missing = set(cols) - set(tables[name].columns)
        assert not missing, f"{rel}: the page's header has columns the test cannot fill: {missing}"
        tables[name][cols].to_csv(folder / name, index=False)
    assert {Path(r).name for r in headers} == set(tables), headers
    return items


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[dict[str, object]]:
    headers, commands = walkthrough()
    work = tmp_path_factory.mktemp("walkthrough")
    items = write_shop(work / "shop", headers)
    bin_dir = Path(sys.executable).parent
    prefix = f"hrwalk-{uuid.uuid4().hex[:8]}"
    ports = {"gateway": free_port(), "retrieval": free_port(), "ranking": free_port()}
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
           "HYBRIDREC_REDIS_URL": redis_url, "HYBRIDREC_REDIS_PREFIX": prefix,
           "HYBRIDREC_STATE_DIR": str(work / "state")}
    server: subprocess.Popen[bytes] | None = None
    calls: list[str] = []
    try:
        for cmd in commands:
            argv = shlex.split(cmd)
            if argv[0] == "curl":
                calls.append(next(a for a in argv[1:] if a.startswith("http")))
                continue
            assert argv[0] == "hybridrec", f"unexpected command in the walkthrough: {cmd}"
            if argv[1:3] == ["serve", "all"]:
                argv += ["--port", str(ports["gateway"]),
                         "--retrieval-url", f"http://127.0.0.1:{ports['retrieval']}",
                         "--ranking-url", f"http://127.0.0.1:{ports['ranking']}"]
                server = subprocess.Popen(argv, cwd=work, env=env, start_new_session=True)
                wait_ready(f"http://127.0.0.1:{ports['gateway']}/health/ready", server)
                continue
            if argv[1] == "train":
                argv.append("--quick")
            done = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True,
                                  timeout=600)
            assert done.returncode == 0, f"{cmd}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        assert server is not None, "the walkthrough never starts the services"
        assert calls, "the walkthrough makes no call"
        yield {"base": f"http://127.0.0.1:{ports['gateway']}", "calls": calls, "items": items}
    finally:
        if server is not None and server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
        delete_prefix(redis_url, prefix)


def wait_ready(url: str, proc: subprocess.Popen[bytes], limit_s: float = 240) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"`hybridrec serve all` exited with {proc.returncode}"
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{url} not ready within {limit_s} s")


def satisfies(row: pd.Series, query: dict[str, list[str]]) -> bool:
    """Whether an item row passes the call's include= / exclude= / where= filters."""
    def values(attr: str) -> set[str]:
        return set(str(row[attr]).split("|"))

    for spec in query.get("include", []):
        attr, wanted = spec.split(":", 1)
        if not values(attr) & set(wanted.split(",")):
            return False
    for spec in query.get("exclude", []):
        attr, unwanted = spec.split(":", 1)
        if values(attr) & set(unwanted.split(",")):
            return False
    for spec in query.get("where", []):
        attr, op, num = re.fullmatch(r"(\w+)\s*(<=|>=|<|>|=)\s*([-\d.]+)", spec).groups()  # type: ignore[union-attr]
        x, y = float(row[attr]), float(num)
        ok = {"<=": x <= y, ">=": x >= y, "<": x < y, ">": x > y, "=": x == y}[op]
        if not ok:
            return False
    return str(row["available"]).lower() != "false"


def test_the_page_calls_with_a_filter(ran: dict[str, object]) -> None:
    calls = ran["calls"]
    assert isinstance(calls, list)
    filtered = [c for c in calls if re.search(r"[?&](include|exclude|where)=", c)]
    assert filtered, "the walkthrough shows no attribute filter"
    assert any("/recommendations" in c for c in calls), calls


def test_every_call_of_the_page_answers_with_filtered_string_ids(ran: dict[str, object]) -> None:
    items = ran["items"]
    assert isinstance(items, pd.DataFrame)
    by_id = items.set_index("item_id")
    for url in ran["calls"]:  # type: ignore[attr-defined]
        parts = urlsplit(url)
        assert parts.netloc == DOC_GATEWAY, f"the page's calls go to {DOC_GATEWAY}: {url}"
        query = parse_qs(parts.query)
        r = httpx.get(f"{ran['base']}{parts.path}", params=query, timeout=30)
        assert r.status_code == 200, (url, r.text)
        body = r.json()
        ids = [it["item_id"] for it in body["items"]]
        k = int(query.get("k", ["10"])[0])
        assert len(ids) == k and len(set(ids)) == k, (url, ids)
        if "/recommendations" in parts.path:  # similar items carry no degraded list
            assert body["degraded"] == [], (url, body["degraded"])
        for iid in ids:
            assert isinstance(iid, str) and iid in by_id.index, (url, iid)
            assert satisfies(by_id.loc[iid], query), (url, iid, by_id.loc[iid].to_dict())
