"""Fixtures of the browser tests: the Chromium binary (checked before any training) and one
headless browser per module."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, sync_playwright

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
