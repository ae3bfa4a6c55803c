"""
Family tracking links: a passenger, or a caregiver who may follow the ride's
position, shares one ride with whoever holds the link (/t/<token>/).

The token is 32 random bytes, shown once; only its SHA-256 is kept. A link
lives until its ride ended SHARE_LINK_AFTER_END ago, or until it is revoked.
What the page shows is cut here, from the ride's snapshot as the broadcast
builds it for everyone, and the position only as dispatch.access lets a
`share` viewer see it (while the ride holds its driver): no phone numbers,
no addresses beyond the pickup and drop-off labels, no needs.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from dispatch import access, broadcast
from dispatch.errors import DispatchError, NotAllowed
from dispatch.models import FINAL_STATUSES, Ride, RideStatus, ShareLink
from people import access as people_access
from people.models import User

SHARE_LINK_AFTER_END = timedelta(minutes=30)
LIVE, ENDED, REVOKED = "live", "ended", "revoked"
# The status in a family's words.
STATUS_WORDS = {
    RideStatus.SCHEDULED: "Booked ahead",
    RideStatus.REQUESTED: "Booked",
    RideStatus.SEARCHING: "Looking for a driver",
    RideStatus.ASSIGNED: "A driver is on the way to the pickup",
    RideStatus.DRIVER_ARRIVED: "The driver is at the pickup",
    RideStatus.IN_PROGRESS: "On the way",
    RideStatus.COMPLETED: "Arrived",
    RideStatus.CANCELLED: "Cancelled",
    RideStatus.NO_SHOW: "The ride did not take place",
    RideStatus.UNFULFILLED: "No driver could be found",
}


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def expires_at(ride: Ride) -> datetime | None:
    """When links to the ride stop working: its end plus 30 minutes (None: not ended)."""
    if ride.status in FINAL_STATUSES:
        return (ride.ended_at or ride.updated_at) + SHARE_LINK_AFTER_END
    return None


def link_state(link: ShareLink, now: datetime | None = None) -> str:
    """
    Live, ended or revoked; a caregiver's link dies with their permission to
    share (their caregiver link revoked, or can_view_location taken away),
    and for good (share_links_recheck).
    """
    now = now or timezone.now()
    if link.revoked_at is not None:
        return REVOKED
    ride = link.ride
    if link.created_by_id != ride.passenger_id and not people_access.may_share_ride(
        link.created_by, ride.passenger
    ):
        return REVOKED
    ends = expires_at(link.ride)
    return ENDED if ends is not None and now >= ends else LIVE


def share_link_create(*, ride: Ride, actor: User) -> tuple[ShareLink, str]:
    """A new link to `ride`, and its token (never stored, shown only now)."""
    if not people_access.may_share_ride(actor, ride.passenger):
        raise NotAllowed("Only the passenger, or a caregiver who may follow the ride, shares it.")
    if ride.status in FINAL_STATUSES:
        raise DispatchError(
            f"Ride {ride.ride_id} has ended; there is nothing to follow.",
            code="invalid_state",
            status=409,
        )
    token = secrets.token_urlsafe(32)
    link = ShareLink.objects.create(ride=ride, created_by=actor, token_hash=token_hash(token))
    return link, token


def share_link_revoke(*, link: ShareLink, actor: User) -> ShareLink:
    """The link stops working at once: its creator, the passenger or a caregiver who may share."""
    if actor.pk != link.created_by_id and not people_access.may_share_ride(
        actor, link.ride.passenger
    ):
        raise NotAllowed("You may not revoke this link.")
    with transaction.atomic():
        ShareLink.objects.filter(pk=link.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
    link.refresh_from_db()
    return link


def share_links_recheck(user_ids: list[int]) -> None:
    """
    Caregiver links between these users changed: each link a caregiver made
    that link_state finds revoked is revoked for good, so giving the
    permission back does not bring a page they shared to life again.
    """
    links = (
        ShareLink.objects.filter(
            revoked_at__isnull=True, created_by_id__in=user_ids, ride__passenger_id__in=user_ids
        )
        .exclude(created_by_id=F("ride__passenger_id"))
        .select_related("created_by", "ride__passenger")
    )
    gone = [link.pk for link in links if link_state(link) == REVOKED]
    if gone:
        ShareLink.objects.filter(pk__in=gone, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )


def share_link_by_token(token: str) -> ShareLink | None:
    return (
        ShareLink.objects.filter(token_hash=token_hash(token))
        .select_related(
            "created_by",
            "ride",
            "ride__passenger",
            "ride__driver",
            "ride__driver__driver_profile",
            "ride__driver__driver_state",
        )
        .first()
    )


def shared_view(link: ShareLink) -> dict[str, Any]:
    """What the tracking page shows of the link's ride, now."""
    ride = link.ride
    state = link_state(link)
    if state != LIVE:
        return {"state": state}
    viewer = access.Viewer(access.SHARE)
    shown = access.shown_to(viewer, broadcast.snapshot(ride), ride.status) or {}
    driver = shown.get("driver") or None
    position = None
    if driver and driver.get("latitude") is not None:
        position = {"latitude": driver["latitude"], "longitude": driver["longitude"]}
    return {
        "state": state,
        "status": ride.status,
        "status_label": STATUS_WORDS[ride.status],
        "driver_first_name": ride.driver.first_name if ride.driver_id else None,
        "vehicle": access.vehicle_told(ride.driver) if ride.driver_id else None,
        "pickup_label": ride.pickup_address or "Pickup",
        "dropoff_label": ride.dropoff_address or "Drop-off",
        # The driver only: the pickup's and drop-off's own coordinates are
        # addresses, which the page never gives away.
        "position": position,
        "ended": ride.status in FINAL_STATUSES,
    }
