"""
The app protocol (docs/protocol.md) end to end, as the apps speak it: the
real server process, plain WebSocket clients (the `websockets` library),
sign-in over HTTP with codes texted through a stand-in SMS Portal, and the
demo cast.

Only what a real process shows is checked here: the HTTP handshake, frames
and close codes on a real socket, the SMS gateway reached over HTTP, and
shutdown. What each message holds, and who may hear it, is pinned by the
in-process tests (tests/dispatch/test_consumers.py, test_caregivers.py).

Cape Town is where these tests put the driver they control: the seeded demo
drivers stand in Johannesburg and Pretoria, far beyond MATCH_RADIUS_KM.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import ThreadingHTTPServer

import pytest
import requests
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.e2e.leaving import clients_leave
from tests.people.conftest import FAKE_PASSWORD, FAKE_USERNAME, PortalState, _Handler
from tests.server import Server, running_server

pytestmark = pytest.mark.server

JHB = (-26.2041, 28.0473)
CAPE_TOWN = (-33.9249, 18.4241)

SARAH = "27821234567"
MICHAEL = "27821234568"
EMILY = "27821234569"


# --- the server, its SMS gateway, and signing in ---------------------------------


@pytest.fixture(scope="module")
def portal() -> Iterator[PortalState]:
    """SMS Portal's REST API on a local port, as the server process reaches it."""
    state = PortalState()
    http = ThreadingHTTPServer(("127.0.0.1", 0), type("H", (_Handler,), {"state": state}))
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    state.base = f"http://127.0.0.1:{http.server_address[1]}"
    yield state
    http.shutdown()
    http.server_close()


@pytest.fixture(scope="module")
def server(tmp_path_factory, portal) -> Iterator[Server]:
    with running_server(
        tmp_path_factory.mktemp("e2e"),
        SMS_BACKEND="smsportal-rest",
        SMS_PORTAL_REST_URL=f"{portal.base}/v1",
        SMS_PORTAL_USERNAME=FAKE_USERNAME,
        SMS_PORTAL_PASSWORD=FAKE_PASSWORD,
        # Each test signs in whom it needs, however recently.
        OTP_RESEND_COOLDOWN_S="0",
        # Clients that leave drop Sarah's sockets without a close, twenty in
        # all: each counts against her cap of open sockets until the server
        # notices it gone, which a loaded machine can take a while to do.
        # The cap itself is tested in test_floods.py.
        WS_MAX_SOCKETS_PER_USER="50",
    ) as srv:
        yield srv


def texted_code(portal: PortalState, destination: str) -> str:
    """The code in the last SMS the portal was asked to send to `destination`."""
    for received in reversed(portal.requests):
        if received.path == "/v1/BulkMessages":
            (message,) = received.json["Messages"]
            if message["Destination"] == destination:
                return re.search(r"\b(\d{6})\b", message["Content"]).group(1)
    raise AssertionError(f"no SMS to {destination}: {portal.paths()}")


def verify_by_sms(server: Server, portal: PortalState, phone: str) -> dict:
    """Ask for a code for `phone` as typed, and send back the one texted: the reply."""
    sent = http_post(server, "/api/auth/send-otp/", {"phone_number": phone})
    assert sent.status_code == 200, sent.text
    assert "code" not in sent.json()
    digits = sent.json()["phone_number"]
    verified = http_post(
        server,
        "/api/auth/verify-otp/",
        {"phone_number": phone, "code": texted_code(portal, digits)},
    )
    assert verified.status_code == 200, verified.text
    return verified.json()


@pytest.fixture(scope="module")
def signed_in(server, portal):
    """(user id, access token) of a known phone, signed in by SMS code once."""
    done: dict[str, tuple[int, str]] = {}

    def sign_in(phone: str) -> tuple[int, str]:
        if phone not in done:
            body = verify_by_sms(server, portal, phone)
            done[phone] = (body["user"]["id"], body["tokens"]["access"])
        return done[phone]

    return sign_in


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def http_get(server: Server, path: str, token: str) -> requests.Response:
    return requests.get(f"{server.http}{path}", headers=bearer(token), timeout=10)


