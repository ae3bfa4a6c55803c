"""
"The driver is about N minutes away": watched on the live positions of a
ride's driver (dispatch.drivers.report_position), told once per ride when
the pickup ETA falls to NOTIFY_NEAR_MIN.

Each worker remembers, per ride, its pickup and whether it is told, so a
position report costs no database call; the first report of a ride reads it
once, and the telling writes the notices in one transaction. Two workers
telling the same ride write one set of rows (the outbox key).
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction

from dispatch.geo import Point, haversine_km
from dispatch.models import Ride, RideStatus
from dispatch.notify.outbox import notices_write
from dispatch.payloads import eta_minutes
from project.common.db import db_async

# ride_id -> its pickup (lat, lng) while heading there; None once told or
# past the pickup. Bounded: the oldest are forgotten first.
_watched: dict[str, tuple[float, float] | None] = {}
WATCHED_MAX = 20_000


def _pickup(ride_id: str) -> tuple[float, float] | None:
    ride = (
        Ride.objects.filter(ride_id=ride_id)
        .values_list("status", "pickup_latitude", "pickup_longitude")
        .first()
    )
    if ride is None or ride[0] != RideStatus.ASSIGNED:
        return None
    return ride[1], ride[2]


def _tell(ride_id: str, minutes: int) -> None:
    with transaction.atomic():
        ride = Ride.objects.with_people().filter(ride_id=ride_id).first()
        if ride is not None and ride.status == RideStatus.ASSIGNED:
            notices_write(ride, "driver_near", minutes=minutes)


async def driver_moved(ride_id: str, point: Point) -> None:
    """A position of the driver of `ride_id`; tells the ride's people once it is near."""
    if ride_id not in _watched:
        if len(_watched) >= WATCHED_MAX:
            del _watched[next(iter(_watched))]
        _watched[ride_id] = await db_async(_pickup)(ride_id)
    pickup = _watched[ride_id]
    if pickup is None:
        return
    minutes = eta_minutes(haversine_km(point.lat, point.lng, *pickup))
    if minutes > settings.NOTIFY_NEAR_MIN:
        return
    _watched[ride_id] = None
    await db_async(_tell)(ride_id, minutes)
