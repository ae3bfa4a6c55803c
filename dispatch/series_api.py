"""
Recurring series over REST, under /api/series/: the passenger, a caregiver
who may book for them, or a dispatcher creates, edits, pauses and ends
them (dispatch.series). Every change answers with what it did to the
series' rides, including the planned ones it left alone.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Any

from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone
from ninja import Router, Status
from ninja.pagination import PageNumberPagination, paginate

from dispatch import access, payloads, series
from dispatch.models import Ride, RideSeries, SeriesPause
from dispatch.rest_schemas import (
    EndIn,
    PauseIn,
    SeriesChangeOut,
    SeriesIn,
    SeriesOut,
    SeriesPatch,
)
from dispatch.scheduling import needs_fields, needs_of, place_of
from people import access as people_access
from people.rest_schemas import ErrorOut, changes_sent
from people.tokens import AccessTokenAuth
from project.common.errors import ApiError

series_router = Router(auth=AccessTokenAuth(), tags=["series"])
REFUSALS = {400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 409: ErrorOut}


def series_out(s: RideSeries) -> dict[str, Any]:
    upcoming = Ride.objects.filter(series=s, service_date__gte=timezone.localdate()).order_by(
        "service_date", "leg"
    )
    return {
        "id": s.pk,
        "passenger": payloads.person(s.passenger),
        "booked_by": payloads.person(s.booked_by),
        "status": s.status,
        "version": s.version,
        "weekdays": s.weekdays,
        "start_date": s.start_date,
        "end_date": s.end_date,
        "pickup_time": s.pickup_time,
        "appointment_time": s.appointment_time,
        "return_time": s.return_time,
        "return_will_call": s.return_will_call,
        "except_dates": s.except_dates,
        "pauses": [
            {"id": p.pk, "start_date": p.start_date, "end_date": p.end_date, "reason": p.reason}
            for p in s.pauses.all()
        ],
        "pickup": asdict(place_of(s, "pickup")),
        "dropoff": asdict(place_of(s, "dropoff")),
        "needs": asdict(needs_of(s)),
        "notes": s.notes,
        "materialised_until": s.materialised_until,
        "upcoming": [
            {
                "ride_id": r.ride_id,
                "service_date": r.service_date.isoformat(),
                "leg": r.leg,
                "status": r.status,
                "planned": r.run_id is not None,
            }
            for r in upcoming
        ],
    }


def _change_out(change: series.SeriesChange) -> dict[str, Any]:
    change.series.refresh_from_db()
    return {
        "series": series_out(change.series),
        "created": change.created,
        "changed": change.changed,
        "cancelled": change.cancelled,
        "kept_planned": change.kept_planned,
    }


def _series(request: HttpRequest, series_id: int) -> RideSeries:
    found = RideSeries.objects.select_related("passenger", "booked_by").filter(pk=series_id).first()
    if found is None or not access.may_see_series(request.auth, found):
        raise ApiError(404, "not_found", f"There is no series {series_id} of yours.")
    return found


@series_router.get("/", response={200: list[SeriesOut], 401: ErrorOut}, summary="My series")
@paginate(PageNumberPagination, page_size=20, max_page_size=100)
def series_list(request: HttpRequest):
    """The caller's series, and those of passengers they care for (active links), newest first."""
    cared_for = people_access.passengers_cared_for(request.auth.pk)
    found = RideSeries.objects.select_related("passenger", "booked_by").filter(
        Q(passenger=request.auth) | Q(passenger_id__in=cared_for)
    )
    return [series_out(s) for s in found.order_by("-created_at", "-pk")]


@series_router.post("/", response={201: SeriesChangeOut, **REFUSALS}, summary="A new series")
def series_create(request: HttpRequest, payload: SeriesIn):
    passenger = access.passenger_to_book_ahead_for(
        request.auth, payload.passenger_id, payload.passenger_phone
    )
    change = series.series_create(
        passenger=passenger,
        booked_by=request.auth,
        weekdays=payload.weekdays,
        start_date=payload.start_date,
        end_date=payload.end_date,
        pickup_time=payload.pickup_time,
        appointment_time=payload.appointment_time,
        return_time=payload.return_time,
        return_will_call=payload.return_will_call,
        except_dates=[d.isoformat() for d in payload.except_dates],
        pickup=payload.pickup.place(),
        dropoff=payload.dropoff.place(),
        needs=payload.needs.needs(),
        notes=payload.notes,
    )
    return Status(201, _change_out(change))


@series_router.get("/{series_id}/", response={200: SeriesOut, **REFUSALS}, summary="One series")
def series_detail(request: HttpRequest, series_id: int):
    return series_out(_series(request, series_id))


@series_router.patch(
    "/{series_id}/", response={200: SeriesChangeOut, **REFUSALS}, summary="Change a series"
)
def series_update(request: HttpRequest, series_id: int, payload: SeriesPatch):
    """Its future rides not yet planned follow; `kept_planned` lists those left alone."""
    found = _series(request, series_id)
    sent = changes_sent(payload)
    changes: dict[str, Any] = {}
    for end in ("pickup", "dropoff"):
        for part, value in (sent.pop(end, None) or {}).items():
            changes[f"{end}_{part}"] = value
    if "needs" in sent:
        needs = replace(needs_of(found), **sent.pop("needs"))
        changes.update(needs_fields(found.passenger, needs))
    if "except_dates" in sent:
        sent["except_dates"] = [d.isoformat() for d in sent["except_dates"] or []]
    if sent.get("pickup_time") is not None:
        sent.setdefault("appointment_time", None)
    if sent.get("appointment_time") is not None:
        sent.setdefault("pickup_time", None)
    changes.update(sent)
    return _change_out(series.series_update(series=found, actor=request.auth, **changes))


@series_router.post(
    "/{series_id}/pause/", response={200: SeriesChangeOut, **REFUSALS}, summary="Pause a series"
)
def series_pause(request: HttpRequest, series_id: int, payload: PauseIn):
    found = _series(request, series_id)
    change = series.series_pause(series=found, actor=request.auth, **payload.model_dump())
    return _change_out(change)


@series_router.delete(
    "/{series_id}/pauses/{pause_id}/",
    response={200: SeriesChangeOut, **REFUSALS},
    summary="Take a pause back",
)
def series_resume(request: HttpRequest, series_id: int, pause_id: int):
    found = _series(request, series_id)
    pause = SeriesPause.objects.filter(series=found, pk=pause_id).first()
    if pause is None:
        raise ApiError(404, "not_found", f"There is no pause {pause_id} of this series.")
    return _change_out(series.series_resume(series=found, actor=request.auth, pause=pause))


@series_router.post(
    "/{series_id}/end/", response={200: SeriesChangeOut, **REFUSALS}, summary="End a series"
)
def series_end(request: HttpRequest, series_id: int, payload: EndIn):
    found = _series(request, series_id)
    change = series.series_end(series=found, actor=request.auth, last_date=payload.last_date)
    return _change_out(change)
