"""
Planning a day and a dispatcher's review of it: plan (or plan again,
keeping locks), move a trip between runs, lock it to its run, publish.
Each is one transaction that bumps the plan's version and writes a
PlanEvent; riders hear of their confirmed pickup window when a plan is
published, and again whenever a published plan changes it
(`tell_riders`).
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from dispatch import broadcast, rides
from dispatch.errors import DispatchError, IllegalTransition
from dispatch.models import (
    DRIVER_HELD_STATUSES,
    DayPlan,
    PlanEvent,
    PlanStatus,
    Ride,
    RideEvent,
    RideStatus,
    Run,
    Stop,
    StopKind,
)
from dispatch.planning import build as rows
from dispatch.planning.insertion import insert
from dispatch.planning.problem import MOVED_OFF, REASONS, Plan
from dispatch.planning.solver import solve
from dispatch.planning.timetable import as_asked, timetable
from dispatch.planning.verify import verify
from people.models import User

log = logging.getLogger(__name__)


def plan_for(service_date: date) -> DayPlan:
    plan, _ = DayPlan.objects.get_or_create(service_date=service_date)
    return plan


def _locked(plan: DayPlan, expected_version: int | None) -> DayPlan:
    """The plan row, locked for this transaction; a stale screen is refused."""
    plan = DayPlan.objects.select_for_update().get(pk=plan.pk)
    if expected_version is not None and expected_version != plan.version:
        raise DispatchError(
            f"The plan of {plan.service_date} changed while you were looking at it. "
            "Check it again, then choose.",
            code="invalid_state",
            status=409,
            version=plan.version,
        )
    return plan


def seen_version(plan: DayPlan, expected_version: int | None) -> int:
    """
    The version a plan is solved from, before the solver's minutes: the
    screen's (a screen out of date is refused now, not after them), or the
    plan's as it stands (no screen). The solved plan is written only if the
    plan is still at it (_locked).
    """
    with transaction.atomic():
        plan = _locked(plan, expected_version)
    return plan.version


def audit(plan: DayPlan, kind: str, *, actor: User | None, **payload) -> PlanEvent:
    """The plan's next version, and its event (inside the caller's transaction)."""
    DayPlan.objects.filter(pk=plan.pk).update(version=F("version") + 1)
    plan.version += 1
    return PlanEvent.objects.create(
        plan=plan, version=plan.version, kind=kind, actor=actor, payload=payload
    )


def stats(day: rows.DayProblem, plan: Plan) -> dict:
    reasons: dict[str, int] = {}
    for reason in plan.unassigned.values():
        reasons[reason] = reasons.get(reason, 0) + 1
    return {
        "trips": len(day.problem.trips),
        "assigned": plan.assigned,
        "unassigned": len(plan.unassigned),
        "unassigned_reasons": reasons,
        "vehicles": len(day.problem.vehicles),
        "vehicles_used": plan.vehicles_used,
        "vehicle_hours": round(plan.vehicle_hours, 2),
    }


def plan_day(
    *,
    service_date: date,
    actor: User | None = None,
    timeout_s: float | None = None,
    expected_version: int | None = None,
) -> DayPlan:
    """
    Plan the day's scheduled rides onto its shifts (or plan them again:
    locked trips stay on their runs). The solver runs outside any
    transaction; the plan is written in one. A published plan stays
    published, and riders whose window changed are told.
    """
    under_way = (
        Ride.objects.on(service_date)
        .filter(run__isnull=False)
        .exclude(status__in=[RideStatus.SCHEDULED, RideStatus.CANCELLED])
    )
    if under_way.exists():
        raise DispatchError(
            f"The day {service_date} is under way: plan what remains instead.",
            code="invalid_state",
            status=409,
        )
    plan = plan_for(service_date)
    # The plan the solver starts from: one changed meanwhile (a trip moved
    # or locked) is not written over.
    seen = seen_version(plan, expected_version)
    day = rows.build(service_date)
    solved = solve(
        day.problem,
        exploration=settings.PLAN_EXPLORATION,
        timeout_s=timeout_s or settings.PLAN_TIMEOUT_S,
        threads=settings.PLAN_THREADS or None,
    )
    with transaction.atomic():
        plan = _locked(plan, seen)
        drivers = set(plan.runs.values_list("driver_id", flat=True))
        runs = rows.runs_for(plan, day.shifts.values())
        plan.runs.exclude(shift_id__in=list(day.shifts)).delete()
        for route in solved.routes:
            rows.write_route(day, runs[route.vehicle], route)
        planned = {stop.trip for route in solved.routes for stop in route.stops}
        for run in runs.values():
            run.stops.exclude(ride_id__in=planned).delete()
            if not run.stops.exists():
                Run.objects.filter(pk=run.pk).update(departs_at=None, returns_at=None)
        for key, reason in solved.unassigned.items():
            Ride.objects.filter(pk=key).update(run=None, run_locked=False, unplanned_reason=reason)
        plan.stats = stats(day, solved)
        plan.solver, plan.solve_seconds, plan.planned_at = (
            solved.solver,
            round(solved.seconds, 3),
            timezone.now(),
        )
        plan.save(update_fields=["stats", "solver", "solve_seconds", "planned_at"])
        audit(plan, "planned", actor=actor, **plan.stats)
        if plan.status == PlanStatus.PUBLISHED:
            tell_riders(plan, actor=actor)
            tell_drivers(plan, "planned", also=drivers)
    log.info("planned %s: %s", service_date, plan.stats)
    return plan


def plan_publish(
    *, plan: DayPlan, actor: User | None = None, expected_version: int | None = None
) -> DayPlan:
    """
    Publish the plan: every rider on it hears their confirmed pickup window,
    every driver their manifest.
    """
    with transaction.atomic():
        plan = _locked(plan, expected_version)
        plan.status, plan.published_at, plan.published_by = (
            PlanStatus.PUBLISHED,
            timezone.now(),
            actor,
        )
        plan.save(update_fields=["status", "published_at", "published_by"])
        # The drivers' nudges first: news goes out in the order it was made,
        # and a driver needs one, where the riders' news is one per rider.
        tell_drivers(plan, "published")
        told = tell_riders(plan, actor=actor)
        audit(plan, "published", actor=actor, told=told)
    return plan


def tell_drivers(plan: DayPlan, reason: str, *, also=(), only=None) -> None:
    """
    The drivers of the published plan's runs (`only` these, if given; and
    `also` these, whose runs left it) hear that their manifest changed.
    """
    if plan.status != PlanStatus.PUBLISHED:
        return
    drivers = only if only is not None else plan.runs.values_list("driver_id", flat=True)
    broadcast.manifests_changed(plan.service_date, [*drivers, *also], reason)


def tell_riders(plan: DayPlan, *, actor: User | None) -> int:
    """
    Give each scheduled ride of the plan's day the pickup window its run now
    plans and its driver (a ride event, and the news to the rider and their
    caregivers), if either differs from what the rider was told; a ride that
    left the plan loses its window. Returns how many were told.
    """
    pickups = {
        s.ride_id: s
        for s in Stop.objects.filter(run__plan=plan, kind=StopKind.PICKUP).select_related(
            "run__driver"
        )
    }
    told = 0
    # With everyone its news names: the broadcast reads none of them again.
    on_day = (
        Ride.objects.on(plan.service_date).scheduled().with_people().select_related("run__driver")
    )
    # The driver each rider was last told of: their last `planned` event's.
    told_driver = dict(
        RideEvent.objects.filter(ride__in=on_day, kind="planned")
        .order_by("version")
        .values_list("ride_id", "payload__driver_id")
    )
    for ride in on_day:
        stop = pickups.get(ride.pk)
        planned = stop.service_at if stop else None
        window = _promised(planned)
        driver_id = stop.run.driver_id if stop else None
        if planned == ride.confirmed_pickup_at and (
            stop is None or told_driver.get(ride.pk) == driver_id
        ):
            continue
        changed = ride.confirmed_pickup_at is not None
        event = rides.record(
            ride,
            "planned" if planned else "unplanned",
            actor=actor,
            role="dispatcher" if actor else "system",
            payload={
                "run_id": stop.run_id if stop else None,
                "driver_id": driver_id,
                "planned_pickup_at": planned.isoformat() if planned else None,
            },
            confirmed_pickup_at=planned,
            confirmed_window_start=window[0],
            confirmed_window_end=window[1],
        )
        if event is None:
            continue
        broadcast.pickup_window_told(ride, changed=changed)
        told += 1
    return told


def _promised(planned: datetime | None) -> tuple[datetime | None, datetime | None]:
    """The window a rider is told: PICKUP_WINDOW_MIN either side of the planned pickup."""
    if planned is None:
        return None, None
    width = timedelta(minutes=settings.PICKUP_WINDOW_MIN)
    return planned - width, planned + width


# --- a dispatcher's review ---------------------------------------------------------


def _scheduled_on(plan: DayPlan, ride: Ride) -> None:
    if ride.service_date != plan.service_date or ride.status != RideStatus.SCHEDULED:
        raise IllegalTransition(
            ride, ride.status, f"Ride {ride.ride_id} is not a scheduled ride of this plan's day."
        )


def run_under_way(run: Run) -> bool:
    """Whether the run has begun: a rider reached, carried or dropped off."""
    begun = (*DRIVER_HELD_STATUSES, RideStatus.COMPLETED, RideStatus.NO_SHOW)
    return run.rides.filter(status__in=begun).exists()


def _not_under_way(run: Run) -> None:
    """
    A move rebuilds a run's stops from its shift's start: one that has
    begun is planned from now on with "plan what remains"
    (dispatch.planning.day.replan_remaining).
    """
    if run_under_way(run):
        raise DispatchError(
            f"{run.driver}'s run is under way: plan what remains instead of moving trips on it.",
            code="invalid_state",
            status=409,
        )


def trip_move(
    *,
    ride: Ride,
    to_run: Run | None,
    actor: User | None,
    lock: bool = False,
    expected_version: int | None = None,
) -> Run | None:
    """
    Move a trip to another run (cheapest place in it that keeps every
    window and ride limit), or off every run (`to_run` None). Refused in
    words when the run cannot take it. `lock`: it stays there when the day
    is planned again.
    """
    plan = to_run.plan if to_run else plan_for(ride.service_date)
    _scheduled_on(plan, ride)
    with transaction.atomic():
        plan = _locked(plan, expected_version)
        ride = Ride.objects.select_related("run").get(pk=ride.pk)
        source = ride.run
        if source is None and to_run is None:
            # Nothing to move; the reason it is unassigned stays.
            raise DispatchError(
                f"Ride {ride.ride_id} is on no run already: choose a run to move it to."
            )
        touched = list({r.pk: r for r in (source, to_run) if r is not None}.values())
        for run in touched:
            _not_under_way(run)
        on_runs = Ride.objects.filter(run__in=touched).exclude(pk=ride.pk).select_related("run")
        day = rows.build(
            plan.service_date,
            rides=[*on_runs, ride],
            shifts=[r.shift for r in touched],
            # A dispatcher's move overrides the trip's own lock.
            trips={ride.pk: {"locked_to": None}},
        )
        routes = {}
        if source is not None:
            sequence = [s for s in rows.sequence_of(source) if s[0] != ride.pk]
            routes[source] = timetable(day.problem, day.problem.vehicle[source.shift_id], sequence)
        if to_run is not None:
            base = routes.get(to_run) if to_run == source else None
            sequence = [s for s in rows.sequence_of(to_run) if s[0] != ride.pk]
            vehicle = day.problem.vehicle[to_run.shift_id]
            current = base or timetable(day.problem, vehicle, sequence)
            found = current and insert(day.problem, current, sequence, day.problem.trip[ride.pk])
            if not found:
                raise DispatchError(
                    f"{to_run.driver}'s run cannot take ride {ride.ride_id} within its "
                    "pickup window and maximum ride time.",
                    code="invalid_state",
                    status=409,
                )
            routes[to_run] = found[2]
        if any(route is None for route in routes.values()):
            raise DispatchError("The run's times no longer fit; plan the day again.")
        routes = {run: as_asked(day.problem, route) for run, route in routes.items()}
        check = Plan(routes=list(routes.values()))
        placed = {s.trip for r in check.routes for s in r.stops}
        check.unassigned = {t.key: "off" for t in day.problem.trips if t.key not in placed}
        verify(day.problem, check)
        for run, route in routes.items():
            rows.write_route(day, run, route)
        if to_run is None:
            ride.stops.all().delete()
            Ride.objects.filter(pk=ride.pk).update(
                run=None, run_locked=False, unplanned_reason=MOVED_OFF
            )
        else:
            Ride.objects.filter(pk=ride.pk).update(run_locked=lock)
        audit(
            plan,
            "moved",
            actor=actor,
            ride_id=ride.ride_id,
            from_run=source.pk if source else None,
            to_run=to_run.pk if to_run else None,
            locked=lock,
        )
        if plan.status == PlanStatus.PUBLISHED:
            tell_riders(plan, actor=actor)
            tell_drivers(plan, "moved", only=[r.driver_id for r in touched])
    return to_run


def trip_lock(
    *, ride: Ride, locked: bool, actor: User | None, expected_version: int | None = None
) -> Ride:
    """Lock a trip to its run (planning again keeps it there), or unlock it."""
    if locked and ride.run_id is None:
        raise DispatchError(f"Ride {ride.ride_id} is on no run to lock it to.")
    plan = plan_for(ride.service_date)
    with transaction.atomic():
        plan = _locked(plan, expected_version)
        Ride.objects.filter(pk=ride.pk).update(run_locked=locked)
        ride.run_locked = locked
        kind = "locked" if locked else "unlocked"
        audit(plan, kind, actor=actor, ride_id=ride.ride_id, run=ride.run_id)
    return ride


def unassigned_of(plan: DayPlan) -> list[tuple[Ride, str]]:
    """The day's scheduled rides on no run, each with why, in words."""
    left = rows.plannable_rides(plan.service_date).filter(run__isnull=True)
    return [(r, REASONS.get(r.unplanned_reason, r.unplanned_reason)) for r in left]
