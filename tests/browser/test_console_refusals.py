"""
A click on the console whose request the server refuses (403: the role
taken away, a sign-in elsewhere; 404, 409, a server error) or that never
reaches it: htmx swaps nothing in, so the page itself must say what
happened and what to do.
"""

from __future__ import annotations

import uuid

import pytest

from tests.browser.helpers import new_passenger, sign_in, wait_js
from tests.server import running_server

pytestmark = [pytest.mark.browser, pytest.mark.server]

# Kimberley: hundreds of km from every demo driver, so its bookings wait.
KIMBERLEY = (-28.7282, 24.7499)
PASSWORD = "dispatch-pw-for-tests"


def new_dispatcher(server) -> str:
    phone = f"2780{uuid.uuid4().int % 10_000_000:07d}"
    server.shell(
        "from django.contrib.auth.models import Group\n"
        "from people.models import User\n"
        f"user = User.objects.create_user('{phone}', '{PASSWORD}', is_staff=True,"
        " first_name='Dee', last_name='Dispatcher')\n"
        "user.groups.add(Group.objects.get(name='Dispatchers'))\n"
    )
    return phone


def waiting_ride(server, first_name: str) -> str:
    """A ride nobody is near: it waits on the board with its Assign button."""
    phone = new_passenger(server, first_name)
    ride_id = f"rf-{uuid.uuid4().hex[:10]}"
    server.shell(
        "from dispatch import matching, rides\n"
        "from people.models import User\n"
        f"p = User.objects.get(phone_number='{phone}')\n"
        f"r = rides.ride_request(ride_id='{ride_id}', passenger=p, booked_by=p,\n"
        f"    pickup_latitude={KIMBERLEY[0]}, pickup_longitude={KIMBERLEY[1]},\n"
        "    pickup_address='Du Toitspan Rd', dropoff_latitude=-28.74,\n"
        "    dropoff_longitude=24.76, dropoff_address='Hospital')\n"
        "matching.ride_match(ride=r)\n"
    )
    return ride_id


def board_with_a_waiting_ride(server, page, phone: str, first_name: str):
    """The dispatcher's board, and the Assign button of a ride waiting on it."""
    # The test server runs with DEBUG on, where django-htmx adds a debug
    # script that shows a 400, 403, 404 or 500 answer as the whole page.
    # Production has no such script: the board is loaded as it is served there.
    page.route("**/django_htmx/django-htmx.js", lambda route: route.fulfill(body=""))
    # Made by another process, so before the board reads the rides.
    ride_id = waiting_ride(server, first_name)
    sign_in(server, page, phone, PASSWORD)
    page.wait_for_selector("#live-status[data-state=open]")
    assign = page.locator(f'#pending-rides [data-ride-id="{ride_id}"] [data-action=assign]')
    assign.wait_for(timeout=5000)
    return assign


def said(page) -> str:
    """The console's message for a failed request, once it shows."""
    message = page.locator("#request-failed")
    message.wait_for(state="visible")
    assert message.get_attribute("role") == "alert"
    return message.inner_text()


@pytest.fixture(scope="module")
def refusing_server(tmp_path_factory):
    """A server of its own: Django logs each 403 it answers with a traceback."""
    with running_server(tmp_path_factory.mktemp("refusing-server"), logs_errors=True) as srv:
        yield srv


def test_a_click_refused_because_the_role_was_taken_away_says_so(refusing_server, new_page):
    """The board's Assign after the dispatcher's role went: a message to reload and sign in."""
    server = refusing_server
    phone = new_dispatcher(server)
    page = new_page()
    assign = board_with_a_waiting_ride(server, page, phone, "Refilwe")
    server.shell(
        f"from people.models import User\nUser.objects.get(phone_number='{phone}').groups.clear()\n"
    )
    assign.click()
    text = said(page)
    assert "Reload the page" in text and "sign in again" in text
    assert page.locator("#ride-panel .candidate").count() == 0
    assert not [e for e in page.errors if "Content Security Policy" in e], page.errors


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        ({"status": 500, "body": "Internal Server Error"}, "try again"),
        ({"status": 409, "body": "Conflict"}, "changed"),
        ({"status": 404, "body": "Not Found"}, "no longer there"),
        (None, "could not reach the server"),
    ],
)
def test_a_click_that_fails_says_what_happened(server, new_page, answer, words):
    """A server error, a conflict, a vanished ride, a dropped connection: each in words."""
    page = new_page()
    phone = new_dispatcher(server)
    assign = board_with_a_waiting_ride(server, page, phone, "Lerato")

    def failing(route):
        if answer is None:
            route.abort("connectionrefused")
        else:
            route.fulfill(**answer)

    page.route("**/console/rides/*/", failing)
    assign.click()
    assert words in said(page)
    # A refresh the page makes on its own (a panel caught up after the live
    # connection came back) succeeds: the message stays until it is read.
    page.evaluate("htmx.ajax('GET', location.pathname, {target: 'body', swap: 'none'})")
    assert page.locator("#request-failed").is_visible()
    # The next request that works takes the message away.
    page.unroute("**/console/rides/*/")
    assign.click()
    page.locator("#ride-panel .panel-head").wait_for()
    wait_js(page, "document.getElementById('request-failed').hidden")
    assert not [e for e in page.errors if "Content Security Policy" in e], page.errors


def test_a_refusal_is_told_though_the_board_redrew_the_button_meanwhile(server, new_page):
    """
    The live board redraws its lists as news comes: the Assign button that
    asked may be gone when the refusal comes back, and it is still told.
    """
    page = new_page()
    phone = new_dispatcher(server)
    assign = board_with_a_waiting_ride(server, page, phone, "Naledi")
    held = []
    page.route("**/console/rides/*/", lambda route: held.append(route))
    assign.click()
    while not held:
        page.wait_for_timeout(50)
    # Redrawn, as a board update redraws it: the button that asked is gone.
    page.evaluate(
        "document.querySelectorAll('#pending-rides [data-action=assign]')"
        ".forEach((a) => a.replaceWith(a.cloneNode(true)))"
    )
    held[0].fulfill(status=500, body="Internal Server Error")
    assert "try again" in said(page)
