"""
The dispatcher console in Chromium against the real server: staff sign-in
with the authenticator code (enrolment by QR code the first time), the map,
a booking arriving live, a manual assignment, and two consoles in step.
"""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django_otp.oath import TOTP
from websockets.sync.client import connect

pytestmark = [pytest.mark.browser, pytest.mark.server]

DISPATCHER = ("27800000001", "dispatch-demo")
SARAH = "27821234567"
MICHAEL = "27821234568"
CAPE_TOWN = (-33.9249, 18.4241)
STELLENBOSCH = {"latitude": -33.9321, "longitude": 18.8602}


def issue_token(server, phone: str) -> tuple[int, str]:
    """An app session for the user, issued in the server's own database."""
    out = server.shell(
        "import json\n"
        "from people.models import User\n"
        "from people.sessions import session_issue\n"
        f"user = User.objects.get(phone_number='{phone}')\n"
        "print(json.dumps([user.pk, session_issue(user=user).access]))\n"
    )
    user_id, token = json.loads(out.strip().splitlines()[-1])
    return user_id, token


def new_passenger(server, first_name: str) -> str:
    phone = f"2782{uuid.uuid4().int % 10_000_000:07d}"
    server.shell(
        "from people.models import PassengerProfile, User\n"
        f"user = User.objects.create_user('{phone}', first_name='{first_name}',"
        " last_name='Tester', user_type='passenger')\n"
        "PassengerProfile.objects.create(user=user)\n"
    )
    return phone


@contextmanager
def app_socket(server, path: str, token: str) -> Iterator:
    """An app's socket, signed in with its bearer token, closed afterwards."""
    with connect(
        f"{server.ws}{path}",
        additional_headers={"Authorization": f"Bearer {token}"},
        open_timeout=10,
    ) as sock:
        receive_until(sock, "connection_established")
        yield sock


def receive_until(sock, wanted: str, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        message = json.loads(sock.recv(timeout=max(0.1, deadline - time.monotonic())))
        if message.get("type") == wanted:
            return message
        seen.append(message.get("type"))
    raise AssertionError(f"no {wanted} within {timeout} s; got {seen}")


def find_driver(sock, at=CAPE_TOWN) -> None:
    sock.send(
        json.dumps(
            {
                "type": "find_driver",
                "pickup_latitude": at[0],
                "pickup_longitude": at[1],
                "pickup_address": "12 Long Street, Cape Town",
                "dropoff_latitude": at[0] - 0.02,
                "dropoff_longitude": at[1] + 0.03,
                "dropoff_address": "Groote Schuur Hospital",
            }
        )
    )


def wait_js(page, expression: str, timeout: float = 10.0) -> None:
    """
    Poll a JavaScript expression until it is true. Playwright's
    wait_for_function evaluates with eval() in the page, which the console's
    script policy forbids (as it should); evaluate() goes through the devtools
    protocol instead.
    """
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout} s: {expression}")
        time.sleep(0.05)


def authenticator_code(server, page, phone: str) -> str:
    """
    What the staff member's authenticator app shows: from the key on the
    enrolment page the first time, then from the key in the server's
    database, one step past the last code used (a code works once, and
    several sign-ins may fall within one 30 s step).
    """
    secret = page.locator("#totp-secret")
    if secret.count():
        key = base64.b32decode(secret.get_attribute("data-totp-secret").replace(" ", ""))
        return f"{TOTP(key).token():06d}"
    out = server.shell(
        "import json\n"
        "from django_otp.plugins.otp_totp.models import TOTPDevice\n"
        f"d = TOTPDevice.objects.get(user__phone_number='{phone}', confirmed=True)\n"
        "print(json.dumps([d.key, d.drift, d.last_t]))\n"
    )
    key_hex, drift, last_t = json.loads(out.strip().splitlines()[-1])
    while True:
        # Now or one step ahead: both stay within the server's tolerance
        # should a step begin between here and its check.
        for ahead in (0, 1):
            totp = TOTP(bytes.fromhex(key_hex), drift=drift + ahead)
            if totp.t() > last_t:
                return f"{totp.token():06d}"
        time.sleep(1)


def sign_in(server, page, phone: str = DISPATCHER[0], password: str = DISPATCHER[1]):
    """The console's sign-in as a person does it: phone, password, then the code."""
    page.goto(f"{server.http}/console/")
    assert "/console/login/" in page.url
    page.fill("input[name=username]", f"+{phone[:2]} {phone[2:4]} {phone[4:7]} {phone[7:]}")
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/console/two-factor/.*"))
    page.fill("input[name=code]", authenticator_code(server, page, phone))
    page.click("#two-factor-form button[type=submit]")
    page.wait_for_url(re.compile(rf"{server.http}/console/(links/)?$"))


def test_the_first_sign_in_enrols_an_authenticator_by_qr_code(server, new_page):
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


def open_board(server, page):
    sign_in(server, page)
    page.wait_for_selector("#live-status[data-state=open]")


def test_the_map_shows_the_demo_drivers_even_without_tiles(server, new_page):
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


def test_the_unfold_admin_works_under_the_content_security_policy(server, new_page):
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
