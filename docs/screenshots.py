"""
The board's screenshots in docs/img/, taken with Playwright's Chromium from a
running local server (`make run`), signed in as the demo dispatcher (with
STAFF_2FA=0, as `make run` serves). Busy means `make demo` is running.

    .venv/bin/python docs/screenshots.py idle [http://127.0.0.1:8067]
    .venv/bin/python docs/screenshots.py busy [http://127.0.0.1:8067]
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

IMG = Path(__file__).resolve().parent / "img"


def shoot(name: str, base: str) -> Path:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=shutil.which("chromium"), args=["--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
        page.goto(f"{base}/console/")
        page.fill("input[name=username]", "27800000001")
        page.fill("input[name=password]", "dispatch-demo")
        page.click("button[type=submit]")
        page.wait_for_url(f"{base}/console/")
        page.wait_for_selector("#live-status[data-state=open]")
        page.wait_for_timeout(2000)
        path = IMG / f"board-{name}.png"
        page.screenshot(path=str(path))
        browser.close()
    return path


if __name__ == "__main__":
    print(shoot(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "http://127.0.0.1:8067"))
