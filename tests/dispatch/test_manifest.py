"""
The driver's manifest over the driver socket: sent on connect when the
driver has a published run today and on `get_manifest`; `manifest_updated`
on publish, moves and each trip step; a driver sees only their own run,
and of the other riders their names alone, never phone or needs card
before their trip is the current one.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta

import pytest
from django.utils import timezone

from dispatch import booking, trips
from dispatch.drivers import driver_verify
from dispatch.models import Ride, RideStatus
from dispatch.planning import day as on_the_day
from dispatch.planning import services
from people import profiles
from people.models import VehicleType
from tests.conftest import JHB, booking_keywords, db, receive_until, token_for
from tests.dispatch.test_plan_services import book, shift_for


def today():
    return timezone.localdate()


@pytest.fixture
def run_day(db, passenger, make_user, make_driver, settings):
    """Today: Sarah, Bob and a wheelchair rider; John's car and Mike's van on shift."""
    settings.PLAN_EXPLORATION = 1
    bob = make_user("passenger", first_name="Bob", last_name="Rider")
    chair = make_user("passenger", first_name="Wanda", last_name="Wheels")
    chair.passenger_profile.notes = "Wanda's private notes"
    chair.passenger_profile.save()
    john = make_driver(first_name="John", last_name="Doe")
    mike = make_driver(first_name="Mike", vehicle_type=VehicleType.WHEELCHAIR_ACCESSIBLE)
    shift_for(john, day=today())
    shift_for(mike, wheelchair=2, day=today())
    rides = [
        book(passenger, 8, 0, day=today()),
        book(bob, 8, 5, day=today()),
        book(chair, 9, 0, wheelchair=True, day=today()),
    ]
    plan = services.plan_day(service_date=today(), timeout_s=5)
    # Sarah and Bob on John's run, so it carries two riders; Wanda in the van.
    run = plan.runs.get(driver=john)
    for ride in rides[:2]:
        if Ride.objects.get(pk=ride.pk).run_id != run.pk:
            services.trip_move(ride=Ride.objects.get(pk=ride.pk), to_run=run, actor=None)
    assert Ride.objects.get(pk=rides[2].pk).run.driver == mike
    return {
        "plan": plan,
        "run": run,
        "driver": john,
        "other_driver": mike,
        "rides": [Ride.objects.get(pk=r.pk) for r in rides],
    }


def publish(plan):
    return services.plan_publish(plan=plan.__class__.objects.get(pk=plan.pk))


async def driver_socket(ws, driver):
    comm = await ws("/ws/driver/", token=await db(token_for, driver))
    hello = await comm.receive_json_from()
    assert hello["type"] == "connection_established"
    return comm


def first_aboard(run_day) -> tuple[Ride, str]:
    """Today's plan published, the run's first rider aboard; and its next pickup's ride id."""
    publish(run_day["plan"])
    driver = run_day["driver"]
    stops = on_the_day.manifest_for(driver, today())["stops"]
    first = Ride.objects.select_related("run__driver").get(ride_id=stops[0]["ride_id"])
    trips.ride_run_reached(ride=first)
    for step in (trips.ride_driver_arrived, trips.ride_start):
        step(ride=Ride.objects.with_people().get(pk=first.pk), driver=driver)
    later = next(s["ride_id"] for s in stops if s["ride_id"] != first.ride_id)
    return Ride.objects.with_people().get(pk=first.pk), later


def by_ride(manifest, ride_id, kind="pickup"):
    return next(s for s in manifest["stops"] if s["ride_id"] == ride_id and s["kind"] == kind)


@pytest.mark.django_db(transaction=True)
async def test_a_driver_with_a_published_run_today_gets_the_manifest_on_connect(ws, run_day):
    await db(publish, run_day["plan"])
    driver, rides = run_day["driver"], run_day["rides"]
    comm = await driver_socket(ws, driver)
    manifest = await comm.receive_json_from()
    assert manifest["type"] == "manifest" and manifest["driver_id"] == driver.pk
    assert manifest["service_date"] == today().isoformat()
    own = {rides[0].ride_id, rides[1].ride_id}
    assert {s["ride_id"] for s in manifest["stops"]} == own
    assert [s["kind"] for s in manifest["stops"]].count("pickup") == 2
    first = manifest["stops"][0]
    assert first["next"] and manifest["current_ride_ids"] == [first["ride_id"]]
    assert first["passenger"]["phone"] and first["needs"] is not None
    later = [s for s in manifest["stops"] if s["ride_id"] != first["ride_id"]]
    assert all(s["passenger"]["phone"] is None and s["needs"] is None for s in later)
    assert all(s["passenger"]["name"] for s in manifest["stops"])


