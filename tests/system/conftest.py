"""Fixtures of the system tests: the Chromium binary (checked before any training) and one
headless browser per module; the services on the bookshop bundle, fresh for each module."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, sync_playwright

from harness.processes import running_stack
from tests.support.browser import CHROMIUM, INSTALL_HINT, LAUNCH_ARGS


@pytest.fixture(scope="session")
def chromium() -> str:
    """The Chromium binary; a browser module asks for it first, so a missing one fails fast."""
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(INSTALL_HINT.format(path=CHROMIUM), pytrace=False)
    return CHROMIUM


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Browser]:
    with sync_playwright() as pw:
        b = pw.chromium.launch(
            executable_path=chromium, headless=True, chromium_sandbox=False, args=LAUNCH_ARGS
        )
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def shop_gw(
    bookshop_bundle: tuple[Path, Path], redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    """A client of the gateway of the three services serving the bookshop bundle, started
    for each test module under its own Redis prefix: one module's PATCHes, events and new
    items never reach another's."""
    prefix = f"hrshop-{uuid.uuid4().hex[:8]}"
    with running_stack(
        bookshop_bundle[1], tmp_path_factory.mktemp("shop-run"), redis_url=redis_url,
        prefix=prefix,
    ) as procs, httpx.Client(base_url=procs["gateway"].url, timeout=60) as client:
        yield client
