"""
Caregivers on the sockets: booking on behalf, following a passenger's rides,
seeing the driver only with permission, and losing it at once; and rides
that need a wheelchair-accessible vehicle.
"""

from __future__ import annotations

import pytest

from dispatch import matching, rides, watch
from dispatch.models import DriverState, Ride, RideEvent, RideStatus
from people.caregivers import caregiver_link_revoke, caregiver_link_update
from people.models import LinkStatus, UserType, VehicleType
from tests.conftest import db, find_driver, receive_until, refused, token_for

pytestmark = pytest.mark.django_db(transaction=True)

JHB = (-26.2041, 28.0473)
PRETORIA = (-25.7479, 28.2293)


async def quiet(comm):
    """Nothing more arrives on this socket: a ping is answered before anything else."""
    await comm.send_json_to({"type": "ping"})
    _, before = await receive_until(comm, "pong")
    assert before == [], f"heard {[m.get('type') for m in before]}"


async def settled(comm):
    """A ping answered: every message queued before it has been handled."""
    await comm.send_json_to({"type": "ping"})
    await receive_until(comm, "pong")


async def open_driver(ws, driver):
    comm = await ws("/ws/driver/", token=await db(token_for, driver))
    await comm.receive_json_from()
    return comm


async def open_follower(ws, user, role="caregiver"):
    comm = await ws(f"/ws/{role}/", token=await db(token_for, user))
    hello = await comm.receive_json_from()
    assert hello["type"] == "connection_established" and hello["role"] == role
    return comm, hello


async def book_as(ws, user, ride_id, **extra):
    """Open the ride's socket as `user` and send find_driver; returns the socket."""
    comm = await ws(f"/ws/ride/{ride_id}/", token=await db(token_for, user))
    await comm.receive_json_from()
    await comm.send_json_to(find_driver(**extra))
    return comm


async def move(driver_ws, lat, lng):
    await driver_ws.send_json_to({"type": "location_update", "latitude": lat, "longitude": lng})


@pytest.fixture
def caregiver(make_user):
    return make_user("caregiver", first_name="Emily", last_name="Davis")


# --- booking on behalf --------------------------------------------------------


@pytest.mark.parametrize("notified", [True, False], ids=["notified", "not-notified"])
@pytest.mark.parametrize("by", ["passenger_id", "passenger_phone"])
async def test_caregiver_books_for_the_linked_passenger(
    ws, passenger, caregiver, make_link, make_driver, by, notified
):
    """
    The ride is the passenger's, booked by the caregiver, and gets a driver;
    the booker hears it, with or without the passenger's notifications.
    """
    driver = await db(make_driver, *JHB)
    await db(
        make_link, passenger, caregiver, can_book_rides=True, can_receive_notifications=notified
    )
    target = (
        {"passenger_id": passenger.pk}
        if by == "passenger_id"
        else {"passenger_phone": "+27 " + passenger.phone_number[2:]}
    )
    comm = await book_as(ws, caregiver, "behalf-1", **target)
    assert (await comm.receive_json_from())["type"] == "searching"
    assigned = await comm.receive_json_from()
    assert assigned["type"] == "driver_assigned" and assigned["driver_id"] == driver.pk
    ride = await db(Ride.objects.get, ride_id="behalf-1")
    assert ride.passenger_id == passenger.pk and ride.booked_by_id == caregiver.pk
    first = await db(RideEvent.objects.filter(ride=ride, version=1).get)
    assert first.actor_id == caregiver.pk and first.actor_role == "caregiver"


