"""The app sockets, driven through the real ASGI stack with WebsocketCommunicator."""

from __future__ import annotations

import json
import time

import pytest

from dispatch import drivers, matching, offers, rides
from dispatch.locations import location_store
from dispatch.models import DriverState, Ride, RideStatus
from dispatch.planning import day as on_the_day
from tests.conftest import db, find_driver, receive_until, refused, token_for

pytestmark = pytest.mark.django_db(transaction=True)

JHB = (-26.2041, 28.0473)
CAPE_TOWN = (-33.9249, 18.4241)


async def book_between_two(ws, passenger, make_driver, ride_id: str, near_km: float, far_km: float):
    """
    Two drivers north of the pickup (about `near_km` and `far_km` away,
    0.01 degree a km) with their sockets open, and the passenger's
    find_driver sent on /ws/ride/<ride_id>/: (near, far, their sockets, the
    passenger's).
    """
    near = await db(make_driver, JHB[0] + near_km / 100, JHB[1])
    far = await db(make_driver, JHB[0] + far_km / 100, JHB[1])
    near_ws = await ws("/ws/driver/", token=await db(token_for, near))
    await near_ws.receive_json_from()
    far_ws = await ws("/ws/driver/", token=await db(token_for, far))
    await far_ws.receive_json_from()
    comm = await ws(f"/ws/ride/{ride_id}/", token=await db(token_for, passenger))
    await comm.receive_json_from()
    await comm.send_json_to(find_driver())
    return near, far, near_ws, far_ws, comm


async def test_connect_greets_and_answers_ping(ws):
    """Anyone connects, is greeted with the ride id, and gets pong for ping."""
    comm = await ws("/ws/ride/abc-123/")
    hello = await comm.receive_json_from()
    assert hello == {
        "type": "connection_established",
        "message": "Connected to ride matching service",
        "ride_id": "abc-123",
    }
    await comm.send_json_to({"type": "ping"})
    pong = await comm.receive_json_from()
    assert pong["type"] == "pong" and "T" in pong["timestamp"]


async def test_anonymous_find_driver_is_refused_and_nothing_written(ws):
    """Without a token, find_driver answers authentication_required."""
    comm = await ws("/ws/ride/anon-1/")
    await comm.receive_json_from()
    await comm.send_json_to(find_driver())
    error = await comm.receive_json_from()
    assert error["type"] == "error" and error["code"] == "authentication_required"
    assert not await db(Ride.objects.filter(ride_id="anon-1").exists)
    await comm.send_json_to({"type": "cancel_ride"})
    assert (await comm.receive_json_from())["code"] == "authentication_required"


async def test_find_driver_assigns_the_nearest_and_tells_both_apps(ws, passenger, make_driver):
    """searching, then driver_assigned in both shapes; the driver hears ride_assigned."""
    driver = await db(make_driver, JHB[0] + 0.01, JHB[1])
    driver_ws = await ws("/ws/driver/", token=await db(token_for, driver))
    hello = await driver_ws.receive_json_from()
    assert hello["type"] == "connection_established" and hello["driver_id"] == driver.pk

    comm = await ws("/ws/ride/ride-1/", token=await db(token_for, passenger))
    await comm.receive_json_from()
    await comm.send_json_to(find_driver(distance_km="7.5", fare_amount=120, passenger_phone=""))
    first = await comm.receive_json_from()
    assert first == {
        "type": "searching",
        "message": "Searching for available drivers...",
        "ride_id": "ride-1",
        "booking_id": first["booking_id"],
        "status": "searching",
        "version": 2,
    }
    assigned = await comm.receive_json_from()
    assert assigned["type"] == "driver_assigned"
    assert assigned["message"] == "Driver found!"
    assert assigned["driver"]["id"] == assigned["driver_id"] == driver.pk
    assert assigned["driver_name"] == assigned["driver"]["name"]
    assert assigned["driver_phone"] == "+" + driver.phone_number
    for key in ("vehicle_type", "vehicle_registration", "rating", "latitude", "longitude"):
        assert key in assigned["driver"]
    assert assigned["vehicle_registration"] == assigned["driver"]["vehicle_registration"]
    assert assigned["distance_km"] == pytest.approx(1.1, abs=0.1)
    assert assigned["eta_minutes"] >= 1

    offer, _ = await receive_until(driver_ws, "ride_assigned")
    assert offer["ride_id"] == "ride-1"
    assert offer["passenger_name"] == "Sarah Johnson"
    assert offer["passenger_phone"] == "+" + passenger.phone_number
    assert offer["pickup_address"] == "12 Main Rd" and offer["dropoff_address"] == "Clinic"
    assert offer["distance_km"] == 7.5 and offer["fare_amount"] == 120.0
    assert "needs" in offer

    # The booking socket sent those itself: the ride group's copies are dropped.
    await comm.send_json_to({"type": "ping"})
    assert (await comm.receive_json_from())["type"] == "pong"
    assert await comm.receive_nothing(timeout=0.3)


async def test_second_find_driver_answers_current_state_without_rebooking(
    ws, passenger, make_driver
):
    """Asking again on an active ride returns its state; there is still one ride."""
    await db(make_driver, *JHB)
    comm = await ws("/ws/ride/ride-2/", token=await db(token_for, passenger))
    await comm.receive_json_from()
    await comm.send_json_to(find_driver())
    await receive_until(comm, "driver_assigned")
    await comm.send_json_to(find_driver())
    status = await comm.receive_json_from()
    assert status["type"] == "ride_status" and status["status"] == "assigned"
    again = await comm.receive_json_from()
    assert again["type"] == "driver_assigned"
    assert await db(Ride.objects.count) == 1


