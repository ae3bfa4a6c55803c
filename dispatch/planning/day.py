"""
On the day: where each run stands against its promises (a run running
late), planning again what remains (done stops kept, locked and reached
trips on their runs, passengers aboard dropped off by the vehicle they are
in), a will-call return joining a run that passes, and the driver's
manifest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from dispatch import payloads
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
from dispatch.planning.timetable import timetable
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
    *, plan: DayPlan, actor: User | None = None, now: datetime | None = None
) -> DayPlan:
    """
    Plan again what remains of a day under way; riders whose window moved
    are told (the plan is published).
    """
    now = now or timezone.now()
    day, runs, done = _remaining(plan, now)
    solved = solve(
        day.problem,
        exploration=settings.PLAN_EXPLORATION,
        timeout_s=settings.PLAN_TIMEOUT_S,
        threads=settings.PLAN_THREADS or None,
    )
    with transaction.atomic():
        plan = services._locked(plan, None)
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
    return plan


def join_passing_run(*, ride: Ride, actor: User | None, now: datetime | None = None) -> bool:
    """
    A will-call return is ready: it joins the published run, on shift now,
    that can take it at the least cost within PICKUP_WINDOW_MIN x 2 of now
    and its maximum ride time. False when none can.
    """
    now = now or timezone.now()
    plan = DayPlan.objects.filter(
        service_date=ride.service_date, status=PlanStatus.PUBLISHED
    ).first()
    if plan is None:
        return False
    on_shift = list(
        plan.runs.select_related("shift", "driver").filter(
            shift__start_at__lte=now, shift__end_at__gt=now
        )
    )
    if not on_shift:
        return False
    ride.pickup_at = now + timedelta(minutes=settings.PICKUP_WINDOW_MIN)
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
    if best is None:
        return False
    with transaction.atomic():
        plan = services._locked(plan, None)
        Ride.objects.filter(pk=ride.pk).update(pickup_at=ride.pickup_at)
        _write_remaining(day, runs, done, [best[2]])
        services.audit(
            plan, "joined", actor=actor, ride_id=ride.ride_id, run=runs[best[2].vehicle].pk
        )
        services.tell_riders(plan, actor=actor)
    return True


# --- the driver's manifest ---------------------------------------------------------------


def manifest_for(driver: User, service_date: date) -> list[dict]:
    """
    What the driver needs at each stop of their runs of the day, in order:
    where, when, the window, and the rider's name. The needs card and the
    phone number only for the current trip (the next stop's ride, and
    those aboard): the rest of the day's riders are not the driver's
    business yet.
    """
    stops = list(
        Stop.objects.filter(run__plan__service_date=service_date, run__driver=driver)
        .select_related("ride__passenger__passenger_profile")
        .order_by("run__shift__start_at", "sequence")
    )
    left = [s for s in stops if not is_done(s)]
    current = {s.ride_id for s in left[:1]} | {
        s.ride_id for s in left if s.ride.status == S.IN_PROGRESS
    }
    manifest = []
    for stop in stops:
        ride = stop.ride
        pickup = stop.kind == StopKind.PICKUP
        place = "pickup" if pickup else "dropoff"
        now_serving = ride.pk in current
        person = payloads.person(ride.passenger)
        manifest.append(
            {
                "run_id": stop.run_id,
                "sequence": stop.sequence,
                "kind": stop.kind,
                "ride_id": ride.ride_id,
                "status": ride.status,
                "done": is_done(stop),
                "planned_at": stop.service_at.isoformat(),
                "window_start": (ride.confirmed_window_start or stop.window_start).isoformat()
                if pickup
                else stop.window_start.isoformat(),
                "window_end": (ride.confirmed_window_end or stop.window_end).isoformat()
                if pickup
                else stop.window_end.isoformat(),
                "latitude": getattr(ride, f"{place}_latitude"),
                "longitude": getattr(ride, f"{place}_longitude"),
                "address": getattr(ride, f"{place}_address"),
                "passenger": {
                    "name": person["name"],
                    "phone": person["phone"] if now_serving else None,
                },
                "needs": payloads.needs_card(ride) if now_serving else None,
            }
        )
    return manifest
