"""
Foreign origins open nothing. Every socket path (app sockets with a token,
the console and app sockets with a console session cookie, paths that do
not exist) refuses a browser handshake from another origin, whatever the
origin looks like; a console session cookie sent from a foreign page can
neither open a socket nor change anything through the console's forms.
(project.routing.origin_admitted for the sockets, Django's CSRF origin check for
the pages; tests/dispatch/test_consumers.py pins the origins that do open.)
"""

from __future__ import annotations

import asyncio

import pytest
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.test import Client
from hypothesis import given
from hypothesis import strategies as st

from dispatch import booking
from dispatch.models import Ride
from project.asgi import application
from tests.conftest import JHB, staff_login, token_for
from tests.fuzz.conftest import fuzz

pytestmark = pytest.mark.django_db(transaction=True)

HOST = b"localhost:8067"
PATHS = [
    "/ws/ride/or-1/",
    "/ws/driver/",
    "/ws/passenger/",
    "/ws/caregiver/",
    "/ws/console/",
    "/ws/nowhere/",
]
FOREIGN = [
    b"https://evil.example",
    b"http://evil.example",
    b"http://localhost:9999",
    b"https://localhost:8067",
    b"http://localhost",
    b"http://localhost:8067.evil.example",
    b"http://evil.example/localhost:8067",
    b"http://localhost:8067@evil.example",
    b"http://sub.localhost:8067",
    b"null",
    b"file://",
    b"",
    b"localhost:8067",
    b"ws://localhost:8067",
    b"http://[::1]:8067",
    b"http://127.0.0.1:8067",
]


async def handshake(path: str, headers: list) -> bool:
    comm = WebsocketCommunicator(application, path, headers=headers)
    connected, _ = await comm.connect(timeout=5)
    await comm.disconnect()
    return connected


@pytest.fixture
def credentials(passenger, dispatcher) -> dict[str, list]:
    """An app token, and a dispatcher's console session cookie (both factors passed)."""
    client = staff_login(Client(), dispatcher)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    return {
        "token": [(b"authorization", f"Bearer {token_for(passenger)}".encode())],
        "cookie": [(b"cookie", cookie)],
    }


@pytest.mark.parametrize("how", ["token", "cookie"])
def test_no_socket_opens_from_a_foreign_origin(credentials, how):
    """Not with an app token, not with a console session cookie, at no path."""

    async def opened() -> list[tuple[str, bytes]]:
        found = []
        for path in PATHS:
            for origin in FOREIGN:
                headers = [(b"host", HOST), (b"origin", origin), *credentials[how]]
                if await handshake(path, headers):
                    found.append((path, origin))
            # The same credentials from this site's own page do open it.
            own = [(b"host", HOST), (b"origin", b"http://localhost:8067"), *credentials[how]]
            assert await handshake(path, own), path
        return found

    assert asyncio.run(opened()) == []


HOSTS = st.sampled_from(["evil.example", "localhost.evil", "127.0.0.2", "LOCALHOST", "localhost"])
SCHEMES = st.sampled_from(["http", "https", "ws", "wss", "ftp", "chrome-extension", ""])
PORTS = st.sampled_from(["", ":80", ":443", ":8066", ":8068", ":08067", ":99999", ":x"])


def test_generated_origins_open_only_this_site(credentials):
    """Of generated origins, only this site's own (scheme, host and port) opens a socket."""

    @fuzz(120)
    @given(
        scheme=SCHEMES,
        host=HOSTS,
        port=PORTS,
        path=st.sampled_from(PATHS),
        how=st.sampled_from(["token", "cookie"]),
    )
    def one(scheme, host, port, path, how):
        origin = f"{scheme}://{host}{port}" if scheme else f"{host}{port}"
        headers = [(b"host", HOST), (b"origin", origin.encode()), *credentials[how]]
        # Hosts compare without case, ports as numbers (":08067" is 8067).
        own = scheme == "http" and host.lower() == "localhost" and port in (":8067", ":08067")
        assert asyncio.run(handshake(path, headers)) is own, origin

    one()


def test_a_console_session_from_a_foreign_page_changes_nothing(dispatcher, passenger, make_driver):
    """
    Even with the session cookie and a valid CSRF token pair, a form posted
    from another origin is refused (Django checks Origin), and the ride
    stays as it was; the same post from this site's own page goes through.
    """
    make_driver(JHB[0] + 0.002, JHB[1])
    ride = booking.ride_book(
        ride_id="or-cancel",
        passenger=passenger,
        booked_by=passenger,
        pickup_latitude=JHB[0],
        pickup_longitude=JHB[1],
        dropoff_latitude=JHB[0] + 0.05,
        dropoff_longitude=JHB[1] + 0.05,
    ).ride
    client = staff_login(Client(enforce_csrf_checks=True), dispatcher)
    assert client.get("/console/").status_code == 200
    token = client.cookies[django_settings.CSRF_COOKIE_NAME].value
    form = {"reason": "test", "version": ride.version, "csrfmiddlewaretoken": token}
    url = f"/console/rides/{ride.pk}/cancel/"

    refused = client.post(url, form, HTTP_ORIGIN="https://evil.example")
    assert refused.status_code == 403
    assert Ride.objects.get(pk=ride.pk).version == ride.version
    assert "Access-Control-Allow-Origin" not in refused.headers

    allowed = client.post(url, form, HTTP_ORIGIN="http://testserver")
    assert allowed.status_code in (200, 302)
    assert Ride.objects.get(pk=ride.pk).status == "cancelled"


def test_the_session_cookie_is_not_sent_on_cross_site_requests(settings):
    """SameSite keeps a foreign page's requests from carrying the console session."""
    assert django_settings.SESSION_COOKIE_SAMESITE in ("Lax", "Strict")
    assert django_settings.CSRF_COOKIE_SAMESITE in ("Lax", "Strict")
