"""
Which ride event becomes which notice, to whom: the one table of it.

To notify a new ride event, add a row to NOTICES, keyed by the `kind` its
service passes to `broadcast.ride_changed` (or to `outbox.notices_write`
for an event that is no ride change): its people.notices.Topic (a new
topic needs its text in dispatch.notify.texts and the catalogues), who may
hear it (`to`), and, if the text needs more than the ride, `params`.

A notice whose event row (RideEvent) says all it needs is `logged`: the
notify worker reads it from the ride event log, and the change writes
nothing for it. The booking's are, so a booking pays nothing for its
notices. A logged row is keyed by the event row's own `kind`, and
`ride_changed` of that kind writes no NoticeDue: news of a ride searched
for again (`driver_cancelled`, `ready`) goes out as `searching` and owes
nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from django.conf import settings

from dispatch.models import RETURN_NOT_CALLED, Ride
from people.notices import Topic


class To(StrEnum):
    EVERYONE = "everyone"
    PASSENGER = "passenger"
    CAREGIVERS = "caregivers"


def _always(ride: Ride) -> dict:
    return {}


def _near(ride: Ride) -> dict:
    return {"minutes": math.ceil(settings.NOTIFY_NEAR_MIN)}


def _cancel_told(ride: Ride) -> dict | None:
    """A cancel, unless of a will-call return nobody called, closed days later."""
    return None if ride.cancel_reason == RETURN_NOT_CALLED else {}


def _late(ride: Ride) -> dict | None:
    """Delayed: the planned pickup is more than NOTIFY_DELAY_MIN after the one asked for."""
    if ride.confirmed_pickup_at is None or ride.pickup_at is None:
        return None
    minutes = (ride.confirmed_pickup_at - ride.pickup_at).total_seconds() / 60
    if minutes <= settings.NOTIFY_DELAY_MIN:
        return None
    return {"minutes": math.ceil(minutes)}


@dataclass(frozen=True)
class Notice:
    topic: Topic
    to: To = To.EVERYONE
    # What the text says beyond the ride; None: nothing to tell this time.
    params: Callable[[Ride], dict | None] = _always
    # Read from the ride event log, each row of this kind owing it: its
    # driver is the one its payload names (`driver_id`), and it is taken on
    # (texts may go) when it puts that driver on the ride.
    logged: bool = False
    # Texted even before anyone has taken the ride on, when it was booked
    # ahead: its people wait for it, and must hear that it will not come
    # (not when its series withdrew it: outbox.textable).
    texted_if_booked_ahead: bool = False


NOTICES: dict[str, Notice] = {
    # Booked: the event of a ride booked now (rides.opened) alone; a search
    # again is driver_cancelled, a will-call return's is ready (told when it
    # was booked ahead).
    "searching": Notice(Topic.BOOKED, logged=True),
    "scheduled": Notice(Topic.BOOKED),
    "assigned": Notice(Topic.DRIVER_ASSIGNED, logged=True),
    "reassigned": Notice(Topic.DRIVER_ASSIGNED),
    "driver_near": Notice(Topic.DRIVER_NEAR, params=_near),
    "driver_arrived": Notice(Topic.ARRIVED),
    "started": Notice(Topic.ON_BOARD),
    "completed": Notice(Topic.DROPPED_OFF),
    "cancelled": Notice(Topic.CANCELLED, params=_cancel_told, texted_if_booked_ahead=True),
    "unfulfilled": Notice(Topic.CANCELLED, texted_if_booked_ahead=True),
    "no_show": Notice(Topic.NO_SHOW),
    # The first plan's window too: a pickup planned much later than asked.
    "pickup_window": Notice(Topic.DELAYED, params=_late),
    "pickup_window_changed": Notice(Topic.DELAYED, params=_late),
    # The no-show escalation and the watchdog's alarms (dispatch.watch,
    # dispatch.alarms): the passenger first, then their caregivers.
    "waiting_passenger_told": Notice(Topic.DOOR_WAIT, to=To.PASSENGER),
    "waiting_caregivers_told": Notice(Topic.DOOR_WAIT, to=To.CAREGIVERS),
    "alarm_raised": Notice(Topic.ALARM, to=To.CAREGIVERS),
}


def logged(kind: str) -> bool:
    """Whether `kind`'s notice is read from the ride event log (its row is the debt)."""
    notice = NOTICES.get(kind)
    return notice is not None and notice.logged


# Events told once for each driver a ride is given to, whatever its other
# versions: keyed by the version of the event that gave it that driver.
ONCE_PER_DRIVER = frozenset({"driver_near"})
# The events that give a ride its driver (dispatch.matching, a run reaching
# the ride); others that leave it assigned (an alarm, a window) give none.
GIVES_DRIVER = frozenset({"assigned", "reassigned"})
