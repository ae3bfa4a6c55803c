"""
The board as a dispatcher sees it in Chromium, against the real server: what
needs action fits one screen from 1280x800 up, the map's markers, the search,
and (in offer mode) who holds an offer and for how long.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest

from tests.browser.helpers import (
    MICHAEL,
    app_socket,
    find_driver,
    issue_token,
    new_passenger,
    open_board,
    receive_until,
    wait_js,
)
from tests.server import running_server

pytestmark = [pytest.mark.browser, pytest.mark.server]

# Kimberley: hundreds of km from every demo driver, so its bookings wait.
KIMBERLEY = (-28.7282, 24.7499)


def busy_board(server, tag: str, rides: int = 6, drivers: int = 8) -> list[str]:
    """
    Waiting rides nobody is near (No driver found), and more drivers online
    around Johannesburg; one of them stands exactly at the first pickup.
    Returns the ride ids.
    """
    out = server.shell(
        "import json\n"
        "from dispatch import drivers, matching, rides\n"
        "from dispatch.demo import seed_simulation\n"
        "from people.models import PassengerProfile, User\n"
        "cast = seed_simulation(20)\n"
        "ids = []\n"
        f"for n in range({rides}):\n"
        "    p = cast.passengers[n % len(cast.passengers)]\n"
        f"    r = rides.ride_request(ride_id=f'{tag}-{{n}}', passenger=p, booked_by=p,\n"
        f"        pickup_latitude={KIMBERLEY[0]} + n * 0.01, pickup_longitude={KIMBERLEY[1]},\n"
        "        pickup_address='Du Toitspan Rd', dropoff_latitude=-28.74,\n"
        "        dropoff_longitude=24.76, dropoff_address='Hospital')\n"
        "    matching.ride_match(ride=r)\n"
        "    ids.append(r.ride_id)\n"
        f"for n, d in enumerate(cast.drivers[:{drivers}]):\n"
        f"    at = ({KIMBERLEY[0]}, {KIMBERLEY[1]}) if n == 0 else (-26.2 + n * 0.01, 28.04)\n"
        "    drivers.driver_place(driver=d, latitude=at[0], longitude=at[1])\n"
        "    drivers.driver_set_status(driver=d, status='available')\n"
        "print(json.dumps([ids, cast.drivers[0].pk]))\n"
    )
    ids, first_driver = json.loads(out.strip().splitlines()[-1])
    return ids, first_driver


def quiet_board(server, tag: str, drivers: int = 8) -> None:
    """Back as it was: the rides cancelled, the extra drivers offline."""
    server.shell(
        "from dispatch import drivers, rides\n"
        "from dispatch.demo import seed_simulation\n"
        "from dispatch.models import Ride\n"
        f"for r in Ride.objects.filter(ride_id__startswith='{tag}-').exclude(status='cancelled'):\n"
        "    rides.ride_cancel(ride=r, actor=None, cancelled_by='dispatcher', reason='test')\n"
        f"for d in seed_simulation(20).drivers[:{drivers}]:\n"
        "    drivers.driver_set_status(driver=d, status='offline')\n"
    )


@pytest.fixture
def busy(server):
    tag = f"lay{uuid.uuid4().hex[:6]}"
    ids, first_driver = busy_board(server, tag)
    yield tag, ids, first_driver
    quiet_board(server, tag)


def look_at(page, lat: float, lng: float, zoom: int) -> None:
    """
    Move the map, again until it stays: a view set while the map's first
    animated fit is running is undone when that animation ends.
    """
    for _ in range(20):
        page.evaluate(f"window.ccMap.map.setView([{lat}, {lng}], {zoom}, {{animate: false}})")
        time.sleep(0.3)
        if page.evaluate(f"window.ccMap.map.getZoom() === {zoom}"):
            return
    raise AssertionError(f"the map did not stay at zoom {zoom}")


def within_viewport(page, selector: str) -> bool:
    box = page.locator(selector).first.bounding_box()
    view = page.viewport_size
    return (
        box is not None
        and box["height"] > 0
        and box["y"] >= 0
        and box["x"] >= 0
        and box["y"] + box["height"] <= view["height"]
        and box["x"] + box["width"] <= view["width"]
    )


@pytest.mark.parametrize("size", [(1280, 800), (1440, 900), (2560, 1440)])
def test_what_needs_action_fits_one_screen(server, new_page, busy, size):
    """From 1280x800 to a wall screen, waiting and troubled rides and drivers show unscrolled."""
    _, ids, _ = busy
    page = new_page(*size)
    open_board(server, page)
    page.locator(f'#pending-rides [data-ride-id="{ids[0]}"]').wait_for()
    page.evaluate("document.fonts.ready.then(() => true)")
    # The page itself never scrolls; each panel scrolls inside itself.
    assert page.evaluate(
        "document.scrollingElement.scrollHeight <= innerHeight"
        " && document.scrollingElement.scrollWidth <= innerWidth"
    )
    wanted = (
        "#action-title",
        f'#pending-rides [data-ride-id="{ids[0]}"] [data-action=assign]',
        f'#pending-rides [data-ride-id="{ids[1]}"] .who',
        "#trouble .panel-head",
        "#drivers .status-counts",
        "#drivers tbody tr:nth-child(5)",
        "#active-rides .panel-head",
        "#map",
        "#events .feed-item",
    )
    # The socket re-renders the regions once on connect: checked when settled
    # (one look at all of them, not a second one that may meet a swap).
    deadline = time.monotonic() + 10
    while True:
        outside = [s for s in wanted if not within_viewport(page, s)]
        if not outside or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not outside, {s: page.locator(s).first.bounding_box() for s in outside}
    # The alert lane, where it exists, is in the same column and on screen.
    if page.locator("[data-alert-lane]").count():
        assert within_viewport(page, "[data-alert-lane]")


def test_markers_carry_initials_and_a_pickup_ring_never_hides_a_driver(server, new_page, busy):
    """Drivers show initials, stay on top of a pickup at their spot; far pickups are counted."""
    _, ids, first_driver = busy
    page = new_page(1440, 900)
    open_board(server, page)
    wait_js(page, f"!!window.ccMap.markers['ride-{ids[0]}']")
    wait_js(page, f"!!window.ccMap.markers['driver-{first_driver}']")
    # Close enough to tell drivers apart, each shows its initials.
    look_at(page, -26.2041, 28.0473, 12)
    wait_js(page, "!document.getElementById('map').classList.contains('cc-labels-off')")
    john = page.locator(".cc-initials", has_text="JD")
    john.wait_for()  # John Doe
    assert john.count() == 1
    assert page.locator(".cc-initials").all_inner_texts().count("JD") == 1
    # Driver and pickup at the same spot: what is drawn on top at the spot
    # is the driver.
    look_at(page, *KIMBERLEY, 13)
    top = page.evaluate(
        f"""(() => {{
          const m = window.ccMap, p = m.map.latLngToContainerPoint(
            m.markers['driver-{first_driver}'].getLatLng());
          const r = document.getElementById('map').getBoundingClientRect();
          const el = document.elementFromPoint(r.left + p.x, r.top + p.y);
          return el && el.getAttribute('data-marker');
        }})()"""
    )
    assert top == f"driver-{first_driver}"
    # Names are users' text: shown as text, never run as HTML.
    evil = server.shell(
        "from dispatch import drivers\n"
        "from people.models import DriverProfile, User\n"
        "u = User.objects.create_user('27829909999', first_name='<img id=pwn src=x>',\n"
        "    last_name='<b>Eve</b>', user_type='driver')\n"
        "DriverProfile.objects.create(user=u, vehicle_type='sedan', is_verified=True,\n"
        "    vehicle_registration='EV 1', licence_number='EV1')\n"
        "drivers.driver_place(driver=u, latitude=-26.25, longitude=28.0)\n"
        "drivers.driver_set_status(driver=u, status='available')\n"
        "print(u.pk)\n"
    )
    evil_id = int(evil.strip().splitlines()[-1])
    try:
        page.reload()
        wait_js(page, f"!!window.ccMap.markers['driver-{evil_id}']")
        page.evaluate(f"window.ccMap.focus('driver-{evil_id}')")
        popup = page.locator(".leaflet-popup-content")
        popup.wait_for()
        assert "<img id=pwn src=x> <b>Eve</b>" in popup.inner_text()
        assert page.locator("#pwn").count() == 0 and page.locator(".cc-popup b").count() == 0
        title = page.locator(f'path[data-marker="driver-{evil_id}"] title').text_content()
        assert title.startswith("<img id=pwn src=x>")
    finally:
        server.shell(
            "from dispatch import drivers\n"
            "from people.models import User\n"
            f"drivers.driver_set_status(driver=User.objects.get(pk={evil_id}), status='offline')\n"
        )
    page.evaluate("window.ccMap.map.closePopup()")
    # Looking at Johannesburg, the waiting rides in Kimberley are counted at the edge.
    look_at(page, -26.2, 28.04, 12)
    button = page.locator("#map-offscreen")
    button.wait_for()
    assert f"{len(ids)} waiting rides outside the view" in button.inner_text()
    button.click()
    wait_js(page, "window.ccMap.offscreenPending().length === 0")
    assert page.locator("#map-offscreen").is_hidden()


def test_search_finds_rides_by_passenger_phone_driver_and_ride_id(server, new_page, busy):
    """The search narrows the board to a passenger's name or phone, a driver, or a ride id."""
    _, ids, _ = busy
    page = new_page(1440, 900)
    open_board(server, page)
    page.locator(f'#pending-rides [data-ride-id="{ids[0]}"]').wait_for()
    search = page.locator("[data-search-input]")

    def shown(selector: str) -> str:
        return (
            f"Array.from(document.querySelectorAll('{selector}'))"
            ".filter(e => e.offsetParent !== null)"
        )

    cards = shown("#pending-rides [data-ride-id]")
    search.fill(ids[2])
    wait_js(
        page, f"JSON.stringify({cards}.map(e => e.dataset.rideId)) === '{json.dumps([ids[2]])}'"
    )
    who = page.locator(f'#pending-rides [data-ride-id="{ids[2]}"] .who strong').inner_text()
    search.fill(who.split()[-1].lower())  # a surname, in lower case
    wait_js(page, f"{cards}.some(e => e.dataset.rideId === '{ids[2]}')")
    # A phone typed the local way, with spaces, finds the same passenger.
    digits = page.locator(f'#pending-rides [data-ride-id="{ids[2]}"] .who .phone').inner_text()
    local = "0" + "".join(c for c in digits if c.isdigit())[2:]
    search.fill(f"{local[:3]} {local[3:6]} {local[6:]}")
    wait_js(page, f"{cards}.some(e => e.dataset.rideId === '{ids[2]}')")
    assert ids[0] not in page.evaluate(f"{cards}.map(e => e.dataset.rideId)")
    # A driver's name narrows the drivers list.
    search.fill("Jane Smith")
    rows = shown("#drivers tbody tr")
    wait_js(page, f"{rows}.length === 1 && {rows}[0].innerText.includes('Jane Smith')")
    assert "found" in page.locator("[data-search-result]").inner_text()
    search.fill("")
    wait_js(page, f"{cards}.length >= {len(ids)}")


