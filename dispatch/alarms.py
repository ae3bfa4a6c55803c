"""
Alarms on a trip under way, and the watchdog that raises them:

- a driver holding a ride whose app has been silent for more than
  WATCHDOG_SILENT_MIN (the staleness rule of dispatch.drivers, with the
  watchdog's longer threshold);
- a driver standing still for more than WATCHDOG_STOPPED_MIN, away from
  the pickup and the drop-off (on the way to either);
- a passenger's `sos` on the ride socket.

An alarm goes to the consoles and to the caregivers who may receive
notifications (dispatch.broadcast), and stays on the board until a
dispatcher acknowledges it. Raising and acknowledging are events on the
ride's log (dispatch.rides.record); the acknowledgement is audited too.
"""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import UTC, datetime

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.utils import timezone

from dispatch import broadcast, drivers, payloads, rides
from dispatch.errors import DispatchError, IllegalTransition, NotAllowed, NotFound
from dispatch.geo import Point, haversine_km
from dispatch.locations import live_position
from dispatch.models import (
    ACTIVE_STATUSES,
    DRIVER_HELD_STATUSES,
    Alarm,
    AlarmKind,
    Ride,
    RideStatus,
)
from people.access import is_dispatcher
from people.audit import audit_event_record
from people.models import User

# A driver within this of where they were is standing still.
STILL_KM = 0.05
# Standing still this near the pickup or the drop-off is waiting, not trouble.
NEAR_STOP_KM = 0.2


def alarm_raise(
    *,
    ride_pk: int,
    kind: str,
    actor: User | None = None,
    role: str = "system",
    details: dict | None = None,
) -> Alarm | None:
    """
    Raise an alarm on the ride, or return the one of that kind still open.
    None when the ride changed under the raise (the next sweep tries again).
    """
    try:
        with transaction.atomic():
            ride = Ride.objects.select_for_update().get(pk=ride_pk)
            open_alarm = Alarm.objects.filter(ride=ride, kind=kind, acknowledged_at=None).first()
            if open_alarm is not None:
                return open_alarm
            alarm = Alarm.objects.create(
                ride=ride, kind=kind, raised_by=actor, details=details or {}
            )
            payload = {"alarm_id": alarm.pk, "kind": kind, **(details or {})}
            if not rides.record(
                ride, broadcast.ALARM_RAISED, actor=actor, role=role, payload=payload
            ):
                transaction.set_rollback(True)
                return None
            broadcast.ride_changed(ride, broadcast.ALARM_RAISED, alarm=alarm)
    except IntegrityError:
        # Another worker raised it meanwhile (one open alarm per ride and kind).
        return Alarm.objects.filter(ride_id=ride_pk, kind=kind, acknowledged_at=None).first()
    return alarm


def alarm_sos(*, ride: Ride, passenger: User) -> Alarm:
    """The passenger asks for help on their ride (the ride socket's `sos`)."""
    if ride.passenger_id != passenger.pk:
        raise NotAllowed("Only the passenger sends an SOS on their ride.")
    if ride.status not in ACTIVE_STATUSES:
        raise IllegalTransition(
            ride, ride.status, f"Ride {ride.ride_id} is {ride.status}; call for help by phone."
        )
    for _ in range(3):
        alarm = alarm_raise(ride_pk=ride.pk, kind=AlarmKind.SOS, actor=passenger, role="passenger")
        if alarm is not None:
            return alarm
    raise DispatchError("The ride is changing; send the SOS again.", code="conflict", status=409)


def alarm_acknowledge(*, alarm_pk: int, actor: User) -> Alarm:
    """A dispatcher takes the alarm in hand: audited, on the ride's log, off the board."""
    if not is_dispatcher(actor):
        raise NotAllowed("Only dispatchers acknowledge alarms.")
    with transaction.atomic():
        alarm = Alarm.objects.select_for_update().filter(pk=alarm_pk).first()
        if alarm is None:
            raise NotFound("There is no such alarm.")
        if alarm.acknowledged_at is not None:
            raise DispatchError(
                "This alarm was acknowledged already.", code="invalid_state", status=409
            )
        alarm.acknowledged_at = timezone.now()
        alarm.acknowledged_by = actor
        alarm.save(update_fields=["acknowledged_at", "acknowledged_by"])
        ride = Ride.objects.select_for_update().get(pk=alarm.ride_id)
        payload = {"alarm_id": alarm.pk, "kind": alarm.kind, "ride_id": ride.ride_id}
        audit_event_record(actor=actor, action="alarm.acknowledged", subject=alarm, payload=payload)
        if rides.record(
            ride, broadcast.ALARM_ACKNOWLEDGED, actor=actor, role="dispatcher", payload=payload
        ):
            broadcast.ride_changed(ride, broadcast.ALARM_ACKNOWLEDGED, alarm=alarm)
    return alarm


