"""
The dispatcher console in Chromium against the real server: staff sign-in
with the authenticator code (enrolment by QR code the first time), the map,
a booking arriving live, a manual assignment, and two consoles in step.
"""

from __future__ import annotations

import json
import re
import time
import uuid

import pytest

from tests.browser.helpers import (
    DISPATCHER,
    MICHAEL,
    SARAH,
    STELLENBOSCH,
    app_socket,
    authenticator_code,
    find_driver,
    issue_token,
    new_passenger,
    open_board,
    receive_until,
    wait_js,
)

pytestmark = [pytest.mark.browser, pytest.mark.server]


def test_the_first_sign_in_enrols_an_authenticator_by_qr_code(server, new_page):
    """A new staff member's first sign-in enrols an authenticator by QR code, then goes in."""
    phone = f"2780{uuid.uuid4().int % 10_000_000:07d}"
    server.shell(
        "from django.contrib.auth.models import Group\n"
        "from people.models import User\n"
        f"user = User.objects.create_user('{phone}', 'support-pw-for-tests', is_staff=True,"
        " first_name='Sam', last_name='Support')\n"
        "user.groups.add(Group.objects.get(name='Support'))\n"
    )
    page = new_page()
    page.goto(f"{server.http}/console/links/")
    page.fill("input[name=username]", "0" + phone[2:])
    page.fill("input[name=password]", "support-pw-for-tests")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/console/two-factor/.*"))
    # The QR code is an image the server drew (a data: URI), shown under the
    # site's policy with no script at all.
    wait_js(page, "document.getElementById('totp-qr').naturalWidth > 100")
    assert page.locator("#totp-qr").get_attribute("src").startswith("data:image/svg+xml")
    assert page.evaluate("document.scripts.length") == 0
    page.fill("input[name=code]", "000000")
    page.click("#two-factor-form button[type=submit]")
    page.locator("text=That code is not right").wait_for()
    # A wrong code holds the next try back a second (django-otp's throttle).
    time.sleep(1.2)
    page.fill("input[name=code]", authenticator_code(server, page, phone))
    page.click("#two-factor-form button[type=submit]")
    page.wait_for_url(f"{server.http}/console/links/")
    assert page.locator("#link-list").count() == 1
    assert not [e for e in page.errors if "Content Security Policy" in e], page.errors


def test_the_map_shows_the_demo_drivers_even_without_tiles(server, new_page):
    """The board's map shows the drivers even when map tiles cannot load."""
    page = new_page()
    open_board(server, page)
    wait_js(page, "window.ccMap && window.ccMap.count('driver') >= 3")
    names = page.evaluate("Object.values(window.ccMap.drivers).map(d => d.name)")
    assert {"John Doe", "Jane Smith", "Mike Johnson"} <= set(names)
    markers = page.locator("path[data-kind=driver]")
    assert markers.count() == len(names)
    assert set(markers.evaluate_all("els => els.map(e => e.dataset.state)")) == {"available"}
    # The tile server is down: the map says so, and the markers are drawn anyway.
    page.wait_for_selector("#map-note:not([hidden])")
    markers.first.click(force=True)
    popup = page.locator(".leaflet-popup-content")
    popup.wait_for()
    assert "Available" in popup.inner_text()
    assert not [e for e in page.errors if "Content Security Policy" in e], page.errors


def test_a_booking_appears_live_and_is_assigned_with_one_click(server, new_page):
    """A booking nobody was near reaches the board live; assigned with the distance confirmed."""
    page = new_page()
    open_board(server, page)
    ride_id = f"bt-{uuid.uuid4().hex[:10]}"

    _, sarah_token = issue_token(server, SARAH)
    michael_id, michael_token = issue_token(server, MICHAEL)
    with (
        app_socket(server, f"/ws/ride/{ride_id}/", sarah_token) as passenger,
        app_socket(server, "/ws/driver/", michael_token) as driver,
    ):
        # Michael Brown's app goes online in Stellenbosch, beyond the
        # matching radius of Cape Town: nobody is near enough for the matcher.
        driver.send(json.dumps({"type": "set_status", "status": "available"}))
        receive_until(driver, "status_updated")
        driver.send(json.dumps({"type": "location_update", **STELLENBOSCH}))
        wait_js(page, f"!!window.ccMap.markers['driver-{michael_id}']")

        started = time.monotonic()
        find_driver(passenger)
        card = page.locator(f'#pending-rides [data-ride-id="{ride_id}"]')
        card.wait_for(timeout=2000)
        assert time.monotonic() - started < 2.0
        receive_until(passenger, "no_drivers")
        assert "No driver found" in card.inner_text()
        assert "Sarah Johnson" in card.inner_text()
        wait_js(page, f"!!window.ccMap.markers['ride-{ride_id}']")
        assert page.locator(f'path[data-marker="ride-{ride_id}"]').count() == 1

        # The dispatcher sends him anyway: nearest first in the list.
        card.locator("[data-action=assign]").click()
        panel = page.locator("#ride-panel")
        candidate = panel.locator(f'[data-assign-driver="{michael_id}"]')
        candidate.wait_for()
        nearest = panel.locator(".candidate").first.inner_text()
        assert "Michael Brown" in nearest and "40." in nearest
        candidate.click()
        # 40 km is beyond the match radius: the console asks before it
        # assigns, saying how far and how long.
        confirm = panel.locator(f'[data-confirm-assign="{michael_id}"]')
        confirm.wait_for()
        assert confirm.locator("[data-confirm-distance]").inner_text().startswith("40.")
        assert re.fullmatch(r"about \d+ min", confirm.locator("[data-confirm-eta]").inner_text())
        assert ride_id not in page.locator("#active-rides").inner_text()
        confirm.locator("[data-confirm-button]").click()
        panel.locator(".notice-ok").wait_for()

        assigned = receive_until(passenger, "driver_assigned")
        assert assigned["driver"]["name"] == "Michael Brown"
        assert receive_until(driver, "ride_assigned")["ride_id"] == ride_id
        page.locator(f'#active-rides [data-ride-id="{ride_id}"]').wait_for()
        assert page.locator(f'#pending-rides [data-ride-id="{ride_id}"]').count() == 0
        wait_js(
            page,
            f"document.querySelector('path[data-marker=\"driver-{michael_id}\"]')"
            ".dataset.state === 'on_trip'",
        )
        events = page.locator("#events").inner_text()
        assert "Driver assigned" in events and "Demo Dispatcher" in events

        # The trip ends, so the demo data is as it was for other tests.
        for step in ("arrived", "start_trip", "complete_trip"):
            driver.send(json.dumps({"type": step}))
        receive_until(driver, "ride_status")
        page.locator(f'#active-rides [data-ride-id="{ride_id}"]').wait_for(state="detached")


