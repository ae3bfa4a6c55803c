"""
Driver verification: support checks a driver's documents and lets them work.
"""

from __future__ import annotations

from django.db import transaction

from people.models import DriverProfile, User
from people.services import audit_event_record


def driver_verify(*, profile: DriverProfile, actor: User | None, verified: bool) -> DriverProfile:
    """
    Mark a driver verified (they may go online) or not. An unverified driver
    who is online waiting for rides is taken offline at once; one on a trip
    finishes it and cannot go online again. Nothing changes, and nothing is
    audited, when the profile already says so.
    """
    with transaction.atomic():
        changed = (
            DriverProfile.objects.filter(pk=profile.pk)
            .exclude(is_verified=verified)
            .update(is_verified=verified)
        )
        profile.is_verified = verified
        if not changed:
            return profile
        audit_event_record(
            actor=actor,
            action="driver.verified" if verified else "driver.unverified",
            subject=profile,
            payload={"driver_id": profile.user_id},
        )
        if not verified:
            _take_offline(profile.user_id)
    return profile


def _take_offline(driver_id: int) -> None:
    from dispatch import services
    from dispatch.models import DriverState, DriverStatus

    if DriverState.objects.filter(driver_id=driver_id, status=DriverStatus.AVAILABLE).exists():
        services.driver_set_status(
            driver=User.objects.get(pk=driver_id), status=DriverStatus.OFFLINE
        )
