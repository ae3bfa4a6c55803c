"""
find_driver's booking (dispatch.booking): the ride and its driver in one
transaction. On PostgreSQL it is one statement; it must write, choose and
tell exactly what the ORM path does, so every test here runs both paths
(on SQLite only the ORM one). Racing bookings: test_concurrency.py.
"""

from __future__ import annotations

import time

import pytest
from django.db import connection

from dispatch import booking, broadcast
from dispatch.errors import RideConflict
from dispatch.geo import Point
from dispatch.locations import location_store
from dispatch.models import DriverState, DriverStatus, Ride, RideEvent, RideStatus
from people.models import PassengerProfile, User, VehicleType
from tests.conftest import booking_keywords

pytestmark = pytest.mark.django_db(transaction=True)

JHB = (-26.2041, 28.0473)


@pytest.fixture
def told(monkeypatch):
    """Every group message sent, in order, as (group kind, message type, version)."""
    sent: list[tuple[str, str, int | None]] = []

    def record(sends):
        for group, envelope in sends:
            message = envelope.get("message") or {}
            kind = message.get("type") or envelope["type"]
            sent.append((group.split(".")[0], kind, message.get("version")))

    monkeypatch.setattr(broadcast, "_deliver", record)
    return sent


def trip(passenger, ride_id="b1", at=JHB, **extra):
    return booking_keywords(passenger, ride_id, at, **extra)


def written(ride_id: str) -> dict:
    """What a booking left in the database, without ids and times."""
    ride = Ride.objects.get(ride_id=ride_id)
    return {
        "ride": (ride.status, ride.version, ride.driver_id, ride.needs_wheelchair, ride.notes),
        "events": list(
            RideEvent.objects.filter(ride=ride)
            .order_by("version")
            .values_list("version", "kind", "from_status", "to_status", "actor_id", "payload")
        ),
        "on_trip": sorted(
            DriverState.objects.filter(status=DriverStatus.ON_TRIP).values_list(
                "driver_id", flat=True
            )
        ),
    }


def test_the_nearest_driver_is_claimed_with_three_events_and_the_news_in_order(
    path, passenger, make_driver, make_user, make_link, told
):
    make_driver(JHB[0] + 0.02, JHB[1])
    nearest = make_driver(JHB[0] + 0.004, JHB[1])
    make_link(passenger, make_user("caregiver"), can_receive_notifications=True)
    told.clear()
    result = booking.ride_book(**trip(passenger, notes="Ring twice"))
    assert (result.driver_id, result.ride.status, result.ride.version) == (
        nearest.pk,
        RideStatus.ASSIGNED,
        3,
    )
    state = written("b1")
    assert state["ride"] == (RideStatus.ASSIGNED, 3, nearest.pk, False, "Ring twice")
    assert [e[:4] for e in state["events"]] == [
        (1, "requested", "", "requested"),
        (2, "searching", "requested", "searching"),
        (3, "assigned", "searching", "assigned"),
    ]
    assert state["events"][2][5]["driver_id"] == nearest.pk
    assert state["on_trip"] == [nearest.pk]
    assert told == [
        ("ride", "searching", 2),
        ("passenger", "searching", 2),
        ("caregiver", "ride_status", 2),
        ("console", "console.ride", None),
        ("ride", "driver_assigned", 3),
        ("passenger", "driver_assigned", 3),
        ("driver", "ride_assigned", 3),
        ("caregiver", "ride_status", 3),
        ("console", "console.ride", None),
        ("console", "console.driver", None),
    ]


def test_the_nearest_driver_who_may_and_can_take_it_is_claimed(path, passenger, make_driver):
    """Unverified, busy, switched-off and silent drivers are passed over; a placed demo is not."""
    make_driver(JHB[0] + 0.001, JHB[1], verified=False)
    busy = make_driver(JHB[0] + 0.002, JHB[1])
    DriverState.objects.filter(driver=busy).update(status=DriverStatus.ON_TRIP)
    silent = make_driver(JHB[0] + 0.003, JHB[1])
    point = location_store().get(silent.pk)
    location_store().put(silent.pk, Point(point.lat, point.lng, time.time() - 31))
    # Left available behind a switch-off (a row from before switching off
    # took drivers off duty): matching passes them over all the same.
    switched_off = make_driver(JHB[0] + 0.004, JHB[1])
    User.objects.filter(pk=switched_off.pk).update(is_active=False)
    demo = make_driver(JHB[0] + 0.005, JHB[1], demo=True)
    make_driver(JHB[0] + 0.006, JHB[1])
    assert booking.ride_book(**trip(passenger)).driver_id == demo.pk
    assert DriverState.objects.get(driver=silent).status == DriverStatus.AVAILABLE


