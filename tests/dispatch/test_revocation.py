"""
Access that ends reaches open sockets at once: a logout or revoked session,
a switched-off account, an unverified driver, a console logout.
"""

from __future__ import annotations

import asyncio
from unittest.mock import patch

import pytest
from channels.layers import get_channel_layer
from django.test import Client

from dispatch import broadcast, matching, trips
from dispatch.drivers import driver_verify
from dispatch.models import DriverState, Ride
from people.sessions import session_issue, session_revoke
from tests.conftest import db, receive_until, staff_login
from tests.dispatch.test_rides_api import JHB, book

pytestmark = pytest.mark.django_db(transaction=True)


async def closed(comm) -> tuple[str, int]:
    """The error a closing socket was sent, and its close code."""
    error, _ = await receive_until(comm, "error")
    output = await comm.receive_output(timeout=3)
    assert output["type"] == "websocket.close"
    return error["code"], output["code"]


async def test_a_logout_closes_that_sessions_sockets_and_no_other(ws, passenger):
    """Today a socket opened before logout could still book."""
    phone, tablet = await db(session_issue, user=passenger), await db(session_issue, user=passenger)
    on_phone = await ws("/ws/ride/after-logout/", token=phone.access)
    on_tablet = await ws("/ws/passenger/", token=tablet.access)
    await receive_until(on_phone, "connection_established")
    await receive_until(on_tablet, "connection_established")
    response = await db(
        Client(headers={"Authorization": f"Bearer {phone.access}"}).post, "/api/auth/logout/"
    )
    assert response.status_code == 204
    assert await closed(on_phone) == ("authentication_required", 4401)
    await on_tablet.send_json_to({"type": "ping"})
    await receive_until(on_tablet, "pong")


@pytest.mark.parametrize("path", ["/ws/passenger/", "/ws/ride/logout-race/", "/ws/driver/"])
async def test_a_logout_while_a_socket_opens_closes_it_too(ws, passenger, make_driver, path):
    """
    The app logs out while its socket reconnects: the logout commits after
    the handshake's token was read but before the socket joined its user's
    group, so the close the logout sends finds no socket. It is closed all
    the same, not left open signed in.
    """
    user = await db(make_driver, *JHB) if path == "/ws/driver/" else passenger
    pair = await db(session_issue, user=user)
    layer = get_channel_layer()
    group_add = layer.group_add

    async def logout_lands_first(group, channel):
        if group == broadcast.user_group(user.pk):
            await db(session_revoke, session=pair.session, actor=user, reason="logout")
        await group_add(group, channel)

    with patch.object(layer, "group_add", logout_lands_first):
        comm = await ws(path, token=pair.access)
        assert await closed(comm) == ("authentication_required", 4401)


async def test_a_revoked_session_cannot_book_on_a_socket_it_opened(ws, passenger):
    pair = await db(session_issue, user=passenger)
    comm = await ws("/ws/ride/revoked-1/", token=pair.access)
    await receive_until(comm, "connection_established")
    await db(session_revoke, session=pair.session, actor=None, reason="lost phone")
    assert await closed(comm) == ("authentication_required", 4401)
    assert not await db(Ride.objects.filter(ride_id="revoked-1").exists)


async def test_switching_an_account_off_closes_every_socket_of_it(ws, passenger):
    first = await ws("/ws/passenger/", token=(await db(session_issue, user=passenger)).access)
    second = await ws("/ws/ride/x-1/", token=(await db(session_issue, user=passenger)).access)
    for comm in (first, second):
        await receive_until(comm, "connection_established")
    passenger.is_active = False
    await db(passenger.save)
    for comm in (first, second):
        assert await closed(comm) == ("authentication_required", 4401)


async def test_an_unverified_driver_is_closed_out_with_4403(ws, make_driver):
    driver = await db(make_driver, -26.2, 28.0)
    comm = await ws("/ws/driver/", token=(await db(session_issue, user=driver)).access)
    await receive_until(comm, "connection_established")
    await db(driver_verify, profile=driver.driver_profile, actor=None, verified=False)
    assert await closed(comm) == ("forbidden", 4403)


async def test_a_console_logout_closes_that_console(dispatcher):
    """The console socket follows its browser session."""
    from channels.testing import WebsocketCommunicator

    from project.asgi import application

    browser = Client()
    await db(staff_login, browser, dispatcher)
    cookie = [(b"cookie", f"sessionid={browser.cookies['sessionid'].value}".encode())]
    console = WebsocketCommunicator(application, "/ws/console/", headers=cookie)
    assert (await console.connect())[0]
    await db(browser.post, "/console/logout/")
    async with asyncio.timeout(5):
        while True:
            output = await console.receive_output(timeout=5)
            if output["type"] == "websocket.close":
                break
    assert output["code"] == 4401
    await console.disconnect()


async def test_an_app_token_opens_no_console(ws, dispatcher):
    """A dispatcher's SMS sign-in is an app session, not a console session."""
    comm = await ws("/ws/console/", token=(await db(session_issue, user=dispatcher)).access)
    output = await comm.receive_output(timeout=3)
    assert output == {"type": "websocket.close", "code": 4403}


@pytest.mark.parametrize("ending", ["complete", "give back"])
def test_a_driver_unverified_mid_trip_is_offline_once_it_ends(passenger, make_driver, ending):
    """The trip over (or given back), a driver no longer verified is not put back online."""
    driver = make_driver(*JHB)
    ride = book(passenger, "unverified-1")
    assert ride.driver_id == driver.pk
    driver_verify(profile=driver.driver_profile, actor=None, verified=False)
    if ending == "complete":
        for step in (trips.ride_driver_arrived, trips.ride_start, trips.ride_complete):
            step(ride=Ride.objects.get(pk=ride.pk), driver=driver)
    else:
        matching.ride_driver_cancel(ride=Ride.objects.get(pk=ride.pk), driver=driver)
    assert DriverState.objects.get(driver=driver).status == "offline"