@pytest.mark.django_db(transaction=True)
async def test_a_draft_plan_gives_the_driver_no_manifest(ws, run_day):
    comm = await driver_socket(ws, run_day["driver"])
    assert await comm.receive_nothing(timeout=0.3)
    await comm.send_json_to({"type": "get_manifest"})
    manifest = await comm.receive_json_from()
    assert manifest["type"] == "manifest" and manifest["stops"] == []


@pytest.mark.django_db(transaction=True)
async def test_publishing_sends_each_driver_their_own_run_only(ws, run_day):
    mine = await driver_socket(ws, run_day["driver"])
    other = await driver_socket(ws, run_day["other_driver"])
    await db(publish, run_day["plan"])
    updated, _ = await receive_until(mine, "manifest_updated")
    theirs, _ = await receive_until(other, "manifest_updated")
    chair = run_day["rides"][2]
    assert {s["ride_id"] for s in theirs["stops"]} == {chair.ride_id}
    assert chair.ride_id not in str(updated) and "Wanda" not in str(updated)
    assert "Sarah" not in str(theirs) and "Bob" not in str(theirs)
    # Told once, however many riders the publish told: no second copy.
    assert await mine.receive_nothing(timeout=0.5)


@pytest.mark.django_db(transaction=True)
async def test_a_move_on_a_published_plan_updates_both_drivers(ws, run_day):
    await db(publish, run_day["plan"])
    mine = await driver_socket(ws, run_day["driver"])
    other = await driver_socket(ws, run_day["other_driver"])
    await receive_until(mine, "manifest")
    await receive_until(other, "manifest")
    bob_ride = run_day["rides"][1]
    to_run = await db(lambda: run_day["plan"].runs.exclude(pk=run_day["run"].pk).get())
    await db(services.trip_move, ride=bob_ride, to_run=to_run, actor=None)
    lost, _ = await receive_until(mine, "manifest_updated")
    gained, _ = await receive_until(other, "manifest_updated")
    assert bob_ride.ride_id not in {s["ride_id"] for s in lost["stops"]}
    assert bob_ride.ride_id in {s["ride_id"] for s in gained["stops"]}


@pytest.mark.django_db(transaction=True)
async def test_trip_messages_work_through_the_run_and_move_the_manifest_on(
    ws, run_day, monkeypatch
):
    # Early in the day, whatever the clock says: Bob's 08:05 pickup is not
    # yet due within 2 x PICKUP_WINDOW_MIN, so no step reaches it by itself.
    early = timezone.make_aware(datetime.combine(today(), time(6, 0)))
    monkeypatch.setattr(on_the_day.timezone, "now", lambda: early)
    await db(publish, run_day["plan"])
    comm = await driver_socket(ws, run_day["driver"])
    manifest = await comm.receive_json_from()
    first_id = manifest["stops"][0]["ride_id"]
    second_id = next(s["ride_id"] for s in manifest["stops"] if s["ride_id"] != first_id)
    # Nothing held yet: `arrived` is about the run's next pickup, which it reaches.
    await comm.send_json_to({"type": "arrived"})
    assigned, _ = await receive_until(comm, "ride_assigned")
    assert assigned["ride_id"] == first_id
    moved, _ = await receive_until(comm, "manifest_updated")
    while by_ride(moved, first_id)["status"] != RideStatus.DRIVER_ARRIVED:
        moved, _ = await receive_until(comm, "manifest_updated")
    await comm.send_json_to({"type": "start_trip", "ride_id": first_id})
    moved, _ = await receive_until(comm, "manifest_updated")
    while by_ride(moved, first_id)["status"] != RideStatus.IN_PROGRESS:
        moved, _ = await receive_until(comm, "manifest_updated")
    assert by_ride(moved, first_id)["done"]
    await comm.send_json_to({"type": "complete_trip", "ride_id": first_id})
    while True:
        moved, _ = await receive_until(comm, "manifest_updated")
        if by_ride(moved, first_id, "dropoff")["done"] and moved["current_ride_ids"] == [second_id]:
            break
    # The finished rider's phone and needs are gone; the next rider's are shown.
    assert by_ride(moved, first_id)["passenger"]["phone"] is None
    assert by_ride(moved, first_id)["needs"] is None
    assert by_ride(moved, second_id)["passenger"]["phone"]
    assert by_ride(moved, second_id)["next"]
    statuses = await db(
        lambda: dict(Ride.objects.filter(ride_id__in=[first_id, second_id]).values_list(
            "ride_id", "status"))
    )  # fmt: skip
    # Bob's pickup is hours off (08:05): the run reaches it when the driver
    # says so, or once it is due within 2 x PICKUP_WINDOW_MIN.
    assert statuses == {first_id: RideStatus.COMPLETED, second_id: RideStatus.SCHEDULED}
    await comm.send_json_to({"type": "arrived"})
    assigned, _ = await receive_until(comm, "ride_assigned")
    assert assigned["ride_id"] == second_id


