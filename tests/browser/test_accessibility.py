"""
axe-core (bundled with axe-playwright-python: no CDN) finds no WCAG 2.1 A or
AA violation on the console's pages. To cover more pages (the admin's, say),
add their paths to PAGES.
"""

from __future__ import annotations

import re

import pytest
from axe_playwright_python.sync_playwright import Axe

from tests.browser.helpers import (
    DISPATCHER,
    sign_in,
)

pytestmark = [pytest.mark.browser, pytest.mark.server]

WCAG_21_AA = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}}

# (path, what must be on the page before it is checked). "{ride}": a ride's pk.
PAGES = [
    ("/console/", "#live-status[data-state=open]"),
    ("/console/rides/{ride}/", "#ride-panel .panel-head"),
    ("/console/links/", "#link-list"),
    ("/console/day/", "#day-plan"),
    ("/console/reports/", "#by-day-title"),
]
SIGN_IN_PAGES = [
    ("/console/login/", "input[name=username]"),
    ("/console/two-factor/?next=/console/", "input[name=code]"),
]


def violations(page) -> list[str]:
    results = Axe().run(page, options=WCAG_21_AA)
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — "
        + "; ".join(" ".join(node["target"]) for node in v["nodes"][:5])
        for v in results.response["violations"]
    ]


@pytest.fixture(scope="module")
def a_ride(server) -> int:
    out = server.shell(
        "from dispatch import rides\n"
        "from people.models import User\n"
        "p = User.objects.get(phone_number='27821234567')\n"
        "r = rides.ride_request(ride_id='a11y-1', passenger=p, booked_by=p,\n"
        "    pickup_latitude=-28.73, pickup_longitude=24.75, pickup_address='Du Toitspan Rd',\n"
        "    dropoff_latitude=-28.74, dropoff_longitude=24.76, dropoff_address='Hospital')\n"
        "rides.ride_cancel(ride=r, actor=None, cancelled_by='dispatcher', reason='a11y test')\n"
        "print(r.pk)\n"
    )
    return int(out.strip().splitlines()[-1])


@pytest.mark.parametrize(("path", "ready"), PAGES)
def test_console_pages_have_no_wcag_21_aa_violations(server, new_page, a_ride, path, ready):
    """Each console page passes axe-core's WCAG 2.1 A and AA rules."""
    page = new_page(1440, 900)
    sign_in(server, page)
    page.goto(f"{server.http}{path.format(ride=a_ride)}")
    page.locator(ready).first.wait_for()
    found = violations(page)
    assert not found, "\n".join(found)


@pytest.mark.parametrize(("path", "ready"), SIGN_IN_PAGES)
def test_sign_in_pages_have_no_wcag_21_aa_violations(server, new_page, path, ready):
    """The sign-in steps pass axe-core's WCAG 2.1 A and AA rules."""
    page = new_page(1280, 800)
    if "two-factor" in path:
        page.goto(f"{server.http}/console/")
        page.fill("input[name=username]", DISPATCHER[0])
        page.fill("input[name=password]", DISPATCHER[1])
        page.click("button[type=submit]")
        page.wait_for_url(re.compile(r".*/console/two-factor/.*"))
    else:
        page.goto(f"{server.http}{path}")
    page.locator(ready).first.wait_for()
    found = violations(page)
    assert not found, "\n".join(found)