async def test_no_driver_nearby_answers_no_drivers_and_ride_stays_pending(ws, passenger):
    """A Cape Town pickup with nobody near gets no_drivers; the ride waits."""
    comm = await ws("/ws/ride/ct-1/", token=await db(token_for, passenger))
    await comm.receive_json_from()
    await comm.send_json_to(find_driver(at=CAPE_TOWN))
    assert (await comm.receive_json_from())["type"] == "searching"
    none = await comm.receive_json_from()
    assert none["type"] == "no_drivers"
    assert none["message"] == "No drivers available nearby" and none["ride_id"] == "ct-1"
    ride = await db(Ride.objects.get, ride_id="ct-1")
    assert ride.status == RideStatus.SEARCHING


async def test_cancel_frees_the_driver_and_tells_both(ws, passenger, make_driver):
    """cancel_ride answers ride_cancelled; the driver is told and free again."""
    driver = await db(make_driver, *JHB)
    driver_ws = await ws("/ws/driver/", token=await db(token_for, driver))
    await driver_ws.receive_json_from()
    comm = await ws("/ws/ride/c-1/", token=await db(token_for, passenger))
    await comm.receive_json_from()
    await comm.send_json_to(find_driver())
    await receive_until(comm, "driver_assigned")
    await receive_until(driver_ws, "ride_assigned")
    await comm.send_json_to({"type": "cancel_ride", "reason": "feeling unwell"})
    cancelled = await comm.receive_json_from()
    assert cancelled["type"] == "ride_cancelled"
    assert cancelled["ride_id"] == "c-1"
    assert cancelled["cancelled_by"] == "passenger"
    assert cancelled["reason"] == "feeling unwell"
    told, _ = await receive_until(driver_ws, "ride_cancelled")
    assert told["ride_id"] == "c-1"
    state = await db(DriverState.objects.get, driver=driver)
    assert state.status == "available"


@pytest.mark.parametrize(
    "raw, code",
    [
        ("{not json", "invalid_json"),
        ("[1, 2]", "invalid_request"),
        ('{"type": "teleport"}', "unknown_type"),
        ('{"type": 5}', "invalid_request"),
    ],
)
async def test_malformed_messages_get_typed_errors_and_the_socket_lives(ws, raw, code):
    """Every bad message gets an error with its code; ping still works after."""
    comm = await ws("/ws/ride/bad-1/")
    await comm.receive_json_from()
    await comm.send_to(text_data=raw)
    error = await comm.receive_json_from()
    assert error["type"] == "error" and error["code"] == code and error["message"]
    await comm.send_json_to({"type": "ping"})
    assert (await comm.receive_json_from())["type"] == "pong"


async def test_invalid_find_driver_names_the_bad_fields_and_writes_nothing(ws, passenger):
    """Out-of-range and non-numeric coordinates are named; no ride is created."""
    comm = await ws("/ws/ride/bad-2/", token=await db(token_for, passenger))
    await comm.receive_json_from()
    await comm.send_json_to(find_driver(pickup_latitude=123, dropoff_longitude="east"))
    error = await comm.receive_json_from()
    assert error["code"] == "invalid_request"
    assert set(error["fields"]) == {"pickup_latitude", "dropoff_longitude"}
    assert not await db(Ride.objects.filter(ride_id="bad-2").exists)
    await comm.send_json_to({"type": "ping"})
    assert (await comm.receive_json_from())["type"] == "pong"


@pytest.mark.parametrize(
    "message, field",
    [
        ({"no_type": 1}, "type"),
        (find_driver(passenger_phone="not a phone"), "passenger_phone"),
    ],
)
async def test_every_refusal_names_its_fields_as_an_object(ws, passenger, message, field):
    """`fields` maps each field to what is wrong with it, whichever rule refused it."""
    comm = await ws("/ws/ride/fields-1/", token=await db(token_for, passenger))
    await comm.receive_json_from()
    await comm.send_json_to(message)
    error = await comm.receive_json_from()
    assert error["code"] == "invalid_request"
    assert list(error["fields"]) == [field] and isinstance(error["fields"][field], str)


@pytest.mark.parametrize(
    "field", ["passenger_id", "pickup_latitude", "estimated_duration_minutes", "companions"]
)
async def test_true_or_false_is_no_number_on_the_ride_socket(ws, passenger, field):
    """
    An app that sends a boolean where a number goes is refused, naming the
    field: read as 1, `passenger_id: true` would book for account 1.
    """
    comm = await ws("/ws/ride/bool-1/", token=await db(token_for, passenger))
    await comm.receive_json_from()
    await comm.send_json_to(find_driver(**{field: True}))
    error = await comm.receive_json_from()
    assert error["code"] == "invalid_request" and list(error["fields"]) == [field]
    assert not await db(Ride.objects.exists)
    await comm.send_json_to({"type": "ping"})
    assert (await comm.receive_json_from())["type"] == "pong"


@pytest.mark.parametrize("field", ["latitude", "longitude", "heading", "speed"])
async def test_true_or_false_is_no_position(ws, make_driver, field):
    """A location_update with a boolean is refused, not stored as a position at 1 or 0."""
    driver = await db(make_driver, *JHB)
    driver_ws = await ws("/ws/driver/", token=await db(token_for, driver))
    await driver_ws.receive_json_from()
    update = {"type": "location_update", "latitude": -26.2, "longitude": 28.0, field: False}
    await driver_ws.send_json_to(update)
    error = await driver_ws.receive_json_from()
    assert error["code"] == "invalid_request" and list(error["fields"]) == [field]
    assert location_store().get(driver.pk).lat == pytest.approx(JHB[0])
    await driver_ws.send_json_to({"type": "ping"})
    assert (await driver_ws.receive_json_from())["type"] == "pong"


