"""
Planning a day in the database and a dispatcher's review: runs and stops,
publishing the pickup windows to riders and caregivers (each hearing only
their own), moves, locks, the driver's manifest, a run running late, a run
reaching its rides, and planning again what remains of the day.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from dispatch import rides, trips
from dispatch.errors import DispatchError, IllegalTransition
from dispatch.geo import Point
from dispatch.models import DayPlan, DriverShift, PlanEvent, Ride, RideStatus, Stop
from dispatch.planning import day as on_the_day
from dispatch.planning import services
from dispatch.scheduling import Needs, Place, ride_book_ahead, ride_ready
from people.models import VehicleType
from tests.conftest import JHB, db, receive_until, token_for

DEPOT = Place(JHB[0], JHB[1], "Depot")


def tomorrow():
    return timezone.localdate() + timedelta(days=1)


def at(hour: int, minute: int = 0, day=None):
    return timezone.make_aware(datetime.combine(day or tomorrow(), time(hour, minute)))


def shift_for(driver, *, wheelchair=0, start=6, end=18, day=None):
    return DriverShift.objects.create(
        driver=driver,
        start_at=at(start, day=day),
        end_at=at(end, day=day),
        start_latitude=DEPOT.latitude,
        start_longitude=DEPOT.longitude,
        end_latitude=DEPOT.latitude,
        end_longitude=DEPOT.longitude,
        seats=4,
        wheelchair_spaces=wheelchair,
    )


def book(passenger, hour, minute=0, *, km=3.0, wheelchair=False, by=None, day=None):
    north = km / 111
    return ride_book_ahead(
        passenger=passenger,
        booked_by=by or passenger,
        pickup=Place(JHB[0] + 0.01, JHB[1], f"{passenger.first_name}'s home"),
        dropoff=Place(JHB[0] + 0.01 + north, JHB[1] + 0.01, "Clinic"),
        pickup_at=at(hour, minute, day=day),
        needs=Needs(wheelchair=wheelchair),
        now=at(0, 0, day=day) - timedelta(hours=1) if day else None,
    )


@pytest.fixture
def day(db, passenger, make_user, make_link, make_driver):
    """Sarah (followed by Emily) and Bob tomorrow morning; John and a wheelchair van on shift."""
    emily = make_user("caregiver", first_name="Emily", last_name="Davis")
    make_link(passenger, emily, can_book_rides=True)
    bob = make_user("passenger", first_name="Bob", last_name="Rider")
    john = make_driver(first_name="John", last_name="Doe")
    mike = make_driver(first_name="Mike", vehicle_type=VehicleType.WHEELCHAIR_ACCESSIBLE)
    shifts = [shift_for(john), shift_for(mike, wheelchair=2)]
    sarah_ride = book(passenger, 8, 0, by=emily)
    bob_ride = book(bob, 8, 5)
    chair_ride = book(make_user("passenger"), 9, 0, wheelchair=True)
    return {
        "sarah": passenger,
        "emily": emily,
        "bob": bob,
        "john": john,
        "mike": mike,
        "shifts": shifts,
        "rides": [sarah_ride, bob_ride, chair_ride],
    }


def plan_tomorrow(**extra):
    return services.plan_day(service_date=tomorrow(), timeout_s=5, **extra)


@pytest.mark.django_db
def test_planning_a_day_puts_each_trip_on_a_run_with_its_stops_in_order(day, settings):
    settings.PLAN_EXPLORATION = 1
    plan = plan_tomorrow()
    assert plan.stats["assigned"] == 3 and plan.stats["unassigned"] == 0
    chair = Ride.objects.get(pk=day["rides"][2].pk)
    assert chair.run.driver == day["mike"]
    for ride in Ride.objects.filter(pk__in=[r.pk for r in day["rides"]]):
        pickup, dropoff = ride.stops.get(kind="pickup"), ride.stops.get(kind="dropoff")
        assert pickup.run == dropoff.run == ride.run
        assert pickup.sequence < dropoff.sequence
        assert pickup.window_start <= pickup.service_at <= pickup.window_end
    assert PlanEvent.objects.filter(plan=plan, kind="planned").count() == 1
    assert plan.status == "draft"


@pytest.mark.django_db
def test_a_ride_no_shift_can_carry_is_left_with_its_reason(day, settings, make_user):
    settings.PLAN_EXPLORATION = 0
    late = book(make_user("passenger"), 21, 0)
    plan = plan_tomorrow()
    late.refresh_from_db()
    assert late.run is None and late.unplanned_reason == "no_shift_covers_window"
    assert services.unassigned_of(plan)[0][0] == late


@pytest.mark.django_db(transaction=True)
async def test_publishing_tells_each_rider_and_caregiver_their_own_window_only(ws, day, settings):
    settings.PLAN_EXPLORATION = 1
    sarah, emily = day["sarah"], day["emily"]
    caregiver = await ws("/ws/caregiver/", token=await db(token_for, emily))
    await caregiver.receive_json_from()
    rider = await ws("/ws/passenger/", token=await db(token_for, sarah))
    await rider.receive_json_from()
    plan = await db(plan_tomorrow)
    sarah_ride, bob_ride = [await db(Ride.objects.get, pk=r.pk) for r in day["rides"][:2]]
    run = await db(lambda: sarah_ride.run)
    await db(services.trip_move, ride=bob_ride, to_run=run, actor=None)
    await db(services.plan_publish, plan=plan)
    told, _ = await receive_until(rider, "pickup_window")
    heard, _ = await receive_until(caregiver, "pickup_window")
    ride = await db(Ride.objects.get, pk=day["rides"][0].pk)
    assert told["ride_id"] == heard["ride_id"] == ride.ride_id
    assert told["window_start"] == timezone.localtime(ride.confirmed_window_start).isoformat()
    driver = await db(lambda: run.driver)
    assert told["changed"] is False and told["driver"]["name"] == driver.get_full_name()
    assert "phone" not in told["driver"]
    assert heard["event"] == "pickup_window"
    # Bob rides the same run: Emily hears nothing of him, by name or address.
    assert await caregiver.receive_nothing(timeout=0.5)
    assert "Bob" not in str(heard)
    kinds = await db(lambda: list(ride.events.order_by("version").values_list("kind", flat=True)))
    assert kinds == ["scheduled", "planned"]


@pytest.mark.django_db
def test_a_move_is_refused_in_words_when_the_run_cannot_take_it(day, settings):
    settings.PLAN_EXPLORATION = 1
    plan = plan_tomorrow()
    chair = Ride.objects.get(pk=day["rides"][2].pk)
    john_run = plan.runs.get(driver=day["john"])
    with pytest.raises(DispatchError, match="cannot take"):
        services.trip_move(ride=chair, to_run=john_run, actor=None)
    assert Ride.objects.get(pk=chair.pk).run.driver == day["mike"]


@pytest.mark.django_db
def test_a_move_on_a_published_plan_tells_the_rider_at_once(day, settings, dispatcher):
    settings.PLAN_EXPLORATION = 1
    plan = plan_tomorrow()
    services.plan_publish(plan=plan, actor=dispatcher)
    bob_ride = Ride.objects.get(pk=day["rides"][1].pk)
    other = plan.runs.exclude(pk=bob_ride.run_id).get()
    services.trip_move(ride=bob_ride, to_run=other, actor=dispatcher, lock=True)
    bob_ride.refresh_from_db()
    assert bob_ride.run == other and bob_ride.run_locked
    kinds = [e.kind for e in bob_ride.events.order_by("version")]
    assert kinds[:2] == ["scheduled", "planned"]
    moved = PlanEvent.objects.get(plan=plan, kind="moved")
    assert moved.actor == dispatcher and moved.payload["to_run"] == other.pk
    # Planning again keeps the locked trip where the dispatcher put it.
    plan_tomorrow(actor=dispatcher)
    bob_ride.refresh_from_db()
    assert bob_ride.run == other


@pytest.mark.django_db
def test_a_move_leaves_the_other_riders_of_its_runs_at_the_times_they_asked_for(
    day, settings, dispatcher
):
    """Moving one trip does not tell the other riders of both runs an earlier pickup."""
    settings.PLAN_EXPLORATION = 1
    plan = plan_tomorrow()
    services.plan_publish(plan=plan, actor=dispatcher)
    sarah_ride, bob_ride, chair_ride = (Ride.objects.get(pk=r.pk) for r in day["rides"])
    assert sarah_ride.confirmed_pickup_at == sarah_ride.pickup_at
    other = plan.runs.exclude(pk=bob_ride.run_id).get()
    services.trip_move(ride=bob_ride, to_run=other, actor=dispatcher)
    for ride in (sarah_ride, bob_ride, chair_ride):
        ride.refresh_from_db()
        assert ride.confirmed_pickup_at == ride.pickup_at
    assert [e.kind for e in sarah_ride.events.order_by("version")] == ["scheduled", "planned"]
    assert [e.kind for e in chair_ride.events.order_by("version")] == ["scheduled", "planned"]


@pytest.mark.django_db
def test_a_rider_moved_to_another_driver_at_the_same_time_hears_of_the_new_driver(
    passenger, make_driver, settings, dispatcher
):
    """A move to another driver that keeps the pickup time still tells the rider."""
    settings.PLAN_EXPLORATION = 1
    john = make_driver(first_name="John", last_name="Doe")
    mike = make_driver(first_name="Mike", last_name="Mokoena")
    shift_for(john), shift_for(mike)
    ride = book(passenger, 8, 0)
    plan = plan_tomorrow()
    services.plan_publish(plan=plan, actor=dispatcher)
    for _ in range(2):
        ride.refresh_from_db()
        other = plan.runs.exclude(pk=ride.run_id).get()
        services.trip_move(ride=ride, to_run=other, actor=dispatcher)
    ride.refresh_from_db()
    told = ride.events.filter(kind="planned").latest("version")
    assert told.payload["driver_id"] == ride.run.driver_id
    assert told.payload["planned_pickup_at"] == ride.confirmed_pickup_at.isoformat()


@pytest.mark.django_db
def test_a_stale_screen_is_refused(day, settings):
    settings.PLAN_EXPLORATION = 0
    plan = plan_tomorrow()
    with pytest.raises(DispatchError, match="changed while you were looking"):
        services.plan_publish(plan=plan, expected_version=plan.version - 1)


@pytest.mark.django_db
def test_the_manifest_gives_needs_and_phone_for_the_current_trip_only(day, settings):
    settings.PLAN_EXPLORATION = 1
    plan = plan_tomorrow()
    sarah_ride, bob_ride = (Ride.objects.get(pk=r.pk) for r in day["rides"][:2])
    services.trip_move(ride=bob_ride, to_run=sarah_ride.run, actor=None)
    driver = sarah_ride.run.driver
    assert on_the_day.manifest_for(driver, tomorrow())["stops"] == []
    services.plan_publish(plan=DayPlan.objects.get(pk=plan.pk))
    manifest = on_the_day.manifest_for(driver, tomorrow())["stops"]
    expected = Stop.objects.filter(run__driver=driver).count()
    assert len(manifest) == expected >= 4 and plan.runs.count() == 2
    first = manifest[0]
    assert first["passenger"]["phone"] and first["needs"] is not None
    others = [m for m in manifest if m["ride_id"] != first["ride_id"]]
    assert all(m["passenger"]["phone"] is None and m["needs"] is None for m in others)
    assert all(m["passenger"]["name"] for m in manifest)


@pytest.mark.django_db
def test_a_run_whose_next_pickup_will_miss_its_window_is_late(day, settings):
    settings.PLAN_EXPLORATION = 1
    plan_tomorrow()
    run = Ride.objects.get(pk=day["rides"][0].pk).run
    first = run.stops.order_by("sequence").first()
    now = first.window_end - timedelta(minutes=5)
    far = Point(JHB[0] + 0.3, JHB[1], 0)
    forecast = on_the_day.run_forecast(run, now=now, position=far)
    assert forecast[0].stop == first and forecast[0].minutes_late > 10
    near = Point(first.ride.pickup_latitude, first.ride.pickup_longitude, 0)
    assert on_the_day.run_forecast(run, now=now, position=near)[0].minutes_late == 0


@pytest.mark.django_db
def test_a_run_reaching_its_rides_assigns_them_and_one_driver_holds_both(day, settings):
    settings.PLAN_EXPLORATION = 1
    plan_tomorrow()
    sarah_ride, bob_ride = (Ride.objects.get(pk=r.pk) for r in day["rides"][:2])
    services.trip_move(ride=bob_ride, to_run=sarah_ride.run, actor=None)
    driver = sarah_ride.run.driver
    for ride in (sarah_ride, bob_ride):
        ride = Ride.objects.select_related("run__driver").get(pk=ride.pk)
        trips.ride_run_reached(ride=ride)
    held = Ride.objects.held_by(driver.pk)
    assert [r.pk for r in held] == [sarah_ride.pk, bob_ride.pk]
    # A trip step names its ride when the driver holds several.
    ride = trips.drivers_active_ride(driver=driver, ride_id=bob_ride.ride_id)
    trips.ride_driver_arrived(ride=ride, driver=driver)
    assert Ride.objects.get(pk=bob_ride.pk).status == RideStatus.DRIVER_ARRIVED


@pytest.mark.django_db
def test_planning_what_remains_keeps_done_stops_and_drops_off_those_aboard(day, settings):
    settings.PLAN_EXPLORATION = 1
    plan = plan_tomorrow()
    sarah_ride = Ride.objects.select_related("run__driver").get(pk=day["rides"][0].pk)
    trips.ride_run_reached(ride=sarah_ride)
    driver = sarah_ride.run.driver
    for step in (trips.ride_driver_arrived, trips.ride_start):
        step(ride=trips.drivers_active_ride(driver=driver), driver=driver)
    pickup = Stop.objects.get(ride=sarah_ride, kind="pickup")
    now = pickup.service_at + timedelta(minutes=2)
    on_the_day.replan_remaining(plan=plan, now=now)
    assert Stop.objects.get(pk=pickup.pk).sequence == pickup.sequence
    dropoff = Stop.objects.get(ride=sarah_ride, kind="dropoff")
    assert dropoff.run == pickup.run and dropoff.sequence > pickup.sequence
    assert PlanEvent.objects.filter(plan=plan, kind="replanned").exists()


@pytest.mark.django_db
def test_plan_day_command_plans_the_date(day, settings, capsys):
    settings.PLAN_EXPLORATION = 0
    call_command("plan_day", "--date", tomorrow().isoformat(), "--publish")
    out = capsys.readouterr().out
    assert "3 of 3 trips on runs" in out
    assert DayPlan.objects.get(service_date=tomorrow()).status == "published"


@pytest.mark.django_db
def test_planning_a_day_under_way_again_is_refused(day, settings):
    settings.PLAN_EXPLORATION = 0
    plan_tomorrow()
    trips.ride_run_reached(
        ride=Ride.objects.select_related("run__driver").get(pk=day["rides"][0].pk)
    )
    with pytest.raises(DispatchError, match="under way"):
        plan_tomorrow()


@pytest.mark.postgres
@pytest.mark.django_db
def test_on_postgresql_a_run_driver_holds_several_rides_but_one_on_demand(day, settings):
    from django.db import IntegrityError, transaction

    settings.PLAN_EXPLORATION = 1
    plan_tomorrow()
    sarah_ride, bob_ride = (Ride.objects.get(pk=r.pk) for r in day["rides"][:2])
    services.trip_move(ride=bob_ride, to_run=sarah_ride.run, actor=None)
    for ride in (sarah_ride, bob_ride):
        trips.ride_run_reached(ride=Ride.objects.select_related("run__driver").get(pk=ride.pk))
    driver = sarah_ride.run.driver
    assert Ride.objects.held_by(driver.pk).count() == 2
    on_demand = [
        rides.ride_request(
            ride_id=f"now-{n}",
            passenger=p,
            booked_by=p,
            pickup_latitude=JHB[0],
            pickup_longitude=JHB[1],
            dropoff_latitude=JHB[0],
            dropoff_longitude=JHB[1],
        )  # fmt: skip
        for n, p in enumerate((day["emily"], day["john"]))
    ]
    Ride.objects.filter(pk=on_demand[0].pk).update(status="assigned", driver=driver)
    with pytest.raises(IntegrityError), transaction.atomic():
        Ride.objects.filter(pk=on_demand[1].pk).update(status="assigned", driver=driver)


def _will_call_on_a_published_day(
    passenger, driver, monkeypatch, *, later=None, outbound_ends=RideStatus.COMPLETED
):
    """
    A will-call return of today, its outbound on the published plan of a
    shift under way and ended (`outbound_ends`: dropped off) by two in the
    afternoon, when its rider is ready; `later`, another rider on the day,
    picked up at four.
    """
    # Nine in the morning: the outbound half an hour on is still today's.
    now = timezone.make_aware(datetime.combine(timezone.localdate(), time(9, 0)))
    monkeypatch.setattr(timezone, "now", lambda: now)
    DriverShift.objects.create(
        driver=driver, start_at=now - timedelta(hours=1), end_at=now + timedelta(hours=9),
        start_latitude=DEPOT.latitude, start_longitude=DEPOT.longitude,
        end_latitude=DEPOT.latitude, end_longitude=DEPOT.longitude,
    )  # fmt: skip
    outbound = ride_book_ahead(
        passenger=passenger,
        booked_by=passenger,
        pickup=Place(JHB[0] + 0.01, JHB[1], "Home"),
        dropoff=Place(JHB[0] + 0.03, JHB[1] + 0.01, "Clinic"),
        pickup_at=now + timedelta(minutes=30),
        return_will_call=True,
    )
    if later is not None:
        ride_book_ahead(
            passenger=later,
            booked_by=later,
            pickup=Place(JHB[0] + 0.02, JHB[1], "Bob's home"),
            dropoff=Place(JHB[0] + 0.03, JHB[1] + 0.02, "Pharmacy"),
            pickup_at=now + timedelta(hours=7),
        )
    plan = services.plan_day(service_date=outbound.service_date, timeout_s=5)
    services.plan_publish(plan=plan)
    # Two in the afternoon: the rider was taken to the clinic this morning.
    now += timedelta(hours=5)
    Ride.objects.filter(pk=outbound.pk).update(status=outbound_ends)
    return plan, outbound.returns.get()


@pytest.mark.django_db
def test_a_ready_will_call_return_joins_a_run_passing_by(
    passenger, make_driver, settings, monkeypatch
):
    settings.PLAN_EXPLORATION = 1
    driver = make_driver(first_name="John", last_name="Doe")
    plan, back = _will_call_on_a_published_day(passenger, driver, monkeypatch)
    ride_ready(ride=back, actor=passenger)
    back.refresh_from_db()
    assert back.status == RideStatus.SCHEDULED and back.run.driver == driver
    assert back.confirmed_window_start is not None
    assert [e.kind for e in back.events.order_by("version")] == ["scheduled", "planned"]
    assert PlanEvent.objects.filter(plan=plan, kind="joined").exists()


@pytest.mark.django_db
def test_the_day_planned_again_keeps_a_return_that_joined_a_run(
    passenger, make_driver, settings, monkeypatch
):
    """
    A ready will-call return has joined a run; the dispatcher plans the day
    again: the return stays planned (its stops too), not left on a run with
    no stop, unable to be said ready again.
    """
    settings.PLAN_EXPLORATION = 1
    # Driven there by her daughter: the day is not under way, so it may be
    # planned again from the start.
    plan, back = _will_call_on_a_published_day(
        passenger, make_driver(), monkeypatch, outbound_ends=RideStatus.CANCELLED
    )
    ride_ready(ride=back, actor=passenger)
    services.plan_day(service_date=back.service_date, timeout_s=5)
    back.refresh_from_db()
    assert back.run_id is not None
    assert sorted(Stop.objects.filter(ride=back).values_list("kind", flat=True)) == [
        "dropoff",
        "pickup",
    ]


@pytest.mark.django_db
def test_two_readies_at_once_join_the_run_once(passenger, make_driver, settings, monkeypatch):
    """
    The passenger and a caregiver say ready at the same moment: both read
    the return as waiting, the first joins a run, and the second, under the
    plan's lock, finds it joined and is refused; nothing is written twice.
    """
    settings.PLAN_EXPLORATION = 1
    _, back = _will_call_on_a_published_day(passenger, make_driver(), monkeypatch)
    read_by_the_second = Ride.objects.get(pk=back.pk)
    ride_ready(ride=back, actor=passenger)
    with pytest.raises(IllegalTransition):
        on_the_day.join_passing_run(ride=read_by_the_second, actor=passenger)
    assert Stop.objects.filter(ride=back).count() == 2


@pytest.mark.django_db
def test_ready_said_again_after_joining_a_run_is_invalid_state(
    passenger, make_driver, settings, monkeypatch
):
    """A will-call return on the run it joined is not waiting for ready: said again, it stays."""
    settings.PLAN_EXPLORATION = 1
    _, back = _will_call_on_a_published_day(passenger, make_driver(), monkeypatch)
    ride_ready(ride=back, actor=passenger)
    back.refresh_from_db()
    with pytest.raises(IllegalTransition):
        ride_ready(ride=back, actor=passenger)
    back.refresh_from_db()
    assert back.status == RideStatus.SCHEDULED and back.run_id is not None
    assert Stop.objects.filter(ride=back).count() == 2


def test_a_will_call_joining_a_run_leaves_its_riders_at_the_times_they_asked_for(
    passenger, make_driver, make_user, settings, monkeypatch
):
    """A ready return joins as early as the run can; the run's riders keep their times."""
    settings.PLAN_EXPLORATION = 1
    driver = make_driver(first_name="John", last_name="Doe")
    bob = make_user("passenger", first_name="Bob", last_name="Rider")
    _, back = _will_call_on_a_published_day(passenger, driver, monkeypatch, later=bob)
    ride_ready(ride=back, actor=passenger)
    other = Ride.objects.get(passenger=bob)
    back.refresh_from_db()
    assert other.run == back.run
    assert other.confirmed_pickup_at == other.pickup_at
    assert [e.kind for e in other.events.order_by("version")] == ["scheduled", "planned"]
    # Not held back to the middle of its window (its pickup_at): it is ready now.
    assert back.run.driver == driver
    assert back.confirmed_pickup_at < back.pickup_at - timedelta(minutes=1)