def http_post(server: Server, path: str, body: dict | None = None, token: str = ""):
    headers = bearer(token) if token else None
    return requests.post(f"{server.http}{path}", json=body, headers=headers, timeout=10)


# --- the wire -------------------------------------------------------------------


@contextmanager
def app_socket(server: Server, path: str, token: str | None = None) -> Iterator[ClientConnection]:
    """A socket as an app opens it (bearer token in the header), closed afterwards."""
    headers = bearer(token) if token else None
    with connect(f"{server.ws}{path}", additional_headers=headers, open_timeout=10) as sock:
        yield sock


def send(sock: ClientConnection, **message) -> None:
    sock.send(json.dumps(message))


def receive(sock: ClientConnection, wanted: str, timeout: float = 5.0, **match) -> dict:
    """The next message of type `wanted` (and these field values), skipping others."""
    deadline = time.monotonic() + timeout
    seen = []
    while (left := deadline - time.monotonic()) > 0:
        try:
            message = json.loads(sock.recv(timeout=left))
        except TimeoutError:
            break
        if message["type"] == wanted and all(message.get(k) == v for k, v in match.items()):
            return message
        seen.append((message["type"], message.get("status")))
    raise AssertionError(f"no {wanted} {match or ''} within {timeout} s; got {seen}")


def close_code(sock: ClientConnection, timeout: float = 5.0) -> int:
    """Read until the server closes the socket: the code it closed with."""
    deadline = time.monotonic() + timeout
    try:
        while (left := deadline - time.monotonic()) > 0:
            sock.recv(timeout=left)
    except ConnectionClosed as closed:
        return closed.rcvd.code
    except TimeoutError:
        pass
    raise AssertionError(f"the socket stayed open for {timeout} s")


def refused(server: Server, path: str, token: str | None = None) -> tuple[str, int]:
    """Open a socket the server turns away: the error's code and the close code."""
    with app_socket(server, path, token) as sock:
        error = json.loads(sock.recv(timeout=5))
        assert error["type"] == "error", error
        return error["code"], close_code(sock)


def find_driver(sock: ClientConnection, at, **extra) -> None:
    send(
        sock,
        type="find_driver",
        pickup_latitude=at[0],
        pickup_longitude=at[1],
        pickup_address="Pickup",
        dropoff_latitude=str(at[0] + 0.02),
        dropoff_longitude=str(at[1] + 0.02),
        dropoff_address="Clinic",
        **extra,
    )


# --- the tests ------------------------------------------------------------------


def test_an_app_signs_in_with_the_code_texted_through_the_gateway(server, portal):
    """
    The server texts the code through SMS Portal's REST API and neither
    answers nor logs it; the code typed back signs Sarah in, however she
    spells her number, with a token the API takes.
    """
    body = verify_by_sms(server, portal, "+27 82 123 4567")
    assert body["user"]["phone_number"] == SARAH
    assert portal.paths()[-2:] == ["/v1/Authentication", "/v1/BulkMessages"]
    profile = http_get(server, "/api/auth/profile/", body["tokens"]["access"])
    assert profile.status_code == 200 and profile.json()["first_name"] == "Sarah"
    assert texted_code(portal, SARAH) not in server.log()


