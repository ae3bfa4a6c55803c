"""
The timed steps of trips under way, swept every TRIP_SWEEP_S:

- the no-show escalation's second step: NO_SHOW_CAREGIVERS_AFTER_MIN after
  the driver arrived, the passenger's caregivers hear the driver is waiting
  at the door (the first step, the passenger's, goes with the arrival in
  dispatch.rides; the no-show itself waits for both there);
- the watchdog (dispatch.alarms.watch_trips).

Every serving worker sweeps (started with its first socket, beside the
offer sweep), and `manage.py sweep_trips` runs from a timer as a backstop.
Each step is a conditional write on the ride, so workers sweeping at once
take each step once.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from dispatch import alarms, broadcast, rides, scheduling
from dispatch.models import Ride, RideStatus
from people.access import caregivers_notified
from project.common.sweeps import Sweep

log = logging.getLogger(__name__)


def waiting_escalate(*, now: datetime | None = None) -> int:
    """Tell the caregivers of passengers whose driver has waited long enough; how many rides."""
    now = now or timezone.now()
    due = now - timedelta(minutes=settings.NO_SHOW_CAREGIVERS_AFTER_MIN)
    told = 0
    waiting = Ride.objects.filter(
        status=RideStatus.DRIVER_ARRIVED, waiting_escalated_at=None, arrived_at__lte=due
    ).values_list("pk", flat=True)
    for pk in list(waiting):
        with transaction.atomic():
            ride = (
                Ride.objects.select_for_update()
                .filter(pk=pk, status=RideStatus.DRIVER_ARRIVED, waiting_escalated_at=None)
                .first()
            )
            if ride is None:
                continue
            payload = {
                "caregiver_ids": caregivers_notified(ride.passenger_id),
                "waiting_since": ride.arrived_at.isoformat(),
            }
            if rides.record(
                ride, broadcast.WAITING_CAREGIVERS_TOLD, payload=payload, waiting_escalated_at=now
            ):
                broadcast.ride_changed(ride, broadcast.WAITING_CAREGIVERS_TOLD)
                told += 1
    return told


def trips_sweep() -> dict[str, int]:
    """One sweep of every timed step; what it did."""
    return {
        "waiting_escalated": waiting_escalate(),
        "alarms_raised": len(alarms.watch_trips()),
        "returns_closed": scheduling.returns_not_called_close(),
    }


_trip_sweep = Sweep("trip sweep", trips_sweep)


def start_trip_sweeper() -> None:
    """
    Sweep trips every TRIP_SWEEP_S on this event loop (once per worker;
    started by the first app or console socket, as the offer sweep is).
    """
    if settings.TRIP_SWEEP_S > 0:
        _trip_sweep.ensure_running(settings.TRIP_SWEEP_S)