async def test_an_iphones_unknown_heading_and_speed_keep_the_position(ws, make_driver):
    """
    iOS reports a heading and speed it does not know as -1: the position is
    taken with them unknown (null), not refused, so the driver stays
    matchable; other negatives are still refused.
    """
    driver = await db(make_driver, *JHB)
    driver_ws = await ws("/ws/driver/", token=await db(token_for, driver))
    await driver_ws.receive_json_from()
    update = {"type": "location_update", "latitude": -26.21, "longitude": 28.01}
    await driver_ws.send_json_to(update | {"heading": -1, "speed": -1.0})
    await driver_ws.send_json_to({"type": "ping"})
    assert (await driver_ws.receive_json_from())["type"] == "pong"
    point = location_store().get(driver.pk)
    assert (point.lat, point.heading, point.speed) == (pytest.approx(-26.21), None, None)
    await driver_ws.send_json_to(update | {"speed": -3})
    error = await driver_ws.receive_json_from()
    assert error["code"] == "invalid_request" and list(error["fields"]) == ["speed"]


async def test_a_position_off_the_map_is_refused_by_both_sockets(ws, passenger, make_driver):
    """Past 85.05 degrees (the map's, Redis GEO's) a latitude is invalid: no store meets it."""
    driver = await db(make_driver, *JHB)
    driver_ws = await ws("/ws/driver/", token=await db(token_for, driver))
    await driver_ws.receive_json_from()
    await driver_ws.send_json_to({"type": "location_update", "latitude": 88, "longitude": 28.0})
    error = await driver_ws.receive_json_from()
    assert error["code"] == "invalid_request" and list(error["fields"]) == ["latitude"]
    comm = await ws("/ws/ride/polar-1/", token=await db(token_for, passenger))
    await comm.receive_json_from()
    await comm.send_json_to(find_driver(at=(89.5, 10.0)))
    error = await comm.receive_json_from()
    assert error["code"] == "invalid_request" and "pickup_latitude" in error["fields"]
    assert not await db(Ride.objects.filter(ride_id="polar-1").exists)


async def test_oversized_message_is_refused(ws):
    """Past 64 KiB a message is refused with message_too_large, and the socket lives."""
    comm = await ws("/ws/ride/big-1/")
    await comm.receive_json_from()
    await comm.send_to(text_data=json.dumps({"type": "ping", "pad": "x" * 70_000}))
    assert (await comm.receive_json_from())["code"] == "message_too_large"
    await comm.send_json_to({"type": "ping"})
    assert (await comm.receive_json_from())["type"] == "pong"


async def test_someone_elses_ride_closes_with_4403(ws, passenger, make_user):
    """An existing ride's socket opens only to its people."""
    await db(
        rides.ride_request,
        ride_id="mine",
        passenger=passenger,
        booked_by=passenger,
        pickup_latitude=JHB[0],
        pickup_longitude=JHB[1],
        dropoff_latitude=JHB[0],
        dropoff_longitude=JHB[1],
    )
    stranger = await db(make_user)
    assert await refused(ws, "/ws/ride/mine/", token=await db(token_for, stranger)) == (
        "forbidden",
        4403,
    )
    assert await refused(ws, "/ws/ride/mine/") == ("forbidden", 4403)


async def test_owner_reconnecting_gets_a_snapshot_with_version(ws, passenger, make_driver):
    """On reconnect, the passenger gets ride_status with the latest version."""
    await db(make_driver, *JHB)
    token = await db(token_for, passenger)
    comm = await ws("/ws/ride/snap-1/", token=token)
    await comm.receive_json_from()
    await comm.send_json_to(find_driver())
    await receive_until(comm, "driver_assigned")
    again = await ws("/ws/ride/snap-1/", token=token)
    await again.receive_json_from()
    snapshot = await again.receive_json_from()
    ride = await db(Ride.objects.get, ride_id="snap-1")
    assert snapshot["type"] == "ride_status"
    assert snapshot["status"] == "assigned" and snapshot["version"] == ride.version


@pytest.mark.parametrize(
    "origin, opens",
    [
        (b"http://localhost:8067", True),
        (b"https://evil.example", False),
        # The host alone is not enough: scheme and port count too.
        (b"http://localhost:9999", False),
        (b"https://localhost:8067", False),
        (b"https://dispatch.example.org", True),
        (b"null", False),
    ],
)
async def test_only_this_sites_origin_opens_a_browser_socket(ws, settings, origin, opens):
    """Native apps send no Origin; a page of another origin is refused."""
    settings.WS_ALLOWED_ORIGINS = ["https://dispatch.example.org"]
    headers = [(b"host", b"localhost:8067"), (b"origin", origin)]
    _, connected, _ = await ws("/ws/ride/o-1/", headers=headers, expect_accept=False)
    assert connected is opens
    _, connected, _ = await ws(
        "/ws/ride/o-2/", headers=[(b"host", b"localhost:8067")], expect_accept=False
    )
    assert connected


async def test_token_in_query_string_signs_in(ws, passenger):
    """Clients that cannot set headers pass ?token=."""
    token = await db(token_for, passenger)
    comm = await ws(f"/ws/ride/q-1/?token={token}")
    await comm.receive_json_from()
    await comm.send_json_to(find_driver(at=CAPE_TOWN))
    assert (await comm.receive_json_from())["type"] == "searching"


async def test_driver_goes_online_gets_the_ride_and_streams_location(ws, passenger, make_driver):
    """A driver online in Cape Town gets the ride; the passenger sees driver_location."""
    driver = await db(make_driver)
    driver_ws = await ws("/ws/driver/", token=await db(token_for, driver))
    await driver_ws.receive_json_from()
    await driver_ws.send_json_to({"type": "set_status", "status": "available"})
    assert (await driver_ws.receive_json_from()) == {
        "type": "status_updated",
        "status": "available",
    }
    await driver_ws.send_json_to(
        {"type": "location_update", "latitude": CAPE_TOWN[0] + 0.01, "longitude": CAPE_TOWN[1]}
    )
    comm = await ws("/ws/ride/ct-2/", token=await db(token_for, passenger))
    await comm.receive_json_from()
    await comm.send_json_to(find_driver(at=CAPE_TOWN))
    assigned, _ = await receive_until(comm, "driver_assigned")
    assert assigned["driver_id"] == driver.pk
    await receive_until(driver_ws, "ride_assigned")
    await driver_ws.send_json_to(
        {"type": "location_update", "latitude": "-33.93", "longitude": 18.43, "heading": 90}
    )
    moved = await comm.receive_json_from()
    assert moved["type"] == "driver_location"
    assert (moved["latitude"], moved["longitude"], moved["heading"]) == (-33.93, 18.43, 90)


