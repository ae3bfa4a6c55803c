"""
In Chromium against the real server: a family follows a ride through its
tracking link until the link ends; a passenger's sos reaches the board,
which beeps and notifies, and a dispatcher acknowledges it; the board shows
a full-width banner while its live socket is down.
"""

from __future__ import annotations

import json
import time
import urllib.request
import uuid

import pytest

from tests.browser.helpers import (
    app_socket,
    find_driver,
    issue_token,
    new_passenger,
    open_board,
    receive_until,
    wait_js,
)

pytestmark = [pytest.mark.browser, pytest.mark.server]

# Durban: far beyond the matching radius of the demo drivers in Cape Town.
DURBAN = (-29.8587, 31.0218)


def new_driver(server, first_name: str) -> str:
    phone = f"2783{uuid.uuid4().int % 10_000_000:07d}"
    server.shell(
        "from dispatch import drivers\n"
        "from people.models import DriverProfile, User\n"
        f"user = User.objects.create_user('{phone}', first_name='{first_name}',"
        " last_name='Khumalo', user_type='driver')\n"
        "DriverProfile.objects.create(user=user, vehicle_type='sedan', is_verified=True,"
        f" vehicle_registration='ND {phone[-3:]}-001', licence_number='L{phone}')\n"
        "drivers.driver_state_for(user)\n"
    )
    return phone


def book_in_durban(server, passenger_sock, driver_sock) -> None:
    """The driver goes online beside the pickup; the booking gives them the ride."""
    driver_sock.send(json.dumps({"type": "set_status", "status": "available"}))
    receive_until(driver_sock, "status_updated")
    move(driver_sock, DURBAN[0] + 0.002, DURBAN[1])
    time.sleep(0.3)
    find_driver(passenger_sock, DURBAN, pickup="Home", dropoff="Addington Hospital")
    receive_until(passenger_sock, "driver_assigned")
    receive_until(driver_sock, "ride_assigned")


def move(driver_sock, lat: float, lng: float) -> None:
    driver_sock.send(json.dumps({"type": "location_update", "latitude": lat, "longitude": lng}))


def share_link(server, token: str, ride_id: str) -> str:
    request = urllib.request.Request(
        f"{server.http}/api/rides/{ride_id}/share-links/",
        method="POST",
        headers={"Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 201
        return json.loads(response.read())["url"]


def test_a_family_follows_the_ride_through_its_link_until_it_ends(server, new_page):
    ride_id = f"share-{uuid.uuid4().hex[:8]}"
    _, passenger_token = issue_token(server, new_passenger(server, "Gogo"))
    _, driver_token = issue_token(server, new_driver(server, "Sipho"))
    with (
        app_socket(server, f"/ws/ride/{ride_id}/", passenger_token) as passenger,
        app_socket(server, "/ws/driver/", driver_token) as driver,
    ):
        book_in_durban(server, passenger, driver)
        url = share_link(server, passenger_token, ride_id)
        page = new_page(400, 700)  # an old phone's screen
        page.goto(url)
        assert "A driver is on the way" in page.locator("#status").inner_text()
        assert page.locator("#driver-name").inner_text() == "Sipho"
        assert "Khumalo" not in page.content()
        wait_js(page, "!document.getElementById('map').hidden")

        # The car moves; the page follows within its polling interval.
        move(driver, DURBAN[0] + 0.01, DURBAN[1] + 0.01)
        wait_js(page, f"document.getElementById('map').dataset.lat === '{DURBAN[0] + 0.01}'")
        assert page.locator(".leaflet-interactive").count() == 1

        driver.send(json.dumps({"type": "arrived"}))
        driver.send(json.dumps({"type": "start_trip"}))
        wait_js(page, "document.getElementById('status').dataset.status === 'in_progress'")
        assert page.locator("#status").inner_text() == "On the way"
        driver.send(json.dumps({"type": "complete_trip"}))
        wait_js(page, "document.getElementById('status').dataset.status === 'completed'")
        # Over: no more position.
        wait_js(page, "document.getElementById('map').hidden")

    # Thirty minutes after the end, the link ends; the open page says so.
    server.shell(
        "from datetime import timedelta\n"
        "from django.utils import timezone\n"
        "from dispatch.models import Ride\n"
        f"Ride.objects.filter(ride_id='{ride_id}')"
        ".update(ended_at=timezone.now() - timedelta(minutes=31))\n"
    )
    wait_js(page, "!document.getElementById('ended').hidden")
    assert "This tracking link has ended" in page.locator("#ended").inner_text()
    page.reload()
    assert "This tracking link has ended" in page.content()
    assert not [e for e in page.errors if "Content Security Policy" in e], page.errors


def test_an_sos_rings_on_the_board_and_a_dispatcher_acknowledges_it(server, new_page):
    page = new_page()
    page.context.grant_permissions(["notifications"], origin=server.http)
    open_board(server, page)
    page.locator("[data-alerts-enable]").click()
    wait_js(
        page,
        "document.querySelector('[data-alerts-enable]').textContent.includes('desktop alerts on')",
    )

    ride_id = f"sos-{uuid.uuid4().hex[:8]}"
    _, passenger_token = issue_token(server, new_passenger(server, "Thandi"))
    _, driver_token = issue_token(server, new_driver(server, "Bongani"))
    with (
        app_socket(server, f"/ws/ride/{ride_id}/", passenger_token) as passenger,
        app_socket(server, "/ws/driver/", driver_token) as driver,
    ):
        book_in_durban(server, passenger, driver)
        passenger.send(json.dumps({"type": "sos"}))
        alarm_id = receive_until(passenger, "sos_received")["alarm_id"]
        alarm = page.locator(f'#alerts [data-alert-key="alarm-{alarm_id}"]')
        alarm.wait_for()
        assert "SOS from the passenger" in alarm.inner_text() and ride_id in alarm.inner_text()
        # Announced once: the beep and the desktop notification.
        wait_js(page, "Number(document.body.dataset.alertsAnnounced || 0) >= 1")

        # It stays until acknowledged, through a reload.
        page.reload()
        page.wait_for_selector("#live-status[data-state=open]")
        alarm = page.locator(f'#alerts [data-alert-key="alarm-{alarm_id}"]')
        alarm.locator("[data-acknowledge]").click()
        alarm.wait_for(state="detached")
        out = server.shell(
            "from dispatch.models import Alarm\n"
            f"a = Alarm.objects.select_related('acknowledged_by').get(pk={alarm_id})\n"
            "print(a.acknowledged_by.phone_number)\n"
        )
        assert out.strip().splitlines()[-1] == "27800000001"

        for step in ("arrived", "start_trip", "complete_trip"):
            driver.send(json.dumps({"type": step}))
        receive_until(driver, "ride_status")
    assert not [e for e in page.errors if "Content Security Policy" in e], page.errors


def test_the_board_shows_a_banner_while_its_socket_is_down(server, new_page):
    page = new_page()
    routes = []

    def through(route):
        routes.append(route)
        route.connect_to_server()

    page.route_web_socket("**/ws/console/", through)
    open_board(server, page)
    banner = page.locator("#live-banner")
    assert banner.is_hidden()
    # The connection drops (a proxy restarting, say): the banner, full width.
    routes[-1].close(code=1012, reason="service restart")
    banner.wait_for(state="visible")
    assert "The live connection is down" in banner.inner_text()
    width = page.evaluate("document.getElementById('live-banner').getBoundingClientRect().width")
    assert width == page.viewport_size["width"]
    # htmx reconnects by itself; the banner goes.
    banner.wait_for(state="hidden", timeout=15_000)
    assert len(routes) >= 2