@pytest.mark.parametrize(
    "link",
    [
        pytest.param({"can_book_rides": False}, id="without-booking-permission"),
        pytest.param(None, id="without-a-link"),
        pytest.param({"status": LinkStatus.INVITED}, id="only-invited"),
        pytest.param({"status": LinkStatus.REVOKED}, id="revoked"),
        pytest.param({"status": LinkStatus.DECLINED}, id="declined"),
    ],
)
@pytest.mark.parametrize("by", ["passenger_id", "passenger_phone"])
async def test_booking_for_someone_without_the_right_is_forbidden(
    ws, passenger, caregiver, make_link, make_driver, link, by
):
    """forbidden; no ride or event is written, and the socket answers on."""
    await db(make_driver, *JHB)
    if link is not None:
        perms = {k: v for k, v in link.items() if k != "status"}
        status = link.get("status")
        made = await db(make_link, passenger, caregiver, **perms)
        if status:
            made.status = status
            await db(made.save)
    target = (
        {"passenger_id": passenger.pk}
        if by == "passenger_id"
        else {"passenger_phone": passenger.phone_number}
    )
    comm = await book_as(ws, caregiver, "nope-1", **target)
    error = await comm.receive_json_from()
    assert error["type"] == "error" and error["code"] == "forbidden"
    assert not await db(Ride.objects.exists)
    assert not await db(RideEvent.objects.exists)
    assert (await db(DriverState.objects.get)).status == "available"
    await comm.send_json_to({"type": "get_status"})
    assert (await comm.receive_json_from())["code"] == "not_found"


# --- following the passenger's rides ---------------------------------------------


async def test_passenger_socket_hears_of_a_ride_booked_for_them(
    ws, passenger, caregiver, make_link, make_driver
):
    """/ws/passenger/ follows a ride a caregiver booked, to the caregiver's cancelling it."""
    driver = await db(make_driver, *JHB)
    await db(make_link, passenger, caregiver)
    own, _ = await open_follower(ws, passenger, "passenger")
    booking = await book_as(ws, caregiver, "told-1", passenger_id=passenger.pk)
    searching = await own.receive_json_from()
    assert searching["type"] == "searching" and searching["ride_id"] == "told-1"
    assigned = await own.receive_json_from()
    assert assigned["type"] == "driver_assigned" and assigned["driver_id"] == driver.pk
    await receive_until(booking, "driver_assigned")
    await booking.send_json_to({"type": "cancel_ride", "reason": "plans changed"})
    cancelled, _ = await receive_until(booking, "ride_cancelled")
    assert cancelled["cancelled_by"] == "caregiver"
    heard = await own.receive_json_from()
    assert heard["type"] == "ride_cancelled" and heard["ride_id"] == "told-1"
    assert heard["cancelled_by"] == "caregiver" and heard["reason"] == "plans changed"


async def test_a_caregiver_who_cancels_without_notifications_gets_the_answer(
    ws, passenger, caregiver, make_link
):
    """cancel_ride answers ride_cancelled (once) to a caregiver who may book but hears no news."""
    await db(make_link, passenger, caregiver, can_receive_notifications=False)
    rider = await book_as(ws, passenger, "quiet-1", at=(-33.9249, 18.4241))
    await receive_until(rider, "no_drivers")
    comm = await ws("/ws/ride/quiet-1/", token=await db(token_for, caregiver))
    await receive_until(comm, "ride_status")
    await comm.send_json_to({"type": "cancel_ride", "reason": "in hospital"})
    answer = await comm.receive_json_from()
    assert answer["type"] == "ride_cancelled" and answer["ride_id"] == "quiet-1"
    assert answer["cancelled_by"] == "caregiver" and answer["reason"] == "in hospital"
    await settled(comm)
    await quiet(comm)
    told, _ = await receive_until(rider, "ride_cancelled")
    assert told["cancelled_by"] == "caregiver"


