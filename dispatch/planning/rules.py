"""
The time rules of a booked-ahead trip, in one place: the pickup window, how
long boarding takes, the longest a passenger may ride, and the windows the
planner gives each end of a trip. Plain arithmetic on seconds, so booking,
the planner, the verifier and the baseline use the same numbers.

A trip booked by pickup time R may be picked up in [R - W, R + W]
(W = PICKUP_WINDOW_MIN). A trip booked by appointment T must be dropped off
by T. Nobody rides longer than max(MAX_RIDE_FACTOR x direct, direct +
MAX_RIDE_EXTRA_MIN), counted from the end of boarding to the arrival at
the drop-off (waiting in the vehicle counts).

The windows are the real ones: a pickup-time trip may be dropped off until
(R + W) + s + M, so long as its own ride stays within M (the timetable and
the verifier hold that). An arrive-by trip's windows bound the ride by
themselves: pickup in [T - s - M, T - s - d], drop-off in [T - M + d, T].
VROOM knows no ride time, so the solver hands it a tighter drop-off window
(`tight_dropoff`): by (R - W) + s + M, which no pickup in the window can
overrun.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from django.conf import settings

Window = tuple[int, int]


@dataclass(frozen=True, slots=True)
class Windows:
    pickup: Window
    dropoff: Window
    max_ride_s: int
    service_s: int


@dataclass(frozen=True, slots=True)
class Rules:
    pickup_window_s: int = 15 * 60
    boarding_s: int = 2 * 60
    wheelchair_boarding_s: int = 5 * 60
    max_ride_factor: float = 1.5
    max_ride_extra_s: int = 20 * 60

    @classmethod
    def from_settings(cls) -> Rules:
        return cls(
            pickup_window_s=round(settings.PICKUP_WINDOW_MIN * 60),
            boarding_s=round(settings.BOARDING_MIN * 60),
            wheelchair_boarding_s=round(settings.WHEELCHAIR_BOARDING_MIN * 60),
            max_ride_factor=settings.MAX_RIDE_FACTOR,
            max_ride_extra_s=round(settings.MAX_RIDE_EXTRA_MIN * 60),
        )

    def service_s(self, *, wheelchair: bool) -> int:
        """Boarding (and alighting) time at each end of a trip."""
        return self.wheelchair_boarding_s if wheelchair else self.boarding_s

    def max_ride_s(self, direct_s: int) -> int:
        """The longest this trip may take in the vehicle."""
        return max(math.ceil(self.max_ride_factor * direct_s), direct_s + self.max_ride_extra_s)

    def windows(
        self,
        *,
        direct_s: int,
        wheelchair: bool,
        pickup_at: int | None = None,
        appointment_at: int | None = None,
    ) -> Windows:
        """
        The windows of one trip, in the caller's seconds: exactly one of
        `pickup_at` (the requested pickup) and `appointment_at` (arrive by).
        """
        if (pickup_at is None) == (appointment_at is None):
            raise ValueError("A trip has a pickup time or an appointment, not both.")
        s = self.service_s(wheelchair=wheelchair)
        ride = self.max_ride_s(direct_s)
        if appointment_at is not None:
            t = appointment_at
            return Windows(
                pickup=(t - s - ride, t - s - direct_s),
                dropoff=(t - ride + direct_s, t),
                max_ride_s=ride,
                service_s=s,
            )
        earliest, latest = pickup_at - self.pickup_window_s, pickup_at + self.pickup_window_s
        return Windows(
            pickup=(earliest, latest),
            dropoff=(earliest + s + direct_s, latest + s + ride),
            max_ride_s=ride,
            service_s=s,
        )

    @staticmethod
    def tight_dropoff(pickup: Window, dropoff: Window, service_s: int, max_ride_s: int) -> Window:
        """A drop-off window that no pickup within `pickup` can ride too long to."""
        latest = min(dropoff[1], pickup[0] + service_s + max_ride_s)
        return min(dropoff[0], latest), latest

    def promised(self, planned_pickup: int) -> Window:
        """The pickup window a rider is told: W either side of the planned pickup."""
        return planned_pickup - self.pickup_window_s, planned_pickup + self.pickup_window_s