async def test_trip_progress_reaches_the_passenger_as_ride_status(ws, passenger, make_driver):
    """arrived, start_trip, complete_trip each arrive as ride_status; the driver is freed."""
    driver = await db(make_driver, *JHB)
    driver_ws = await ws("/ws/driver/", token=await db(token_for, driver))
    await driver_ws.receive_json_from()
    comm = await ws("/ws/ride/trip-1/", token=await db(token_for, passenger))
    await comm.receive_json_from()
    await comm.send_json_to(find_driver())
    await receive_until(comm, "driver_assigned")
    await receive_until(driver_ws, "ride_assigned")
    for action, status in [
        ("arrived", "driver_arrived"),
        ("start_trip", "in_progress"),
        ("complete_trip", "completed"),
    ]:
        await driver_ws.send_json_to({"type": action})
        update = await comm.receive_json_from()
        assert update["type"] == "ride_status" and update["status"] == status
        if status == "driver_arrived":
            # The no-show escalation's first step: the passenger is told.
            told = await comm.receive_json_from()
            assert told["type"] == "driver_waiting" and told["stage"] == "passenger"
    assert (await db(DriverState.objects.get, driver=driver)).status == "available"


async def test_a_driver_who_gives_the_ride_back_is_replaced_and_streams_no_more(
    ws, passenger, make_driver
):
    """
    The driver hears ride_cancelled (by driver, with the reason); the
    passenger sees searching, then the next driver, whose positions alone
    reach them. The first driver's own ride socket closes (4403): the ride,
    the next driver and their positions are no longer theirs to see.
    """
    near, far, near_ws, far_ws, comm = await book_between_two(
        ws, passenger, make_driver, "back-1", near_km=0.1, far_km=2
    )
    first, _ = await receive_until(comm, "driver_assigned")
    assert first["driver_id"] == near.pk
    await receive_until(near_ws, "ride_assigned")
    near_ride = await ws("/ws/ride/back-1/", token=await db(token_for, near))
    await receive_until(near_ride, "ride_status")

    await near_ws.send_json_to({"type": "cancel_ride", "reason": "flat_tyre"})
    released, _ = await receive_until(near_ws, "ride_cancelled")
    assert (released["ride_id"], released["cancelled_by"], released["reason"]) == (
        "back-1",
        "driver",
        "flat_tyre",
    )
    again = await comm.receive_json_from()
    assert again["type"] == "searching"
    second = await comm.receive_json_from()
    assert second["type"] == "driver_assigned" and second["driver_id"] == far.pk
    assert second["version"] > again["version"] > first["version"]
    taken, _ = await receive_until(far_ws, "ride_assigned")
    assert taken["ride_id"] == "back-1" and taken["passenger"]["id"] == passenger.pk

    for driver_ws, lat in ((near_ws, JHB[0] + 0.0009), (far_ws, JHB[0] + 0.019)):
        await driver_ws.send_json_to(
            {"type": "location_update", "latitude": lat, "longitude": JHB[1]}
        )
    moved = await comm.receive_json_from()
    assert moved["type"] == "driver_location" and moved["driver_id"] == far.pk
    assert await comm.receive_nothing(timeout=0.3)
    assert (await near_ride.receive_output())["type"] == "websocket.close"
    assert await near_ride.receive_nothing(timeout=0.3)


async def test_a_ride_assigned_while_the_driver_socket_opens_reaches_it_once(
    ws, passenger, make_driver, monkeypatch
):
    """
    The socket joins its groups before reading what the driver holds: a
    ride assigned in between is told (once), not lost.
    """
    from dispatch.consumers.driver import DriverConsumer

    comm = await ws("/ws/ride/race-1/", token=await db(token_for, passenger))
    await comm.receive_json_from()
    await comm.send_json_to(find_driver(at=CAPE_TOWN))
    await receive_until(comm, "no_drivers")
    driver = await db(make_driver, *JHB)
    reading = DriverConsumer._start

    def assigned_while_reading(self):
        ride = Ride.objects.get(ride_id="race-1")
        matching.ride_assign(ride=ride, driver_id=driver.pk, confirmed=True)
        return reading(self)

    monkeypatch.setattr(DriverConsumer, "_start", assigned_while_reading)
    driver_ws = await ws("/ws/driver/", token=await db(token_for, driver))
    told = [await driver_ws.receive_json_from()]
    while not await driver_ws.receive_nothing(timeout=0.5):
        told.append(await driver_ws.receive_json_from())
    assert [m["type"] for m in told] == ["connection_established", "ride_assigned"]
    assert told[1]["ride_id"] == "race-1"


async def test_illegal_trip_step_names_the_current_state(ws, passenger, make_driver):
    """complete_trip before the trip starts answers invalid_state naming it."""
    driver = await db(make_driver, *JHB)
    driver_ws = await ws("/ws/driver/", token=await db(token_for, driver))
    await driver_ws.receive_json_from()
    comm = await ws("/ws/ride/trip-2/", token=await db(token_for, passenger))
    await comm.receive_json_from()
    await comm.send_json_to(find_driver())
    await receive_until(driver_ws, "ride_assigned")
    await driver_ws.send_json_to({"type": "complete_trip"})
    error = await driver_ws.receive_json_from()
    assert error["code"] == "invalid_state" and error["current_status"] == "assigned"


