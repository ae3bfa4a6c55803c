"""
The support pages in Chromium against the real server: a link's
permissions changed on the console's Caregiver links page, the admin's ride
timeline, the caller lookup, and axe-core over each of them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.browser.helpers import (
    SARAH,
    sign_in,
)

pytestmark = [pytest.mark.browser, pytest.mark.server]

EMILY = "27821234569"
WCAG_21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"


def axe_violations(page) -> list[str]:
    """axe-core's WCAG 2.1 A and AA violations on the page as it stands."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page, options={"runOnly": {"type": "tag", "values": WCAG_21_AA}})
    return [
        f"{v['id']}: {v['help']} ({len(v['nodes'])}: {v['nodes'][0]['target']})"
        for v in results.response["violations"]
    ]


def shell_json(server, code: str):
    return json.loads(server.shell(code).strip().splitlines()[-1])


@pytest.fixture
def signed_in(server, new_page):
    """A dispatcher's page, signed in with password and code, at 1440×900."""
    page = new_page(1440, 900)
    sign_in(server, page)
    return page


def test_a_dispatcher_edits_a_links_permissions(server, signed_in):
    """Found by the passenger's phone, switched off, saved: the row says so, the audit keeps it."""
    page = signed_in
    server.shell(
        "from people.models import CaregiverLink, User\n"
        f"sarah = User.objects.get(phone_number='{SARAH}')\n"
        "CaregiverLink.objects.get_or_create(passenger=sarah, invited_phone='27829990001',"
        " status='revoked')\n"
    )
    page.goto(f"{server.http}/console/links/")
    assert axe_violations(page) == []
    # Revoked links show only when asked, and then without permission chips.
    assert page.locator(".link-revoked").count() == 0
    page.get_by_label("Show declined and revoked links").check()
    page.locator(".link-revoked").first.wait_for()
    assert page.locator(".link-revoked .perms").count() == 0
    page.get_by_label("Show declined and revoked links").uncheck()
    page.wait_for_url(re.compile(r"^(?!.*ended=on).*$"))
    page.locator(".link-revoked").first.wait_for(state="detached")
    page.fill("#id_passenger", "082 123 4567")
    # The list follows the search box (htmx), and the address keeps the search.
    page.wait_for_url(re.compile(r".*passenger=082.*"))
    page.locator("#links-title", has_text="Links found").wait_for()
    row = page.locator('[data-testid="link-row"]', has_text="Emily Davis")
    row.wait_for()
    assert page.locator('[data-testid="link-row"]').count() == 1
    row.locator("summary", has_text="Change permissions").click()
    row.get_by_label("May see the live location").uncheck()
    if not DOCS_IMG.joinpath("console-links.png").exists():
        page.screenshot(path=str(DOCS_IMG / "console-links.png"))
    assert axe_violations(page) == []
    row.get_by_role("button", name="Save permissions").click()
    saved = page.locator('[data-testid="link-row"]', has_text="Saved what Emily Davis may do")
    saved.wait_for()
    chips = saved.locator(".perms").inner_text()
    assert "Books rides" in chips and "Sees location" not in chips
    link, audited = shell_json(
        server,
        "import json\n"
        "from people.models import AuditEvent, CaregiverLink\n"
        f"link = CaregiverLink.objects.live().get(passenger__phone_number='{SARAH}',"
        f" caregiver__phone_number='{EMILY}')\n"
        "audit = AuditEvent.objects.filter(action='link.updated', subject_id=str(link.pk))\n"
        "print(json.dumps([link.permissions(), audit.exists()]))\n",
    )
    assert link["can_view_location"] is False and audited
    # Put back for the other tests sharing the server.
    server.shell(
        "from people.models import CaregiverLink\n"
        f"CaregiverLink.objects.live().filter(passenger__phone_number='{SARAH}')"
        ".update(can_view_location=True)\n"
    )
    assert not [e for e in page.errors if "Content Security Policy" in e], page.errors


