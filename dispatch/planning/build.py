"""
A day's planning problem from the database, and its plan written back: rides
and shifts become the planner's trips and vehicles (seconds from an origin,
places in a travel-time matrix), and a plan's routes become runs' stops.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from django.db.models import Q
from django.utils import timezone

from dispatch.models import FINAL_STATUSES, DayPlan, DriverShift, Ride, Run, Stop
from dispatch.planning.problem import PICKUP, Problem, Route, Trip, Vehicle
from dispatch.planning.rules import Rules
from dispatch.planning.timetable import Step
from dispatch.planning.travel import LatLng, travel_times

ENDED = set(FINAL_STATUSES)
# Time 0 of a day's problem is this long before its local midnight, so that
# every window (an early appointment's pickup) is a positive number.
ORIGIN_BEFORE_MIDNIGHT = timedelta(hours=12)


def day_bounds(service_date: date) -> tuple[datetime, datetime]:
    """The local day (TIME_ZONE) as UTC instants: [midnight, next midnight)."""
    zone = timezone.get_current_timezone()
    start = datetime.combine(service_date, time.min, zone)
    end = datetime.combine(service_date + timedelta(days=1), time.min, zone)
    return start, end


def plannable_rides(service_date: date):
    """
    The day's rides the planner places: booked ahead, still scheduled, with a
    time; a will-call return once it is ready and has joined a run (so the
    day planned again keeps it, or frees it to be said ready again).
    """
    return (
        Ride.objects.on(service_date)
        .scheduled()
        .filter(Q(will_call=False) | Q(run__isnull=False))
        .select_related("run", "passenger")
    )


def shifts_of(service_date: date):
    start, end = day_bounds(service_date)
    return DriverShift.objects.filter(start_at__lt=end, end_at__gt=start).select_related("driver")


@dataclass
class DayProblem:
    """The planner's problem of one day, and the rows behind it."""

    problem: Problem
    origin: datetime
    rides: dict[int, Ride]
    shifts: dict[int, DriverShift]
    rules: Rules
    places: list[LatLng] = field(default_factory=list)

    def seconds(self, when: datetime) -> int:
        return int((when - self.origin).total_seconds())

    def at(self, seconds: int) -> datetime:
        return self.origin + timedelta(seconds=seconds)


class _Places:
    def __init__(self) -> None:
        self.points: list[LatLng] = []
        self.index: dict[LatLng, int] = {}

    def __call__(self, lat: float, lng: float) -> int:
        key = (round(lat, 6), round(lng, 6))
        if key not in self.index:
            self.index[key] = len(self.points)
            self.points.append(key)
        return self.index[key]


