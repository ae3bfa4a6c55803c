"""
Booking ahead: when a ride may be booked for, the booking of one ride (and
its return leg), and a will-call return's "ready".

A ride booked ahead has a requested pickup time or an appointment to arrive
by, from now to BOOKING_HORIZON_DAYS ahead (its local date, TIME_ZONE).
It is `scheduled` until its day's plan puts it on a run
(dispatch.planning.services) and the run reaches it. A return leg has its
own time, or is will-call: the rider says when they are ready, and the leg
joins a run that passes or is matched on demand at once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from dispatch import access, broadcast, matching, rides
from dispatch.errors import (
    DispatchError,
    IllegalTransition,
    NotAllowed,
    NotWaitingForReady,
    RideConflict,
)
from dispatch.models import (
    FINAL_STATUSES,
    RETURN_NOT_CALLED,
    CancelledBy,
    Leg,
    Ride,
    RideRequest,
    RideSeries,
    RideStatus,
)
from dispatch.planning import day
from people import profiles
from people.models import User


@dataclass(frozen=True, slots=True)
class Place:
    latitude: float
    longitude: float
    address: str = ""


@dataclass(frozen=True, slots=True)
class Needs:
    """What the rider brings: None for the wheelchair means the passenger profile's."""

    wheelchair: bool | None = None
    walker: bool = False
    service_animal: bool = False
    companions: int = 0
    attendant: bool = False


def service_date_of(when: datetime) -> date:
    """The local day (TIME_ZONE) a time falls on."""
    return timezone.localtime(when).date()


# A will-call return may be said ready on its day and the next (a rider
# dropped off after midnight, or kept in overnight); later, it is closed.
READY_DAYS_LATE = 1


def ready_days_over(now: datetime) -> date:
    """The last service day whose will-call returns can no longer be said ready."""
    return service_date_of(now) - timedelta(days=READY_DAYS_LATE + 1)


def last_bookable_date(now: datetime | None = None) -> date:
    return service_date_of(now or timezone.now()) + timedelta(days=settings.BOOKING_HORIZON_DAYS)


def check_bookable(when: datetime, *, field: str, now: datetime | None = None) -> None:
    """A time already past, or past the horizon, is refused (invalid_request)."""
    now = now or timezone.now()
    if timezone.is_naive(when):
        raise DispatchError("Give the time with its offset or in UTC.", fields={field: "naive"})
    if when <= now:
        raise DispatchError("That time has already passed.", fields={field: "in the past"})
    # Measured from now first: a time at the calendar's end has no local day.
    horizon = timedelta(days=settings.BOOKING_HORIZON_DAYS + 1)
    if when - now > horizon or service_date_of(when) > last_bookable_date(now):
        raise DispatchError(
            f"Rides can be booked up to {settings.BOOKING_HORIZON_DAYS} days ahead.",
            fields={field: "beyond the booking horizon"},
        )


def place_fields(prefix: str, place: Place) -> dict:
    """A place as the `<prefix>_` columns of a RideRequest (`pickup`, `dropoff`)."""
    return {
        f"{prefix}_latitude": place.latitude,
        f"{prefix}_longitude": place.longitude,
        f"{prefix}_address": place.address,
    }


def place_of(request: RideRequest, prefix: str) -> Place:
    """The place in a RideRequest's `<prefix>_` columns."""
    return Place(
        getattr(request, f"{prefix}_latitude"),
        getattr(request, f"{prefix}_longitude"),
        getattr(request, f"{prefix}_address"),
    )


def needs_fields(passenger: User, needs: Needs) -> dict:
    """Needs as a RideRequest's columns; no wheelchair given is the passenger profile's."""
    return {
        "needs_wheelchair": profiles.needs_wheelchair(passenger, needs.wheelchair),
        "needs_walker": needs.walker,
        "service_animal": needs.service_animal,
        "companions": needs.companions,
        "attendant": needs.attendant,
    }


def needs_of(request: RideRequest) -> Needs:
    """The needs in a RideRequest's columns."""
    return Needs(
        wheelchair=request.needs_wheelchair,
        walker=request.needs_walker,
        service_animal=request.service_animal,
        companions=request.companions,
        attendant=request.attendant,
    )


def new_ride_id(prefix: str = "b") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:20]}"


