"""
One day's planning problem, and a plan of it, in plain data: seconds from
the day's origin, places as indices into the travel-time matrix. Built from
the database by dispatch.planning.services, and by the benchmark's
generator without one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from dispatch.planning.rules import Window

PICKUP = "pickup"
DROPOFF = "dropoff"


@dataclass(frozen=True, slots=True)
class Trip:
    """One passenger's trip: a pickup and a drop-off, each with its window."""

    key: int
    pickup: int
    dropoff: int
    pickup_window: Window
    dropoff_window: Window
    service_s: int
    max_ride_s: int
    seats: int
    wheelchairs: int = 0
    # The vehicle a dispatcher locked it to.
    locked_to: int | None = None
    # On the day: already aboard this vehicle, so only the drop-off is left.
    on_board: int | None = None
    # The pickup time asked for (None for arrive-by): planned times keep to
    # it where the route allows.
    requested: int | None = None


@dataclass(frozen=True, slots=True)
class Vehicle:
    """A driver's shift: where it starts and ends, when, and what it carries."""

    key: int
    start: int
    end: int
    window: Window
    seats: int
    wheelchairs: int = 0

    def carries(self, trip: Trip) -> bool:
        return trip.seats <= self.seats and trip.wheelchairs <= self.wheelchairs


@dataclass
class Problem:
    trips: list[Trip]
    vehicles: list[Vehicle]
    # durations[a][b]: seconds from place a to place b.
    durations: Sequence[Sequence[int]]

    def __post_init__(self) -> None:
        self.trip = {t.key: t for t in self.trips}
        self.vehicle = {v.key: v for v in self.vehicles}
        # Plain lists: indexing a numpy matrix one cell at a time is slow.
        if hasattr(self.durations, "tolist"):
            self.durations = self.durations.tolist()

    def direct_s(self, trip: Trip) -> int:
        return self.durations[trip.pickup][trip.dropoff]


@dataclass(frozen=True, slots=True)
class Stop:
    trip: int
    kind: str  # PICKUP or DROPOFF
    place: int
    arrival: int
    # Service starts at the arrival, or at the window's opening.
    service_at: int
    departure: int


@dataclass
class Route:
    vehicle: int
    stops: list[Stop]
    departs: int
    returns: int

    @property
    def seconds(self) -> int:
        return self.returns - self.departs if self.stops else 0


# Why a trip is left out of a plan (Plan.unassigned).
NO_VEHICLE_FITS = "no_vehicle_fits"
NO_SHIFT_COVERS = "no_shift_covers_window"
NO_WHEELCHAIR_SPACE = "no_wheelchair_space_in_time"
NO_SEAT = "no_seat_in_time"
LOCKED_RUN_CANNOT = "locked_run_cannot_serve"
MAX_RIDE_TIME = "max_ride_time"
# Not the planner's: a dispatcher took it off its run (services.trip_move).
MOVED_OFF = "moved_off"
# Not the planner's: the shift its run was on was removed (shifts.shift_remove).
SHIFT_REMOVED = "shift_removed"
# No reason at all: the planner never saw it (booked since the day was planned).
NOT_PLANNED_YET = ""

REASONS = {
    NO_VEHICLE_FITS: "No vehicle on shift has the seats and wheelchair spaces this trip needs.",
    NO_SHIFT_COVERS: "No shift that could carry this trip covers its window.",
    NO_WHEELCHAIR_SPACE: "No wheelchair space free in time: the wheelchair vehicles are busy.",
    NO_SEAT: "No seat free in time: the vehicles that could take it are busy.",
    LOCKED_RUN_CANNOT: "The run it is locked to cannot serve it in its window.",
    MAX_RIDE_TIME: "No run could carry it within its maximum ride time.",
    MOVED_OFF: "A dispatcher took it off its run.",
    SHIFT_REMOVED: "The shift of the run it was on was removed.",
    NOT_PLANNED_YET: "Booked after the day was planned: plan again, or move it to a run.",
}


@dataclass
class Plan:
    routes: list[Route]
    unassigned: dict[int, str] = field(default_factory=dict)
    solver: str = ""
    seconds: float = 0.0

    @property
    def assigned(self) -> int:
        return sum(1 for r in self.routes for s in r.stops if s.kind == DROPOFF)

    @property
    def vehicle_hours(self) -> float:
        return sum(r.seconds for r in self.routes) / 3600

    @property
    def vehicles_used(self) -> int:
        return sum(1 for r in self.routes if r.stops)