@pytest.mark.django_db(transaction=True)
async def test_a_run_driver_with_riders_ahead_is_not_given_a_waiting_ride_after_a_drop_off(
    ws, run_day, make_user, monkeypatch
):
    """John drops Sarah off with Bob still to fetch: a ride waiting nearby is not his to take."""
    early = timezone.make_aware(datetime.combine(today(), time(6, 0)))
    monkeypatch.setattr(on_the_day.timezone, "now", lambda: early)
    await db(publish, run_day["plan"])
    comm = await driver_socket(ws, run_day["driver"])
    first_id = (await comm.receive_json_from())["stops"][0]["ride_id"]
    await comm.send_json_to({"type": "set_status", "status": "available"})
    await receive_until(comm, "status_updated")
    await comm.send_json_to({"type": "arrived"})
    await receive_until(comm, "ride_assigned")
    await comm.send_json_to({"type": "start_trip", "ride_id": first_id})
    await comm.send_json_to({"type": "location_update", "latitude": JHB[0], "longitude": JHB[1]})
    rider = await db(make_user, "passenger", first_name="Lindiwe")
    await db(booking.ride_book, **booking_keywords(rider, "waiting-1"))
    await comm.send_json_to({"type": "complete_trip", "ride_id": first_id})
    while True:
        moved, _ = await receive_until(comm, "manifest_updated")
        if by_ride(moved, first_id, "dropoff")["done"]:
            break
    await comm.send_json_to({"type": "ping"})
    await receive_until(comm, "pong")
    waiting = await db(Ride.objects.get, ride_id="waiting-1")
    assert (waiting.status, waiting.driver_id) == (RideStatus.SEARCHING, None)


@pytest.mark.django_db(transaction=True)
async def test_a_run_driver_with_riders_ahead_is_not_given_a_waiting_ride_on_going_online(
    ws, run_day, make_user, monkeypatch
):
    """
    John comes online at 06:00 with Sarah and Bob to fetch today: a ride
    that found nobody nearby is not his to take, as after a drop-off.
    """
    early = timezone.make_aware(datetime.combine(today(), time(6, 0)))
    monkeypatch.setattr(on_the_day.timezone, "now", lambda: early)
    await db(publish, run_day["plan"])
    rider = await db(make_user, "passenger", first_name="Lindiwe")
    await db(booking.ride_book, **booking_keywords(rider, "waiting-1"))
    waiting = await db(Ride.objects.get, ride_id="waiting-1")
    assert waiting.no_driver_found_at is not None
    comm = await driver_socket(ws, run_day["driver"])
    await receive_until(comm, "manifest")
    await comm.send_json_to({"type": "set_status", "status": "available"})
    await receive_until(comm, "status_updated")
    await comm.send_json_to({"type": "location_update", "latitude": JHB[0], "longitude": JHB[1]})
    await comm.send_json_to({"type": "ping"})
    await receive_until(comm, "pong")
    waiting = await db(Ride.objects.get, ride_id="waiting-1")
    assert (waiting.status, waiting.driver_id) == (RideStatus.SEARCHING, None)


