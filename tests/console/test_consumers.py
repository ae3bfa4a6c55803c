"""The console's live socket, through the real ASGI stack."""

from __future__ import annotations

import json
import time

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator

from console import consumers, live_map
from dispatch import drivers, matching, rides
from dispatch.broadcast import CONSOLE_GROUP
from dispatch.models import Ride
from project.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)

CAPE_TOWN = (-33.9249, 18.4241)


@pytest.fixture(autouse=True)
def _quick(settings, monkeypatch):
    settings.CONSOLE_MAP_BATCH_S = 0.5
    monkeypatch.setattr(consumers, "RENDER_DEBOUNCE_S", 0.05)
    monkeypatch.setattr(consumers, "RENDER_MIN_GAP_S", 0.05)


@pytest.fixture
def signed_in(session_cookie):
    return database_sync_to_async(session_cookie)


async def open_console(headers) -> tuple[WebsocketCommunicator, bool]:
    comm = WebsocketCommunicator(application, "/ws/console/", headers=headers)
    connected, _ = await comm.connect()
    return comm, connected


async def read(comm, timeout=3):
    """One message: parsed JSON for the map script, or the HTML string."""
    text = await comm.receive_from(timeout=timeout)
    return json.loads(text) if text.startswith("{") else text


async def drain(comm, quiet=0.3):
    """Everything sent until the socket stays quiet for `quiet` seconds."""
    seen = []
    while not await comm.receive_nothing(timeout=quiet):
        seen.append(await read(comm))
    return seen


async def board_on_connect(comm, quiet=0.3):
    """
    What a console gets on connect: the regions, once rendered (which may
    take a while on a busy machine), then the map and whatever follows.
    """
    return [await read(comm), *await drain(comm, quiet)]


async def test_anonymous_and_non_dispatcher_sockets_are_closed_with_4403(
    make_user, signed_in, support
):
    """The console socket closes with 4403 for anyone but a dispatcher."""
    passenger = await database_sync_to_async(make_user)("passenger")
    for headers in ([], await signed_in(passenger), await signed_in(support)):
        comm, connected = await open_console(headers)
        assert connected
        assert await comm.receive_output(timeout=3) == {"type": "websocket.close", "code": 4403}
        await comm.disconnect()


@pytest.mark.parametrize("demotion", ["left_dispatchers_group", "staff_flag_off"])
async def test_a_dispatcher_demoted_while_watching_is_closed_with_4403(
    dispatcher, signed_in, demotion
):
    """Taken out of the Dispatchers group, or no longer staff: the open board closes at once."""
    headers = await signed_in(dispatcher)
    comm, _ = await open_console(headers)
    await board_on_connect(comm)

    def demote():
        if demotion == "left_dispatchers_group":
            dispatcher.groups.clear()
        else:
            dispatcher.is_staff = False
            dispatcher.save()

    await database_sync_to_async(demote)()
    closed = await comm.receive_output(timeout=3)
    while closed["type"] != "websocket.close":
        closed = await comm.receive_output(timeout=3)
    assert closed["code"] == 4403


async def test_a_foreign_origin_is_refused(dispatcher, signed_in):
    """A console socket from another origin is refused at the handshake."""
    headers = [*await signed_in(dispatcher), (b"origin", b"https://evil.example")]
    comm, connected = await open_console(headers)
    assert not connected
    await comm.disconnect()


async def test_a_console_gets_the_whole_board_on_connect(dispatcher, signed_in):
    """A console that connects gets every board region and the map, no caregiver links."""
    comm, connected = await open_console(await signed_in(dispatcher))
    assert connected
    messages = await board_on_connect(comm)
    html = "".join(m for m in messages if isinstance(m, str))
    for region in ("alerts", "pending-rides", "trouble", "active-rides", "events", "drivers"):
        assert f'<section id="{region}"' in html
    assert '<section id="links"' not in html
    assert html.count('hx-swap-oob="true"') == 6
    assert [m["type"] for m in messages if isinstance(m, dict)] == ["map.snapshot"]
    await comm.disconnect()


def book_in_cape_town(passenger, ride_id: str) -> None:
    """A booking in Cape Town, matched at once (no driver near there unless a test puts one)."""
    ride = rides.ride_request(
        ride_id=ride_id,
        passenger=passenger,
        booked_by=passenger,
        pickup_latitude=CAPE_TOWN[0],
        pickup_longitude=CAPE_TOWN[1],
        dropoff_latitude=CAPE_TOWN[0] + 0.02,
        dropoff_longitude=CAPE_TOWN[1] + 0.02,
    )
    matching.ride_match(ride=ride)