def test_the_callers_nearest_drivers_are_the_ones_considered(path, passenger, make_driver):
    """A socket looks the candidates up on its event loop and hands them over."""
    make_driver(JHB[0] + 0.001, JHB[1])
    farther = make_driver(JHB[0] + 0.02, JHB[1])
    nearby = [(farther.pk, 2.2, location_store().get(farther.pk))]
    result = booking.ride_book(**trip(passenger), nearby_drivers=nearby)
    assert (result.driver_id, result.distance_km) == (farther.pk, 2.2)


def test_the_profiles_wheelchair_and_the_requests_own_answer(path, passenger, make_driver):
    """The profile says wheelchair: the van, not the nearer sedan; unless the booking says no."""
    PassengerProfile.objects.filter(user=passenger).update(needs_wheelchair=True)
    sedan = make_driver(JHB[0] + 0.001, JHB[1])
    van = make_driver(JHB[0] + 0.01, JHB[1], vehicle_type=VehicleType.WHEELCHAIR_ACCESSIBLE)
    result = booking.ride_book(**trip(passenger))
    assert result.driver_id == van.pk and written("b1")["ride"][3] is True
    other = User.objects.create_user("27829990111", user_type="passenger")
    PassengerProfile.objects.create(user=other, needs_wheelchair=True)
    result = booking.ride_book(**trip(other, "b2", needs_wheelchair=False))
    assert result.driver_id == sedan.pk and written("b2")["ride"][3] is False


def test_the_passengers_needs_are_read_as_they_are_now(path, passenger, make_driver):
    """The socket's user was loaded at connect; the booking reads their needs afresh."""
    make_driver(JHB[0] + 0.001, JHB[1])
    van = make_driver(JHB[0] + 0.01, JHB[1], vehicle_type=VehicleType.WHEELCHAIR_ACCESSIBLE)
    PassengerProfile.objects.filter(user=passenger).update(needs_wheelchair=True, needs_walker=True)
    result = booking.ride_book(**trip(passenger))
    assert result.driver_id == van.pk
    from dispatch.payloads import ride_assigned

    told = ride_assigned(result.ride)
    assert told["needs"]["wheelchair"] is True and told["needs"]["walker"] is True


def test_a_taken_ride_id_or_a_second_active_ride_is_a_conflict_and_writes_nothing(
    path, passenger, make_user, make_driver
):
    """The claim rolls back with the failed insert: the driver stays free."""
    make_driver(JHB[0] + 0.001, JHB[1])
    spare = make_driver(JHB[0] + 0.002, JHB[1])
    booking.ride_book(**trip(passenger, "first"))
    before = (Ride.objects.count(), RideEvent.objects.count())
    with pytest.raises(RideConflict, match="already has an active ride"):
        booking.ride_book(**trip(passenger, "second"))
    with pytest.raises(RideConflict, match="already exists"):
        booking.ride_book(**trip(make_user("passenger"), "first"))
    assert (Ride.objects.count(), RideEvent.objects.count()) == before
    assert DriverState.objects.get(driver=spare).status == DriverStatus.AVAILABLE


def test_past_the_nearest_candidates_the_booking_goes_on_step_by_step(
    path, passenger, make_driver, monkeypatch
):
    """All of the nearest are busy: the next one out still gets the ride."""
    monkeypatch.setattr(booking, "BOOK_CANDIDATES", 2)
    for i in range(2):
        busy = make_driver(JHB[0] + 0.001 * (i + 1), JHB[1])
        DriverState.objects.filter(driver=busy).update(status=DriverStatus.ON_TRIP)
    far = make_driver(JHB[0] + 0.02, JHB[1])
    assert booking.ride_book(**trip(passenger)).driver_id == far.pk
    assert [e[1] for e in written("b1")["events"]] == ["requested", "searching", "assigned"]


def test_nobody_near_leaves_the_ride_searching_with_no_drivers(path, passenger, told):
    told.clear()
    result = booking.ride_book(**trip(passenger))
    assert result.driver_id is None
    state = written("b1")
    assert state["ride"][:2] == (RideStatus.SEARCHING, 3)
    assert [e[1] for e in state["events"]] == ["requested", "searching", "no_drivers"]
    assert [kind for group, kind, _ in told if group == "ride"] == ["searching", "no_drivers"]


@pytest.mark.postgres
def test_a_driver_another_booking_is_claiming_is_skipped_not_waited_for(
    path, passenger, make_driver
):
    """SKIP LOCKED: while a row is held, the booking takes the next driver at once."""
    import psycopg

    held = make_driver(JHB[0] + 0.001, JHB[1])
    nxt = make_driver(JHB[0] + 0.002, JHB[1])
    params = connection.settings_dict
    dsn = {
        "dbname": params["NAME"],
        "user": params["USER"],
        "host": params["HOST"],
        "port": params["PORT"] or 5432,
    }
    table = DriverState._meta.db_table
    with psycopg.connect(**dsn) as other:
        other.execute(f"SELECT 1 FROM {table} WHERE driver_id = %s FOR UPDATE", [held.pk])
        started = time.monotonic()
        assert booking.ride_book(**trip(passenger)).driver_id == nxt.pk
        assert time.monotonic() - started < 5
        other.rollback()
