"""
The admin's front page: today's counts (rides by status, drivers online,
rides waiting now, no-shows) and the caller lookup's search box, for staff
who may see rides (UNFOLD's DASHBOARD_CALLBACK).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
from typing import Any

from django.db.models import Count
from django.urls import reverse
from django.utils import timezone

from dispatch import labels
from dispatch.models import DriverState, DriverStatus, Ride, RideStatus


@dataclass(frozen=True, slots=True)
class Tile:
    title: str
    count: int
    href: str
    tone: str = "info"


def _today_start() -> datetime:
    return timezone.make_aware(datetime.combine(timezone.localdate(), time.min))


def today(*, sees_driver_states: bool = True) -> dict[str, Any]:
    """
    Today's counts in TIME_ZONE: the tiles, and today's rides by status.
    Each opens the list it counts; drivers online only for those who may
    open driver states.
    """
    since = _today_start()
    rides = reverse("admin:dispatch_ride_changelist")
    states = reverse("admin:dispatch_driverstate_changelist")
    by_status = dict(
        Ride.objects.filter(created_at__gte=since)
        .values_list("status")
        .annotate(n=Count("pk"))
        .values_list("status", "n")
    )
    online = DriverState.objects.exclude(status=DriverStatus.OFFLINE).count()
    waiting = Ride.objects.pending().count()
    tiles = [
        Tile("Waiting for a driver now", waiting, f"{rides}?status__exact=searching", "warn"),
        Tile(
            "Drivers online",
            online,
            f"{states}?status__exact=available" if sees_driver_states else "",
            "ok",
        ),
        Tile("Rides booked today", sum(by_status.values()), f"{rides}?{_since(since)}"),
        Tile(
            "No-shows today",
            by_status.get(RideStatus.NO_SHOW, 0),
            f"{rides}?status__exact=no_show&{_since(since)}",
            "warn",
        ),
    ]
    statuses = [
        {
            "label": labels.ride_status_label(status),
            "tone": labels.ride_status_tone(status),
            "count": by_status[status],
            "href": f"{rides}?status__exact={status}&{_since(since)}",
        }
        for status in RideStatus.values
        if by_status.get(status)
    ]
    return {"tiles": tiles, "statuses": statuses, "day": timezone.localdate()}


def _since(start: datetime) -> str:
    # unfold.contrib.filters' date range on the rides list.
    return f"created_at_from={start:%Y-%m-%d}"


def dashboard_callback(request, context: dict[str, Any]) -> dict[str, Any]:
    if request.user.has_perm("dispatch.view_ride"):
        context["today"] = today(
            sees_driver_states=request.user.has_perm("dispatch.view_driverstate")
        )
        context["lookup_url"] = reverse("admin:dispatch_caller_lookup")
    return context