def _check_return(return_at: datetime, wanted: datetime, *, checked: bool, now) -> None:
    """
    A return leg is later the same day: it is planned with the outbound
    trip's day. `checked`: the time comes from the caller, not a series.
    """
    if checked:
        check_bookable(return_at, field="return_at", now=now)
    if return_at <= wanted:
        raise DispatchError(
            "The return must be after the outbound trip.", fields={"return_at": "too early"}
        )
    if service_date_of(return_at) != service_date_of(wanted):
        raise DispatchError(
            "A return is on the day of the outbound trip; book a later day's ride on its own.",
            fields={"return_at": "another day"},
        )


def return_leg(
    ride_id: str,
    pickup: Place,
    dropoff: Place,
    *,
    at: datetime | None,
    will_call: bool,
    earlier: int = 0,
) -> dict:
    """
    The return of an outbound leg: from its drop-off back to its pickup, at
    a time or will-call. Its id is the outbound's with `-ret`, or `-ret2`...
    after `earlier` return legs that were withdrawn.
    """
    return dict(
        ride_id=f"{ride_id[:57]}-ret{earlier + 1}" if earlier else f"{ride_id[:60]}-ret",
        pickup_at=at,
        will_call=will_call,
        leg=Leg.RETURN,
        **place_fields("pickup", dropoff),
        **place_fields("dropoff", pickup),
    )


def ride_book_ahead(
    *,
    passenger: User,
    booked_by: User,
    pickup: Place,
    dropoff: Place,
    pickup_at: datetime | None = None,
    appointment_at: datetime | None = None,
    needs: Needs | None = None,
    notes: str = "",
    ride_id: str | None = None,
    return_at: datetime | None = None,
    return_will_call: bool = False,
    series: RideSeries | None = None,
    service_date: date | None = None,
    role: str | None = None,
    now: datetime | None = None,
) -> Ride:
    """
    Book a ride ahead, with its return leg if one is asked for (a time, or
    will-call). The caller has decided who rides (access.
    passenger_to_book_ahead_for). Returns the outbound ride, `scheduled`;
    the booker and the rider hear `ride_scheduled`.
    """
    if (pickup_at is None) == (appointment_at is None):
        raise DispatchError(
            "Give a pickup time or an appointment time, not both.",
            fields={"pickup_at": "one of", "appointment_at": "one of"},
        )
    wanted = pickup_at or appointment_at
    field = "pickup_at" if pickup_at else "appointment_at"
    if series is None:
        check_bookable(wanted, field=field, now=now)
    if return_at is not None and return_will_call:
        raise DispatchError(
            "A return is at a time or will-call, not both.", fields={"return_at": "both"}
        )
    if return_at is not None:
        _check_return(return_at, wanted, checked=series is None, now=now)
    needs = needs or Needs()
    if not 0 <= needs.companions <= 6:
        raise DispatchError("At most six companions.", fields={"companions": "0-6"})
    role = role or access.booker_role(booked_by, passenger)
    service_date = service_date or service_date_of(wanted)
    common = {
        **needs_fields(passenger, needs),
        "notes": notes,
        "series": series,
        "service_date": service_date,
    }
    legs = [
        dict(
            ride_id=ride_id or new_ride_id(),
            pickup_at=pickup_at,
            appointment_at=appointment_at,
            **place_fields("pickup", pickup),
            **place_fields("dropoff", dropoff),
        )
    ]
    if return_at is not None or return_will_call:
        legs.append(
            return_leg(
                legs[0]["ride_id"], pickup, dropoff, at=return_at, will_call=return_will_call
            )
        )
    booked: list[Ride] = []
    try:
        with transaction.atomic():
            for fields in legs:
                ride, event = rides.opened_ahead(
                    passenger=passenger,
                    booked_by=booked_by,
                    role=role,
                    outbound=booked[0] if booked else None,
                    **common,
                    **fields,
                )
                rides.insert(ride, [event])
                booked.append(ride)
            for ride in reversed(booked):
                broadcast.ride_changed(ride, "scheduled")
    except IntegrityError as exc:
        taken = [f["ride_id"] for f in legs if Ride.objects.filter(ride_id=f["ride_id"]).exists()]
        if taken:
            raise RideConflict(f"Ride {taken[0]} already exists.", ride_id=taken[0]) from exc
        raise
    return booked[0]


