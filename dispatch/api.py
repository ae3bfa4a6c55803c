"""
Rides over REST, under /api/rides/: what the apps show as history and as the
detail of one ride. Booking and live updates stay on the sockets.

Who sees a ride: its passenger, the caregivers the passenger has an active
link with, the driver it was given to, and (one ride at a time) dispatchers.
Anyone else gets 404, exactly as for a ride that does not exist.

What each sees, beyond the ride itself:
- the passenger's needs card, only while the ride is active;
- the driver's position, only while the ride is active, and to a caregiver
  only with can_view_location;
- the other side's phone number, only while the ride is active (dispatchers
  always).
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet
from django.http import HttpRequest
from ninja import Router
from ninja.pagination import PageNumberPagination, paginate

from dispatch import messages, selectors
from dispatch.api_schemas import RideDetailOut, RideOut
from dispatch.models import Ride
from people.models import CaregiverLink, User
from people.schemas import ErrorOut
from people.tokens import AccessTokenAuth
from project.api import ApiError

ride_router = Router(auth=AccessTokenAuth(), tags=["rides"])


def _rides_of(user: User) -> QuerySet[Ride]:
    """The rides a user is part of: as passenger, caregiver or driver."""
    cared_for = CaregiverLink.objects.active().filter(caregiver=user).values("passenger_id")
    return Ride.objects.with_people().filter(
        Q(passenger=user) | Q(driver=user) | Q(passenger_id__in=cared_for)
    )


def _caregiver_perms(user: User, passenger_ids: set[int]) -> dict[int, dict[str, bool]]:
    links = CaregiverLink.objects.active().filter(caregiver=user, passenger_id__in=passenger_ids)
    return {link.passenger_id: link.permissions() for link in links}


def _role(user: User, ride: Ride, perms: dict[int, dict[str, bool]]) -> str | None:
    if ride.passenger_id == user.pk:
        return "passenger"
    if ride.driver_id is not None and ride.driver_id == user.pk:
        return "driver"
    if ride.passenger_id in perms:
        return "caregiver"
    if selectors.is_dispatcher(user):
        return "staff"
    return None


def _ride_out(ride: Ride, role: str, perms: dict[str, bool] | None = None) -> dict[str, Any]:
    """The ride as `role` may see it; `perms` are a caregiver's link permissions."""
    data = messages.ride_status(ride)
    data["role"] = role
    active = ride.is_active
    if data["driver"] is not None:
        driver = data["driver"]
        sees_position = active and (role != "caregiver" or (perms or {}).get("can_view_location"))
        if not sees_position:
            driver["latitude"] = driver["longitude"] = None
        if not active and role != "staff":
            driver["phone"] = None
    if not active and role == "driver":
        data["passenger"]["phone"] = None
        data["booked_by"]["phone"] = None
    data["needs"] = messages.needs_card(ride) if active else None
    return data


class RidePagination(PageNumberPagination):
    """
    ?page=1&page_size=20 (at most 100). The body is {"items": [...], "count"}
    with `count` the number of rides over all pages.
    """

    def paginate_queryset(self, queryset, pagination, request: HttpRequest, **params):
        page = super().paginate_queryset(queryset, pagination, request, **params)
        user = request.auth
        rides = list(page["items"])
        perms = _caregiver_perms(user, {r.passenger_id for r in rides})
        page["items"] = [
            _ride_out(r, _role(user, r, perms), perms.get(r.passenger_id)) for r in rides
        ]
        return page


@ride_router.get(
    "/",
    response={200: list[RideOut], 401: ErrorOut},
    summary="My rides, newest first",
)
@paginate(RidePagination, page_size=20, max_page_size=100)
def ride_list(request: HttpRequest):
    """
    Rides the caller took, drove, or that belong to a passenger who has an
    active caregiver link with the caller.
    """
    return _rides_of(request.auth).order_by("-created_at", "-pk")


@ride_router.get(
    "/{ride_id}/",
    response={200: RideDetailOut, 401: ErrorOut, 404: ErrorOut},
    summary="One ride, with its events",
)
def ride_detail(request: HttpRequest, ride_id: str):
    """The ride and every event of it in order (version, kind, statuses)."""
    user = request.auth
    ride = Ride.objects.with_people().filter(ride_id=ride_id).first()
    perms = _caregiver_perms(user, {ride.passenger_id}) if ride is not None else {}
    role = _role(user, ride, perms) if ride is not None else None
    if role is None:
        raise ApiError(404, "not_found", f"There is no ride {ride_id} of yours.")
    data = _ride_out(ride, role, perms.get(ride.passenger_id))
    data["events"] = [
        {
            "version": e.version,
            "kind": e.kind,
            "from_status": e.from_status or None,
            "to_status": e.to_status or None,
            "actor_role": e.actor_role or None,
            "created_at": e.created_at,
        }
        for e in ride.events.order_by("version")
    ]
    return data
