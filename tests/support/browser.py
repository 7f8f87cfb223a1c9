"""Debian's Chromium driven by Playwright for the browser tests (never `playwright install`)."""

from __future__ import annotations

import os

CHROMIUM = os.environ.get("HYBRIDREC_TEST_CHROMIUM", "/usr/bin/chromium")
INSTALL_HINT = (
    "the browser tests need Debian's Chromium at {path}: install it with "
    "`apt-get install -y chromium` (.ci/run does this on CI), or point "
    "HYBRIDREC_TEST_CHROMIUM at a Chromium binary. Do not run `playwright install`."
)
#: Hosts a page may talk to; any other request is a test failure (the pages work offline).
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
#: Root in a container has no user namespaces for Chromium's sandbox.
LAUNCH_ARGS = ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"]