def build(
    service_date: date,
    *,
    rides: Iterable[Ride] | None = None,
    shifts: Iterable[DriverShift] | None = None,
    starts: dict[int, tuple[LatLng, datetime]] | None = None,
    trips: dict[int, dict] | None = None,
    adjust: Callable[[Ride, dict, DayProblem], dict] | None = None,
) -> DayProblem:
    """
    The problem of `rides` on `shifts` (by default the day's plannable rides
    and its shifts). `starts`: shift pk -> where and when its vehicle starts
    now (on the day); `trips`: ride pk -> Trip fields to override, or
    `adjust`(ride, fields, day) -> the overrides (aboard, pinned, a window
    that has moved).
    """
    rides = list(plannable_rides(service_date) if rides is None else rides)
    shifts = list(shifts_of(service_date) if shifts is None else shifts)
    starts, trips = starts or {}, trips or {}
    rules = Rules.from_settings()
    origin = day_bounds(service_date)[0] - ORIGIN_BEFORE_MIDNIGHT
    place = _Places()
    ends = {}
    for ride in rides:
        ends[ride.pk] = (
            place(ride.pickup_latitude, ride.pickup_longitude),
            place(ride.dropoff_latitude, ride.dropoff_longitude),
        )
    bases = {}
    for shift in shifts:
        start = starts.get(shift.pk, ((shift.start_latitude, shift.start_longitude), None))[0]
        bases[shift.pk] = (place(*start), place(shift.end_latitude, shift.end_longitude))
    durations = travel_times().matrix(place.points) if place.points else []
    day = DayProblem(
        Problem([], [], durations), origin, {r.pk: r for r in rides}, {}, rules, place.points
    )
    d = day.problem.durations
    for ride in rides:
        p, q = ends[ride.pk]
        windows = rules.windows(
            direct_s=d[p][q],
            wheelchair=ride.needs_wheelchair,
            pickup_at=day.seconds(ride.pickup_at) if ride.pickup_at else None,
            appointment_at=day.seconds(ride.appointment_at) if ride.appointment_at else None,
        )
        fields = {
            "key": ride.pk,
            "pickup": p,
            "dropoff": q,
            "pickup_window": windows.pickup,
            "dropoff_window": windows.dropoff,
            "service_s": windows.service_s,
            "max_ride_s": windows.max_ride_s,
            "seats": ride.seats,
            "wheelchairs": int(ride.needs_wheelchair),
            "locked_to": ride.run.shift_id if ride.run_locked and ride.run_id else None,
            # A will-call return's time is when it was ready: it asked for none.
            "requested": day.seconds(ride.pickup_at)
            if ride.pickup_at and not ride.will_call
            else None,
        }
        fields.update(trips.get(ride.pk, {}))
        if adjust is not None:
            fields.update(adjust(ride, fields, day))
        day.problem.trips.append(Trip(**fields))
    for shift in shifts:
        begins = starts.get(shift.pk, (None, shift.start_at))[1]
        start, end = bases[shift.pk]
        day.problem.vehicles.append(
            Vehicle(
                key=shift.pk,
                start=start,
                end=end,
                window=(day.seconds(max(begins, shift.start_at)), day.seconds(shift.end_at)),
                seats=shift.seats,
                wheelchairs=shift.wheelchair_spaces,
            )
        )
        day.shifts[shift.pk] = shift
    day.problem.__post_init__()
    return day


def sequence_of(run: Run, *, done: set[int] = frozenset()) -> list[Step]:
    """A run's stops in order as the planner's steps, less the rides in `done`."""
    return [
        (s.ride_id, s.kind)
        for s in run.stops.select_related("ride").order_by("sequence")
        if s.ride_id not in done and s.ride.status not in ENDED
    ]


def runs_for(plan: DayPlan, shifts: Iterable[DriverShift]) -> dict[int, Run]:
    """shift pk -> the plan's run of it, made for every shift that has none."""
    runs = {run.shift_id: run for run in plan.runs.select_related("driver", "shift")}
    for shift in shifts:
        if shift.pk not in runs:
            runs[shift.pk] = Run.objects.create(plan=plan, shift=shift, driver=shift.driver)
    return runs


def write_route(day: DayProblem, run: Run, route: Route, *, first: int = 0) -> None:
    """
    The run's stops from `first` on become the route's (those before, done
    on the day, stay); its rides point at it.
    """
    run.stops.filter(sequence__gte=first).delete()
    stops = []
    for n, stop in enumerate(route.stops, start=first):
        trip = day.problem.trip[stop.trip]
        window = trip.pickup_window if stop.kind == PICKUP else trip.dropoff_window
        stops.append(
            Stop(
                run=run,
                ride_id=stop.trip,
                kind=stop.kind,
                sequence=n,
                arrival_at=day.at(stop.arrival),
                service_at=day.at(stop.service_at),
                departure_at=day.at(stop.departure),
                window_start=day.at(window[0]),
                window_end=day.at(window[1]),
            )
        )
    # A ride moving between runs leaves its old stops first (one stop of each kind).
    Stop.objects.filter(ride_id__in={s.ride_id for s in stops}).exclude(run=run).delete()
    Stop.objects.bulk_create(stops)
    run.departs_at = day.at(route.departs) if route.stops else None
    run.returns_at = day.at(route.returns) if route.stops else None
    run.save(update_fields=["departs_at", "returns_at"])
    Ride.objects.filter(pk__in={s.trip for s in route.stops}).update(run=run, unplanned_reason="")
