"""
Notifications that ride on the sockets: "about N minutes away" from the
driver's live positions, told once for each driver, and the in-app channel.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from asgiref.sync import async_to_sync

from dispatch import alarms, booking, matching
from dispatch.geo import Point
from dispatch.models import Notification, Ride
from dispatch.notify import delivery, near
from people import notices
from people.models import NoticeChannel
from people.notices import Topic
from tests.conftest import (
    JHB,
    booking_keywords,
    db,
    find_driver,
    notifications,
    receive_until,
    token_for,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _fresh(settings, monkeypatch):
    settings.NOTIFY_NEAR_MIN = 5
    settings.SMS_BACKEND = "console"
    near._watched.clear()
    yield
    near._watched.clear()


@pytest.fixture
def family(passenger, make_user, make_link):
    emily = make_user("caregiver", first_name="Emily", last_name="Davis")
    link = make_link(passenger, emily, can_receive_notifications=True)
    notices.preference_set(
        actor=emily,
        link=link,
        topics=[Topic.DRIVER_ASSIGNED, Topic.DRIVER_NEAR],
        channel=NoticeChannel.IN_APP,
        quiet_start=None,
        quiet_end=None,
    )
    notices.preference_set(actor=passenger, passenger=passenger, quiet_start=None, quiet_end=None)
    return passenger, emily


def near_rows():
    return list(
        notifications().filter(event="driver_near").values_list("recipient_id", "topic", "params")
    )


async def test_the_driver_near_notice_is_written_once_when_the_eta_falls_to_n_minutes(
    ws, family, make_driver
):
    sarah, emily = family
    driver = await db(make_driver, JHB[0] + 0.05, JHB[1])
    driver_ws = await ws("/ws/driver/", token=await db(token_for, driver))
    await driver_ws.receive_json_from()
    ride_ws = await ws("/ws/ride/near-1/", token=await db(token_for, sarah))
    await ride_ws.receive_json_from()
    await ride_ws.send_json_to(find_driver())
    await receive_until(ride_ws, "driver_assigned")
    await receive_until(driver_ws, "ride_assigned")

    # About 11 minutes away: nothing yet.
    await driver_ws.send_json_to(
        {"type": "location_update", "latitude": JHB[0] + 0.05, "longitude": JHB[1]}
    )
    await receive_until(ride_ws, "driver_location")
    assert await db(near_rows) == []
    # About 4 minutes away, then closer still: told once.
    for lat in (JHB[0] + 0.018, JHB[0] + 0.01, JHB[0] + 0.002):
        await driver_ws.send_json_to(
            {"type": "location_update", "latitude": lat, "longitude": JHB[1]}
        )
        await receive_until(ride_ws, "driver_location")
    rows = await db(near_rows)
    # Told at the first report within 5 minutes (2 km: 4 minutes), with that
    # ETA and the driver as then.
    plate = await db(lambda: driver.driver_profile.vehicle_registration)
    said = {"minutes": 4, "driver": driver.first_name, "vehicle": plate}
    assert sorted(rows, key=lambda r: r[0]) == sorted(
        [(emily.pk, Topic.DRIVER_NEAR, said), (sarah.pk, Topic.DRIVER_NEAR, said)],
        key=lambda r: r[0],
    )


async def dispatcher_assigns(ride_id: str, driver, dispatcher) -> None:
    """A dispatcher puts `driver` on the ride from the console."""
    ride = await db(Ride.objects.get, ride_id=ride_id)
    await db(
        matching.ride_assign,
        ride=ride,
        driver_id=driver.pk,
        actor=dispatcher,
        role="dispatcher",
        confirmed=True,
    )


async def settled(driver_ws) -> None:
    """A driver socket has handled what it was sent: it answers a ping after."""
    await driver_ws.send_json_to({"type": "ping"})
    await receive_until(driver_ws, "pong")


async def test_a_ride_given_to_another_driver_is_told_again_when_that_driver_is_near(
    ws, family, make_driver, dispatcher
):
    sarah, emily = family
    ann = await db(make_driver, JHB[0] + 0.05, JHB[1], first_name="Ann")
    ann_ws = await ws("/ws/driver/", token=await db(token_for, ann))
    await ann_ws.receive_json_from()
    ride_ws = await ws("/ws/ride/near-2/", token=await db(token_for, sarah))
    await ride_ws.receive_json_from()
    await ride_ws.send_json_to(find_driver())
    await receive_until(ride_ws, "driver_assigned")
    await receive_until(ann_ws, "ride_assigned")
    near_pickup = {"type": "location_update", "latitude": JHB[0] + 0.002, "longitude": JHB[1]}
    await ann_ws.send_json_to(near_pickup)
    await settled(ann_ws)
    assert {r[2]["driver"] for r in await db(near_rows)} == {"Ann"}

    # Ann's car breaks down near the pickup; the dispatcher sends Bo, who
    # is further out. Ann's reports no longer tell anyone; Bo's do, once.
    bo = await db(make_driver, JHB[0] + 0.05, JHB[1], first_name="Bo")
    bo_ws = await ws("/ws/driver/", token=await db(token_for, bo))
    await bo_ws.receive_json_from()
    await dispatcher_assigns("near-2", bo, dispatcher)
    await receive_until(bo_ws, "ride_assigned")
    await ann_ws.send_json_to(near_pickup)
    await settled(ann_ws)
    for lat in (JHB[0] + 0.05, JHB[0] + 0.002, JHB[0] + 0.001):
        await bo_ws.send_json_to({"type": "location_update", "latitude": lat, "longitude": JHB[1]})
        await settled(bo_ws)
    told = [r[2]["driver"] for r in await db(near_rows)]
    assert sorted(told) == ["Ann", "Ann", "Bo", "Bo"]

    # Bo is held up; the dispatcher gives the ride back to Ann, told again.
    await dispatcher_assigns("near-2", ann, dispatcher)
    await receive_until(ann_ws, "ride_assigned")
    await ann_ws.send_json_to(near_pickup)
    await settled(ann_ws)
    told = [r[2]["driver"] for r in await db(near_rows)]
    assert sorted(told) == ["Ann", "Ann", "Ann", "Ann", "Bo", "Bo"]


def test_a_driver_near_again_after_an_alarm_is_not_told_twice(family, make_driver):
    """Another worker (the socket reconnected) does not tell the same driver's approach again."""
    sarah, emily = family
    driver = make_driver(JHB[0] + 0.05, JHB[1])
    ride = booking.ride_book(**booking_keywords(sarah, "near-3")).ride
    assert Ride.objects.get(pk=ride.pk).driver_id == driver.pk
    close = Point(JHB[0] + 0.002, JHB[1], time.time())
    async_to_sync(near.driver_moved)(ride.ride_id, driver.pk, close)
    # An SOS on the way (a ride event that changes no driver); then the
    # driver's app reconnects to another worker, which has told nobody yet.
    alarms.alarm_sos(ride=Ride.objects.with_people().get(pk=ride.pk), passenger=sarah)
    near._watched.clear()
    async_to_sync(near.driver_moved)(ride.ride_id, driver.pk, close)
    assert sorted(r[0] for r in near_rows()) == sorted([sarah.pk, emily.pk])


async def test_an_in_app_notice_reaches_every_socket_of_its_recipient(ws, family, make_driver):
    sarah, emily = family
    await db(make_driver, JHB[0] + 0.004, JHB[1], first_name="John")
    emily_ws = await ws("/ws/caregiver/", token=await db(token_for, emily))
    await emily_ws.receive_json_from()
    ride_ws = await ws("/ws/ride/inapp-1/", token=await db(token_for, sarah))
    await ride_ws.receive_json_from()
    await ride_ws.send_json_to(find_driver())
    await receive_until(ride_ws, "driver_assigned")
    await db(delivery.run, once=True)
    notice, _ = await receive_until(emily_ws, "notification")
    assert notice["topic"] == Topic.DRIVER_ASSIGNED and notice["ride_id"] == "inapp-1"
    assert notice["urgent"] is False
    assert notice["body"].startswith("Care Connect: John will drive Sarah.")
    row = await db(Notification.objects.get, recipient=emily)
    assert (row.status, row.channel) == ("sent", NoticeChannel.IN_APP)
    await asyncio.sleep(0)
