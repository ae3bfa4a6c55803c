"""
The dispatcher's day view: a day's runs on a time axis, its unassigned
trips with their reasons, and the review: plan (or plan again, keeping
locks), move a trip between runs, lock it, publish, plan what remains of a
day under way, and the runs running late. Every change goes through
dispatch.planning's services, which audit it (PlanEvent) and tell riders
and drivers; the page shows the plan's audit log.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import wraps
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from console.views import HtmxHttpRequest, _common, dispatcher_view, whole_number
from dispatch.errors import DispatchError
from dispatch.models import DayPlan, PlanStatus, Ride, Run, Stop, StopKind
from dispatch.planning import build as rows
from dispatch.planning import day as on_the_day
from dispatch.planning import services

TEMPLATE = "console/day.html"
# The time axis: SVG user units across a lane.
AXIS_WIDTH = 1000


@dataclass
class Mark:
    """A stop on a lane's time axis."""

    stop: Stop
    x: float


@dataclass
class Lane:
    run: Run
    stops: list[Stop]
    marks: list[Mark]
    # (x, width) of the shift on the axis.
    shift_x: float
    shift_w: float
    late: on_the_day.Forecast | None


def _service_date(value: str) -> date:
    try:
        day = date.fromisoformat(value)
    except ValueError as exc:
        raise Http404("Not a date: use YYYY-MM-DD.") from exc
    if not date.min < day < date.max:
        # The page links the day before and after.
        raise Http404("No day plan at the calendar's ends.")
    return day


def _axis(runs: list[Run], service_date: date) -> tuple[datetime, datetime]:
    """From the earliest shift start to the latest end (05:00-21:00 with none), on the hour."""
    if runs:
        start = min(r.shift.start_at for r in runs)
        end = max(r.shift.end_at for r in runs)
    else:
        start, _ = rows.day_bounds(service_date)
        start, end = start + timedelta(hours=5), start + timedelta(hours=21)
    start = timezone.localtime(start).replace(minute=0, second=0, microsecond=0)
    end = timezone.localtime(end)
    if end.minute or end.second:
        end = end.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    return start, end


def _x(at: datetime, axis: tuple[datetime, datetime]) -> float:
    start, end = axis
    span = (end - start).total_seconds() or 1
    return round(min(max((at - start).total_seconds() / span, 0), 1) * AXIS_WIDTH, 1)


def day_context(service_date: date) -> dict[str, Any]:
    plan = DayPlan.objects.filter(service_date=service_date).first()
    runs = list(plan.runs.select_related("shift", "driver")) if plan else []
    stops: dict[int, list[Stop]] = {r.pk: [] for r in runs}
    for stop in Stop.objects.filter(run__in=runs).select_related("ride__passenger"):
        stops[stop.run_id].append(stop)
    today = timezone.localdate()
    late = dict(
        (run.pk, forecast)
        for run, forecast in (on_the_day.late_runs(service_date) if service_date == today else [])
    )
    axis = _axis(runs, service_date)
    lanes = []
    for run in runs:
        shift_x = _x(run.shift.start_at, axis)
        lanes.append(
            Lane(
                run=run,
                stops=stops[run.pk],
                marks=[Mark(s, _x(s.service_at, axis)) for s in stops[run.pk]],
                shift_x=shift_x,
                shift_w=max(_x(run.shift.end_at, axis) - shift_x, 1),
                late=late.get(run.pk),
            )
        )
    hours = []
    hour = axis[0]
    while hour <= axis[1]:
        hours.append((hour, _x(hour, axis)))
        hour += timedelta(hours=1)
    if plan is not None:
        unassigned = services.unassigned_of(plan)
    else:
        left = rows.plannable_rides(service_date)
        unassigned = [(r, "The day is not planned yet.") for r in left]
    will_call = Ride.objects.on(service_date).scheduled().filter(will_call=True).count()
    return {
        "service_date": service_date,
        "plan": plan,
        "published": plan is not None and plan.status == PlanStatus.PUBLISHED,
        "lanes": lanes,
        "runs": runs,
        "hours": hours,
        "axis_width": AXIS_WIDTH,
        "unassigned": unassigned,
        "will_call": will_call,
        "late_count": len(late),
        "events": list(plan.events.select_related("actor").order_by("-version")[:12])
        if plan
        else [],
        "is_today": service_date == today,
        "is_past": _is_over(service_date),
        "previous_day": service_date - timedelta(days=1),
        "next_day": service_date + timedelta(days=1),
        "tomorrow": today + timedelta(days=1),
        "pickup": StopKind.PICKUP,
    }