@pytest.mark.django_db
def test_a_pickup_due_soon_is_reached_as_the_run_moves_on(run_day):
    driver = run_day["driver"]
    first, second = first_aboard(run_day)
    after_start = Ride.objects.get(pk=first.pk)
    pickup = Ride.objects.get(ride_id=second).stops.get(kind="pickup").service_at
    # An hour before: not yet.
    assert (
        on_the_day.run_moved_on(driver=driver, ride=after_start, now=pickup - timedelta(hours=1))
        is None
    )
    assert Ride.objects.get(ride_id=second).status == RideStatus.SCHEDULED
    # Twenty minutes before: the run reaches it.
    reached = on_the_day.run_moved_on(
        driver=driver, ride=after_start, now=pickup - timedelta(minutes=20)
    )
    assert reached.ride_id == second and reached.status == RideStatus.ASSIGNED
    assert reached.driver == driver


@pytest.mark.django_db(transaction=True)
async def test_a_trip_message_naming_a_later_ride_of_the_run_is_refused(ws, run_day):
    await db(publish, run_day["plan"])
    comm = await driver_socket(ws, run_day["driver"])
    manifest = await comm.receive_json_from()
    later = manifest["stops"][-1]["ride_id"]
    assert later != manifest["stops"][0]["ride_id"]
    await comm.send_json_to({"type": "arrived", "ride_id": later})
    error, _ = await receive_until(comm, "error")
    assert error["code"] == "invalid_state"
    ride = await db(Ride.objects.get, ride_id=later)
    assert ride.status == RideStatus.SCHEDULED
    # The socket stays up.
    await comm.send_json_to({"type": "ping"})
    assert (await receive_until(comm, "pong"))[0]


@pytest.mark.django_db(transaction=True)
async def test_a_driver_holding_a_ride_naming_a_later_stop_is_invalid_state(ws, run_day):
    def first_reached():
        publish(run_day["plan"])
        stops = on_the_day.manifest_for(run_day["driver"], today())["stops"]
        first = Ride.objects.select_related("run__driver").get(ride_id=stops[0]["ride_id"])
        trips.ride_run_reached(ride=first)
        return next(s["ride_id"] for s in stops if s["ride_id"] != first.ride_id)

    later = await db(first_reached)
    comm = await driver_socket(ws, run_day["driver"])
    await comm.send_json_to({"type": "arrived", "ride_id": later})
    error, _ = await receive_until(comm, "error")
    assert error["code"] == "invalid_state" and list(error["fields"]) == ["ride_id"]
    assert (await db(Ride.objects.get, ride_id=later)).status == RideStatus.SCHEDULED


@pytest.mark.django_db(transaction=True)
async def test_a_run_driver_holding_two_rides_streams_positions_to_both(ws, run_day):
    """The rider aboard keeps seeing the car while the run reaches the next pickup."""
    first, later = await db(first_aboard, run_day)
    aboard = await ws(f"/ws/ride/{first.ride_id}/", token=await db(token_for, first.passenger))
    await receive_until(aboard, "ride_status")
    comm = await driver_socket(ws, run_day["driver"])
    await receive_until(comm, "ride_assigned")
    second = await db(Ride.objects.with_people().select_related("run__driver").get, ride_id=later)
    await db(trips.ride_run_reached, ride=second)
    assigned, _ = await receive_until(comm, "ride_assigned")
    assert assigned["ride_id"] == later
    next_rider = await ws(f"/ws/ride/{later}/", token=await db(token_for, second.passenger))
    await receive_until(next_rider, "ride_status")
    await comm.send_json_to({"type": "location_update", "latitude": -26.2, "longitude": 28.0})
    for rider, ride_id in ((aboard, first.ride_id), (next_rider, later)):
        moved, _ = await receive_until(rider, "driver_location")
        assert moved["ride_id"] == ride_id