# --- offer mode -------------------------------------------------------------------


@pytest.fixture(scope="module")
def offer_server(tmp_path_factory):
    """A second server, in offer mode with 40 s offers."""
    with running_server(
        tmp_path_factory.mktemp("offer-server"), DISPATCH_MODE="offer", OFFER_TIMEOUT_S="40"
    ) as srv:
        yield srv


def test_an_offer_shows_its_driver_and_a_live_countdown(offer_server, new_page):
    """In offer mode the card names the driver holding the offer, and its seconds count down."""
    server = offer_server
    page = new_page(1440, 900)
    open_board(server, page)
    ride_id = f"of-{uuid.uuid4().hex[:8]}"
    michael_id, michael_token = issue_token(server, MICHAEL)
    _, token = issue_token(server, new_passenger(server, "Offer"))
    with (
        app_socket(server, "/ws/driver/", michael_token) as driver,
        app_socket(server, f"/ws/ride/{ride_id}/", token) as passenger,
    ):
        driver.send(json.dumps({"type": "set_status", "status": "available"}))
        receive_until(driver, "status_updated")
        driver.send(json.dumps({"type": "location_update", "latitude": -33.93, "longitude": 18.42}))
        wait_js(page, f"!!window.ccMap.markers['driver-{michael_id}']")
        find_driver(passenger)
        assert receive_until(driver, "ride_request")["ride_id"] == ride_id
        offer = page.locator(f'#pending-rides [data-ride-id="{ride_id}"] .offer')
        offer.wait_for()
        assert "Offered to Michael Brown" in offer.inner_text()
        countdown = offer.locator("[data-countdown]")
        first = int(countdown.get_attribute("data-seconds-left"))
        assert 30 <= first <= 40
        time.sleep(2.2)
        later = int(countdown.get_attribute("data-seconds-left"))
        assert first - 3 <= later <= first - 1
        feed = page.locator("#events .feed-item").first.inner_text()
        assert "Offered to a driver" in feed and "Michael Brown" in feed
        # Back as it was: the offer taken, the trip driven to its end.
        driver.send(json.dumps({"type": "accept_ride", "ride_id": ride_id}))
        receive_until(driver, "ride_assigned")
        for step in ("arrived", "start_trip", "complete_trip"):
            driver.send(json.dumps({"type": step}))
        driver.send(json.dumps({"type": "set_status", "status": "offline"}))
        receive_until(driver, "status_updated")
