"""Reads: who may see what, and the rides and drivers people look at."""

from __future__ import annotations

from dispatch.models import DRIVER_HELD_STATUSES, Ride
from people.models import CaregiverLink, User


def is_dispatcher(user: User) -> bool:
    return bool(
        user.is_authenticated
        and user.is_active
        and user.is_staff
        and (user.is_superuser or user.groups.filter(name="Dispatchers").exists())
    )


def ride_viewer_role(user: User, ride: Ride) -> str | None:
    """How `user` relates to `ride`, or None when they may not see it."""
    if not user.is_authenticated:
        return None
    if user.pk == ride.passenger_id:
        return "passenger"
    if ride.driver_id == user.pk and ride.status in DRIVER_HELD_STATUSES:
        return "driver"
    if is_dispatcher(user):
        return "staff"
    if (
        CaregiverLink.objects.active()
        .filter(passenger_id=ride.passenger_id, caregiver=user)
        .exists()
    ):
        return "caregiver"
    return None


def caregiver_permissions(caregiver_id: int) -> dict[int, dict[str, bool]]:
    """passenger id -> permissions, over the caregiver's active links."""
    links = CaregiverLink.objects.active().filter(caregiver_id=caregiver_id)
    return {link.passenger_id: link.permissions() for link in links}


def active_ride_for_driver(driver_id: int) -> Ride | None:
    return (
        Ride.objects.with_people()
        .filter(driver_id=driver_id, status__in=DRIVER_HELD_STATUSES)
        .first()
    )
