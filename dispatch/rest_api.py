"""
Rides over REST, under /api/rides/: what the apps show as history and as the
detail of one ride; booking ahead, a will-call return's "ready", and
cancelling. Booking now and live updates stay on the sockets.

A passenger, or a caregiver who may follow the ride, shares it with
family through a tracking link (POST and DELETE .../share-links/,
dispatch.sharing).

Who sees a ride, and what of it, is dispatch.access's to decide, exactly as
on the sockets; a ride the caller may not see answers 404, exactly as one
that does not exist. The passenger's needs card comes only while the ride is
active.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from ninja import Field, Router, Schema, Status
from ninja.pagination import PageNumberPagination, paginate

from dispatch import access, broadcast, payloads, rides, scheduling, sharing
from dispatch.access import Viewer
from dispatch.errors import NotAllowed
from dispatch.models import Ride, ShareLink
from dispatch.rest_schemas import (
    BookAheadIn,
    BookedOut,
    CancelIn,
    RideDetailOut,
    RideOut,
    ShareLinkOut,
)
from people import access as people_access
from people.models import User
from people.rest_schemas import ErrorOut
from people.tokens import AccessTokenAuth
from project.common.errors import ApiError

ride_router = Router(auth=AccessTokenAuth(), tags=["rides"])
# What a change to one ride may answer instead.
REFUSALS = {401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 409: ErrorOut}


def _rides_of(user: User) -> QuerySet[Ride]:
    """The rides a user is part of: as passenger, caregiver or driver."""
    cared_for = people_access.passengers_cared_for(user.pk)
    return Ride.objects.with_people().filter(
        Q(passenger=user) | Q(driver=user) | Q(passenger_id__in=cared_for)
    )


def _ride_out(ride: Ride, viewer: Viewer) -> dict[str, Any]:
    """The ride as `viewer` may see it."""
    data = access.shown_to(viewer, broadcast.snapshot(ride), ride.status)
    data["role"] = viewer.role
    data["needs"] = payloads.needs_card(ride) if ride.is_active else None
    return data


class RidePagination(PageNumberPagination):
    """
    ?page=1&page_size=20 (at most 100). The body is {"items": [...], "count"}
    with `count` the number of rides over all pages.
    """

    class Input(Schema):
        # Bounded: an offset past what the database reads would be its error.
        page: int = Field(1, ge=1, le=1_000_000)
        page_size: int | None = Field(None, ge=1)

    def paginate_queryset(self, queryset, pagination, request: HttpRequest, **params):
        page = super().paginate_queryset(queryset, pagination, request, **params)
        rides = list(page["items"])
        viewers = access.viewers_of(request.auth, rides)
        page["items"] = [_ride_out(ride, viewers[ride.pk]) for ride in rides]
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
    ride, viewer = _visible(request, ride_id)
    data = _ride_out(ride, viewer)
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


def _visible(request: HttpRequest, ride_id: str) -> tuple[Ride, Viewer]:
    """The ride and how the caller sees it; one they may not see is not found."""
    ride = Ride.objects.with_people().filter(ride_id=ride_id).first()
    viewer = access.viewer_of(request.auth, ride) if ride is not None else None
    if viewer is None:
        raise ApiError(404, "not_found", f"There is no ride {ride_id} of yours.")
    return ride, viewer


@ride_router.post(
    "/",
    response={201: BookedOut, 400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 409: ErrorOut},
    summary="Book a ride ahead",
)
def ride_book_ahead(request: HttpRequest, payload: BookAheadIn):
    """
    A ride for a pickup time or an appointment (arrive by), from now up to
    BOOKING_HORIZON_DAYS ahead, with its return leg if asked (a time, or
    will-call). For someone else: `passenger_id` or `passenger_phone`
    (a caregiver with the booking permission, or a dispatcher).
    """
    passenger = access.passenger_to_book_ahead_for(
        request.auth, payload.passenger_id, payload.passenger_phone
    )
    ride = scheduling.ride_book_ahead(
        passenger=passenger,
        booked_by=request.auth,
        ride_id=payload.ride_id,
        pickup=payload.pickup.place(),
        dropoff=payload.dropoff.place(),
        pickup_at=payload.pickup_at,
        appointment_at=payload.appointment_at,
        return_at=payload.return_at,
        return_will_call=payload.return_will_call,
        needs=payload.needs.needs(),
        notes=payload.notes,
    )
    legs = list(Ride.objects.with_people().filter(Q(pk=ride.pk) | Q(outbound=ride)))
    viewers = access.viewers_of(request.auth, legs)
    out = {leg.pk: _ride_out(leg, viewers[leg.pk]) for leg in legs}
    return Status(
        201, {"ride": out[ride.pk], "returns": [v for k, v in out.items() if k != ride.pk]}
    )


@ride_router.post(
    "/{ride_id}/ready/",
    response={200: RideOut, **REFUSALS},
    summary="A will-call return: the rider is ready",
)
def ride_ready(request: HttpRequest, ride_id: str):
    """The passenger, or a caregiver who may book, says the rider is ready to go home."""
    ride, _ = _visible(request, ride_id)
    scheduling.ride_ready(ride=ride, actor=request.auth)
    return _ride_out(*_visible(request, ride_id))


@ride_router.post(
    "/{ride_id}/cancel/",
    response={200: RideOut, **REFUSALS},
    summary="Cancel a ride",
)
def ride_cancel(request: HttpRequest, ride_id: str, payload: CancelIn):
    """As cancel_ride on the ride socket: the passenger, a caregiver who may book, staff."""
    ride, viewer = _visible(request, ride_id)
    if viewer.role == access.DRIVER:
        raise NotAllowed("Drivers give a ride back on the driver socket (cancel_ride).")
    rides.ride_cancel(
        ride=ride,
        actor=request.auth,
        cancelled_by=viewer.cancels_as(),
        reason=payload.reason,
        keep_return=payload.keep_return,
    )
    return _ride_out(*_visible(request, ride_id))


@ride_router.post(
    "/{ride_id}/share-links/",
    response={201: ShareLinkOut, **REFUSALS},
    summary="Share the ride with family: a tracking link",
)
def share_link_create(request: HttpRequest, ride_id: str):
    """
    A public page that follows this ride (status, the driver's first name
    and vehicle, the car on a map while the ride is under way) until 30
    minutes after it ends. The passenger, or a caregiver with
    can_view_location. The token is in `url` and shown only now.
    """
    ride, _ = _visible(request, ride_id)
    link, token = sharing.share_link_create(ride=ride, actor=request.auth)
    return Status(
        201,
        {
            "id": link.pk,
            "ride_id": ride.ride_id,
            "url": request.build_absolute_uri(reverse("track", args=[token])),
            "token": token,
            "created_at": link.created_at,
            "expires_at": sharing.expires_at(ride),
        },
    )


@ride_router.delete(
    "/{ride_id}/share-links/{link_id}/",
    response={204: None, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut},
    summary="Revoke a tracking link",
)
def share_link_revoke(request: HttpRequest, ride_id: str, link_id: int):
    """The page stops showing the ride at once."""
    ride, _ = _visible(request, ride_id)
    link = ShareLink.objects.select_related("ride__passenger").filter(pk=link_id, ride=ride).first()
    if link is None:
        raise ApiError(404, "not_found", f"Ride {ride_id} has no share link {link_id}.")
    sharing.share_link_revoke(link=link, actor=request.auth)
    return Status(204, None)
