"""
find_driver on PostgreSQL: the ride is inserted and its driver claimed in one
statement (dispatch.pg_booking). It must write, choose and tell exactly what
booking step by step (ride_request, then ride_match) does. Racing bookings:
test_concurrency.py, which runs both ways.
"""

from __future__ import annotations

import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from dispatch import events, messages, pg_booking, services
from dispatch.geo import Point
from dispatch.locations import location_store
from dispatch.models import DriverState, DriverStatus, Ride, RideEvent, RideStatus
from people.models import PassengerProfile, User, VehicleType

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

JHB = (-26.2041, 28.0473)


def trip(passenger, ride_id="b1", at=JHB, **extra):
    return {
        "ride_id": ride_id,
        "passenger": passenger,
        "booked_by": extra.pop("booked_by", passenger),
        "pickup_latitude": at[0],
        "pickup_longitude": at[1],
        "pickup_address": "Pickup",
        "dropoff_latitude": at[0] + 0.05,
        "dropoff_longitude": at[1] + 0.05,
        "dropoff_address": "Dropoff",
        **extra,
    }


@pytest.fixture
def told(monkeypatch):
    """Every group message sent, in order, as (group, message type, version)."""
    sent: list[tuple[str, str, int | None]] = []

    def record(sends):
        for group, envelope in sends:
            message = envelope.get("message") or {}
            sent.append((group, message.get("type") or envelope["type"], message.get("version")))

    monkeypatch.setattr(events, "send_now", record)
    return sent


def written(ride_id: str) -> dict:
    """What a booking left in the database, without ids and times."""
    ride = Ride.objects.get(ride_id=ride_id)
    return {
        "ride": (
            ride.status,
            ride.version,
            ride.driver_id,
            ride.assigned_at is not None,
            ride.no_driver_found_at is not None,
            ride.needs_wheelchair,
            ride.notes,
        ),
        "events": list(
            RideEvent.objects.filter(ride=ride)
            .order_by("version")
            .values_list(
                "version", "kind", "from_status", "to_status", "actor_id", "actor_role", "payload"
            )
        ),
        "on_trip": sorted(
            DriverState.objects.filter(status=DriverStatus.ON_TRIP).values_list(
                "driver_id", flat=True
            )
        ),
    }


def step_by_step(**details) -> services.MatchResult:
    ride = services.ride_request(**details)
    return services.ride_match(ride=ride, fresh=True)


def release_all(ride_id: str) -> None:
    ride = Ride.objects.get(ride_id=ride_id)
    services.ride_cancel(ride=ride, actor=None, cancelled_by="dispatcher", reason="test")


def test_one_statement_writes_and_tells_what_step_by_step_does(
    passenger, make_driver, make_user, make_link, told
):
    """Same ride, same three events, same driver claimed, same news in the same order."""
    make_driver(JHB[0] + 0.02, JHB[1])
    nearest = make_driver(JHB[0] + 0.004, JHB[1])
    make_link(passenger, make_user("caregiver"), can_receive_notifications=True)
    told.clear()

    result = services.ride_book(**trip(passenger, "one", notes="Ring twice"))
    one = written("one")
    one_told = list(told)
    release_all("one")
    told.clear()
    step_by_step(**trip(passenger, "steps", notes="Ring twice"))
    steps = written("steps")

    assert result.driver_id == nearest.pk
    assert result.ride.status == RideStatus.ASSIGNED and result.ride.version == 3
    assert one == steps
    assert one["ride"][:3] == (RideStatus.ASSIGNED, 3, nearest.pk)
    assert [e[1] for e in one["events"]] == ["requested", "searching", "assigned"]
    assert one["events"][2][6]["driver_id"] == nearest.pk
    assert [(g.split(".")[0], kind, v) for g, kind, v in one_told] == [
        (g.split(".")[0], kind, v) for g, kind, v in told
    ]
    assert ("driver", "ride_assigned", 3) in [(g.split(".")[0], k, v) for g, k, v in one_told]


