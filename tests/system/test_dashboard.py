"""The dashboard (``/ui``) in a real headless Chromium, against the real services.

Retrieval, ranking and the gateway run as processes on the small real bundle, with
API keys and an admin key set. Debian's Chromium (``/usr/bin/chromium``, or
``HYBRIDREC_TEST_CHROMIUM``) is driven by Playwright with ``executable_path`` (never
``playwright install``). Every page must load without a console error, and every
request must stay on loopback (others are aborted and fail the test). Screenshots of
each page land in ``HYBRIDREC_TEST_ARTIFACTS`` (default: a temporary folder; the
paths are printed).
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pandas as pd
import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Locator,
    Page,
    Route,
    expect,
)

from harness.processes import ServiceProcess, running_stack
from tests.support.browser import LOOPBACK

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("chromium")]

API_KEY = f"ui-key-{uuid.uuid4().hex[:12]}"
ADMIN_KEY = f"ui-admin-{uuid.uuid4().hex[:12]}"
#: The console line Chromium writes for any fetch answered 401 (expected where a key is asked).
REFUSED = re.compile(r"Failed to load resource: the server responded with a status of 401")


@dataclass
class Stack:
    procs: dict[str, ServiceProcess]
    bundle: Path

    @property
    def gw(self) -> str:
        return self.procs["gateway"].url

    def get(self, path: str, **params: object) -> httpx.Response:
        return httpx.get(
            f"{self.gw}{path}", params=params, headers={"X-API-Key": API_KEY}, timeout=30
        )


@dataclass
class Browsing:
    """A page plus what it did that a test must check."""

    page: Page
    outside: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def assert_clean(self, allow_refused: bool = False) -> None:
        errors = [e for e in self.errors if not (allow_refused and REFUSED.search(e))]
        assert not errors, f"console errors: {errors}"
        assert not self.outside, f"the dashboard tried to leave the host: {self.outside}"



@pytest.fixture(scope="module")
def stack(
    small_bundle: Path, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    prefix = f"hrui-{uuid.uuid4().hex[:8]}"
    with running_stack(
        small_bundle,
        tmp_path_factory.mktemp("dashboard-run"),
        redis_url=redis_url,
        prefix=prefix,
        HYBRIDREC_API_KEYS=API_KEY,
        HYBRIDREC_ADMIN_KEY=ADMIN_KEY,
    ) as procs:
        yield Stack(procs, small_bundle / "latest")



@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    env = os.environ.get("HYBRIDREC_TEST_ARTIFACTS")
    path = Path(env) / "dashboard" if env else tmp_path_factory.mktemp("dashboard-shots")
    path.mkdir(parents=True, exist_ok=True)
    return path


def open_page(browser: Browser, *, width: int = 1280, key: str | None = API_KEY) -> Browsing:
    """A fresh context; with ``key``, the API key is already in session storage."""
    context = browser.new_context(viewport={"width": width, "height": 900})
    run = Browsing(context.new_page())

    def guard(route: Route) -> None:
        host = urlsplit(route.request.url).hostname or ""
        if route.request.url.startswith(("http:", "https:", "ws:", "wss:")) and (
            host not in LOOPBACK
        ):
            run.outside.append(route.request.url)
            route.abort()
        else:
            route.continue_()

    def console(msg: ConsoleMessage) -> None:
        if msg.type == "error":
            run.errors.append(msg.text)

    context.route("**/*", guard)
    run.page.on("console", console)
    run.page.on("pageerror", lambda exc: run.errors.append(f"page error: {exc}"))
    if key:
        context.add_init_script(f"sessionStorage.setItem('hybridrec.key', {key!r});")
    run.page.set_default_timeout(30_000)
    return run


@pytest.fixture
def browsing(browser: Browser) -> Iterator[Browsing]:
    run = open_page(browser)
    try:
        yield run
    finally:
        run.page.context.close()


def shoot(page: Page, shots: Path, name: str) -> Path:
    path = shots / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"dashboard screenshot: {path}")
    assert path.stat().st_size > 10_000
    return path


def titles(locator: Locator) -> list[str]:
    return [t.strip() for t in locator.all_inner_texts()]


def shown(item: dict[str, object]) -> str:
    return f"{item['title']} ({item['year']})" if item.get("year") else str(item["title"])


def a_user(stack: Stack) -> str:
    """The first example user the Users page offers (no feedback events before this test)."""
    users = pd.read_parquet(stack.bundle / "users.parquet")
    return str(users.user_id.iloc[0])


# --------------------------------------------------------------------------- tests
def test_key_asked_once_then_overview_live(browser: Browser, stack: Stack, shots: Path) -> None:
    run = open_page(browser, key=None)
    page = run.page
    try:
        page.goto(f"{stack.gw}/ui/")
        dialog = page.get_by_role("dialog")
        expect(dialog).to_be_visible()
        page.get_by_label("API key", exact=True).fill("not-a-key")
        page.get_by_role("button", name="Use key").click()
        expect(dialog).to_contain_text("That key was refused")
        page.get_by_label("API key", exact=True).fill(API_KEY)
        page.keyboard.press("Enter")
        expect(dialog).to_be_hidden()

        status = stack.get("/v1/status").json()
        version = status["bundle"]["version"]
        expect(page.get_by_role("region", name="gateway service")).to_contain_text("ok")
        for name in ("retrieval", "ranking"):
            expect(page.get_by_role("region", name=f"{name} service")).to_contain_text(version)
        facts = page.locator("dl.facts")
        expect(facts).to_contain_text(version)
        expect(facts).to_contain_text(f"items{status['bundle']['n_items']}")
        expect(facts).to_contain_text(f"users{status['bundle']['n_users']}")
        expect(page.get_by_role("table")).to_contain_text("valid_ndcg@10_retrieval")
        expect(page.locator("svg.chart rect.bar").first).to_be_visible()

        # Live: recommendations made now show up at the next refresh (every 5 s).
        uid = a_user(stack)
        for k in (3, 4, 5):
            assert stack.get(f"/v1/users/{uid}/recommendations", k=k).status_code == 200
        requests = page.locator(".tile", has_text="requests / s")
        expect(requests).to_contain_text(re.compile(r"[1-9]\d* since start"), timeout=15_000)

        # Other pages do not ask again; the key is never written into the page.
        page.get_by_role("link", name="Items").click()
        expect(page.get_by_role("heading", name="Items")).to_be_visible()
        expect(dialog).to_be_hidden()
        assert API_KEY not in page.content()
        page.get_by_role("link", name="Overview").click()
        expect(page.locator(".tile", has_text="p50 latency")).to_contain_text("ms")
        shoot(page, shots, "overview")
        assert API_KEY not in page.content()
        run.assert_clean(allow_refused=True)  # the refused key and the first, keyless call
    finally:
        page.context.close()


def test_search_item_neighbours(browsing: Browsing, stack: Stack, shots: Path) -> None:
    page = browsing.page
    page.goto(f"{stack.gw}/ui/#/items")
    search = page.get_by_label("Search titles")
    expect(search).to_be_focused()
    search.fill("toy story")
    search.press("Enter")
    found = stack.get("/v1/items", q="toy story", limit=20).json()["items"]
    assert found, "the small bundle has Toy Story"
    first = found[0]
    page.locator(".results").get_by_role("link", name=shown(first), exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(shown(first))
    expect(page.locator("dl.facts")).to_contain_text(", ".join(first["genres"]))

    for mode, name in (("content", "Content neighbours"), ("collaborative", "Collaborative")):
        expected = stack.get(f"/v1/items/{first['item_id']}/similar", k=10, mode=mode).json()
        box = page.get_by_role("region", name=re.compile(name))
        expect(box.locator("li > a")).to_have_text([shown(it) for it in expected["items"]])
    shoot(page, shots, "item")

    # A neighbour's link opens its own page.
    page.get_by_role("region", name=re.compile("Collaborative")).locator("li > a").first.click()
    expect(page.get_by_role("heading", level=1)).not_to_have_text(shown(first))
    browsing.assert_clean()


def test_user_feedback_changes_the_list(browsing: Browsing, stack: Stack, shots: Path) -> None:
    page = browsing.page
    uid = a_user(stack)
    page.goto(f"{stack.gw}/ui/#/users")  # a newcomer picks an example user
    expect(page.get_by_label("User id")).to_be_focused()
    page.get_by_role("link", name=f"user {uid}", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"User {uid}")
    history = page.get_by_role("region", name="History (newest first)")
    recs = page.get_by_role("region", name="Recommendations")
    expected_hist = stack.get(f"/v1/users/{uid}/history", limit=5).json()["items"]
    expect(history.locator("li").first).to_contain_text(shown(expected_hist[0]))
    assert titles(history.locator("li > a"))[:5] == [shown(e) for e in expected_hist]
    expect(recs.locator("li.rec")).to_have_count(10)
    expect(recs.locator(".reasons").first).to_contain_text("Why:")
    before = titles(recs.locator(".rec-head > a"))
    assert not set(before) & set(titles(history.locator("li > a")))

    # Dislike the first recommendation: it leaves the list and tops the history.
    recs.locator("li.rec").first.get_by_role("button", name="Dislike").click()
    notice = page.get_by_role("status").filter(has_text="The list changed")
    expect(notice).to_contain_text(f"rating 1 for {before[0]}")
    expect(recs.locator(".rec-head > a").first).not_to_have_text(before[0])
    after = titles(recs.locator(".rec-head > a"))
    assert before[0] not in after and len(after) == 10
    expect(history.locator("li").first).to_contain_text(before[0])
    expect(history.locator("li").first).to_contain_text("rated 1")
    expect(recs.locator("li.new")).to_have_count(len(set(after) - set(before)))
    assert len(set(after) - set(before)) >= 1

    # Rate another one 5 stars: the next list is computed from the new history.
    second = after[0]
    row = recs.locator("li.rec").first
    row.get_by_label(re.compile("Rating for")).select_option("5")
    row.get_by_role("button", name="Rate").click()
    expect(page.get_by_role("status").filter(has_text=f"rating 5 for {second}")).to_be_visible()
    expect(history.locator("li").first).to_contain_text(second)
    assert second not in titles(recs.locator(".rec-head > a"))
    api_now = stack.get(f"/v1/users/{uid}/history", limit=2).json()["items"]
    assert [(e["source"], e["rating"]) for e in api_now] == [("event", 5.0), ("event", 1.0)]
    shoot(page, shots, "user")

    # k and the genre filter.
    page.get_by_label("How many (k)").fill("5")
    page.get_by_label("Genre filter").fill("Comedy")
    page.get_by_role("button", name="Show").click()
    expect(recs.locator("li.rec")).to_have_count(5)
    assert all("Comedy" in g for g in recs.locator("li.rec > .muted").all_inner_texts())
    browsing.assert_clean()


def test_try_it_session(browsing: Browsing, stack: Stack, shots: Path) -> None:
    page = browsing.page
    page.goto(f"{stack.gw}/ui/#/try")
    recs = page.get_by_role("region", name="Recommendations for this session")
    expect(recs).to_contain_text("Nothing picked yet")
    search = page.get_by_label("Find items you like")
    search.fill("toy story")
    search.press("Enter")
    found = stack.get("/v1/items", q="toy story", limit=20).json()["items"]
    page.get_by_role("button", name=f"Add {shown(found[0])}").click()
    expect(recs.locator("li.rec")).to_have_count(10)
    direct = httpx.post(
        f"{stack.gw}/v1/recommendations",
        json={"recent_item_ids": [found[0]["item_id"]], "k": 10},
        headers={"X-API-Key": API_KEY},
        timeout=30,
    ).json()
    expect(recs.locator("li.rec > a")).to_have_text([shown(it) for it in direct["items"]])

    # Another pick with a low rating: the list is recomputed.
    page.get_by_role("button", name=f"Add {shown(found[1])}").click()
    session = page.get_by_role("region", name=re.compile("Your session"))
    expect(session.locator("li")).to_have_count(2)
    session.get_by_label(f"Rating for {shown(found[1])}").select_option("1")
    expected = httpx.post(
        f"{stack.gw}/v1/recommendations",
        json={
            "recent_item_ids": [found[0]["item_id"]],
            "ratings": [{"item_id": found[1]["item_id"], "rating": 1}],
            "k": 10,
        },
        headers={"X-API-Key": API_KEY},
        timeout=30,
    ).json()
    want = [shown(it) for it in expected["items"]]
    expect(recs.locator("li.rec > a")).to_have_text(want)
    assert shown(found[1]) not in want  # rated, so seen
    shoot(page, shots, "try-it")
    browsing.assert_clean()


def test_admin_refused_without_the_admin_key(browsing: Browsing, stack: Stack, shots: Path) -> None:
    page = browsing.page
    page.goto(f"{stack.gw}/ui/#/admin")
    expect(page.get_by_role("alert")).to_contain_text("Refused")
    expect(page.get_by_role("button", name="Dry run")).to_have_count(0)
    expect(page.get_by_role("button", name="Reload")).to_have_count(0)

    page.get_by_label("Admin key").fill(ADMIN_KEY)
    page.get_by_role("button", name="Unlock admin").click()
    version = stack.get("/v1/status").json()["bundle"]["version"]
    table = page.get_by_role("table")
    for name in ("gateway", "retrieval", "ranking"):
        expect(table.get_by_role("row", name=re.compile(name))).to_contain_text(version)
    page.get_by_role("button", name="Dry run").click()
    expect(page.get_by_text("Dry run passed")).to_contain_text(version)
    shoot(page, shots, "admin")
    assert ADMIN_KEY not in page.content() and API_KEY not in page.content()
    browsing.assert_clean(allow_refused=True)  # the first, refused admin call


def test_keyboard_and_phone_width(browser: Browser, stack: Stack, shots: Path) -> None:
    run = open_page(browser, width=390)
    page = run.page
    try:
        page.goto(f"{stack.gw}/ui/#/users/{a_user(stack)}")
        expect(page.get_by_role("region", name="Recommendations").locator("li.rec")).to_have_count(
            10
        )
        wide = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert wide <= 1, f"the page is {wide} px wider than a 390 px screen"
        shoot(page, shots, "user-phone")

        page.goto(f"{stack.gw}/ui/#/overview")
        expect(page.locator("dl.facts")).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 1
        page.keyboard.press("Tab")
        expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
        page.keyboard.press("Tab")
        page.keyboard.press("Tab")
        expect(page.get_by_role("link", name="Items")).to_be_focused()
        page.keyboard.press("Enter")
        expect(page.get_by_label("Search titles")).to_be_focused()
        run.assert_clean()
    finally:
        page.context.close()


def test_degraded_flag_shown_when_ranking_is_down(
    browsing: Browsing, stack: Stack, shots: Path
) -> None:
    """Last in the module: it stops the ranking service."""
    stack.procs["ranking"].stop()
    page = browsing.page
    page.goto(f"{stack.gw}/ui/#/users/{a_user(stack)}?k=7")
    recs = page.get_by_role("region", name="Recommendations")
    expect(recs.locator("li.rec")).to_have_count(7)
    expect(recs.get_by_role("alert")).to_have_text("Degraded answer: ranking")
    page.get_by_role("link", name="Overview").click()
    expect(page.get_by_role("region", name="ranking service")).to_contain_text("down")
    expect(page.locator(".tile", has_text="degraded answers")).to_contain_text("ranking: 1")
    shoot(page, shots, "overview-degraded")
    browsing.assert_clean()
