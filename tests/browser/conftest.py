"""
Real-browser tests: the real server process, Debian's Chromium through
Playwright, and a screenshot in test-artifacts/ when a test fails.

`server` is generic: it starts `daphne project.asgi:application` on a free
port against its own temporary SQLite database (migrated and seeded with the
demo data), with map tiles pointed at a dead local port so pages never wait
on the internet. Any test that needs the whole stack can use it.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server import Server, running_server

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> Iterator[Server]:
    """The real ASGI server (HTTP and WebSockets) on a free port."""
    with running_server(tmp_path_factory.mktemp("server")) as srv:
        yield srv


# --- the browser ---------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


@pytest.fixture
def new_page(browser, request):
    """
    Pages in fresh browser contexts (separate cookies, like separate windows
    on separate machines). Each page's console errors are collected on
    `page.errors`; when the test fails every page is photographed into
    test-artifacts/.
    """
    contexts = []
    pages = []

    def make(width: int = 1600, height: int = 1000):
        context = browser.new_context(viewport={"width": width, "height": height})
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        page.errors = []
        page.on(
            "console",
            lambda msg: page.errors.append(msg.text) if msg.type == "error" else None,
        )
        page.on("pageerror", lambda exc: page.errors.append(str(exc)))
        pages.append(page)
        return page

    yield make

    failed = any(
        getattr(request.node, f"report_{when}", None) is not None
        and getattr(request.node, f"report_{when}").failed
        for when in ("setup", "call")
    )
    if failed:
        ARTIFACTS.mkdir(exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)
        for number, page in enumerate(pages, 1):
            try:
                page.screenshot(path=str(ARTIFACTS / f"{name}-{number}.png"), full_page=True)
            except Exception as exc:  # a crashed page must not hide the failure
                print(f"screenshot of page {number} failed: {exc}")
    for context in contexts:
        context.close()