async def test_caregiver_with_notifications_hears_every_state_change(
    ws, passenger, caregiver, make_user, make_link, make_driver
):
    """Each change arrives as ride_status naming its event; others hear nothing."""
    driver = await db(make_driver, *JHB)
    await db(make_link, passenger, caregiver, can_receive_notifications=True)
    muted = await db(make_user, "caregiver")
    await db(make_link, passenger, muted, can_receive_notifications=False, can_view_location=False)
    follower, hello = await open_follower(ws, caregiver)
    assert hello["passengers"] == [
        {
            "passenger_id": passenger.pk,
            "can_book_rides": True,
            "can_view_location": True,
            "can_receive_notifications": True,
        }
    ]
    silent, _ = await open_follower(ws, muted)
    driver_ws = await open_driver(ws, driver)
    await book_as(ws, passenger, "watch-1")
    await receive_until(driver_ws, "ride_assigned")
    for action in ("arrived", "start_trip", "complete_trip"):
        await driver_ws.send_json_to({"type": action})
    seen = [await follower.receive_json_from() for _ in range(5)]
    assert [(m["type"], m["event"], m["status"]) for m in seen] == [
        ("ride_status", "searching", "searching"),
        ("ride_status", "assigned", "assigned"),
        ("ride_status", "driver_arrived", "driver_arrived"),
        ("ride_status", "started", "in_progress"),
        ("ride_status", "completed", "completed"),
    ]
    assert all(m["ride_id"] == "watch-1" for m in seen)
    # requested is version 1; version 5 (the passenger told the driver
    # waits at the door) is not the caregivers' to hear.
    assert [m["version"] for m in seen] == [2, 3, 4, 6, 7]
    await quiet(silent)


async def test_caregiver_on_the_ride_socket_hears_the_door_only_when_the_escalation_says(
    ws, passenger, caregiver, make_link, make_driver, settings
):
    """
    The driver at the door is the passenger's to hear first: a caregiver
    watching the ride socket hears the arrival, and `driver_waiting` only at
    the caregivers' stage, as on the caregiver socket.
    """
    settings.NO_SHOW_CAREGIVERS_AFTER_MIN = 0
    driver = await db(make_driver, *JHB)
    await db(make_link, passenger, caregiver, can_receive_notifications=True)
    driver_ws = await open_driver(ws, driver)
    rider = await book_as(ws, passenger, "door-ride-1")
    await receive_until(rider, "driver_assigned")
    await receive_until(driver_ws, "ride_assigned")
    comm = await ws("/ws/ride/door-ride-1/", token=await db(token_for, caregiver))
    await receive_until(comm, "ride_status")
    await driver_ws.send_json_to({"type": "arrived"})
    told, _ = await receive_until(rider, "driver_waiting")
    assert told["stage"] == "passenger"
    arrived = await comm.receive_json_from()
    assert (arrived["type"], arrived["status"]) == ("ride_status", "driver_arrived")
    await quiet(comm)
    assert await db(watch.waiting_escalate) == 1
    waiting = await comm.receive_json_from()
    assert (waiting["type"], waiting["stage"]) == ("driver_waiting", "caregivers")
    await quiet(comm)


async def test_caregiver_socket_opened_mid_ride_gets_the_current_ride(
    ws, passenger, caregiver, make_link, make_driver
):
    """Connecting during a ride sends its snapshot at once; the driver's positions follow."""
    driver = await db(make_driver, *JHB)
    await db(make_link, passenger, caregiver)
    driver_ws = await open_driver(ws, driver)
    comm = await book_as(ws, passenger, "mid-1")
    await receive_until(comm, "driver_assigned")
    await receive_until(driver_ws, "ride_assigned")
    follower, _ = await open_follower(ws, caregiver)
    snapshot = await follower.receive_json_from()
    assert snapshot["type"] == "ride_status" and snapshot["ride_id"] == "mid-1"
    assert snapshot["status"] == "assigned"
    await move(driver_ws, -26.2, 28.05)
    moved = await follower.receive_json_from()
    assert moved["type"] == "driver_location" and moved["ride_id"] == "mid-1"
    assert (moved["latitude"], moved["longitude"]) == (-26.2, 28.05)


# --- the driver's position ------------------------------------------------------