async def test_a_trip_message_naming_a_ride_not_held_names_ride_id(ws, make_driver):
    """As the protocol says: invalid_state with fields naming ride_id, even holding nothing."""
    driver = await db(make_driver, *JHB)
    driver_ws = await ws("/ws/driver/", token=await db(token_for, driver))
    await driver_ws.receive_json_from()
    for action in ("arrived", "start_trip", "complete_trip", "no_show", "cancel_ride"):
        await driver_ws.send_json_to({"type": action, "ride_id": "gone-1"})
        error = await driver_ws.receive_json_from()
        assert error["code"] == "invalid_state" and list(error["fields"]) == ["ride_id"], error


async def driving_with_one_waiting(ws, passenger, make_user, make_driver, first_id, second_id):
    """
    A driver in Cape Town holds `first_id` (the passenger's); Bongi's
    `second_id` nearby has found nobody. (the driver, their socket, both
    ride sockets)
    """
    driver = await db(make_driver, *CAPE_TOWN)
    driver_ws = await ws("/ws/driver/", token=await db(token_for, driver))
    await driver_ws.receive_json_from()
    first = await ws(f"/ws/ride/{first_id}/", token=await db(token_for, passenger))
    await first.receive_json_from()
    await first.send_json_to(find_driver(at=CAPE_TOWN))
    await receive_until(driver_ws, "ride_assigned")
    other = await db(make_user, "passenger", first_name="Bongi")
    second = await ws(f"/ws/ride/{second_id}/", token=await db(token_for, other))
    await second.receive_json_from()
    await second.send_json_to(find_driver(at=(CAPE_TOWN[0] + 0.01, CAPE_TOWN[1])))
    await receive_until(second, "no_drivers")
    return driver, driver_ws, first, second


async def test_a_step_meant_for_a_ride_gone_meanwhile_lands_on_no_other(
    ws, passenger, make_user, make_driver, monkeypatch
):
    """
    The driver's ride is cancelled and another given to them at the moment
    they tap "arrived" (no ride_id), before their app has heard of either:
    the step is refused, and the new ride's passenger is not told the
    driver is at the door. Once the app has the news, the step goes on.
    """
    driver, driver_ws, first, second = await driving_with_one_waiting(
        ws, passenger, make_user, make_driver, "meant-1", "meant-2"
    )
    stepping = on_the_day.trip_step

    def cancelled_and_replaced_meanwhile(**kwargs):
        rides.ride_cancel(
            ride=Ride.objects.get(ride_id="meant-1"),
            actor=passenger,
            cancelled_by="passenger",
            reason="feeling unwell",
        )
        matching.ride_assign(
            ride=Ride.objects.get(ride_id="meant-2"), driver_id=driver.pk, confirmed=True
        )
        monkeypatch.setattr(on_the_day, "trip_step", stepping)
        return stepping(**kwargs)

    monkeypatch.setattr(on_the_day, "trip_step", cancelled_and_replaced_meanwhile)
    await driver_ws.send_json_to({"type": "arrived"})
    refused_step, _ = await receive_until(driver_ws, "error")
    assert refused_step["code"] == "invalid_state"
    ride = await db(Ride.objects.get, ride_id="meant-2")
    assert (ride.status, ride.driver_id) == (RideStatus.ASSIGNED, driver.pk)
    # The news reaches the app; the driver taps again, for the ride they see.
    await receive_until(driver_ws, "ride_assigned")
    await driver_ws.send_json_to({"type": "arrived"})
    arrived, _ = await receive_until(second, "ride_status")
    assert (arrived["ride_id"], arrived["status"]) == ("meant-2", "driver_arrived")


async def test_going_offline_during_a_ride_is_invalid_state(ws, passenger, make_driver):
    """As the protocol says: invalid_state, not invalid_request, and the driver stays on it."""
    driver = await db(make_driver, *JHB)
    driver_ws = await ws("/ws/driver/", token=await db(token_for, driver))
    await driver_ws.receive_json_from()
    comm = await ws("/ws/ride/trip-3/", token=await db(token_for, passenger))
    await comm.receive_json_from()
    await comm.send_json_to(find_driver())
    await receive_until(driver_ws, "ride_assigned")
    await driver_ws.send_json_to({"type": "set_status", "status": "offline"})
    error, _ = await receive_until(driver_ws, "error")
    assert error["code"] == "invalid_state" and error["current_status"] == "on_trip"
    state = await db(DriverState.objects.get, driver=driver)
    assert state.status == "on_trip"


async def test_driver_socket_refuses_anonymous_and_other_drivers_ids(ws, make_driver, passenger):
    """Anonymous callers get 4401; a driver id in the path must be the caller's."""
    comm, connected, _ = await ws("/ws/driver/", expect_accept=False)
    assert connected
    error = await comm.receive_json_from()
    assert error["code"] == "authentication_required"
    assert (await comm.receive_output())["code"] == 4401
    driver = await db(make_driver)
    assert await refused(ws, f"/ws/driver/{driver.pk + 1}/", token=await db(token_for, driver)) == (
        "forbidden",
        4403,
    )
    assert await refused(ws, "/ws/driver/", token=await db(token_for, passenger)) == (
        "forbidden",
        4403,
    )
    own = await ws(f"/ws/driver/{driver.pk}/", token=await db(token_for, driver))
    assert (await own.receive_json_from())["driver_id"] == driver.pk


async def test_a_driver_on_two_phones_sees_the_status_set_on_either(ws, make_driver):
    """
    A driver signed in on two phones goes online on one, then offline on
    the other: each phone hears status_updated for each, once, so neither
    shows a status the driver left.
    """
    driver = await db(make_driver, *JHB, available=False)
    phones = []
    for _ in range(2):
        phone = await ws("/ws/driver/", token=await db(token_for, driver))
        await phone.receive_json_from()
        phones.append(phone)
    await phones[0].send_json_to({"type": "set_status", "status": "available"})
    for phone in phones:
        told = await phone.receive_json_from()
        assert told == {"type": "status_updated", "status": "available"}
    await phones[1].send_json_to({"type": "set_status", "status": "offline"})
    for phone in phones:
        told = await phone.receive_json_from()
        assert told == {"type": "status_updated", "status": "offline"}
        assert await phone.receive_nothing(timeout=0.3)
    # Asked again for the status it has, a phone is answered all the same.
    await phones[0].send_json_to({"type": "set_status", "status": "offline"})
    assert await phones[0].receive_json_from() == {"type": "status_updated", "status": "offline"}