def test_the_booking_goes_with_numbered_placeholders_through_djangos_wrappers(
    passenger, make_driver
):
    """
    The statement is sent as it is, with PostgreSQL's `$1` placeholders
    (psycopg's RawCursor), and Django's execute wrappers still see it.
    """
    driver = make_driver(*JHB)
    sent: list[str] = []

    def spy(execute, sql, params, many, context):
        sent.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(spy):
        assert services.ride_book(**trip(passenger)).driver_id == driver.pk
    booking = [sql for sql in sent if sql.lstrip().startswith("WITH need")]
    assert len(booking) == 1 and "$1" in booking[0] and "%s" not in booking[0]


def test_while_django_logs_queries_the_booking_works_and_is_logged(passenger, make_driver):
    """
    Django's query log (DEBUG, or a test capturing queries) renders each
    statement with psycopg's `%s` substitution: the booking goes with `%s`
    then, and is logged as one statement.
    """
    driver = make_driver(*JHB)
    with CaptureQueriesContext(connection) as queries:
        assert services.ride_book(**trip(passenger)).driver_id == driver.pk
    booking = [q["sql"] for q in queries if q["sql"].lstrip().startswith("WITH need")]
    assert len(booking) == 1 and str(passenger.pk) in booking[0]


def test_placeholders_are_numbered_in_order_and_any_other_percent_is_refused():
    """psycopg's `%s` become PostgreSQL's `$1`, `$2`; `%%` would need psycopg's parser."""
    assert pg_booking._numbered("a = %s AND b = %s::int[]") == "a = $1 AND b = $2::int[]"
    with pytest.raises(ValueError):
        pg_booking._numbered("name LIKE 'a%%' AND id = %s")


def test_the_nearest_driver_who_may_and_can_take_it_is_claimed(passenger, make_driver):
    """Unverified, busy and silent drivers are passed over; a demo driver's old fix is not."""
    make_driver(JHB[0] + 0.001, JHB[1], verified=False)
    busy = make_driver(JHB[0] + 0.002, JHB[1])
    DriverState.objects.filter(driver=busy).update(status=DriverStatus.ON_TRIP)
    silent = make_driver(JHB[0] + 0.003, JHB[1])
    point = location_store().get(silent.pk)
    location_store().put(silent.pk, Point(point.lat, point.lng, time.time() - 31))
    make_driver(JHB[0] + 0.004, JHB[1], is_active=False)
    demo = make_driver(JHB[0] + 0.005, JHB[1], demo=True)
    point = location_store().get(demo.pk)
    location_store().put(demo.pk, Point(point.lat, point.lng, time.time() - 3600), reports=False)
    make_driver(JHB[0] + 0.006, JHB[1])

    assert services.ride_book(**trip(passenger)).driver_id == demo.pk
    assert DriverState.objects.get(driver=silent).status == DriverStatus.AVAILABLE


def test_the_callers_nearest_drivers_are_the_ones_considered(passenger, make_driver):
    """A socket looks the candidates up on its event loop and hands them over."""
    make_driver(JHB[0] + 0.001, JHB[1])
    farther = make_driver(JHB[0] + 0.02, JHB[1])
    nearby = [(farther.pk, 2.2, location_store().get(farther.pk))]

    result = services.ride_book(**trip(passenger), nearby=nearby)
    assert (result.driver_id, result.distance_km) == (farther.pk, 2.2)


def test_a_wheelchair_user_gets_a_wheelchair_accessible_vehicle(passenger, make_driver):
    """The passenger's profile says wheelchair: a sedan nearer by is passed over."""
    passenger.passenger_profile.needs_wheelchair = True
    passenger.passenger_profile.save()
    make_driver(JHB[0] + 0.001, JHB[1])
    van = make_driver(JHB[0] + 0.01, JHB[1], vehicle_type=VehicleType.WHEELCHAIR_ACCESSIBLE)

    result = services.ride_book(**trip(passenger))
    assert result.driver_id == van.pk
    assert Ride.objects.get(ride_id="b1").needs_wheelchair is True