def _respond(request: HtmxHttpRequest, service_date: date, *, error: str = "", notice: str = ""):
    """The plan region again (htmx), or back to the page with a message."""
    if not request.htmx:
        if error:
            messages.error(request, error)
        elif notice:
            messages.success(request, notice)
        return redirect("console:day", service_date=service_date.isoformat())
    ctx = {**day_context(service_date), **_common(request), "error": error, "notice": notice}
    return render(request, f"{TEMPLATE}#day-plan", ctx)


def _version(request: HtmxHttpRequest) -> int | None:
    return whole_number(request.POST.get("version", ""))


@require_GET
@dispatcher_view
def day_view(request: HtmxHttpRequest, service_date: str | None = None) -> HttpResponse:
    if service_date is None:
        tomorrow = timezone.localdate() + timedelta(days=1)
        return redirect("console:day", service_date=tomorrow.isoformat())
    ctx = {**day_context(_service_date(service_date)), **_common(request)}
    if request.htmx:
        return render(request, f"{TEMPLATE}#day-plan", ctx)
    return render(request, TEMPLATE, ctx)


def _is_over(day: date) -> bool:
    """A day before today: its plan is what happened, and stays as it was."""
    return day < timezone.localdate()


def _day_change(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """
    A dispatcher's POST that changes the plan of the day in the URL: the
    view gets that day as a date, and a refusal (DispatchError) is shown on
    the day's page like any other error. A day that is over is not changed
    (a page left open past midnight would otherwise publish yesterday).
    """

    @require_POST
    @dispatcher_view
    @wraps(view)
    def change(request: HtmxHttpRequest, service_date: str, **kwargs: Any) -> HttpResponse:
        day = _service_date(service_date)
        if _is_over(day):
            over = f"{day:%A %d %B} is over: its plan stays as it was."
            return _respond(request, day, error=over)
        try:
            return view(request, day, **kwargs)
        except DispatchError as exc:
            return _respond(request, day, error=str(exc))

    return change


@_day_change
def day_plan(request: HtmxHttpRequest, day: date) -> HttpResponse:
    # The version the page showed (0: no plan yet): a plan a colleague
    # published or planned meanwhile is shown again, not planned over.
    plan = services.plan_day(
        service_date=day, actor=request.user, expected_version=_version(request)
    )
    stats = plan.stats
    return _respond(
        request,
        day,
        notice=f"Planned {day:%A %d %B}: {stats.get('assigned', 0)} of {stats.get('trips', 0)} "
        f"trips on {stats.get('vehicles_used', 0)} runs.",
    )


@_day_change
def day_publish(request: HtmxHttpRequest, day: date) -> HttpResponse:
    plan = get_object_or_404(DayPlan, service_date=day)
    services.plan_publish(plan=plan, actor=request.user, expected_version=_version(request))
    return _respond(request, day, notice="Published: riders and drivers have been told.")


@_day_change
def day_replan(request: HtmxHttpRequest, day: date) -> HttpResponse:
    if day != timezone.localdate():
        return _respond(request, day, error="What remains is planned again on the day itself.")
    plan = get_object_or_404(DayPlan, service_date=day)
    on_the_day.replan_remaining(plan=plan, actor=request.user, expected_version=_version(request))
    return _respond(request, day, notice="Planned what remains; done and locked stops kept.")


def _ride_of(day: date, ride_pk: int) -> Ride:
    return get_object_or_404(
        Ride.objects.select_related("run__driver"), pk=ride_pk, service_date=day
    )


@_day_change
def trip_move(request: HtmxHttpRequest, day: date, ride_pk: int) -> HttpResponse:
    ride = _ride_of(day, ride_pk)
    to = request.POST.get("to_run", "")
    to_run = None
    if to:
        if whole_number(to) is None:
            return _respond(request, day, error="Choose a run from the list.")
        to_run = (
            Run.objects.select_related("plan", "shift", "driver")
            .filter(pk=whole_number(to), plan__service_date=day)
            .first()
        )
        if to_run is None:
            return _respond(request, day, error="That run is not on this day's plan.")
    services.trip_move(
        ride=ride,
        to_run=to_run,
        actor=request.user,
        lock=request.POST.get("lock") == "on",
        expected_version=_version(request),
    )
    where = f"{to_run.driver}'s run" if to_run else "the unassigned list"
    return _respond(request, day, notice=f"Moved ride {ride.ride_id} to {where}.")


@_day_change
def trip_lock(request: HtmxHttpRequest, day: date, ride_pk: int) -> HttpResponse:
    ride = _ride_of(day, ride_pk)
    locked = request.POST.get("locked") == "1"
    services.trip_lock(
        ride=ride, locked=locked, actor=request.user, expected_version=_version(request)
    )
    state = "locked to its run" if locked else "unlocked"
    return _respond(request, day, notice=f"Ride {ride.ride_id} {state}.")
