"""
The measures of the rides booked ahead, per service day and per driver:

- on-time performance: a pickup is on time when the driver arrived by the
  end of the window the rider was told (an early driver waits for the
  window to open, so the pickup falls within it);
- no-shows, and late cancels: the rider (or their caregiver) cancelled less
  than LATE_CANCEL_MIN before the pickup;
- trips per vehicle-hour: completed trips over the hours the published
  runs were planned out (leaving the depot to coming back);
- ride times against the maximum (dispatch.planning.rules): how long riders
  sat in the vehicle, pick-up to drop-off, against what they may.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from django.conf import settings

from dispatch.models import CancelledBy, Ride, RideStatus, Run
from dispatch.planning.rules import Rules
from dispatch.planning.travel import travel_times

RIDER_CANCELS = (CancelledBy.PASSENGER, CancelledBy.CAREGIVER)


@dataclass
class Measures:
    """One row of the report: a day, or a driver over the days."""

    label: str
    pickups: int = 0
    on_time: int = 0
    no_shows: int = 0
    late_cancels: int = 0
    completed: int = 0
    vehicle_hours: float = 0.0
    ride_minutes: list[float] = field(default_factory=list)
    max_minutes: list[float] = field(default_factory=list)
    over_max: int = 0

    @property
    def on_time_pct(self) -> float | None:
        return round(100 * self.on_time / self.pickups, 1) if self.pickups else None

    @property
    def trips_per_vehicle_hour(self) -> float | None:
        return round(self.completed / self.vehicle_hours, 2) if self.vehicle_hours else None

    @property
    def mean_ride_min(self) -> float | None:
        return (
            round(sum(self.ride_minutes) / len(self.ride_minutes), 1) if self.ride_minutes else None
        )

    @property
    def mean_max_min(self) -> float | None:
        return round(sum(self.max_minutes) / len(self.max_minutes), 1) if self.max_minutes else None

    @property
    def longest_share_of_max(self) -> float | None:
        """The longest ride as a share of its own maximum (1.0: at the limit)."""
        pairs = list(zip(self.ride_minutes, self.max_minutes, strict=True))
        return round(max(r / m for r, m in pairs), 2) if pairs else None

    def row(self) -> dict:
        return {
            "pickups": self.pickups,
            "on_time": self.on_time,
            "on_time_pct": self.on_time_pct,
            "no_shows": self.no_shows,
            "late_cancels": self.late_cancels,
            "completed": self.completed,
            "vehicle_hours": round(self.vehicle_hours, 2),
            "trips_per_vehicle_hour": self.trips_per_vehicle_hour,
            "mean_ride_min": self.mean_ride_min,
            "mean_max_ride_min": self.mean_max_min,
            "over_max": self.over_max,
            "longest_share_of_max": self.longest_share_of_max,
        }


@dataclass
class Report:
    start: date
    end: date
    total: Measures
    days: list[Measures]
    drivers: list[Measures]


COLUMNS = [
    "pickups",
    "on_time",
    "on_time_pct",
    "no_shows",
    "late_cancels",
    "completed",
    "vehicle_hours",
    "trips_per_vehicle_hour",
    "mean_ride_min",
    "mean_max_ride_min",
    "over_max",
    "longest_share_of_max",
]


def is_late_cancel(ride: Ride) -> bool:
    """The rider called it off less than LATE_CANCEL_MIN before the pickup."""
    if ride.status != RideStatus.CANCELLED or ride.cancelled_by not in RIDER_CANCELS:
        return False
    pickup = _pickup_of(ride)
    if pickup is None or ride.ended_at is None:
        return False
    return ride.ended_at > pickup - timedelta(minutes=settings.LATE_CANCEL_MIN)


def _pickup_of(ride: Ride) -> datetime | None:
    """
    When the rider was to be picked up: the confirmed time, or the one asked
    for; for an arrive-by with neither, the latest pickup that still makes
    the appointment (not the appointment itself, an hour or so later).
    """
    if ride.confirmed_pickup_at or ride.pickup_at or ride.appointment_at is None:
        return ride.confirmed_pickup_at or ride.pickup_at
    points = [
        (ride.pickup_latitude, ride.pickup_longitude),
        (ride.dropoff_latitude, ride.dropoff_longitude),
    ]
    direct_s = int(travel_times().matrix(points)[0][1])
    windows = Rules.from_settings().windows(
        direct_s=direct_s, wheelchair=ride.needs_wheelchair, appointment_at=0
    )
    return ride.appointment_at + timedelta(seconds=windows.pickup[1])


def report(start: date, end: date) -> Report:
    """The measures of the service days from `start` to `end`, both included."""
    rules = Rules.from_settings()
    times = travel_times()
    total = Measures(f"{start} to {end}")
    days: dict[date, Measures] = {}
    drivers: dict[int, Measures] = {}

    def day_of(d: date) -> Measures:
        return days.setdefault(d, Measures(d.isoformat()))

    def driver_of(ride_or_run) -> Measures:
        driver = ride_or_run.driver
        return drivers.setdefault(driver.pk, Measures(str(driver)))

    on_days = Ride.objects.filter(service_date__range=(start, end)).select_related("driver")
    for ride in on_days:
        rows = [total, day_of(ride.service_date)]
        if ride.driver_id:
            rows.append(driver_of(ride))
        if ride.arrived_at is not None and ride.confirmed_window_end is not None:
            on_time = ride.arrived_at <= ride.confirmed_window_end
            for m in rows:
                m.pickups += 1
                m.on_time += on_time
        if ride.status == RideStatus.NO_SHOW:
            for m in rows:
                m.no_shows += 1
        if is_late_cancel(ride):
            for m in rows:
                m.late_cancels += 1
        if ride.status == RideStatus.COMPLETED:
            for m in rows:
                m.completed += 1
            if ride.started_at and ride.ended_at:
                points = [
                    (ride.pickup_latitude, ride.pickup_longitude),
                    (ride.dropoff_latitude, ride.dropoff_longitude),
                ]
                direct_s = int(times.matrix(points)[0][1])
                ride_s = (ride.ended_at - ride.started_at).total_seconds()
                limit_s = rules.max_ride_s(direct_s)
                for m in rows:
                    m.ride_minutes.append(ride_s / 60)
                    m.max_minutes.append(limit_s / 60)
                    m.over_max += ride_s > limit_s
    runs = Run.objects.filter(
        plan__service_date__range=(start, end),
        # Runs that went out: a plan never published ran no one.
        plan__published_at__isnull=False,
        departs_at__isnull=False,
        returns_at__isnull=False,
    ).select_related("plan", "driver")
    for run in runs:
        hours = (run.returns_at - run.departs_at).total_seconds() / 3600
        for m in (total, day_of(run.plan.service_date), driver_of(run)):
            m.vehicle_hours += hours
    return Report(
        start=start,
        end=end,
        total=total,
        days=[days[d] for d in sorted(days)],
        drivers=sorted(drivers.values(), key=lambda m: m.label),
    )