def return_leg_book(
    *, outbound: Ride, return_at: datetime | None, will_call: bool, role: str
) -> Ride:
    """
    A return leg for a ride booked ahead that has none now (its series has
    gained a return), as ride_book_ahead's.
    """
    leg = return_leg(
        outbound.ride_id,
        place_of(outbound, "pickup"),
        place_of(outbound, "dropoff"),
        at=return_at,
        will_call=will_call,
        earlier=Ride.objects.filter(outbound=outbound).count(),
    )
    with transaction.atomic():
        ride, event = rides.opened_ahead(
            passenger=outbound.passenger,
            booked_by=outbound.booked_by,
            role=role,
            outbound=outbound,
            **leg,
            **needs_fields(outbound.passenger, needs_of(outbound)),
            notes=outbound.notes,
            series=outbound.series,
            service_date=outbound.service_date,
        )
        rides.insert(ride, [event])
        broadcast.ride_changed(ride, "scheduled")
    return ride


def ride_ready(*, ride: Ride, actor: User) -> Ride:
    """
    A will-call return's rider is ready: it joins a run passing nearby if
    one can take it in time (dispatch.planning.day), else it is matched on
    demand at once, as find_driver would.
    """
    viewer = access.viewer_of(actor, ride)
    if not access.may_say_ready(viewer):
        raise NotAllowed("Only the passenger, or a caregiver who may book, can say ready.")
    if not ride.is_waiting_for_ready:
        raise NotWaitingForReady(ride)
    # A later day's only: a return of the day before stays the rider's to
    # call (dropped off after midnight, or kept in overnight).
    if ride.service_date > service_date_of(timezone.now()):
        raise IllegalTransition(
            ride,
            RideStatus.SEARCHING,
            f"Ride {ride.ride_id} is the return of {ride.service_date:%a %d %b}: "
            "say ready on that day.",
        )
    if ride.service_date <= ready_days_over(timezone.now()):
        raise IllegalTransition(
            ride,
            RideStatus.SEARCHING,
            f"Ride {ride.ride_id} was the return of {ride.service_date:%a %d %b}: it can "
            "no longer be called; book a new ride.",
        )
    # Read afresh: the ride in hand may carry its outbound as it was.
    outbound = Ride.objects.filter(pk=ride.outbound_id).first()
    if outbound is not None and outbound.status not in FINAL_STATUSES:
        # The rider is not at the drop-off yet: a driver sent now (or a run
        # passing) would wait at an empty door.
        raise IllegalTransition(
            ride,
            RideStatus.SEARCHING,
            f"Ride {ride.ride_id} is the return of {outbound.ride_id}, which is "
            f"{outbound.status}: say ready once the outbound trip has ended.",
            outbound_ride_id=outbound.ride_id,
            outbound_status=outbound.status,
        )
    role = {"staff": "dispatcher"}.get(viewer.role, viewer.role)
    if day.join_passing_run(ride=ride, actor=actor):
        return ride
    try:
        with transaction.atomic():
            rides.transition(
                ride,
                RideStatus.SEARCHING,
                kind="ready",
                actor=actor,
                role=role,
                pickup_at=timezone.now(),
                run=None,
            )
            broadcast.ride_changed(ride, "searching")
    except IntegrityError as exc:
        conflict = rides.booking_conflict("", ride.passenger)
        raise (conflict or exc) from exc
    return matching.ride_match(ride=ride, fresh=True).ride


def returns_not_called_close(now: datetime | None = None) -> int:
    """
    Close the will-call returns nobody called (ready_days_over): their riders
    got home another way, and the rides stop being listed as coming. Told to
    nobody (RETURN_NOT_CALLED; a notice days later would alarm a family);
    the apps' and the console's lists show them cancelled. How many closed.
    """
    lapsed = Ride.objects.filter(
        status=RideStatus.SCHEDULED,
        will_call=True,
        run__isnull=True,
        service_date__lte=ready_days_over(now or timezone.now()),
    )
    closed = 0
    for ride in lapsed:
        try:
            rides.ride_cancel(
                ride=ride, actor=None, cancelled_by=CancelledBy.SYSTEM, reason=RETURN_NOT_CALLED
            )
        except DispatchError:
            continue  # said ready or cancelled meanwhile
        closed += 1
    return closed