async def test_driver_location_reaches_only_caregivers_who_may_view_it(
    ws, passenger, make_user, make_link, make_driver
):
    """can_view_location decides; notifications alone do not carry positions."""
    driver = await db(make_driver, *JHB)
    watcher = await db(make_user, "caregiver")
    blind = await db(make_user, "caregiver")
    await db(make_link, passenger, watcher, can_view_location=True)
    await db(make_link, passenger, blind, can_view_location=False)
    watcher_ws, _ = await open_follower(ws, watcher)
    blind_ws, _ = await open_follower(ws, blind)
    driver_ws = await open_driver(ws, driver)
    rider = await book_as(ws, passenger, "loc-1")
    await receive_until(rider, "driver_assigned")
    await receive_until(driver_ws, "ride_assigned")
    for comm in (watcher_ws, blind_ws):
        await receive_until(comm, "ride_status")
        await receive_until(comm, "ride_status")
    await move(driver_ws, -26.2, 28.05)
    moved = await watcher_ws.receive_json_from()
    assert moved["type"] == "driver_location" and moved["ride_id"] == "loc-1"
    assert (moved["latitude"], moved["longitude"]) == (-26.2, 28.05)
    assert (await rider.receive_json_from())["type"] == "driver_location"
    await quiet(blind_ws)


async def test_location_without_notifications_still_reaches_the_caregiver(
    ws, passenger, caregiver, make_link, make_driver
):
    """A caregiver who may view the location but gets no notifications sees positions only."""
    driver = await db(make_driver, *JHB)
    await db(
        make_link, passenger, caregiver, can_view_location=True, can_receive_notifications=False
    )
    follower, _ = await open_follower(ws, caregiver)
    driver_ws = await open_driver(ws, driver)
    rider = await book_as(ws, passenger, "loc-2")
    await receive_until(rider, "driver_assigned")
    await receive_until(driver_ws, "ride_assigned")
    await follower.send_json_to({"type": "ping"})
    _, before = await receive_until(follower, "pong")
    assert before == []  # no ride_status for searching or assigned
    await move(driver_ws, -26.2, 28.05)
    moved = await follower.receive_json_from()
    assert moved["type"] == "driver_location" and moved["ride_id"] == "loc-2"
    await quiet(follower)


async def test_location_without_notifications_reaches_the_caregiver_on_the_ride_socket(
    ws, passenger, caregiver, make_link, make_driver
):
    """
    On the ride socket too: the news it is not told still moves the ride's
    status, so positions show once the ride holds its driver.
    """
    await db(
        make_link, passenger, caregiver, can_view_location=True, can_receive_notifications=False
    )
    watching = await ws("/ws/ride/loc-3/", token=await db(token_for, caregiver))
    await watching.receive_json_from()
    rider = await book_as(ws, passenger, "loc-3")
    await receive_until(rider, "no_drivers")
    await watching.send_json_to({"type": "get_status"})
    assert (await watching.receive_json_from())["status"] == "searching"
    driver = await db(make_driver, *JHB)
    ride = await db(Ride.objects.get, ride_id="loc-3")
    await db(matching.ride_assign, ride=ride, driver_id=driver.pk, confirmed=True)
    driver_ws = await open_driver(ws, driver)
    await receive_until(rider, "driver_assigned")
    await move(driver_ws, JHB[0] + 0.001, JHB[1])
    moved, told = await receive_until(watching, "driver_location")
    assert moved["ride_id"] == "loc-3" and told == []


async def test_caregiver_without_location_permission_sees_no_driver_position(
    ws, passenger, caregiver, make_link, make_driver
):
    """Status snapshots to a caregiver without can_view_location carry no coordinates."""
    driver = await db(make_driver, *JHB)
    await db(make_link, passenger, caregiver, can_view_location=False)
    follower, _ = await open_follower(ws, caregiver)
    driver_ws = await open_driver(ws, driver)
    rider = await book_as(ws, passenger, "loc-3")
    await receive_until(rider, "driver_assigned")
    await receive_until(driver_ws, "ride_assigned")
    await receive_until(follower, "ride_status")
    assigned = await follower.receive_json_from()
    assert assigned["status"] == "assigned" and assigned["driver"]["name"]
    assert assigned["driver"]["latitude"] is None and assigned["driver"]["longitude"] is None
    # The same on the ride's own socket.
    ride_ws = await ws("/ws/ride/loc-3/", token=await db(token_for, caregiver))
    await ride_ws.receive_json_from()
    snapshot = await ride_ws.receive_json_from()
    assert snapshot["type"] == "ride_status" and snapshot["driver"]["latitude"] is None
    # Nor once the driver is at the pickup, on either socket.
    await driver_ws.send_json_to({"type": "arrived"})
    for comm in (follower, ride_ws):
        arrived = await comm.receive_json_from()
        assert (arrived["type"], arrived["status"]) == ("ride_status", "driver_arrived")
        assert arrived["driver"]["latitude"] is None and arrived["driver"]["longitude"] is None