# --- the watchdog --------------------------------------------------------------


def _raised_since(ride: Ride, kind: str, since: float) -> bool:
    """Whether this trouble (begun at `since`) was raised already, acknowledged or not."""
    begun = datetime.fromtimestamp(since, tz=UTC)
    return Alarm.objects.filter(ride=ride, kind=kind, raised_at__gte=begun).exists()


def _still_since(ride: Ride, point: Point, now: float) -> float:
    """Since when the driver has stood where they are (first seen there by a sweep)."""
    key = f"watchdog.still.{ride.pk}"
    anchor = cache.get(key)
    if anchor is None or haversine_km(anchor[0], anchor[1], point.lat, point.lng) > STILL_KM:
        anchor = (point.lat, point.lng, now)
    # Kept a little beyond the alarm's threshold; every sweep renews it.
    cache.set(key, anchor, timeout=int(settings.WATCHDOG_STOPPED_MIN * 60) + 3600)
    return anchor[2]


def _early(ride: Ride, point: Point, now: float) -> bool:
    """
    A pickup planned for later that the driver can still make from where they
    stand (a run's driver waiting for a booked time): standing is no trouble.
    """
    if ride.status != RideStatus.ASSIGNED or ride.confirmed_pickup_at is None:
        return False
    away = haversine_km(point.lat, point.lng, ride.pickup_latitude, ride.pickup_longitude)
    return now + payloads.eta_minutes(away) * 60 < ride.confirmed_pickup_at.timestamp()


def _near_a_stop(stops: list[tuple[float, float]], point: Point) -> bool:
    return any(haversine_km(lat, lng, point.lat, point.lng) <= NEAR_STOP_KM for lat, lng in stops)


def watch_trips(*, now: float | None = None) -> list[Alarm]:
    """
    One pass of the watchdog over every ride that holds its driver: the
    alarms raised.
    """
    now = time.time() if now is None else now
    raised: list[Alarm] = []
    held = list(
        Ride.objects.filter(status__in=DRIVER_HELD_STATUSES).select_related("driver__driver_state")
    )
    # A driver stands at a stop of any ride they hold: a run's driver
    # boarding the next rider is not stopped on the way of the one aboard.
    stops: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for ride in held:
        stops[ride.driver_id] += [
            (ride.pickup_latitude, ride.pickup_longitude),
            (ride.dropoff_latitude, ride.dropoff_longitude),
        ]
    for ride in held:
        point = live_position(ride.driver_id, getattr(ride.driver, "driver_state", None))
        silent_after = settings.WATCHDOG_SILENT_MIN * 60
        if drivers.is_stale(point, now, after_s=silent_after):
            since = point.seen if point is not None else 0.0
            if not _raised_since(ride, AlarmKind.SILENT, since):
                details = {"driver_id": ride.driver_id, "silent_min": settings.WATCHDOG_SILENT_MIN}
                raised.append(alarm_raise(ride_pk=ride.pk, kind=AlarmKind.SILENT, details=details))
            continue
        if point is None or not drivers.reports(point) or ride.status == RideStatus.DRIVER_ARRIVED:
            continue
        since = _still_since(ride, point, now)
        if (
            now - since <= settings.WATCHDOG_STOPPED_MIN * 60
            or _near_a_stop(stops[ride.driver_id], point)
            or _early(ride, point, now)
        ):
            continue
        if not _raised_since(ride, AlarmKind.STOPPED, since):
            details = {
                "driver_id": ride.driver_id,
                "latitude": point.lat,
                "longitude": point.lng,
                "stopped_min": settings.WATCHDOG_STOPPED_MIN,
            }
            raised.append(alarm_raise(ride_pk=ride.pk, kind=AlarmKind.STOPPED, details=details))
    return [a for a in raised if a is not None]