@pytest.mark.django_db(transaction=True)
async def test_a_refused_trip_step_leaves_the_next_pickup_unreached(ws, run_day):
    """complete_trip with nothing held is refused, and the run does not reach its pickup."""
    await db(publish, run_day["plan"])
    comm = await driver_socket(ws, run_day["driver"])
    await receive_until(comm, "manifest")
    await comm.send_json_to({"type": "complete_trip"})
    error, told = await receive_until(comm, "error")
    assert error["code"] == "invalid_state"
    assert [m["type"] for m in told] == []
    statuses = await db(
        lambda: set(
            Ride.objects.filter(run__driver=run_day["driver"]).values_list("status", flat=True)
        )
    )
    assert statuses == {RideStatus.SCHEDULED}


@pytest.mark.django_db(transaction=True)
async def test_get_manifest_answers_another_day_and_refuses_a_bad_date(ws, run_day):
    comm = await driver_socket(ws, run_day["driver"])
    tomorrow = today() + timedelta(days=1)
    await comm.send_json_to({"type": "get_manifest", "service_date": tomorrow.isoformat()})
    manifest = await comm.receive_json_from()
    assert manifest["service_date"] == tomorrow.isoformat() and manifest["stops"] == []
    await comm.send_json_to({"type": "get_manifest", "service_date": "next tuesday"})
    error = await comm.receive_json_from()
    assert error["code"] == "invalid_request" and "service_date" in error["fields"]


@pytest.mark.django_db(transaction=True)
async def test_a_passenger_cannot_ask_for_a_manifest(ws, run_day, passenger):
    comm, connected, _ = await ws(
        "/ws/driver/", token=await db(token_for, passenger), expect_accept=False
    )
    error = await comm.receive_json_from()
    assert error["code"] == "forbidden"


@pytest.mark.django_db(transaction=True)
async def test_a_driver_no_longer_verified_reaches_no_further_rider_of_the_run(ws, run_day):
    """A driver whose verification support withdrew picks up no new rider of their run."""
    await db(publish, run_day["plan"])
    driver = run_day["driver"]
    await db(driver_verify, profile=driver.driver_profile, actor=None, verified=False)
    comm = await driver_socket(ws, driver)
    await comm.send_json_to({"type": "arrived"})
    error, _ = await receive_until(comm, "error")
    assert error["code"] == "forbidden"
    statuses = await db(
        lambda: set(Ride.objects.filter(run__driver=driver).values_list("status", flat=True))
    )
    assert statuses == {RideStatus.SCHEDULED}


@pytest.mark.django_db
def test_a_run_moving_on_reaches_no_rider_for_a_driver_no_longer_verified(run_day):
    """Withdrawn mid-trip: the rider aboard is dropped off, the next pickup is not reached."""
    driver = run_day["driver"]
    first, second = first_aboard(run_day)
    driver_verify(profile=driver.driver_profile, actor=None, verified=False)
    done = trips.ride_complete(ride=Ride.objects.with_people().get(pk=first.pk), driver=driver)
    pickup = Ride.objects.get(ride_id=second).stops.get(kind="pickup").service_at
    now = pickup - timedelta(minutes=20)
    assert on_the_day.run_moved_on(driver=driver, ride=done, now=now) is None
    assert Ride.objects.get(ride_id=second).status == RideStatus.SCHEDULED


@pytest.mark.django_db(transaction=True)
async def test_a_run_reaching_a_rider_already_on_a_ride_now_is_refused_in_words(ws, run_day):
    """
    The run's next rider booked a ride now meanwhile (the run was late): the
    driver's `arrived` for them is `conflict` naming that ride, not a server
    fault, and their booked-ahead ride stays scheduled.
    """
    await db(publish, run_day["plan"])
    comm = await driver_socket(ws, run_day["driver"])
    manifest = await comm.receive_json_from()
    first_id = manifest["stops"][0]["ride_id"]
    rider = (await db(Ride.objects.select_related("passenger").get, ride_id=first_id)).passenger
    await db(booking.ride_book, **booking_keywords(rider, "now-1"))
    await comm.send_json_to({"type": "arrived"})
    error, _ = await receive_until(comm, "error")
    assert error["code"] == "conflict" and error["active_ride_id"] == "now-1", error
    assert (await db(Ride.objects.get, ride_id=first_id)).status == RideStatus.SCHEDULED
    await comm.send_json_to({"type": "ping"})
    assert (await receive_until(comm, "pong"))[0]


