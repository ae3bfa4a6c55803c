"""
On the day: where each run stands against its promises (a run running
late), planning again what remains (done stops kept, locked and reached
trips on their runs, passengers aboard dropped off by the vehicle they are
in), a will-call return joining a run that passes, and the driver's
manifest.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from dispatch import drivers, payloads, trips
from dispatch.errors import DispatchError, NotWaitingForReady
from dispatch.geo import Point
from dispatch.locations import live_position
from dispatch.models import (
    DRIVER_HELD_STATUSES,
    FINAL_STATUSES,
    DayPlan,
    PlanStatus,
    Ride,
    RideStatus,
    Run,
    Stop,
    StopKind,
)
from dispatch.planning import build as rows
from dispatch.planning import services
from dispatch.planning.insertion import insert
from dispatch.planning.solver import solve
from dispatch.planning.timetable import as_asked, timetable
from dispatch.planning.travel import travel_times
from people.models import User

S = RideStatus


def is_done(stop: Stop) -> bool:
    """A stop behind the run: its ride picked up (pickups), or ended."""
    if stop.ride.status in FINAL_STATUSES:
        return True
    return stop.kind == StopKind.PICKUP and stop.ride.status == S.IN_PROGRESS


def _stops(run: Run) -> list[Stop]:
    return list(run.stops.select_related("ride__passenger__passenger_profile").order_by("sequence"))


# --- a run running late --------------------------------------------------------------


@dataclass(frozen=True)
class Forecast:
    stop: Stop
    eta: datetime
    # The end of the window promised to the rider (pickups), or the stop's own.
    promised_by: datetime
    minutes_late: int


def run_forecast(
    run: Run, *, now: datetime | None = None, position: Point | None = None
) -> list[Forecast]:
    """
    When the run will reach each stop left, driving from where the driver
    is now (their live position; the planned times when it is unknown).
    """
    now = now or timezone.now()
    left = [s for s in _stops(run) if not is_done(s)]
    if not left:
        return []
    position = position or live_position(run.driver_id)
    places = [(s.ride.pickup_latitude, s.ride.pickup_longitude) if s.kind == StopKind.PICKUP
              else (s.ride.dropoff_latitude, s.ride.dropoff_longitude) for s in left]  # fmt: skip
    if position is not None:
        d = travel_times().matrix([(position.lat, position.lng), *places]).tolist()
        clock = now
    else:
        d = travel_times().matrix([places[0], *places]).tolist()
        clock = max(now, left[0].arrival_at)
    forecasts = []
    for i, stop in enumerate(left, start=1):
        eta = clock + timedelta(seconds=d[i - 1][i])
        promised = stop.window_end
        if stop.kind == StopKind.PICKUP and stop.ride.confirmed_window_end:
            promised = stop.ride.confirmed_window_end
        late = max(0, math.ceil((eta - promised).total_seconds() / 60))
        forecasts.append(Forecast(stop, eta, promised, late))
        service = stop.departure_at - stop.service_at
        clock = max(eta, stop.window_start) + service
    return forecasts


def late_runs(service_date: date, *, now: datetime | None = None) -> list[tuple[Run, Forecast]]:
    """Runs whose next pickup will miss its window, with how many minutes late."""
    late = []
    runs = Run.objects.filter(plan__service_date=service_date).select_related("driver")
    for run in runs:
        pickups = [f for f in run_forecast(run, now=now) if f.stop.kind == StopKind.PICKUP]
        if pickups and pickups[0].minutes_late > 0:
            late.append((run, pickups[0]))
    return late


# --- planning what remains -------------------------------------------------------------


def _remaining(
    plan: DayPlan,
    now: datetime,
    *,
    runs: list[Run] | None = None,
    extra: tuple[Ride, ...] = (),
    waiting: bool = True,
):
    """
    The problem of what is left of the day at `now`: shifts still on, each
    vehicle starting where its driver is; trips not done, those aboard
    pinned to their vehicle, those whose run has reached them (or that a
    dispatcher locked) on their run; `waiting`: the day's rides on no run
    whose time is still ahead; `extra` rides (a will-call return) too.
    """
    runs = runs if runs is not None else list(plan.runs.select_related("shift", "driver"))
    runs = [r for r in runs if r.shift.end_at > now]
    rides, starts, done = [], {}, {}
    for run in runs:
        stops = _stops(run)
        done[run.pk] = [s for s in stops if is_done(s)]
        if run.shift.start_at < now:
            point = live_position(run.driver_id)
            shift = run.shift
            at = (point.lat, point.lng) if point else (shift.start_latitude, shift.start_longitude)
            starts[shift.pk] = (at, now)
        for ride in {s.ride_id: s.ride for s in stops if not is_done(s)}.values():
            ride.run = run
            rides.append(ride)
    if waiting:
        on_no_run = rows.plannable_rides(plan.service_date).filter(run__isnull=True)
        rides += [r for r in on_no_run if (r.pickup_at or r.appointment_at) > now]
    rides += list(extra)
    late_by = 2 * settings.PICKUP_WINDOW_MIN * 60

    def adjust(ride: Ride, trip: dict, day: rows.DayProblem) -> dict:
        t = day.seconds(now)
        if ride.status == S.IN_PROGRESS:
            started = day.seconds(ride.started_at or now)
            direct = day.problem.durations[trip["pickup"]][trip["dropoff"]]
            limit = max(started + trip["max_ride_s"], t + direct + late_by)
            return {"on_board": ride.run.shift_id, "dropoff_window": (t, limit)}
        if ride.status in DRIVER_HELD_STATUSES or ride.run_locked:
            a, b = trip["pickup_window"]
            return {
                "locked_to": ride.run.shift_id,
                "pickup_window": (max(t, a), max(t + late_by, b)),
            }
        return {}

    day = rows.build(
        plan.service_date,
        rides=rides,
        shifts=[r.shift for r in runs],
        starts=starts,
        adjust=adjust,
    )
    return day, {r.shift_id: r for r in runs}, done


def _write_remaining(day, runs: dict[int, Run], done: dict[int, list[Stop]], routes) -> None:
    for route in routes:
        run = runs[route.vehicle]
        kept = done[run.pk]
        run.stops.exclude(pk__in=[s.pk for s in kept]).delete()
        rows.write_route(day, run, route, first=max((s.sequence for s in kept), default=-1) + 1)


def replan_remaining(
    *,
    plan: DayPlan,
    actor: User | None = None,
    now: datetime | None = None,
    expected_version: int | None = None,
) -> DayPlan:
    """
    Plan again what remains of a day under way; riders whose window moved
    are told (the plan is published). `expected_version`: the plan as the
    dispatcher's screen showed it.
    """
    now = now or timezone.now()
    # The plan the solver starts from: one changed meanwhile is not written over.
    seen = services.seen_version(plan, expected_version)
    day, runs, done = _remaining(plan, now)
    solved = solve(
        day.problem,
        exploration=settings.PLAN_EXPLORATION,
        timeout_s=settings.PLAN_TIMEOUT_S,
        threads=settings.PLAN_THREADS or None,
    )
    with transaction.atomic():
        plan = services._locked(plan, seen)
        routes = {route.vehicle: route for route in solved.routes}
        for key, run in runs.items():
            route = routes.get(key) or timetable(day.problem, day.problem.vehicle[key], [])
            _write_remaining(day, {key: run}, done, [route])
        for key, reason in solved.unassigned.items():
            Ride.objects.filter(pk=key, status=S.SCHEDULED).update(
                run=None, run_locked=False, unplanned_reason=reason
            )
        services.audit(plan, "replanned", actor=actor, **services.stats(day, solved))
        if plan.status == PlanStatus.PUBLISHED:
            services.tell_riders(plan, actor=actor)
            services.tell_drivers(plan, "replanned")
    return plan


# How often a will-call return's join is worked out again when the plan
# changed while it was (another return joined, a dispatcher moved a trip).
JOIN_TRIES = 3


def _cheapest_join(plan: DayPlan, ride: Ride, now: datetime):
    """
    The on-shift run that can take the ready return at the least cost,
    as the plan stands: (day, runs, done, route), or None.
    """
    on_shift = list(
        plan.runs.select_related("shift", "driver").filter(
            shift__start_at__lte=now, shift__end_at__gt=now
        )
    )
    if not on_shift:
        return None
    day, runs, done = _remaining(plan, now, runs=on_shift, extra=(ride,), waiting=False)
    trip = day.problem.trip[ride.pk]
    best = None
    for key, run in runs.items():
        sequence = [s for s in rows.sequence_of(run, done={s.ride_id for s in done[run.pk]})]
        sequence = [s for s in sequence if s[0] in day.problem.trip]
        current = timetable(day.problem, day.problem.vehicle[key], sequence)
        found = current and insert(day.problem, current, sequence, trip)
        if found and (best is None or found[0] < best[0]):
            best = found
    return None if best is None else (day, runs, done, best[2])


def join_passing_run(*, ride: Ride, actor: User | None, now: datetime | None = None) -> bool:
    """
    A will-call return is ready: it joins the published run, on shift now,
    that can take it at the least cost within PICKUP_WINDOW_MIN x 2 of now
    and its maximum ride time. False when none can. The run is written
    only as it was worked out from: a plan changed meanwhile (another
    return joined, a dispatcher's change) is read again.
    """
    now = now or timezone.now()
    plan = DayPlan.objects.filter(
        service_date=ride.service_date, status=PlanStatus.PUBLISHED
    ).first()
    if plan is None:
        return False
    ride.pickup_at = now + timedelta(minutes=settings.PICKUP_WINDOW_MIN)
    for _ in range(JOIN_TRIES):
        seen = services.seen_version(plan, None)
        joined = _cheapest_join(plan, ride, now)
        if joined is None:
            return False
        day, runs, done, route = joined
        with transaction.atomic():
            try:
                plan = services._locked(plan, seen)
            except DispatchError:
                continue
            # Under the plan's lock, as read now: a second `ready` said at the
            # same moment finds the first one's join.
            if not Ride.objects.get(pk=ride.pk).is_waiting_for_ready:
                raise NotWaitingForReady(ride)
            Ride.objects.filter(pk=ride.pk).update(pickup_at=ride.pickup_at)
            _write_remaining(day, runs, done, [as_asked(day.problem, route)])
            run = runs[route.vehicle]
            services.audit(plan, "joined", actor=actor, ride_id=ride.ride_id, run=run.pk)
            services.tell_riders(plan, actor=actor)
            services.tell_drivers(plan, "joined", only=[run.driver_id])
            return True
    return False


# --- the driver's manifest ---------------------------------------------------------------


def _published_stops(driver: User | int, service_date: date) -> list[Stop]:
    """The driver's stops on the published plan of the day, in driving order."""
    return list(
        Stop.objects.filter(
            run__plan__service_date=service_date,
            run__plan__status=PlanStatus.PUBLISHED,
            run__driver=driver,
        )
        .select_related("ride__passenger__passenger_profile", "run__plan")
        .order_by("run__shift__start_at", "sequence")
    )


def manifest_for(driver: User, service_date: date, *, updated: bool = False) -> payloads.Manifest:
    """
    What the driver needs at each stop of their published runs of the day,
    in order: where, when, the window, and the rider's name. The needs card
    and the phone number only for the current trip (the next stop's ride,
    and those aboard): the rest of the day's riders are not the driver's
    business yet. A draft plan shows nothing. A driver who may drive no
    more (MAY_DRIVE) picks up no further rider (trips.ride_run_reached):
    their current trip is what they hold, and riders ahead are named only.
    """
    stops = _published_stops(driver, service_date)
    left = [s for s in stops if not is_done(s)]
    ahead = left[:1] if drivers.may_drive(driver.pk) else []
    current = {s.ride_id for s in ahead} | {
        s.ride_id
        for s in left
        if s.ride.status == S.IN_PROGRESS
        or (s.ride.status in DRIVER_HELD_STATUSES and s.ride.driver_id == driver.pk)
    }
    return payloads.manifest(
        driver_id=driver.pk,
        service_date=service_date,
        plan_version=stops[0].run.plan.version if stops else None,
        stops=[
            payloads.manifest_stop(
                s,
                done=is_done(s),
                is_next=bool(left) and s == left[0],
                current=s.ride_id in current,
            )
            for s in stops
        ],
        current_ride_ids=sorted({s.ride.ride_id for s in left if s.ride_id in current}),
        updated=updated,
    )


def _next_stop(driver: User | int, service_date: date) -> Stop | None:
    left = [s for s in _published_stops(driver, service_date) if not is_done(s)]
    return left[0] if left else None


def run_stops_ahead(driver_id: int, service_date: date) -> bool:
    """Whether the driver's published runs of the day have stops still to do."""
    return _next_stop(driver_id, service_date) is not None


def _as_told(driver: User, held, told: Collection[str]) -> None:
    """
    A trip message without `ride_id` is about the ride the driver's app was
    told it holds (`told`, by its socket). Refused when that ride has left
    them since (ended, cancelled, given to another driver), or when a ride
    on demand was given to them that the app has not been sent yet: the
    step would land on a ride the driver does not see, and its passenger
    hear of a driver who is elsewhere. A pickup of their own run is no
    surprise: the manifest named it next.
    """
    now_held = {r.ride_id: r for r in held.select_related("run")}
    gone = sorted(set(told) - set(now_held))
    unseen = sorted(
        ride_id
        for ride_id, ride in now_held.items()
        if ride_id not in told and (ride.run is None or ride.run.driver_id != driver.pk)
    )
    if gone or unseen:
        ride_id = (gone or unseen)[0]
        raise DispatchError(
            f"Ride {ride_id} is no longer yours: see the news of your rides, then try again."
            if gone
            else f"Ride {ride_id} has just been given to you: see it, then try again.",
            code="invalid_state",
            status=409,
            ride_id=ride_id,
        )


def trip_ride(
    *,
    driver: User,
    ride_id: str | None = None,
    told: Collection[str] | None = None,
    now: datetime | None = None,
) -> Ride:
    """
    The ride a driver's trip message (arrived, start_trip...) is about: one
    they hold; else, when they hold none (or name the next one), the next
    pickup of their published run of today, which the run reaches now.
    `told`: the rides the driver's app was told it holds, for a message
    that names none (`_as_told`).
    """
    held = Ride.objects.held_by(driver.pk)
    if ride_id is None and told is not None:
        _as_told(driver, held, told)
    if not held.filter(**({"ride_id": ride_id} if ride_id else {})).exists():
        service_date = timezone.localdate(now)
        stop = _next_stop(driver, service_date)
        if (
            stop is not None
            and stop.kind == StopKind.PICKUP
            and stop.ride.status == S.SCHEDULED
            and ride_id in (None, stop.ride.ride_id)
        ):
            ride = Ride.objects.select_related("run__driver").get(pk=stop.ride_id)
            trips.ride_run_reached(ride=ride, actor=driver, role="driver")
    return trips.drivers_active_ride(driver=driver, ride_id=ride_id)


def trip_step(
    *, driver: User, ride_id: str | None, step, told: Collection[str] | None = None
) -> Ride:
    """
    A driver's trip message: `step` (trips.ride_driver_arrived...) on the
    ride it is about (`trip_ride`), in one transaction, so a step refused
    leaves a run's next pickup unreached; then the run moves on.
    """
    with transaction.atomic():
        ride = step(ride=trip_ride(driver=driver, ride_id=ride_id, told=told), driver=driver)
    run_moved_on(driver=driver, ride=ride)
    return ride


def run_moved_on(*, driver: User, ride: Ride, now: datetime | None = None) -> Ride | None:
    """
    After a trip step on a run: when the run's next stop is the pickup of a
    ride still scheduled, due within 2 x PICKUP_WINDOW_MIN, the run reaches
    it (its rider hears the driver is on the way). A pickup further off is
    reached by the driver's first trip message for it. Returns that ride.
    """
    if ride.run_id is None or ride.service_date is None:
        return None
    stop = _next_stop(driver, ride.service_date)
    if stop is None or stop.kind != StopKind.PICKUP or stop.ride.status != S.SCHEDULED:
        return None
    lead = timedelta(minutes=2 * settings.PICKUP_WINDOW_MIN)
    if stop.service_at > (now or timezone.now()) + lead:
        return None
    reached = Ride.objects.select_related("run__driver").get(pk=stop.ride_id)
    try:
        return trips.ride_run_reached(ride=reached, actor=driver, role="driver")
    except DispatchError:
        # Refused (the driver no longer verified, the rider on a ride booked
        # now): the step itself stands; the driver hears why at their next
        # message.
        return None