def test_the_admins_ride_timeline(server, signed_in):
    """A ride closed as unfulfilled: every step to the second, who, the driver, and why."""
    page = signed_in
    ride_pk = shell_json(
        server,
        "import json, uuid\n"
        "from dispatch import matching, rides\n"
        "from people.models import User\n"
        f"sarah = User.objects.get(phone_number='{SARAH}')\n"
        f"emily = User.objects.get(phone_number='{EMILY}')\n"
        "boss = User.objects.get(phone_number='27800000001')\n"
        "ride = rides.ride_request(ride_id='tl-' + uuid.uuid4().hex[:8], passenger=sarah,"
        " booked_by=emily, pickup_latitude=-29.85, pickup_longitude=31.02,"
        " pickup_address='Durban', dropoff_latitude=-29.80, dropoff_longitude=31.0,"
        " dropoff_address='Clinic')\n"
        "matching.ride_match(ride=ride)\n"
        "ride.refresh_from_db()\n"
        "rides.ride_mark_unfulfilled(ride=ride, actor=boss, reason='No wheelchair van free')\n"
        "print(json.dumps(ride.pk))\n",
    )
    page.goto(f"{server.http}/admin/dispatch/ride/{ride_pk}/change/")
    timeline = page.locator('[data-testid="ride-timeline"]')
    timeline.wait_for()
    rows = timeline.locator("tbody tr")
    kinds = [rows.nth(i).get_attribute("data-kind") for i in range(rows.count())]
    assert kinds == ["requested", "searching", "no_drivers", "unfulfilled"]
    for i in range(rows.count()):
        assert re.search(r"\d\d:\d\d:\d\d \+02:00", rows.nth(i).inner_text())
    assert "Emily Davis (caregiver)" in rows.nth(0).inner_text()
    closed = rows.nth(3).inner_text()
    assert "Demo Dispatcher (dispatcher)" in closed and "No wheelchair van free" in closed
    assert timeline.is_visible()
    body = page.locator("body").inner_text()
    assert "No wheelchair van free" in body.split("Why it ended", 1)[1][:200]
    assert " v1 requested" not in body
    assert page.locator("[name=_save]").count() == 0
    if not DOCS_IMG.joinpath("admin-ride-timeline.png").exists():
        timeline.scroll_into_view_if_needed()
        page.screenshot(path=str(DOCS_IMG / "admin-ride-timeline.png"))
    assert axe_violations(page) == []


def test_the_caller_lookup_from_a_phone_number(server, signed_in):
    """From the daughter's number, in her spelling, to her mother's rides in two clicks."""
    page = signed_in
    page.goto(f"{server.http}/admin/")
    page.locator('[data-testid="dashboard"]').wait_for()
    if not DOCS_IMG.joinpath("admin-dashboard.png").exists():
        page.screenshot(path=str(DOCS_IMG / "admin-dashboard.png"))
    assert axe_violations(page) == []
    page.get_by_role("link", name="Caller lookup").first.click()
    page.fill("#lookup-q", "082 123 4569")
    page.get_by_role("button", name="Find").click()
    card = page.locator('[data-testid="person-card"]')
    card.wait_for()
    text = card.inner_text()
    assert "Emily Davis" in text and "Cares for" in text and "Sarah Johnson" in text
    if not DOCS_IMG.joinpath("admin-caller-lookup.png").exists():
        page.screenshot(path=str(DOCS_IMG / "admin-caller-lookup.png"))
    assert axe_violations(page) == []


CHANGED_ADMIN_PAGES = {
    "rides list": "/admin/dispatch/ride/",
    "drivers list": "/admin/people/driverprofile/",
    "a driver": "/admin/people/driverprofile/{driver}/change/",
    "driver states": "/admin/dispatch/driverstate/",
    "caregiver links": "/admin/people/caregiverlink/",
    "a link": "/admin/people/caregiverlink/{link}/change/",
    "users": "/admin/people/user/",
    "a passenger": "/admin/people/user/{sarah}/change/",
}


def test_the_changed_admin_pages_pass_axe(server, signed_in):
    """Each admin page this work changed has no WCAG 2.1 A/AA violation axe-core finds."""
    page = signed_in
    ids = shell_json(
        server,
        "import json\n"
        "from people.models import CaregiverLink, DriverProfile, User\n"
        "print(json.dumps({"
        "'driver': DriverProfile.objects.first().pk,"
        f" 'link': CaregiverLink.objects.filter(passenger__phone_number='{SARAH}').first().pk,"
        f" 'sarah': User.objects.get(phone_number='{SARAH}').pk}}))\n",
    )
    found = {}
    for name, path in CHANGED_ADMIN_PAGES.items():
        page.goto(f"{server.http}{path.format(**ids)}")
        assert not re.search(r"\((True|False|'[a-z_]+'), '", page.locator("body").inner_text())
        found[name] = axe_violations(page)
    assert found == {name: [] for name in CHANGED_ADMIN_PAGES}
