"""
"The driver is about N minutes away": watched on the live positions of a
ride's driver (dispatch.drivers.report_position), told once for each driver
the ride is given to, when the pickup ETA falls to NOTIFY_NEAR_MIN.

Each worker remembers, per ride and driver, the pickup and whether it is
told, so a position report costs no database call; the first report of a
ride's driver reads it once, and the telling writes the notices in one
transaction. Two workers telling the same ride write one set of rows (the
outbox key: events.ONCE_PER_DRIVER).
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction

from dispatch.geo import Point, haversine_km
from dispatch.models import Ride, RideStatus
from dispatch.notify.outbox import notices_write
from dispatch.payloads import eta_minutes
from project.common.db import db_async

# (ride_id, driver_id) -> the pickup (lat, lng) while that driver heads
# there; None once told, past the pickup, or not that driver's ride.
# Forgotten when the ride is given to the driver (again: driver_given).
# Bounded: the oldest are forgotten first.
_watched: dict[tuple[str, int], tuple[float, float] | None] = {}
WATCHED_MAX = 20_000


def _pickup(ride_id: str, driver_id: int) -> tuple[float, float] | None:
    return (
        Ride.objects.filter(ride_id=ride_id, driver_id=driver_id, status=RideStatus.ASSIGNED)
        .values_list("pickup_latitude", "pickup_longitude")
        .first()
    )


def _tell(ride_id: str, driver_id: int, minutes: int) -> None:
    with transaction.atomic():
        ride = (
            Ride.objects.with_people()
            .filter(ride_id=ride_id, driver_id=driver_id, status=RideStatus.ASSIGNED)
            .first()
        )
        if ride is not None:
            notices_write(ride, "driver_near", minutes=minutes)


def driver_given(ride_id: str, driver_id: int) -> None:
    """The ride is (again) this driver's: their approach is told anew."""
    _watched.pop((ride_id, driver_id), None)


async def driver_moved(ride_id: str, driver_id: int, point: Point) -> None:
    """A position of `ride_id`'s driver; tells the ride's people once that driver is near."""
    key = (ride_id, driver_id)
    if key not in _watched:
        if len(_watched) >= WATCHED_MAX:
            del _watched[next(iter(_watched))]
        _watched[key] = await db_async(_pickup)(ride_id, driver_id)
    pickup = _watched[key]
    if pickup is None:
        return
    minutes = eta_minutes(haversine_km(point.lat, point.lng, *pickup))
    if minutes > settings.NOTIFY_NEAR_MIN:
        return
    _watched[key] = None
    await db_async(_tell)(ride_id, driver_id, minutes)
