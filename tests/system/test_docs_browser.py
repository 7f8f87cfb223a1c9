"""The gateway's interactive docs in a real headless Chromium, fully offline.

Debian's ``chromium`` (``/usr/bin/chromium``, or ``HYBRIDREC_TEST_CHROMIUM``) is
driven by Playwright with ``executable_path``, so Playwright never downloads a
browser. The test opens ``/docs`` on a real stack, runs the user-recommendations
operation through "Try it out" and checks the rendered 200 response; every
request the page makes must stay on loopback (others are aborted and fail the
test). A full-page screenshot lands in ``HYBRIDREC_TEST_ARTIFACTS`` (default
``test-artifacts/`` at the repository root).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pandas as pd
import pytest
from playwright.sync_api import Browser, Page, Route, expect

from harness.processes import ServiceProcess, running_stack
from tests.support.browser import LOOPBACK

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("chromium")]

PROJECT_ROOT = Path(__file__).resolve().parents[2]
OPERATION = "#operations-recommendations-get_user_recommendations"
K = 5


@pytest.fixture(scope="module")
def stack(
    small_bundle: Path, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, ServiceProcess]]:
    prefix = f"hrdocs-{uuid.uuid4().hex[:8]}"
    with running_stack(
        small_bundle, tmp_path_factory.mktemp("docs-run"), redis_url=redis_url, prefix=prefix
    ) as procs:
        yield procs




@pytest.fixture
def offline_page(browser: Browser) -> Iterator[tuple[Page, list[str]]]:
    """A page whose requests to any non-loopback host are aborted and recorded.

    A request the page's own Content-Security-Policy blocks never reaches the
    network (nor this route), so it is not counted.
    """
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    outside: list[str] = []

    def guard(route: Route) -> None:
        host = urlsplit(route.request.url).hostname or ""
        if route.request.url.startswith(("http:", "https:", "ws:", "wss:")) and (
            host not in LOOPBACK
        ):
            outside.append(route.request.url)
            route.abort()
        else:
            route.continue_()

    context.route("**/*", guard)
    page = context.new_page()
    page.set_default_timeout(20_000)
    try:
        yield page, outside
    finally:
        context.close()


def artifacts_dir() -> Path:
    path = Path(os.environ.get("HYBRIDREC_TEST_ARTIFACTS") or PROJECT_ROOT / "test-artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_swagger_ui_try_it_out_shows_recommendations(
    stack: dict[str, ServiceProcess],
    small_bundle: Path,
    offline_page: tuple[Page, list[str]],
) -> None:
    page, outside = offline_page
    gw = stack["gateway"].url
    uid = str(pd.read_parquet(small_bundle / "latest" / "users.parquet").iloc[0].user_id)
    catalogue = set(pd.read_parquet(small_bundle / "latest" / "items.parquet")["title"])
    direct = httpx.get(f"{gw}/v1/users/{uid}/recommendations", params={"k": K}, timeout=30)
    assert direct.status_code == 200, direct.text
    expected = [it["title"] for it in direct.json()["items"]]
    assert len(expected) == K and set(expected) <= catalogue, expected

    page.goto(f"{gw}/docs")
    op = page.locator(OPERATION)
    expect(op).to_be_visible()
    op.locator(".opblock-summary").first.click()
    op.get_by_role("button", name="Try it out").click()
    op.locator('tr[data-param-name="user_id"] input').fill(str(uid))
    op.locator('tr[data-param-name="k"] input').fill(str(K))
    op.get_by_role("button", name="Execute").click()

    live = op.locator(".live-responses-table")
    status = live.locator("tbody .response .response-col_status").first
    expect(status).to_have_text("200")
    body_block = live.locator(".response-col_description pre").first
    expect(body_block).to_contain_text(expected[0])
    shown = json.loads(body_block.inner_text())
    titles = [it["title"] for it in shown["items"]]
    assert titles == expected, (titles, expected)
    assert set(titles) <= catalogue
    for title in expected:
        expect(body_block).to_contain_text(json.dumps(title)[1:-1])

    # Let the response box grow so that the screenshot shows every title.
    page.add_style_tag(content=".live-responses-table .microlight { max-height: none !important; }")
    body_block.scroll_into_view_if_needed()
    shot = artifacts_dir() / "docs-try-it-out.png"
    page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot of the rendered Swagger UI response: {shot}")
    assert shot.stat().st_size > 10_000
    assert not outside, f"the docs page tried to leave localhost: {outside}"


def test_redoc_renders_offline(
    stack: dict[str, ServiceProcess], offline_page: tuple[Page, list[str]]
) -> None:
    page, outside = offline_page
    gw = stack["gateway"].url
    title = httpx.get(f"{gw}/openapi.json", timeout=30).json()["info"]["title"]
    page.goto(f"{gw}/redoc")
    expect(page.locator("h1").filter(has_text=title).first).to_be_visible()
    expect(page.get_by_role("heading", name="Recommendations for a known user")).to_be_visible()
    shot = artifacts_dir() / "redoc.png"
    page.screenshot(path=str(shot))
    print(f"screenshot of ReDoc: {shot}")
    assert not outside, (
        f"the ReDoc page tried to leave localhost: {outside} (redoc.standalone.js always "
        "loads its logo from cdn.redoc.ly; serve /redoc with a Content-Security-Policy "
        "such as \"img-src 'self' data:\" so the browser blocks it)"
    )