def test_a_ride_from_booking_to_drop_off(server, signed_in):
    """
    Sarah books where nobody is (no_drivers); Michael goes online nearby
    and gets the ride; his positions and every trip step reach Sarah's ride
    socket and Emily's caregiver socket (signed in by ?token=); a bad frame
    is answered and the socket lives on.
    """
    _, sarah = signed_in(SARAH)
    michael_id, michael = signed_in(MICHAEL)
    _, emily = signed_in(EMILY)

    with (
        app_socket(server, f"/ws/caregiver/?token={emily}") as care,
        app_socket(server, "/ws/ride/e2e-trip/", sarah) as ride,
        app_socket(server, "/ws/driver/", michael) as driver,
    ):
        hello = receive(care, "connection_established")
        assert hello["role"] == "caregiver"
        assert [p["passenger_id"] for p in hello["passengers"]] == [signed_in(SARAH)[0]]
        assert receive(ride, "connection_established")["ride_id"] == "e2e-trip"
        assert receive(driver, "connection_established")["driver_id"] == michael_id

        send(ride, type="ping")
        assert "T" in receive(ride, "pong")["timestamp"]
        ride.send("{oops")
        assert receive(ride, "error")["code"] == "invalid_json"

        find_driver(ride, CAPE_TOWN)
        receive(ride, "searching", ride_id="e2e-trip")
        receive(ride, "no_drivers", ride_id="e2e-trip")
        receive(care, "ride_status", status="searching", ride_id="e2e-trip")

        send(driver, type="set_status", status="available")
        receive(driver, "status_updated", status="available")
        send(driver, type="location_update", latitude=CAPE_TOWN[0] + 0.01, longitude=CAPE_TOWN[1])
        offer = receive(driver, "ride_assigned")
        assert (offer["ride_id"], offer["passenger_name"]) == ("e2e-trip", "Sarah Johnson")
        assigned = receive(ride, "driver_assigned")
        assert (assigned["driver_id"], assigned["driver_name"]) == (michael_id, "Michael Brown")
        receive(care, "ride_status", status="assigned")

        send(
            driver,
            type="location_update",
            latitude=CAPE_TOWN[0] + 0.005,
            longitude=CAPE_TOWN[1],
            heading=180,
            speed=8,
        )
        for sock in (ride, care):
            moved = receive(sock, "driver_location")
            assert (moved["driver_id"], moved["heading"]) == (michael_id, 180)
            assert moved["latitude"] == pytest.approx(CAPE_TOWN[0] + 0.005)

        for step, status in (
            ("arrived", "driver_arrived"),
            ("start_trip", "in_progress"),
            ("complete_trip", "completed"),
        ):
            send(driver, type=step)
            for sock in (ride, care):
                receive(sock, "ride_status", status=status, ride_id="e2e-trip")

        # Nobody else in this module is to be matched with him.
        send(driver, type="set_status", status="offline")
        receive(driver, "status_updated", status="offline")


def test_a_cancelled_ride_frees_its_driver(server, signed_in):
    """Sarah cancels John Doe's ride near Johannesburg; her next booking gets him again."""
    _, sarah = signed_in(SARAH)
    for ride_id in ("e2e-cancel-1", "e2e-cancel-2"):
        with app_socket(server, f"/ws/ride/{ride_id}/", sarah) as ride:
            find_driver(ride, JHB)
            assert receive(ride, "driver_assigned")["driver_name"] == "John Doe"
            send(ride, type="cancel_ride", reason="feeling unwell")
            cancelled = receive(ride, "ride_cancelled")
            assert (cancelled["cancelled_by"], cancelled["reason"]) == (
                "passenger",
                "feeling unwell",
            )


def test_refused_sockets_are_told_why_and_closed_with_their_code(server, signed_in):
    """
    A real client sees 4401 without sign-in, 4403 for what is not theirs,
    4404 at no known path, each after a typed error; a page from another
    origin is refused at the handshake.
    """
    _, sarah = signed_in(SARAH)
    _, michael = signed_in(MICHAEL)
    assert refused(server, "/ws/driver/") == ("authentication_required", 4401)
    assert refused(server, "/ws/caregiver/") == ("authentication_required", 4401)
    assert refused(server, "/ws/driver/", sarah) == ("forbidden", 4403)
    assert refused(server, "/ws/rides/e2e/") == ("not_found", 4404)
    assert refused(server, "/ws/ride/has.a.dot/") == ("not_found", 4404)

    with app_socket(server, "/ws/ride/e2e-private/", sarah) as ride:
        find_driver(ride, CAPE_TOWN)
        receive(ride, "no_drivers")
        assert refused(server, "/ws/ride/e2e-private/", michael) == ("forbidden", 4403)
        send(ride, type="cancel_ride")
        receive(ride, "ride_cancelled")

    with pytest.raises(InvalidStatus) as handshake:
        connect(
            f"{server.ws}/ws/ride/e2e-origin/",
            origin="https://evil.example",
            open_timeout=10,
        )
    assert handshake.value.response.status_code == 403