@pytest.mark.parametrize("change", ["revoke", "location_off"])
async def test_losing_the_permission_stops_positions_at_once(
    ws, passenger, caregiver, make_link, make_driver, change
):
    """
    After a revocation or can_view_location off, an open socket gets no more
    positions; with location off it still hears the ride's news, and given
    back, the positions flow again.
    """
    driver = await db(make_driver, *JHB)
    link = await db(make_link, passenger, caregiver)
    follower, _ = await open_follower(ws, caregiver)
    driver_ws = await open_driver(ws, driver)
    rider = await book_as(ws, passenger, "stop-1")
    await receive_until(rider, "driver_assigned")
    await receive_until(driver_ws, "ride_assigned")
    await receive_until(follower, "ride_status")
    await receive_until(follower, "ride_status")
    await move(driver_ws, -26.2, 28.05)
    assert (await follower.receive_json_from())["type"] == "driver_location"
    assert (await rider.receive_json_from())["type"] == "driver_location"

    if change == "revoke":
        await db(caregiver_link_revoke, link=link, actor=passenger)
    else:
        await db(caregiver_link_update, link=link, actor=passenger, can_view_location=False)
    updated, _ = await receive_until(follower, "links_updated")
    if change == "revoke":
        assert updated["passengers"] == []
    else:
        assert updated["passengers"][0]["can_view_location"] is False

    await move(driver_ws, -26.21, 28.06)
    assert (await rider.receive_json_from())["type"] == "driver_location"
    await driver_ws.send_json_to({"type": "arrived"})
    assert (await rider.receive_json_from())["status"] == "driver_arrived"
    if change == "revoke":
        await quiet(follower)
        return
    # The position went out before the arrival: had it reached this socket,
    # it would come first.
    arrived = await follower.receive_json_from()
    assert (arrived["type"], arrived["status"]) == ("ride_status", "driver_arrived")

    await db(caregiver_link_update, link=link, actor=passenger, can_view_location=True)
    restored, _ = await receive_until(follower, "links_updated")
    assert restored["passengers"][0]["can_view_location"] is True
    await move(driver_ws, -26.22, 28.07)
    moved = await follower.receive_json_from()
    assert moved["type"] == "driver_location" and moved["latitude"] == -26.22


@pytest.mark.parametrize("change", ["revoke", "location_off"])
async def test_caregiver_ride_socket_obeys_a_changed_link(
    ws, passenger, caregiver, make_link, make_driver, change
):
    """
    On /ws/ride/<id>/ a revoked caregiver is closed with 4403; location off
    stops positions until it is given back.
    """
    driver = await db(make_driver, *JHB)
    link = await db(make_link, passenger, caregiver)
    driver_ws = await open_driver(ws, driver)
    rider = await book_as(ws, passenger, "stop-2")
    await receive_until(rider, "driver_assigned")
    await receive_until(driver_ws, "ride_assigned")
    watching = await ws("/ws/ride/stop-2/", token=await db(token_for, caregiver))
    await watching.receive_json_from()
    assert (await watching.receive_json_from())["type"] == "ride_status"
    await move(driver_ws, -26.2, 28.05)
    assert (await watching.receive_json_from())["type"] == "driver_location"
    await rider.receive_json_from()

    if change == "revoke":
        await db(caregiver_link_revoke, link=link, actor=passenger)
        closed = await watching.receive_output(timeout=3)
        assert closed == {"type": "websocket.close", "code": 4403}
    else:
        await db(caregiver_link_update, link=link, actor=passenger, can_view_location=False)
        await settled(watching)
        await move(driver_ws, -26.21, 28.06)
        assert (await rider.receive_json_from())["type"] == "driver_location"
        await quiet(watching)
        await db(caregiver_link_update, link=link, actor=passenger, can_view_location=True)
        await settled(watching)
        await move(driver_ws, -26.22, 28.07)
        moved = await watching.receive_json_from()
        assert moved["type"] == "driver_location" and moved["latitude"] == -26.22


