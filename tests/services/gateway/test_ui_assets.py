"""The dashboard's files: served by the gateway with its CSP, offline, and installed.

(The pages themselves are tested in a real browser: tests/system/test_dashboard.py.)
"""

from __future__ import annotations

import re
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings
from services.gateway.ui import CSP, STATIC

PROJECT_ROOT = Path(__file__).resolve().parents[3]
FILES = sorted(p.relative_to(STATIC).as_posix() for p in STATIC.rglob("*") if p.is_file())
#: The one absolute URL allowed in the assets: the SVG namespace, which is never fetched.
SVG_NS = "http://www.w3.org/2000/svg"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    """The gateway app without its lifespan: the UI needs no bundle or service."""
    empty = tmp_path_factory.mktemp("no-bundle")
    return TestClient(create_app(GatewaySettings(artifacts=str(empty), state_dir=str(empty))))


def test_ui_redirects_and_serves_the_page_with_its_csp(client: TestClient) -> None:
    moved = client.get("/ui", follow_redirects=False)
    assert (moved.status_code, moved.headers["location"]) == (308, "/ui/")
    page = client.get("/ui/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == CSP
    assert "default-src 'none'" in CSP and "connect-src 'self'" in CSP
    for ref in re.findall(r'(?:src|href)="([^"#]+)"', page.text):
        if not ref.startswith("data:"):
            assert client.get(f"/ui/{ref}").status_code == 200, ref


@pytest.mark.parametrize("rel", FILES)
def test_every_asset_is_served_and_requests_nothing_outside(client: TestClient, rel: str) -> None:
    resp = client.get(f"/ui/static/{rel}")
    assert resp.status_code == 200
    assert resp.headers["content-security-policy"] == CSP
    kind = {"js": "javascript", "css": "text/css", "html": "text/html"}[rel.rsplit(".", 1)[1]]
    assert kind in resp.headers["content-type"]
    outside = [u for u in re.findall(r"(?:https?:)?//[\w.-]+\.\w+[^\s\"'`)]*", resp.text)]
    assert [u for u in outside if u != SVG_NS] == [], f"{rel} names an outside URL"
    assert "console.log" not in resp.text and "innerHTML" not in resp.text


def test_package_data_installs_every_asset() -> None:
    config = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["services.gateway.ui"]
    missing = [f for f in FILES if not any(fnmatch(f"static/{f}", p) for p in patterns)]
    assert FILES and not missing, f"add these to [tool.setuptools.package-data]: {missing}"


def test_a_missing_asset_is_a_404_json_error(client: TestClient) -> None:
    resp = client.get("/ui/static/nothing.js")
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "not_found"