def test_two_consoles_stay_in_step(server, new_page):
    """What one dispatcher does shows on a second dispatcher's board without a reload."""
    first, second = new_page(), new_page()
    open_board(server, first)
    open_board(server, second)
    ride_id = f"bt-{uuid.uuid4().hex[:10]}"
    _, token = issue_token(server, new_passenger(server, "Nomsa"))
    with app_socket(server, f"/ws/ride/{ride_id}/", token) as passenger:
        find_driver(passenger)
        for page in (first, second):
            page.locator(f'#pending-rides [data-ride-id="{ride_id}"]').wait_for(timeout=2000)

        # Both open the ride; the first dispatcher closes the request...
        for page in (first, second):
            page.locator(f'#pending-rides [data-ride-id="{ride_id}"] [data-action=assign]').click()
            page.locator("#ride-panel .candidate").first.wait_for()
        first.locator("#ride-panel input[name=reason]").fill("Passenger asked to cancel")
        first.locator("#ride-panel button.btn-danger").click()
        first.locator("#ride-panel .notice-ok").wait_for()

        # ...and the second sees it leave, and who did it, without reloading;
        # its open panel shows the ride as it now is, with nothing to click.
        second.locator("#ride-panel .notice-info").wait_for(timeout=2000)
        assert "Cancelled" in second.locator("#ride-panel .panel-head").inner_text()
        assert second.locator("#ride-panel [data-assign-driver]").count() == 0
        second.locator(f'#pending-rides [data-ride-id="{ride_id}"]').wait_for(
            state="detached", timeout=2000
        )
        wait_js(second, f"!window.ccMap.markers['ride-{ride_id}']")
        feed = second.locator("#events .feed-item").first.inner_text()
        assert "Cancelled" in feed and ride_id in feed and "Demo Dispatcher" in feed
        assert receive_until(passenger, "ride_cancelled")["cancelled_by"] == "dispatcher"
    for page in (first, second):
        assert not [e for e in page.errors if "Content Security Policy" in e], page.errors


def test_an_open_panel_catches_up_after_the_board_reconnects(server, new_page):
    """A ride that changed while the board's socket was down shows as it stands once it is back."""
    page = new_page()
    routes, held = [], []

    def through(route):
        routes.append(route)
        if held:
            route.close(code=1012, reason="service restart")
        else:
            route.connect_to_server()

    page.route_web_socket("**/ws/console/", through)
    open_board(server, page)
    ride_id = f"bt-{uuid.uuid4().hex[:10]}"
    _, token = issue_token(server, new_passenger(server, "Thandi"))
    with app_socket(server, f"/ws/ride/{ride_id}/", token) as passenger:
        find_driver(passenger)
        card = page.locator(f'#pending-rides [data-ride-id="{ride_id}"]')
        card.wait_for(timeout=2000)
        card.locator("[data-action=assign]").click()
        head = page.locator("#ride-panel .panel-head")
        head.wait_for()

        # The board's socket drops and stays down while the passenger cancels.
        held.append(True)
        routes[-1].close(code=1012, reason="service restart")
        page.wait_for_selector("#live-status[data-state=closed]")
        passenger.send(json.dumps({"type": "cancel_ride", "reason": "feeling unwell"}))
        receive_until(passenger, "ride_cancelled")
        assert "Cancelled" not in head.inner_text()

        held.clear()
        page.wait_for_selector("#live-status[data-state=open]", timeout=30_000)
        page.locator("#ride-panel .notice-info").wait_for(timeout=5000)
        assert "Cancelled" in head.inner_text()
    assert not [e for e in page.errors if "Content Security Policy" in e], page.errors


def test_the_unfold_admin_works_under_the_content_security_policy(server, new_page):
    """The support admin's pages run their scripts under the content security policy."""
    page = new_page()
    page.goto(f"{server.http}/admin/")
    # The admin takes the phone number in the same spellings as the console.
    page.fill("input[name=username]", "080 000 0001")
    page.fill("input[name=password]", DISPATCHER[1])
    page.click("#login-form button[type=submit]")
    page.wait_for_url(re.compile(r".*/console/two-factor/\?next=%2Fadmin%2F"))
    page.fill("input[name=code]", authenticator_code(server, page, DISPATCHER[0]))
    page.click("#two-factor-form button[type=submit]")
    page.wait_for_url(f"{server.http}/admin/")
    page.goto(f"{server.http}/admin/dispatch/ride/")
    page.locator("#changelist-form, #result_list, table").first.wait_for()
    # Alpine.js runs (its expressions need eval): the sidebar search is live.
    assert page.evaluate("typeof window.Alpine === 'object'")
    assert not [e for e in page.errors if "Content Security Policy" in e], page.errors
