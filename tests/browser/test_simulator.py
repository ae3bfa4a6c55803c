"""
`make demo`'s simulator against the real server, watched on the board in
Chromium: rides appear, get a driver and complete without a reload, and
Ctrl-C leaves the demo data consistent.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest

from tests.browser.helpers import (
    open_board,
    wait_js,
)
from tests.server import ROOT

pytestmark = [pytest.mark.browser, pytest.mark.server]

SIM_RIDE = "[data-ride-id^='sim-']"


def test_the_simulated_day_fills_the_board_live_and_stops_cleanly(server, new_page):
    """Simulated rides appear, get drivers and complete on an open board; Ctrl-C ends cleanly."""
    page = new_page(1440, 900)
    open_board(server, page)
    page.evaluate("window.ccNotReloaded = true")
    sim = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "simulate",
            "--url",
            server.http,
            "--drivers",
            "8",
            "--speed",
            "60",
            "--tick",
            "1",
            "--booking-every",
            "1.5",
            "--no-show-share",
            "0",
            "--far-share",
            "0",
            "--seed",
            "7",
        ],
        cwd=ROOT,
        env=server.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_js(page, "window.ccMap.count('driver') >= 8", timeout=30)
        page.locator(f"#active-rides {SIM_RIDE}").first.wait_for(timeout=30_000)
        feed = "document.getElementById('events').innerText"
        wait_js(page, f"{feed}.includes('Driver assigned') && {feed}.includes('sim-')", 30)
        wait_js(page, f"/Trip completed sim-/.test({feed})", timeout=60)
        done = page.evaluate(
            "Array.from(document.querySelectorAll('#events .feed-item'))"
            ".filter(e => e.innerText.includes('Trip completed'))"
            ".map(e => e.querySelector('.ride-ref').innerText)"
        )
        assert done and all(ride.startswith("sim-") for ride in done)
        assert page.evaluate("window.ccNotReloaded === true")
    finally:
        sim.send_signal(signal.SIGINT)
        out, _ = sim.communicate(timeout=60)
    assert sim.returncode == 0, out
    assert "Stopped cleanly" in out and "Traceback" not in out
    assert "were still live" not in out
    # Nothing is left half-way: no simulated ride is live, every simulated
    # driver is offline, and the board empties of them without a reload.
    state = server.shell(
        "import json\n"
        "from dispatch.models import DriverState, Ride\n"
        "live = Ride.objects.filter(ride_id__startswith='sim-').exclude(\n"
        "    status__in=['completed', 'cancelled', 'no_show', 'unfulfilled']).count()\n"
        "online = DriverState.objects.filter(driver__phone_number__startswith='2782990')\n"
        "demo = DriverState.objects.filter(driver__driver_profile__is_demo=True)\n"
        "print(json.dumps([live, online.exclude(status='offline').count(),\n"
        "    sorted(demo.values_list('status', flat=True))]))\n"
    )
    # The demo drivers who stand still are back on duty.
    assert json.loads(state.strip().splitlines()[-1]) == [0, 0, ["available"] * 3]
    page.locator(f"#active-rides {SIM_RIDE}").first.wait_for(state="detached", timeout=10_000)
    assert page.locator(f"#pending-rides {SIM_RIDE}").count() == 0
    # The standing demo drivers are back on the map, and never turn stale.
    wait_js(
        page,
        "Object.values(window.ccMap.drivers).filter(d => d.demo && d.stale_at === null)"
        ".length === 3",
    )
    assert page.evaluate("window.ccNotReloaded === true")