@pytest.mark.django_db(transaction=True)
async def test_a_step_stands_when_the_next_rider_is_already_on_a_ride_now(ws, run_day, monkeypatch):
    """
    The driver drops a rider off; the next pickup, due soon, cannot be
    reached (its rider booked a ride now meanwhile). The drop-off stands and
    the driver is not told it failed.
    """
    first, later = await db(first_aboard, run_day)
    pickup = await db(lambda: Ride.objects.get(ride_id=later).stops.get(kind="pickup").service_at)
    soon = pickup - timedelta(minutes=20)
    monkeypatch.setattr(on_the_day.timezone, "now", lambda: soon)
    rider = (await db(Ride.objects.select_related("passenger").get, ride_id=later)).passenger
    await db(booking.ride_book, **booking_keywords(rider, "now-2"))
    comm = await driver_socket(ws, run_day["driver"])
    await receive_until(comm, "ride_assigned")
    await comm.send_json_to({"type": "complete_trip", "ride_id": first.ride_id})
    await comm.send_json_to({"type": "ping"})
    _, told = await receive_until(comm, "pong")
    assert [m for m in told if m["type"] == "error"] == []
    assert (await db(Ride.objects.get, pk=first.pk)).status == RideStatus.COMPLETED
    assert (await db(Ride.objects.get, ride_id=later)).status == RideStatus.SCHEDULED


@pytest.mark.django_db(transaction=True)
async def test_an_app_asking_for_day_after_day_does_not_grow_its_socket(
    ws, run_day, settings, monkeypatch
):
    """
    Every get_manifest is answered, but the socket remembers what it sent
    only for the days whose changes it may be told of (yesterday to the
    booking horizon), however many days the app asks for.
    """
    from dispatch.consumers.driver import DriverConsumer

    sockets = []
    starting = DriverConsumer.manifest_start

    def start(self):
        sockets.append(self)
        return starting(self)

    monkeypatch.setattr(DriverConsumer, "manifest_start", start)
    await db(publish, run_day["plan"])
    comm = await driver_socket(ws, run_day["driver"])
    await receive_until(comm, "manifest")
    asked = [today() + timedelta(days=n) for n in range(-270, 270, 9)]
    for day in asked:
        await comm.send_json_to({"type": "get_manifest", "service_date": day.isoformat()})
        manifest, _ = await receive_until(comm, "manifest")
        assert manifest["service_date"] == day.isoformat()
        assert bool(manifest["stops"]) == (day == today())
    kept = set(sockets[0].manifests_sent)
    last = today() + timedelta(days=settings.BOOKING_HORIZON_DAYS)
    assert today() in kept
    assert all(today() - timedelta(days=1) <= day <= last for day in kept), kept


@pytest.mark.django_db(transaction=True)
async def test_a_run_driver_on_since_last_night_is_not_given_a_waiting_ride_before_the_run(
    ws, run_day, make_user, monkeypatch
):
    """
    John's socket opened last night, before today's run was anybody's news.
    At 06:00 he drops off a ride booked now, with Sarah and Bob still to
    fetch today: a ride waiting nearby is not his to take.
    """
    last_night = timezone.make_aware(datetime.combine(today() - timedelta(days=1), time(22, 0)))
    early = timezone.make_aware(datetime.combine(today(), time(6, 0)))
    clock = [last_night]
    await db(publish, run_day["plan"])
    monkeypatch.setattr(on_the_day.timezone, "now", lambda: clock[0])
    comm = await driver_socket(ws, run_day["driver"])
    await comm.send_json_to({"type": "set_status", "status": "available"})
    await receive_until(comm, "status_updated")
    await comm.send_json_to({"type": "location_update", "latitude": JHB[0], "longitude": JHB[1]})
    rider = await db(make_user, "passenger", first_name="Nomsa")
    await db(booking.ride_book, **booking_keywords(rider, "late-1"))
    held, _ = await receive_until(comm, "ride_assigned")
    assert held["ride_id"] == "late-1"
    for step in ("arrived", "start_trip"):
        await comm.send_json_to({"type": step, "ride_id": "late-1"})
    clock[0] = early
    waiting = await db(make_user, "passenger", first_name="Lindiwe")
    await db(booking.ride_book, **booking_keywords(waiting, "waiting-1"))
    await comm.send_json_to({"type": "complete_trip", "ride_id": "late-1"})
    while (await receive_until(comm, "ride_status"))[0]["status"] != RideStatus.COMPLETED:
        pass
    await comm.send_json_to({"type": "ping"})
    await receive_until(comm, "pong")
    left = await db(Ride.objects.get, ride_id="waiting-1")
    assert (left.status, left.driver_id) == (RideStatus.SEARCHING, None)