async def test_unverified_driver_cannot_go_online(ws, make_driver):
    """set_status available from an unverified driver is forbidden."""
    driver = await db(make_driver, verified=False)
    comm = await ws("/ws/driver/", token=await db(token_for, driver))
    await comm.receive_json_from()
    await comm.send_json_to({"type": "set_status", "status": "available"})
    assert (await comm.receive_json_from())["code"] == "forbidden"
    await comm.send_json_to({"type": "set_status", "status": "flying"})
    error = await comm.receive_json_from()
    assert error["code"] == "invalid_request" and "status" in error["fields"]


async def test_waiting_ride_gets_a_driver_who_comes_online_nearby(ws, passenger, make_driver):
    """A ride that found nobody is matched when a driver goes online near it."""
    comm = await ws("/ws/ride/wait-1/", token=await db(token_for, passenger))
    await comm.receive_json_from()
    await comm.send_json_to(find_driver(at=CAPE_TOWN))
    await receive_until(comm, "no_drivers")
    driver = await db(make_driver)
    driver_ws = await ws("/ws/driver/", token=await db(token_for, driver))
    await driver_ws.receive_json_from()
    await driver_ws.send_json_to({"type": "set_status", "status": "available"})
    await receive_until(driver_ws, "status_updated")
    await driver_ws.send_json_to(
        {"type": "location_update", "latitude": CAPE_TOWN[0], "longitude": CAPE_TOWN[1] + 0.01}
    )
    offer, _ = await receive_until(driver_ws, "ride_assigned")
    assert offer["ride_id"] == "wait-1"
    assigned, _ = await receive_until(comm, "driver_assigned")
    assert assigned["driver_id"] == driver.pk


async def test_a_ride_waiting_nearby_goes_to_a_driver_whose_trip_has_just_ended(
    ws, passenger, make_user, make_driver
):
    """Free again after a drop-off, the driver is given the ride that found nobody meanwhile."""
    driver, driver_ws, first, second = await driving_with_one_waiting(
        ws, passenger, make_user, make_driver, "busy-1", "after-1"
    )
    for step in ("arrived", "start_trip", "complete_trip"):
        await driver_ws.send_json_to({"type": step})
    offer, _ = await receive_until(driver_ws, "ride_assigned")
    assert offer["ride_id"] == "after-1"
    assigned, _ = await receive_until(second, "driver_assigned")
    assert assigned["driver_id"] == driver.pk


async def test_a_driver_freed_while_their_app_was_away_gets_the_waiting_ride_on_return(
    ws, passenger, make_user, make_driver
):
    """
    The driver's phone loses its connection mid-ride, and the passenger
    cancels meanwhile. When the app reconnects and reports, the ride that
    found nobody nearby meanwhile is given to the driver, who need not go
    offline and online again for it.
    """
    driver = await db(make_driver, *CAPE_TOWN)
    driver_ws = await ws("/ws/driver/", token=await db(token_for, driver))
    await driver_ws.receive_json_from()
    first = await ws("/ws/ride/away-1/", token=await db(token_for, passenger))
    await first.receive_json_from()
    await first.send_json_to(find_driver(at=CAPE_TOWN))
    await receive_until(driver_ws, "ride_assigned")
    await driver_ws.send_json_to(
        {"type": "location_update", "latitude": CAPE_TOWN[0], "longitude": CAPE_TOWN[1]}
    )
    await driver_ws.send_json_to({"type": "ping"})
    await receive_until(driver_ws, "pong")
    # The interval's copy of the report reaches the database.
    await db(drivers.persist_positions, positions={driver.pk: location_store().get(driver.pk)})
    other = await db(make_user, "passenger", first_name="Bongi")
    second = await ws("/ws/ride/away-2/", token=await db(token_for, other))
    await second.receive_json_from()
    await second.send_json_to(find_driver(at=(CAPE_TOWN[0] + 0.01, CAPE_TOWN[1])))
    await receive_until(second, "no_drivers")
    await driver_ws.disconnect()
    await first.send_json_to({"type": "cancel_ride", "reason": "feeling unwell"})
    await receive_until(first, "ride_cancelled")

    back = await ws("/ws/driver/", token=await db(token_for, driver))
    hello = await back.receive_json_from()
    assert hello["status"] == "available"
    await back.send_json_to(
        {"type": "location_update", "latitude": CAPE_TOWN[0], "longitude": CAPE_TOWN[1]}
    )
    given, _ = await receive_until(back, "ride_assigned")
    assert given["ride_id"] == "away-2"
    assigned, _ = await receive_until(second, "driver_assigned")
    assert assigned["driver_id"] == driver.pk


@pytest.mark.parametrize("last_known", [None, CAPE_TOWN], ids=["never-reported", "known"])
async def test_a_driver_online_before_positions_are_loaded_gets_the_waiting_ride(
    ws, passenger, make_driver, last_known
):
    """
    After a restart the worker's position index is empty until first used,
    and filling it reads the database. A driver's set_status must not do
    that on the event loop: they get status_updated and no error, and the
    ride waiting near them, from their last known position or their first
    report.
    """
    comm = await ws("/ws/ride/cold-1/", token=await db(token_for, passenger))
    await comm.receive_json_from()
    await comm.send_json_to(find_driver(at=CAPE_TOWN))
    await receive_until(comm, "no_drivers")
    driver = await db(make_driver, *(last_known or (None, None)), available=False)
    location_store().clear()
    driver_ws = await ws("/ws/driver/", token=await db(token_for, driver))
    await driver_ws.receive_json_from()
    await driver_ws.send_json_to({"type": "set_status", "status": "available"})
    assert (await driver_ws.receive_json_from())["type"] == "status_updated"
    if last_known is None:
        await driver_ws.send_json_to(
            {"type": "location_update", "latitude": CAPE_TOWN[0], "longitude": CAPE_TOWN[1]}
        )
    offer = await driver_ws.receive_json_from()
    assert offer["type"] == "ride_assigned" and offer["ride_id"] == "cold-1"
    assigned, _ = await receive_until(comm, "driver_assigned")
    assert assigned["driver_id"] == driver.pk