def test_a_caregiver_whose_link_is_revoked_is_closed_out_of_the_ride(server, portal, signed_in):
    """
    A new phone signs up as a caregiver by SMS code; Sarah invites her and,
    once she accepts, she follows Sarah's ride. Sarah revokes the link: her caregiver socket
    learns she follows nobody, and her ride socket closes with 4403.
    """
    _, sarah = signed_in(SARAH)
    carer = verify_by_sms(server, portal, "0829990002")
    assert carer["verified"] is True
    registered = http_post(
        server,
        "/api/auth/register/",
        {
            "registration_token": carer["registration_token"],
            "first_name": "Una",
            "last_name": "Linked",
            "user_type": "caregiver",
        },
    )
    assert registered.status_code == 201, registered.text
    una = registered.json()["tokens"]["access"]
    invited = http_post(
        server,
        "/api/caregivers/",
        {"caregiver_phone": "+27 82 999 0002", "relationship_type": "friend"},
        sarah,
    )
    assert invited.status_code == 201, invited.text
    link_id = invited.json()["id"]
    accepted = http_post(server, f"/api/caregivers/{link_id}/accept/", token=una)
    assert accepted.status_code == 200, accepted.text

    with (
        app_socket(server, "/ws/ride/e2e-revoke/", sarah) as ride,
        app_socket(server, "/ws/caregiver/", una) as care,
    ):
        assert receive(care, "connection_established")["passengers"][0]["can_view_location"]
        find_driver(ride, JHB)
        receive(ride, "driver_assigned")
        receive(care, "ride_status", status="assigned", ride_id="e2e-revoke")
        with app_socket(server, "/ws/ride/e2e-revoke/", una) as watch:
            receive(watch, "ride_status", ride_id="e2e-revoke")
            gone = requests.delete(
                f"{server.http}/api/caregivers/{link_id}/", headers=bearer(sarah), timeout=10
            )
            assert gone.status_code == 200 and gone.json()["status"] == "revoked"
            assert receive(care, "links_updated")["passengers"] == []
            assert close_code(watch) == 4403
        send(ride, type="cancel_ride")
        receive(ride, "ride_cancelled")


def test_shutdown_closes_open_sockets_with_1001(tmp_path):
    """On SIGTERM every app socket is told 1001 (reconnect elsewhere) and the process ends."""
    with running_server(tmp_path, SHUTDOWN_GRACE_S="1") as srv:
        with (
            app_socket(srv, "/ws/ride/e2e-stop-1/") as first,
            app_socket(srv, "/ws/ride/e2e-stop-2/") as second,
        ):
            for sock in (first, second):
                receive(sock, "connection_established")
            srv.process.send_signal(signal.SIGTERM)
            assert [close_code(sock, timeout=10) for sock in (first, second)] == [1001, 1001]
        assert srv.process.wait(timeout=15) == 0, srv.log()[-3000:]


def test_clients_that_leave_mid_reply_leave_no_error_in_the_log(server):
    """
    REST and socket clients that drop the connection mid-reply, mid-request
    or mid-handshake (tests/e2e/leaving.py): the server goes on answering,
    and its log stays free of ERROR lines and tracebacks (checked when the
    module's server stops). Last in this module: it moves Michael's position.
    """
    sarah, michael = server.token_for(SARAH), server.token_for(MICHAEL)
    asyncio.run(clients_leave(server, sarah, michael))