async def test_a_booking_reaches_a_connected_console_as_an_oob_fragment(
    dispatcher, passenger, signed_in
):
    """A booking reaches an open console as a region fragment and a map pickup, debounced."""
    comm, _ = await open_console(await signed_in(dispatcher))
    await board_on_connect(comm)

    await database_sync_to_async(book_in_cape_town)(passenger, "live-1")
    messages = [await read(comm), *await drain(comm)]
    fragments = [m for m in messages if isinstance(m, str)]
    pending = [f for f in fragments if '<section id="pending-rides"' in f]
    assert pending, messages
    assert 'hx-swap-oob="true"' in pending[-1] and 'data-ride-id="live-1"' in pending[-1]
    pickups = [m for m in messages if isinstance(m, dict) and m["type"] == "map.rides"][-1]
    assert [(r["ride_id"], r["no_driver"]) for r in pickups["rides"]] == [("live-1", True)]
    changed = [m for m in messages if isinstance(m, dict) and m["type"] == "rides.changed"]
    assert changed and changed[-1]["rides"][0]["ride_id"] == "live-1"
    # Two events (searching, no_drivers) within the debounce: few renders.
    assert len(fragments) <= 2
    await comm.disconnect()


async def test_every_console_hears_a_change(dispatcher, make_staff, passenger, signed_in):
    """Every open console hears a change, not just one of them."""
    other = await database_sync_to_async(make_staff)("Dispatchers")
    first, _ = await open_console(await signed_in(dispatcher))
    second, _ = await open_console(await signed_in(other))
    await board_on_connect(first)
    await board_on_connect(second)
    layer = get_channel_layer()
    await layer.group_send(CONSOLE_GROUP, {"type": "console.links", "kind": "links"})
    for comm in (first, second):
        messages = [await read(comm), *await drain(comm)]
        assert any(isinstance(m, str) and '<section id="pending-rides"' in m for m in messages)
        await comm.disconnect()


async def test_positions_are_sent_once_per_driver_per_interval(dispatcher, signed_in, settings):
    """The map gets each reporting driver once per CONSOLE_MAP_BATCH_S, at its latest position."""
    from dispatch.drivers import report_position
    from dispatch.geo import Point

    settings.CONSOLE_MAP_BATCH_S = 0.3
    comm, _ = await open_console(await signed_in(dispatcher))
    await board_on_connect(comm)
    now = time.time()
    await report_position(1, Point(-26.0, 28.0, now, heading=90.0), {})
    first = await read(comm)
    assert first["type"] == "map.positions"
    assert [d["id"] for d in first["drivers"]] == [1]
    assert first["drivers"][0]["stale_at"] == pytest.approx(now + settings.DRIVER_STALE_AFTER_S)
    # A burst of reports between two batches: each driver once, latest wins.
    for n in range(1, 31):
        await report_position(1, Point(-26.0 - n / 1000, 28.0, now + n), {})
        await report_position(2, Point(-26.1, 28.0 + n / 1000, now + n), {})
    second = await read(comm)
    latest = {d["id"]: d for d in second["drivers"]}
    assert sorted(latest) == [1, 2] and len(second["drivers"]) == 2
    assert latest[1]["lat"] == pytest.approx(-26.030) and latest[2]["ts"] == now + 30
    # Nobody reported: nothing is sent.
    assert await drain(comm, quiet=0.8) == []
    await comm.disconnect()


async def test_a_console_that_opens_later_starts_from_every_latest_position(
    dispatcher, make_driver, signed_in, settings
):
    """A newcomer's first snapshot already places each driver where they last reported."""
    from dispatch.drivers import report_position
    from dispatch.geo import Point

    settings.CONSOLE_MAP_BATCH_S = 0.2
    driver = await database_sync_to_async(make_driver)(-26.2, 28.04)
    await report_position(driver.pk, Point(-26.25, 28.05, time.time()), {})
    comm, _ = await open_console(await signed_in(dispatcher))
    messages = await board_on_connect(comm)
    (snapshot,) = [m for m in messages if isinstance(m, dict) and m["type"] == "map.snapshot"]
    (marker,) = snapshot["drivers"]
    assert (marker["id"], marker["lat"], marker["lng"]) == (driver.pk, -26.25, 28.05)
    await comm.disconnect()