@pytest.mark.django_db(transaction=True)
async def test_a_run_driver_dropping_off_the_runs_last_rider_is_given_a_waiting_ride(
    ws, run_day, make_user, monkeypatch
):
    """With Sarah and Bob dropped off, John's run is done: a ride waiting nearby is his."""
    early = timezone.make_aware(datetime.combine(today(), time(6, 0)))
    monkeypatch.setattr(on_the_day.timezone, "now", lambda: early)
    await db(publish, run_day["plan"])
    comm = await driver_socket(ws, run_day["driver"])
    await receive_until(comm, "manifest")
    await comm.send_json_to({"type": "set_status", "status": "available"})
    await receive_until(comm, "status_updated")
    await comm.send_json_to({"type": "location_update", "latitude": JHB[0], "longitude": JHB[1]})
    for rider in range(2):
        await comm.send_json_to({"type": "arrived"})
        reached, _ = await receive_until(comm, "ride_assigned")
        ride_id = reached["ride_id"]
        await comm.send_json_to({"type": "start_trip", "ride_id": ride_id})
        if rider == 1:
            waiting = await db(make_user, "passenger", first_name="Lindiwe")
            await db(booking.ride_book, **booking_keywords(waiting, "waiting-1"))
        await comm.send_json_to({"type": "complete_trip", "ride_id": ride_id})
        while (await receive_until(comm, "ride_status"))[0]["status"] != RideStatus.COMPLETED:
            pass
    given, _ = await receive_until(comm, "ride_assigned")
    assert given["ride_id"] == "waiting-1"


@pytest.mark.django_db
def test_a_driver_no_longer_verified_sees_no_phone_or_needs_of_riders_ahead(run_day):
    """
    Withdrawn mid-run: the rider aboard is still the driver's to drop off,
    with phone and needs card; the next rider, whom they will not pick up,
    is named only.
    """
    driver = run_day["driver"]
    first, later = first_aboard(run_day)
    driver_verify(profile=driver.driver_profile, actor=None, verified=False)
    manifest = on_the_day.manifest_for(driver, today())
    assert manifest["current_ride_ids"] == [first.ride_id]
    aboard = by_ride(manifest, first.ride_id, "dropoff")
    assert aboard["passenger"]["phone"] and aboard["needs"] is not None
    ahead = [s for s in manifest["stops"] if s["ride_id"] == later]
    assert ahead and all(s["passenger"]["phone"] is None and s["needs"] is None for s in ahead)


@pytest.mark.django_db(transaction=True)
async def test_the_next_rider_editing_their_needs_updates_the_drivers_manifest(ws, run_day):
    """
    The driver heads for the next pickup with its rider's needs card in the
    manifest; the rider adds that they need help boarding: the driver hears
    manifest_updated with the new card before they reach the door.
    """
    await db(publish, run_day["plan"])
    comm = await driver_socket(ws, run_day["driver"])
    manifest = await comm.receive_json_from()
    first = manifest["stops"][0]
    assert first["needs"]["assistance_boarding"] is False
    rider = await db(Ride.objects.select_related("passenger").get, ride_id=first["ride_id"])
    await db(profiles.profile_update, user=rider.passenger, needs_assistance_boarding=True)
    updated, _ = await receive_until(comm, "manifest_updated")
    assert by_ride(updated, first["ride_id"])["needs"]["assistance_boarding"] is True