# --- the ride's own socket ------------------------------------------------------


async def test_linked_caregiver_opens_the_ride_and_others_are_refused(
    ws, passenger, caregiver, make_user, make_link
):
    """A caregiver with an active link watches the ride; anyone else gets 4403."""
    await db(make_link, passenger, caregiver)
    await db(
        rides.ride_request,
        ride_id="open-1",
        passenger=passenger,
        booked_by=passenger,
        pickup_latitude=JHB[0],
        pickup_longitude=JHB[1],
        dropoff_latitude=JHB[0],
        dropoff_longitude=JHB[1],
    )
    comm = await ws("/ws/ride/open-1/", token=await db(token_for, caregiver))
    await comm.receive_json_from()
    snapshot = await comm.receive_json_from()
    assert snapshot["type"] == "ride_status" and snapshot["ride_id"] == "open-1"
    assert snapshot["passenger"]["id"] == passenger.pk

    stranger = await db(make_user, "caregiver")
    refusal = await refused(ws, "/ws/ride/open-1/", token=await db(token_for, stranger))
    assert refusal == ("forbidden", 4403)
    invited = await db(make_user, "caregiver")
    link = await db(make_link, passenger, invited)
    link.status = LinkStatus.INVITED
    await db(link.save)
    refusal = await refused(ws, "/ws/ride/open-1/", token=await db(token_for, invited))
    assert refusal == ("forbidden", 4403)


# --- wheelchairs ---------------------------------------------------------------


async def test_wheelchair_ride_in_johannesburg_gets_no_sedan_or_suv(ws, passenger, make_driver):
    """Only a wheelchair-accessible vehicle may carry the passenger: none is near."""
    sedan = await db(make_driver, *JHB, vehicle_type=VehicleType.SEDAN)
    suv = await db(make_driver, JHB[0] + 0.01, JHB[1], vehicle_type=VehicleType.SUV)
    profile = passenger.passenger_profile
    profile.needs_wheelchair = True
    await db(profile.save)
    comm = await book_as(ws, passenger, "wc-jhb")
    assert (await comm.receive_json_from())["type"] == "searching"
    assert (await comm.receive_json_from())["type"] == "no_drivers"
    ride = await db(Ride.objects.get, ride_id="wc-jhb")
    assert ride.needs_wheelchair and ride.status == RideStatus.SEARCHING
    assert ride.driver_id is None
    for driver in (sedan, suv):
        assert (await db(DriverState.objects.get, driver=driver)).status == "available"


async def test_wheelchair_ride_in_pretoria_gets_the_accessible_vehicle(ws, passenger, make_driver):
    """The accessible vehicle is chosen over a nearer sedan, and its driver told why."""
    await db(make_driver, *PRETORIA, vehicle_type=VehicleType.SEDAN)
    accessible = await db(
        make_driver,
        PRETORIA[0] + 0.02,
        PRETORIA[1],
        vehicle_type=VehicleType.WHEELCHAIR_ACCESSIBLE,
    )
    van = await open_driver(ws, accessible)
    comm = await book_as(ws, passenger, "wc-pta", at=PRETORIA, needs_wheelchair=True)
    assigned, _ = await receive_until(comm, "driver_assigned")
    assert assigned["driver_id"] == accessible.pk
    assert assigned["vehicle_type"] == "wheelchair_accessible"
    carried, _ = await receive_until(van, "ride_assigned")
    assert carried["ride_id"] == "wc-pta" and carried["needs"]["wheelchair"] is True