@pytest.mark.django_db
def test_a_run_under_way_is_not_rebuilt_by_a_move(day, settings):
    """
    A move rebuilds a run from its shift's start: on a run that has begun it
    would drop the stops already done. It is refused; what remains is
    planned from now instead.
    """
    settings.PLAN_EXPLORATION = 1
    plan = plan_tomorrow()
    sarah_ride, bob_ride = (Ride.objects.get(pk=r.pk) for r in day["rides"][:2])
    services.trip_move(ride=bob_ride, to_run=sarah_ride.run, actor=None)
    services.plan_publish(plan=plan.__class__.objects.get(pk=plan.pk))
    run = Ride.objects.get(pk=sarah_ride.pk).run
    first = Stop.objects.filter(run=run).order_by("sequence").first().ride
    trips.ride_run_reached(ride=Ride.objects.select_related("run__driver").get(pk=first.pk))
    other = bob_ride if first.pk == sarah_ride.pk else sarah_ride
    stops_before = list(run.stops.values_list("ride_id", "kind", "sequence"))
    with pytest.raises(DispatchError) as refused:
        services.trip_move(ride=Ride.objects.get(pk=other.pk), to_run=None, actor=None)
    assert refused.value.code == "invalid_state" and "under way" in str(refused.value)
    assert list(run.stops.values_list("ride_id", "kind", "sequence")) == stops_before