async def test_a_decline_without_ride_id_is_answered_with_the_ride_it_declined(
    ws, passenger, make_driver, settings
):
    """
    An app that answers its open offer without naming the ride (ride_id is
    optional) hears which ride it let go, not `ride_id: null`.
    """
    settings.DISPATCH_MODE = "offer"
    _, _, near_ws, far_ws, comm = await book_between_two(
        ws, passenger, make_driver, "offer-bare", near_km=1, far_km=3
    )
    await receive_until(near_ws, "ride_request")
    await near_ws.send_json_to({"type": "decline_ride"})
    declined, _ = await receive_until(near_ws, "ride_declined")
    assert declined["ride_id"] == "offer-bare"
    offer, _ = await receive_until(far_ws, "ride_request")
    assert offer["ride_id"] == "offer-bare"


async def test_in_offer_mode_a_decline_passes_the_ride_on_and_an_accept_assigns_it(
    ws, passenger, make_driver, settings
):
    """The nearest is asked first, with the terms; declined, the next; accepted, assigned."""
    settings.DISPATCH_MODE = "offer"
    near, far, near_ws, far_ws, comm = await book_between_two(
        ws, passenger, make_driver, "offer-3", near_km=1, far_km=3
    )
    assert (await comm.receive_json_from())["type"] == "searching"

    offer, _ = await receive_until(near_ws, "ride_request")
    assert offer["ride_id"] == "offer-3" and offer["expires_at"]
    assert 0 < offer["timeout_s"] <= settings.OFFER_TIMEOUT_S
    assert offer["pickup_distance_km"] == pytest.approx(1.1, abs=0.1)
    await near_ws.send_json_to({"type": "decline_ride", "ride_id": "offer-3"})
    declined, _ = await receive_until(near_ws, "ride_declined")
    assert declined["ride_id"] == "offer-3"

    offer, _ = await receive_until(far_ws, "ride_request")
    assert offer["ride_id"] == "offer-3"
    await far_ws.send_json_to({"type": "accept_ride", "ride_id": "offer-3"})
    assigned, _ = await receive_until(comm, "driver_assigned")
    assert assigned["driver_id"] == far.pk
    taken, _ = await receive_until(far_ws, "ride_assigned")
    assert taken["ride_id"] == "offer-3"


async def test_an_offer_declined_on_one_phone_leaves_the_drivers_other_phone(
    ws, passenger, make_driver, settings
):
    """
    A driver signed in on two phones declines on one: the other stops
    showing the offer (ride_cancelled, offer_declined), so nobody taps
    accept on an offer already let go.
    """
    settings.DISPATCH_MODE = "offer"
    driver = await db(make_driver, JHB[0] + 0.01, JHB[1])
    phones = []
    for _ in range(2):
        phone = await ws("/ws/driver/", token=await db(token_for, driver))
        await phone.receive_json_from()
        phones.append(phone)
    comm = await ws("/ws/ride/two-phones-1/", token=await db(token_for, passenger))
    await comm.receive_json_from()
    await comm.send_json_to(find_driver())
    for phone in phones:
        await receive_until(phone, "ride_request")
    await phones[0].send_json_to({"type": "decline_ride", "ride_id": "two-phones-1"})
    await receive_until(phones[0], "ride_declined")
    gone, _ = await receive_until(phones[1], "ride_cancelled")
    assert (gone["ride_id"], gone["reason"]) == ("two-phones-1", "offer_declined")


async def test_an_unanswered_offer_times_out_by_itself_and_cannot_be_taken_late(
    ws, passenger, make_driver, settings
):
    """
    The worker's sweep expires the offer with nobody asking: the driver is
    told, the passenger hears no_drivers, and a late accept is refused.
    """
    settings.DISPATCH_MODE = "offer"
    settings.OFFER_TIMEOUT_S = 0  # due at once: the next sweep (each second) takes it
    driver = await db(make_driver, *JHB)
    driver_ws = await ws("/ws/driver/", token=await db(token_for, driver))
    await driver_ws.receive_json_from()
    comm = await ws("/ws/ride/offer-4/", token=await db(token_for, passenger))
    await comm.receive_json_from()
    await comm.send_json_to(find_driver())
    await receive_until(driver_ws, "ride_request")
    expired, _ = await receive_until(driver_ws, "ride_cancelled")
    assert expired["ride_id"] == "offer-4" and expired["reason"] == "offer_expired"
    await receive_until(comm, "no_drivers")
    await driver_ws.send_json_to({"type": "accept_ride", "ride_id": "offer-4"})
    late, _ = await receive_until(driver_ws, "error")
    assert late["code"] == "invalid_state"
    ride = await db(Ride.objects.get, ride_id="offer-4")
    assert (ride.status, ride.driver_id) == (RideStatus.SEARCHING, None)