async def test_a_waiting_wheelchair_ride_is_not_given_to_a_sedan_that_comes_online(
    ws, passenger, make_driver
):
    """A sedan going online beside it leaves it waiting; an accessible vehicle gets it."""
    comm = await book_as(ws, passenger, "wc-wait", needs_wheelchair=True)
    await receive_until(comm, "no_drivers")

    async def online_beside_the_pickup(vehicle_type):
        driver = await db(make_driver, vehicle_type=vehicle_type)
        driver_ws = await open_driver(ws, driver)
        await driver_ws.send_json_to({"type": "set_status", "status": "available"})
        await receive_until(driver_ws, "status_updated")
        await move(driver_ws, JHB[0] + 0.001, JHB[1])
        return driver, driver_ws

    _, sedan_ws = await online_beside_the_pickup(VehicleType.SEDAN)
    await settled(sedan_ws)  # its report, and the match it may start, are done
    ride = await db(Ride.objects.get, ride_id="wc-wait")
    assert ride.status == RideStatus.SEARCHING and ride.driver_id is None

    van, van_ws = await online_beside_the_pickup(VehicleType.WHEELCHAIR_ACCESSIBLE)
    offer, _ = await receive_until(van_ws, "ride_assigned")
    assert offer["ride_id"] == "wc-wait"
    assert (await db(Ride.objects.get, ride_id="wc-wait")).driver_id == van.pk
    await quiet(sedan_ws)


async def test_a_dispatcher_who_becomes_a_caregiver_sees_the_ride_as_the_link_allows(
    ws, passenger, dispatcher, make_link, make_driver
):
    """
    Dana, a dispatcher, watches Sarah's ride on its socket; Sarah's link to
    her becomes active, without can_view_location: from then on the open
    socket shows the ride as that link allows (no driver positions), as a
    socket opened now would.
    """
    driver = await db(make_driver, *JHB)
    driver_ws = await open_driver(ws, driver)
    rider = await book_as(ws, passenger, "staff-1")
    await receive_until(rider, "driver_assigned")
    await receive_until(driver_ws, "ride_assigned")
    watching = await ws("/ws/ride/staff-1/", token=await db(token_for, dispatcher))
    await watching.receive_json_from()
    assert (await watching.receive_json_from())["type"] == "ride_status"
    await move(driver_ws, -26.2, 28.05)
    assert (await watching.receive_json_from())["type"] == "driver_location"
    await rider.receive_json_from()

    link = await db(make_link, passenger, dispatcher, can_view_location=False)
    await db(caregiver_link_update, link=link, actor=passenger, notes="Daughter")
    await settled(watching)
    await move(driver_ws, -26.21, 28.06)
    assert (await rider.receive_json_from())["type"] == "driver_location"
    await quiet(watching)


async def test_a_caregiver_made_a_driver_stops_following_at_once(
    ws, passenger, caregiver, make_link, make_driver
):
    """
    Emily's account is made a driver's while she follows Sarah's ride: her
    link grants nothing now, so her open sockets lose Sarah at once (the
    caregiver socket hears no more positions, the ride socket closes), as
    for a link revoked.
    """
    driver = await db(make_driver, *JHB)
    await db(make_link, passenger, caregiver)
    follower, _ = await open_follower(ws, caregiver)
    driver_ws = await open_driver(ws, driver)
    rider = await book_as(ws, passenger, "made-1")
    await receive_until(rider, "driver_assigned")
    await receive_until(driver_ws, "ride_assigned")
    await receive_until(follower, "ride_status")
    await receive_until(follower, "ride_status")
    watching = await ws("/ws/ride/made-1/", token=await db(token_for, caregiver))
    await watching.receive_json_from()
    assert (await watching.receive_json_from())["type"] == "ride_status"

    def made_a_driver():
        caregiver.user_type = UserType.DRIVER
        caregiver.save()

    await db(made_a_driver)
    updated, _ = await receive_until(follower, "links_updated")
    assert updated["passengers"] == []
    closed = await watching.receive_output(timeout=3)
    assert closed == {"type": "websocket.close", "code": 4403}
    await move(driver_ws, -26.21, 28.06)
    assert (await rider.receive_json_from())["type"] == "driver_location"
    await quiet(follower)
