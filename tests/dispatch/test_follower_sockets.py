"""
The follower sockets (/ws/caregiver/, /ws/passenger/) keep what they have
shown: news older than a snapshot is dropped, and a passenger newly
followed mid-ride is shown as a fresh connect would show them.
"""

from __future__ import annotations

import pytest

from dispatch import broadcast
from dispatch.models import Ride
from tests.conftest import db, receive_until, token_for
from tests.dispatch.test_caregivers import JHB, book_as, open_driver, open_follower, settled

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def caregiver(make_user):
    return make_user("caregiver", first_name="Emily", last_name="Davis")


def _sends_of(ride: Ride, kind: str, watchers: list[int]):
    """The group messages `kind` on `ride` produced (as broadcast.ride_changed builds them)."""
    return broadcast._ride_sends(
        ride,
        kind,
        watchers,
        released=(None, "dispatcher", kind),
        withdrawn=[],
        offer=(None, None, None),
        point=None,
    )


async def _assigned_with_late_news(ws, passenger, caregiver, make_link, make_driver, ride_id):
    """
    The passenger's ride `ride_id`, booked and assigned, followed by the
    caregiver; and its `assigned` news (version 3) as another worker would
    deliver it late: (the driver's socket, the passenger's, that news).
    """
    driver = await db(make_driver, *JHB)
    await db(make_link, passenger, caregiver)
    driver_ws = await open_driver(ws, driver)
    rider = await book_as(ws, passenger, ride_id)
    await receive_until(rider, "driver_assigned")
    await receive_until(driver_ws, "ride_assigned")
    at_assigned = await db(Ride.objects.with_people().get, ride_id=ride_id)
    return driver_ws, rider, await db(_sends_of, at_assigned, "assigned", [caregiver.pk])


@pytest.mark.parametrize("role", ["caregiver", "passenger"])
async def test_follower_drops_news_older_than_its_snapshot(
    ws, passenger, caregiver, make_link, make_driver, role
):
    """
    News of version 3 (`assigned`) that reaches the socket after it sent the
    version-5 snapshot (`driver_arrived`), delivered late by another
    worker's outbox, is dropped, as the ride socket drops it: the app never
    shows the ride back at `assigned` after the driver arrived.
    """
    driver_ws, rider, late = await _assigned_with_late_news(
        ws, passenger, caregiver, make_link, make_driver, "old-1"
    )
    await driver_ws.send_json_to({"type": "arrived"})
    await receive_until(rider, "ride_status")

    user = caregiver if role == "caregiver" else passenger
    follower, _ = await open_follower(ws, user, role)
    snapshot = await follower.receive_json_from()
    assert (snapshot["type"], snapshot["status"]) == ("ride_status", "driver_arrived")
    # The ride socket, for contrast, as the same user.
    ride_ws = await ws("/ws/ride/old-1/", token=await db(token_for, user))
    await ride_ws.receive_json_from()
    assert (await ride_ws.receive_json_from())["status"] == "driver_arrived"

    await broadcast._send_all(late)  # worker A's outbox, late
    await settled(ride_ws)  # the ride socket drops it (version 3 <= 5)
    await follower.send_json_to({"type": "ping"})
    _, before_pong = await receive_until(follower, "pong")
    stale = [m for m in before_pong if m.get("ride_id") == "old-1"]
    assert [(m["type"], m.get("version")) for m in stale] == []


@pytest.mark.parametrize("change", ["accepted", "notifications_on"])
async def test_a_caregiver_who_starts_following_mid_ride_is_told_of_the_ride(
    ws, passenger, caregiver, make_link, make_driver, change
):
    """
    A caregiver socket that starts following a passenger (a link accepted,
    or can_receive_notifications switched on) while the passenger is on a
    ride gets `links_updated`, then the ride's `ride_status` as on connect,
    before any of its driver's positions: the app knows the ride it follows.
    """
    from people.caregivers import caregiver_link_accept, caregiver_link_update
    from people.models import CaregiverLink, LinkStatus

    driver = await db(make_driver, *JHB)
    if change == "accepted":
        link = await db(
            CaregiverLink.objects.create,
            passenger=passenger,
            caregiver=caregiver,
            invited_phone=caregiver.phone_number,
            status=LinkStatus.INVITED,
        )
    else:
        link = await db(make_link, passenger, caregiver, can_receive_notifications=False)
    follower, _ = await open_follower(ws, caregiver)
    driver_ws = await open_driver(ws, driver)
    rider = await book_as(ws, passenger, "late-1")
    await receive_until(rider, "driver_assigned")
    await receive_until(driver_ws, "ride_assigned")
    await settled(follower)

    if change == "accepted":
        await db(caregiver_link_accept, link=link, actor=caregiver)
    else:
        await db(caregiver_link_update, link=link, actor=passenger, can_receive_notifications=True)
    updated, _ = await receive_until(follower, "links_updated")
    assert updated["passengers"][0]["can_receive_notifications"] is True
    await driver_ws.send_json_to({"type": "location_update", "latitude": -26.2, "longitude": 28.05})
    await receive_until(rider, "driver_location")
    await follower.send_json_to({"type": "ping"})
    _, heard = await receive_until(follower, "pong")
    kinds = [(m["type"], m.get("ride_id")) for m in heard]
    assert ("ride_status", "late-1") in kinds, f"heard only {kinds}"


@pytest.mark.parametrize("role", ["caregiver", "passenger"])
async def test_follower_drops_news_its_snapshot_already_showed(
    ws, passenger, caregiver, make_link, make_driver, role
):
    """
    The `assigned` news (version 3) committed before the socket read its
    snapshot but delivered after it: the snapshot showed version 3 already,
    so the app is not told of the driver a second time (the ride socket
    drops it too).
    """
    driver_ws, rider, late = await _assigned_with_late_news(
        ws, passenger, caregiver, make_link, make_driver, "same-1"
    )

    user = caregiver if role == "caregiver" else passenger
    follower, _ = await open_follower(ws, user, role)
    snapshot = await follower.receive_json_from()
    assert (snapshot["type"], snapshot["version"]) == ("ride_status", 3)
    await broadcast._send_all(late)
    await settled(rider)  # the ride socket drops it (version 3 <= 3)
    await follower.send_json_to({"type": "ping"})
    _, before_pong = await receive_until(follower, "pong")
    again = [(m["type"], m.get("version")) for m in before_pong if m.get("ride_id") == "same-1"]
    assert again == []
