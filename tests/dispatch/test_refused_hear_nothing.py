"""
A socket whose access to a ride is refused hears nothing of it: not the
booking's news, not the driver's positions, not a snapshot, even when its
refused requests race the real booking on the same ride id. In process (on
SQLite, and on PostgreSQL in the services pass); across two real workers in
tests/cluster/test_refused_across_workers.py.
"""

from __future__ import annotations

import asyncio

import pytest

from dispatch.models import Ride
from dispatch.rides import ride_cancel
from tests.conftest import JHB, db, find_driver, receive_until, token_for

pytestmark = pytest.mark.django_db(transaction=True)

# What would give the ride away: its news, snapshots and positions.
RIDE_NEWS = {"searching", "driver_assigned", "no_drivers", "ride_status", "driver_location"}


async def drain(comm) -> list[dict]:
    """
    Everything the socket was sent: up to the answer to a last ping (so every
    request before it was handled), then whatever else comes in half a second.
    """
    await comm.send_json_to({"type": "ping"})
    heard = []
    while True:
        message = await comm.receive_json_from(timeout=10)
        if message["type"] == "pong":
            break
        heard.append(message)
    while not await comm.receive_nothing(timeout=0.5):
        heard.append(await comm.receive_json_from(timeout=10))
    return heard


async def race(ws, passenger, stranger, driver, ride_id: str, at=JHB) -> list[dict]:
    """The passenger books while the stranger asks for the same ride, over and over."""
    own = await ws(f"/ws/ride/{ride_id}/", token=await db(token_for, passenger))
    other = await ws(f"/ws/ride/{ride_id}/", token=await db(token_for, stranger))
    driver_ws = await ws("/ws/driver/", token=await db(token_for, driver))
    for comm in (own, other, driver_ws):
        await receive_until(comm, "connection_established")

    async def pester():
        # Booking for the passenger without their permission: refused.
        for _ in range(15):
            await other.send_json_to(find_driver(at, passenger_id=passenger.pk))
            await other.send_json_to({"type": "get_status"})
            await asyncio.sleep(0)

    await asyncio.gather(own.send_json_to(find_driver(at)), pester())
    await receive_until(own, "driver_assigned")
    await receive_until(driver_ws, "ride_assigned")
    for step in range(3):
        await driver_ws.send_json_to(
            {"type": "location_update", "latitude": at[0] + step / 1000, "longitude": at[1]}
        )
    await receive_until(own, "driver_location")
    return await drain(other)


async def test_a_stranger_racing_a_booking_hears_nothing_of_it(
    ws, passenger, make_user, make_driver
):
    for round_ in range(3):
        # Each round in a town of its own, so its driver is the only one near.
        at = (JHB[0] + round_, JHB[1])
        stranger = await db(make_user, "passenger")
        driver = await db(make_driver, at[0] + 0.001, at[1])
        heard = await race(ws, passenger, stranger, driver, f"race-{round_}", at)
        leaked = [m for m in heard if m["type"] in RIDE_NEWS]
        assert leaked == [], leaked
        # What the stranger does hear: refusals, and its socket still answers.
        assert {m["type"] for m in heard} <= {"error"}
        assert {m["code"] for m in heard} <= {"forbidden", "not_found"}
        ride = await db(Ride.objects.get, ride_id=f"race-{round_}")
        await db(ride_cancel, ride=ride, actor=None, cancelled_by="dispatcher")


@pytest.mark.postgres
async def test_on_postgresql_too(ws, passenger, make_user, make_driver):
    """The same race against PostgreSQL (the services pass), where bookings take row locks."""
    stranger = await db(make_user, "passenger")
    driver = await db(make_driver, JHB[0] + 0.001, JHB[1])
    heard = await race(ws, passenger, stranger, driver, "race-pg")
    assert [m for m in heard if m["type"] in RIDE_NEWS] == []