async def test_positions_alone_do_not_rerender_the_board(dispatcher, signed_in, settings):
    """Moving drivers update the map only, never the board's regions."""
    from dispatch.drivers import report_position
    from dispatch.geo import Point

    settings.CONSOLE_MAP_BATCH_S = 0.2
    comm, _ = await open_console(await signed_in(dispatcher))
    await board_on_connect(comm)
    await report_position(7, Point(-26.0, 28.0, time.time()), {})
    messages = [await read(comm), *await drain(comm)]
    assert messages and all(isinstance(m, dict) and m["type"] == "map.positions" for m in messages)
    await comm.disconnect()


async def test_the_map_hears_only_what_changed(dispatcher, make_driver, passenger, signed_in):
    """After its snapshot the map gets only the drivers and rides that changed, or left."""
    driver = await database_sync_to_async(make_driver)(-26.2, 28.04)
    comm, _ = await open_console(await signed_in(dispatcher))
    first = await board_on_connect(comm)
    (snapshot,) = [m for m in first if isinstance(m, dict)]
    assert [d["id"] for d in snapshot["drivers"]] == [driver.pk]

    def book_and_assign():
        ride = rides.ride_request(
            ride_id="live-2",
            passenger=passenger,
            booked_by=passenger,
            pickup_latitude=-26.2,
            pickup_longitude=28.041,
            dropoff_latitude=-26.1,
            dropoff_longitude=28.0,
        )
        matching.ride_match(ride=ride)

    await database_sync_to_async(book_and_assign)()
    messages = [await read(comm), *await drain(comm)]
    maps = {m["type"]: m for m in messages if isinstance(m, dict)}
    assert "map.snapshot" not in maps
    (marker,) = maps["map.drivers"]["drivers"]
    assert (marker["id"], marker["status"], marker["ride_id"]) == (driver.pk, "on_trip", "live-2")
    assert [r["driver_id"] for r in maps["map.rides"]["rides"]] == [driver.pk]

    def cancel_and_go_offline():
        ride = Ride.objects.get(ride_id="live-2")
        rides.ride_cancel(ride=ride, actor=passenger, cancelled_by="passenger")
        drivers.driver_set_status(driver=driver, status="offline")

    await database_sync_to_async(cancel_and_go_offline)()
    messages = [await read(comm), *await drain(comm)]
    maps = {m["type"]: m for m in messages if isinstance(m, dict)}
    assert maps["map.rides"]["removed"] == ["live-2"]
    assert maps["map.drivers"]["removed"] == [driver.pk]
    await comm.disconnect()


async def test_a_large_fleet_reaches_the_map_in_frames_daphne_accepts(
    dispatcher, make_driver, signed_in, settings, monkeypatch
):
    """Thousands of markers would pass Daphne's 1 MiB frame limit: they come in parts."""
    monkeypatch.setattr(live_map, "MAP_CHUNK", 2)
    settings.CONSOLE_MAP_BATCH_S = 0.2
    drivers = [await database_sync_to_async(make_driver)(-26.2 + i / 100, 28.04) for i in range(5)]
    comm, _ = await open_console(await signed_in(dispatcher))
    messages = [m for m in await board_on_connect(comm, quiet=0.8) if isinstance(m, dict)]
    kinds = [m["type"] for m in messages if m["type"] in ("map.snapshot", "map.drivers")]
    assert kinds[:3] == ["map.snapshot", "map.drivers", "map.drivers"]
    markers = [d["id"] for m in messages if m["type"] in kinds for d in m["drivers"]]
    assert sorted(markers) == sorted(d.pk for d in drivers)
    assert all(len(m["drivers"]) <= 2 for m in messages if "drivers" in m)
    await comm.disconnect()


async def test_an_offer_reaches_the_board(dispatcher, make_driver, passenger, settings, signed_in):
    """Offer mode: an open console hears the offer (the card's countdown, the panel's version)."""
    settings.DISPATCH_MODE = "offer"

    await database_sync_to_async(book_in_cape_town)(passenger, "live-3")
    driver = await database_sync_to_async(make_driver)(CAPE_TOWN[0] + 0.002, CAPE_TOWN[1])
    comm, _ = await open_console(await signed_in(dispatcher))
    await board_on_connect(comm)

    def offer():
        ride = Ride.objects.get(ride_id="live-3")
        matching.ride_offer(ride=ride, driver_id=driver.pk)
        return Ride.objects.get(pk=ride.pk).version

    version = await database_sync_to_async(offer)()
    messages = [await read(comm), *await drain(comm)]
    pending = [m for m in messages if isinstance(m, str) and '<section id="pending-rides"' in m]
    assert pending and f'data-offer-driver="{driver.pk}"' in pending[-1]
    changed = [m for m in messages if isinstance(m, dict) and m["type"] == "rides.changed"]
    assert changed and changed[-1]["rides"][0]["version"] == version
    await comm.disconnect()
