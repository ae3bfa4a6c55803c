"""
Real-browser tests: the real server process, Debian's Chromium through
Playwright, and a screenshot in test-artifacts/ when a test fails.

`server` is generic: it starts `daphne project.asgi:application` on a free
port against its own temporary SQLite database (migrated and seeded with the
demo data), with map tiles pointed at a dead local port so pages never wait
on the internet. Any test that needs the whole stack can use it.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
VENV_BIN = Path(sys.executable).parent
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Settings that would point the server at shared services: it gets its own.
ISOLATED_FROM = ("DATABASE_URL", "REDIS_URL", "LOCATION_STORE", "SQLITE_TEST_PATH")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), 0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listened on port {port} within {timeout:.0f} s")


@dataclass
class ServerProcess:
    """A running server; `manage()` and `shell()` act on the same database."""

    port: int
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def manage(self, *args: str, timeout: float = 120) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stderr[-3000:]}")
        return result.stdout

    def shell(self, code: str) -> str:
        """Run Python in `manage.py shell` against the server's database."""
        return self.manage("shell", "--no-imports", "-c", code)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> Iterator[ServerProcess]:
    """The real ASGI server (HTTP and WebSockets) on a free port."""
    home = tmp_path_factory.mktemp("server")
    env = {k: v for k, v in os.environ.items() if k not in ISOLATED_FROM}
    env.update(
        DJANGO_SETTINGS_MODULE="project.settings",
        SQLITE_PATH=str(home / "db.sqlite3"),
        DEBUG="1",
        SMS_BACKEND="console",
        # Nothing listens there: tiles fail at once, as they may in the field.
        MAP_TILE_URL=f"http://127.0.0.1:{free_port()}/{{z}}/{{x}}/{{y}}.png",
        PYTHONUNBUFFERED="1",
    )
    port = free_port()
    srv = ServerProcess(port=port, env=env, log_path=home / "server.log")
    srv.manage("migrate", "--noinput", "-v", "0")
    srv.manage("seed_demo")
    with srv.log_path.open("w") as log:
        srv.process = subprocess.Popen(
            [
                str(VENV_BIN / "daphne"),
                "-b",
                "127.0.0.1",
                "-p",
                str(port),
                "project.asgi:application",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for_port(port, srv.process)
    except Exception:
        srv.process.kill()
        raise RuntimeError(f"server did not start:\n{srv.log()[-3000:]}") from None
    yield srv
    srv.process.send_signal(signal.SIGTERM)
    try:
        srv.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        srv.process.kill()
        srv.process.wait()


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