async def test_offered_driver_is_told_when_the_offer_is_withdrawn_or_expires(
    ws, passenger, make_driver, settings
):
    """In offer mode a cancelled ride or an expired offer reaches the offered driver."""
    from datetime import timedelta

    from django.utils import timezone

    settings.DISPATCH_MODE = "offer"
    driver = await db(make_driver, *JHB)
    driver_ws = await ws("/ws/driver/", token=await db(token_for, driver))
    await driver_ws.receive_json_from()
    comm = await ws("/ws/ride/offer-1/", token=await db(token_for, passenger))
    await comm.receive_json_from()
    await comm.send_json_to(find_driver())
    request, _ = await receive_until(driver_ws, "ride_request")
    assert request["ride_id"] == "offer-1" and request["timeout_s"] > 0
    await comm.send_json_to({"type": "cancel_ride"})
    withdrawn, _ = await receive_until(driver_ws, "ride_cancelled")
    assert withdrawn["ride_id"] == "offer-1" and withdrawn["reason"] == "offer_withdrawn"

    other = await ws("/ws/ride/offer-2/", token=await db(token_for, passenger))
    await other.receive_json_from()
    await other.send_json_to(find_driver())
    await receive_until(driver_ws, "ride_request")
    later = timezone.now() + timedelta(seconds=settings.OFFER_TIMEOUT_S + 1)
    assert await db(offers.ride_offers_expire, now=later) == 1
    expired, _ = await receive_until(driver_ws, "ride_cancelled")
    assert expired["ride_id"] == "offer-2" and expired["reason"] == "offer_expired"
    await receive_until(other, "no_drivers")


async def test_positions_reach_the_database_in_batches(ws, make_driver, settings):
    """Reports are persisted by the worker's batch writer, latest position first."""
    import asyncio

    settings.LOCATION_PERSIST_INTERVAL_S = 0.2
    driver = await db(make_driver)
    comm = await ws("/ws/driver/", token=await db(token_for, driver))
    await comm.receive_json_from()
    for n in range(5):
        await comm.send_json_to(
            {"type": "location_update", "latitude": -26.0 - n / 100, "longitude": 28.0}
        )
    await comm.send_json_to({"type": "ping"})
    await receive_until(comm, "pong")
    state = await db(DriverState.objects.get, driver=driver)
    assert state.latitude is None  # not written per report
    for _ in range(30):
        await asyncio.sleep(0.1)
        state = await db(DriverState.objects.get, driver=driver)
        if state.latitude is not None:
            break
    assert state.latitude == pytest.approx(-26.04)
    assert state.location_updated_at is not None


async def test_reports_and_pings_do_not_wait_for_the_database_thread(ws, make_driver):
    """A busy database thread (a slow query, a booking) holds up no GPS report."""
    import asyncio
    import threading

    from asgiref.sync import sync_to_async

    from dispatch.locations import location_store

    driver = await db(make_driver)
    comm = await ws("/ws/driver/", token=await db(token_for, driver))
    await comm.receive_json_from()
    release = threading.Event()
    # Thread-sensitive: this holds the worker's one database thread.
    busy = asyncio.ensure_future(sync_to_async(release.wait)(10))
    try:
        await asyncio.sleep(0.05)
        await comm.send_json_to({"type": "location_update", "latitude": -26.3, "longitude": 28.1})
        await comm.send_json_to({"type": "ping"})
        assert (await comm.receive_json_from(timeout=2))["type"] == "pong"
        assert not busy.done()
    finally:
        release.set()
        await busy
    assert (await db(location_store().get, driver.pk)).lat == -26.3


async def test_driver_on_the_way_hears_when_the_passengers_needs_change(ws, passenger, make_driver):
    """A passenger who edits their needs mid-ride: the driver gets the new needs card."""
    from django.test import Client

    driver = await db(make_driver, JHB[0] + 0.01, JHB[1])
    driver_ws = await ws("/ws/driver/", token=await db(token_for, driver))
    await driver_ws.receive_json_from()
    comm = await ws("/ws/ride/needs-1/", token=await db(token_for, passenger))
    await comm.receive_json_from()
    await comm.send_json_to(find_driver())
    await receive_until(comm, "driver_assigned")
    await receive_until(driver_ws, "ride_assigned")

    client = Client(headers={"Authorization": f"Bearer {await db(token_for, passenger)}"})

    def patch(body):
        return client.patch("/api/auth/profile/", body, content_type="application/json")

    response = await db(patch, {"needs_walker": True, "notes": "Hard of hearing"})
    assert response.status_code == 200
    updated, _ = await receive_until(driver_ws, "ride_updated")
    assert updated["ride_id"] == "needs-1" and updated["changed"] == ["needs"]
    assert updated["needs"]["walker"] is True and updated["needs"]["notes"] == "Hard of hearing"
    # The passenger's own socket hears nothing of it.
    await comm.send_json_to({"type": "ping"})
    assert (await comm.receive_json_from())["type"] == "pong"

    # A name change alone, or needs without an active ride, tells nobody.
    response = await db(patch, {"first_name": "Sara"})
    assert response.status_code == 200
    assert await driver_ws.receive_nothing(timeout=0.3)


async def test_driver_assigned_tells_where_the_driver_is_now_not_where_it_was_saved(
    ws, passenger, make_driver
):
    """
    The saved copy is up to LOCATION_PERSIST_INTERVAL_S old; the live report
    counts. A driver at the pickup is not 500 km away.
    """
    from dispatch.drivers import report_position
    from dispatch.geo import Point

    driver = await db(make_driver, -29.0, 25.0)  # saved far away
    await report_position(driver.pk, Point(JHB[0] + 0.001, JHB[1], time.time()), {})
    comm = await ws("/ws/ride/live-1/", token=await db(token_for, passenger))
    await comm.receive_json_from()
    await comm.send_json_to(find_driver())
    assigned, _ = await receive_until(comm, "driver_assigned")
    assert assigned["driver_id"] == driver.pk
    assert assigned["distance_km"] < 0.2 and assigned["eta_minutes"] == 1
    assert assigned["driver"]["latitude"] == pytest.approx(JHB[0] + 0.001)
    await comm.send_json_to({"type": "get_status"})
    snapshot, _ = await receive_until(comm, "ride_status")
    assert snapshot["driver"]["latitude"] == pytest.approx(JHB[0] + 0.001)
