"""
How long a driver's last position is kept once they stop driving. The
position is copied to the database while a driver is online (for a cold
location store and the console); a driver who has been offline for longer
than RETENTION_DAYS needs none of it, so it is forgotten, in the database
and in the live store. Rides keep their pickup and dropoff: they are the
record of a trip, not a trace of where a driver was. Run daily by
`manage.py housekeeping`, beside people's rule (people.retention).
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.db.models import Q

from dispatch.locations import location_store
from dispatch.models import DriverState, DriverStatus


def positions_purge(*, before: datetime) -> int:
    """Forget the last position of drivers offline, and unseen, since before `before`."""
    with transaction.atomic():
        states = (
            DriverState.objects.select_for_update()
            .filter(status=DriverStatus.OFFLINE)
            .filter(Q(latitude__isnull=False) | Q(longitude__isnull=False))
            .filter(Q(location_updated_at__lt=before) | Q(location_updated_at__isnull=True))
            .filter(Q(last_seen_at__lt=before) | Q(last_seen_at__isnull=True))
        )
        driver_ids = list(states.values_list("driver_id", flat=True))
        DriverState.objects.filter(driver_id__in=driver_ids).update(
            latitude=None, longitude=None, heading=None, speed=None, location_updated_at=None
        )
    store = location_store()
    for driver_id in driver_ids:
        store.remove(driver_id)
    return len(driver_ids)