def test_the_passenger_and_their_needs_are_read_in_the_booking_statement(
    passenger, make_driver, django_assert_num_queries
):
    """
    The socket's user was loaded at connect; a caregiver has since set the
    walker and wheelchair needs and the name. The one statement reads them
    as they are now: the van is claimed and its driver is shown them.
    """
    make_driver(JHB[0] + 0.001, JHB[1])
    van = make_driver(JHB[0] + 0.01, JHB[1], vehicle_type=VehicleType.WHEELCHAIR_ACCESSIBLE)
    nearby = list(location_store().nearest(*JHB, 10))
    PassengerProfile.objects.filter(user=passenger).update(needs_wheelchair=True, needs_walker=True)
    User.objects.filter(pk=passenger.pk).update(first_name="Sally")

    with django_assert_num_queries(1):
        result = services.ride_book(**trip(passenger), nearby=nearby)
        told = messages.ride_assigned(result.ride)
    assert result.driver_id == van.pk and result.ride.needs_wheelchair is True
    assert told["passenger_name"] == "Sally Johnson"
    assert told["needs"]["wheelchair"] is True and told["needs"]["walker"] is True
    assert told["booked_by"]["name"] == "Sally Johnson"


def test_a_passenger_without_a_profile_is_booked_with_no_needs(
    passenger, make_driver, django_assert_num_queries
):
    driver = make_driver(JHB[0] + 0.001, JHB[1])
    nearby = list(location_store().nearest(*JHB, 10))
    PassengerProfile.objects.filter(user=passenger).delete()

    with django_assert_num_queries(1):
        result = services.ride_book(**trip(passenger), nearby=nearby)
        told = messages.ride_assigned(result.ride)
    assert result.driver_id == driver.pk and result.ride.needs_wheelchair is False
    assert told["needs"]["wheelchair"] is False


def test_the_requests_own_wheelchair_answer_comes_before_the_profiles(passenger, make_driver):
    PassengerProfile.objects.filter(user=passenger).update(needs_wheelchair=True)
    sedan = make_driver(JHB[0] + 0.001, JHB[1])
    make_driver(JHB[0] + 0.01, JHB[1], vehicle_type=VehicleType.WHEELCHAIR_ACCESSIBLE)

    result = services.ride_book(**trip(passenger, needs_wheelchair=False))
    assert result.driver_id == sedan.pk and result.ride.needs_wheelchair is False


def test_a_taken_ride_id_or_a_second_active_ride_is_a_conflict_and_writes_nothing(
    passenger, make_user, make_driver
):
    """The claim rolls back with the failed insert: the driver stays free."""
    make_driver(JHB[0] + 0.001, JHB[1])
    spare = make_driver(JHB[0] + 0.002, JHB[1])
    services.ride_book(**trip(passenger, "first"))
    before = (Ride.objects.count(), RideEvent.objects.count())

    with pytest.raises(services.RideConflict, match="already has an active ride"):
        services.ride_book(**trip(passenger, "second"))
    with pytest.raises(services.RideConflict, match="already exists"):
        services.ride_book(**trip(make_user("passenger"), "first"))

    assert (Ride.objects.count(), RideEvent.objects.count()) == before
    assert DriverState.objects.get(driver=spare).status == DriverStatus.AVAILABLE


def test_past_the_nearest_candidates_the_booking_goes_on_step_by_step(
    passenger, make_driver, monkeypatch
):
    """All of the nearest are busy: the next one out still gets the ride."""
    monkeypatch.setattr(services, "BOOK_CANDIDATES", 2)
    for i in range(2):
        busy = make_driver(JHB[0] + 0.001 * (i + 1), JHB[1])
        DriverState.objects.filter(driver=busy).update(status=DriverStatus.ON_TRIP)
    far = make_driver(JHB[0] + 0.02, JHB[1])

    result = services.ride_book(**trip(passenger))
    assert result.driver_id == far.pk
    assert [e[1] for e in written("b1")["events"]] == ["requested", "searching", "assigned"]


def test_nobody_near_leaves_the_ride_searching_with_no_drivers(passenger, told):
    told.clear()
    result = services.ride_book(**trip(passenger))
    assert result.driver_id is None
    state = written("b1")
    assert state["ride"][:2] == (RideStatus.SEARCHING, 3)
    assert state["ride"][4] is True
    assert [e[1] for e in state["events"]] == ["requested", "searching", "no_drivers"]
    assert [kind for g, kind, _ in told if g == "ride.b1"] == ["searching", "no_drivers"]