def test_two_returns_ready_at_once_both_keep_their_place_on_the_run(
    passenger, make_driver, make_user, settings, monkeypatch
):
    """
    Two riders at the clinic say ready at the same moment: while the first
    one's place on the run is worked out, the second joins it. The first is
    worked out again, and both keep their stops: neither is left on the run
    with no stop, told a window no driver will keep.
    """
    settings.PLAN_EXPLORATION = 1
    _, back = _will_call_on_a_published_day(passenger, make_driver(), monkeypatch)
    bob = make_user("passenger", first_name="Bob", last_name="Rider")
    bobs_outbound = ride_book_ahead(
        passenger=bob,
        booked_by=bob,
        pickup=Place(JHB[0] + 0.02, JHB[1], "Bob's home"),
        dropoff=Place(JHB[0] + 0.03, JHB[1] + 0.01, "Clinic"),
        pickup_at=timezone.now() + timedelta(minutes=30),
        return_will_call=True,
    )
    # His daughter drove him there.
    Ride.objects.filter(pk=bobs_outbound.pk).update(status=RideStatus.CANCELLED)
    bobs_back = bobs_outbound.returns.get()
    cheapest = on_the_day.insert
    meanwhile = []

    def while_working_it_out(*args, **kwargs):
        if not meanwhile:
            meanwhile.append(bobs_back)
            ride_ready(ride=bobs_back, actor=bob)
        return cheapest(*args, **kwargs)

    monkeypatch.setattr(on_the_day, "insert", while_working_it_out)
    ride_ready(ride=back, actor=passenger)
    for ride in (back, bobs_back):
        ride.refresh_from_db()
        assert ride.status == RideStatus.SCHEDULED and ride.run_id is not None
        assert Stop.objects.filter(ride=ride, run=ride.run).count() == 2
        assert ride.confirmed_pickup_at is not None
