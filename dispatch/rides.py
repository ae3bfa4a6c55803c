"""
The ride state machine, and the changes that open and close a ride:
booking it, cancelling it, closing it unfulfilled. The driver's steps of
the trip are dispatch.trips'; they too change a ride only through here.

Every change of a ride's status or version goes through `transition` or
`record` here (the booking's first steps through `opened`): they check the
step against TRANSITIONS, bump the version by one, write the RideEvent of
that version, and compare-and-set the row on the status and version the
caller read, so a change made meanwhile fails instead of being overwritten.
A caller who showed the ride to a person (a dispatcher) passes the version
they saw as `expected_version`.

A ride booked ahead starts `scheduled` (`opened_ahead`), outside the
active statuses: it becomes `assigned` when its driver's run reaches it
(`trips.ride_run_reached`), or `searching` when a will-call return is ready or a
dispatcher sends it to on-demand matching. Run rides leave the driver's
status alone: a run carries several passengers, and the driver is on shift.

Who drives whom (candidates, assignment, offers) is dispatch.matching's.
"""

from __future__ import annotations

import re
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from dispatch import access, broadcast, drivers
from dispatch.errors import (
    ChangedMeanwhile,
    DispatchError,
    IllegalTransition,
    RideConflict,
)
from dispatch.models import (
    DRIVER_HELD_STATUSES,
    RIDE_ID_PATTERN,
    CancelledBy,
    OfferStatus,
    Ride,
    RideEvent,
    RideOffer,
    RideStatus,
)
from people import profiles
from people.models import User

S = RideStatus
TRANSITIONS: dict[str, set[str]] = {
    S.SCHEDULED: {S.ASSIGNED, S.SEARCHING, S.CANCELLED, S.UNFULFILLED},
    S.REQUESTED: {S.SEARCHING, S.CANCELLED},
    S.SEARCHING: {S.ASSIGNED, S.CANCELLED, S.UNFULFILLED},
    S.ASSIGNED: {S.ASSIGNED, S.DRIVER_ARRIVED, S.SEARCHING, S.CANCELLED},
    S.DRIVER_ARRIVED: {S.ASSIGNED, S.IN_PROGRESS, S.SEARCHING, S.CANCELLED, S.NO_SHOW},
    S.IN_PROGRESS: {S.COMPLETED, S.CANCELLED},
    S.COMPLETED: set(),
    S.CANCELLED: set(),
    S.NO_SHOW: set(),
    S.UNFULFILLED: set(),
}


def _event(ride: Ride, kind: str, *, actor, role: str, from_status: str, payload) -> RideEvent:
    return RideEvent(
        ride=ride,
        version=ride.version,
        kind=kind,
        from_status=from_status,
        to_status=ride.status,
        actor=actor,
        actor_role=role,
        payload=payload or {},
    )


def advance(
    ride: Ride,
    to_status: str,
    *,
    kind: str,
    actor: User | None = None,
    role: str = "system",
    payload: dict | None = None,
    **fields,
) -> RideEvent:
    """
    Take one step of the state machine on the ride in memory: the status,
    the next version and `fields` are set on `ride`; its event comes back,
    not saved. `transition` writes it; the booking writes its first steps.
    """
    if to_status not in TRANSITIONS[ride.status]:
        raise IllegalTransition(ride, to_status)
    from_status = ride.status
    ride.status = to_status
    ride.version += 1
    for name, value in fields.items():
        setattr(ride, name, value)
    return _event(ride, kind, actor=actor, role=role, from_status=from_status, payload=payload)


def check_seen(ride: Ride, expected_version: int | None) -> None:
    """
    Refuse a change decided on an older version of the ride than the one
    read: the person who decided it is told what it is now.
    """
    if expected_version is not None and expected_version != ride.version:
        raise IllegalTransition(
            ride,
            ride.status,
            f"Ride {ride.ride_id} changed while you were looking at it: it is now "
            f"{RideStatus(ride.status).label.lower()}. Check it again, then choose.",
        )


def _changed_meanwhile(ride: Ride, to_status: str) -> ChangedMeanwhile:
    current = Ride.objects.get(pk=ride.pk)
    return ChangedMeanwhile(
        current,
        to_status,
        f"Ride {ride.ride_id} changed meanwhile; it is now "
        f"{RideStatus(current.status).label.lower()}.",
    )


def transition(
    ride: Ride,
    to_status: str,
    *,
    kind: str,
    actor: User | None = None,
    role: str = "system",
    expected_version: int | None = None,
    payload: dict | None = None,
    **fields,
) -> RideEvent:
    """
    Move the ride to `to_status` in the database (inside the caller's
    transaction): allowed by TRANSITIONS, and nobody changed the row since
    it was read (or since `expected_version`).
    """
    check_seen(ride, expected_version)
    read_status, read_version = ride.status, ride.version
    event = advance(ride, to_status, kind=kind, actor=actor, role=role, payload=payload, **fields)
    updated = Ride.objects.filter(pk=ride.pk, status=read_status, version=read_version).update(
        status=to_status, version=F("version") + 1, updated_at=timezone.now(), **fields
    )
    if not updated:
        raise _changed_meanwhile(ride, to_status)
    event.save(force_insert=True)
    return event


def record(
    ride: Ride,
    kind: str,
    *,
    actor: User | None = None,
    role: str = "system",
    payload: dict | None = None,
    **fields,
) -> RideEvent | None:
    """
    An event that leaves the status as it is (no_drivers, offered...):
    the next version and its event, if nobody changed the ride since it
    was read; None (nothing written) when somebody did.
    """
    updated = Ride.objects.filter(pk=ride.pk, status=ride.status, version=ride.version).update(
        version=F("version") + 1, updated_at=timezone.now(), **fields
    )
    if not updated:
        return None
    ride.version += 1
    for name, value in fields.items():
        setattr(ride, name, value)
    event = _event(ride, kind, actor=actor, role=role, from_status=ride.status, payload=payload)
    event.save(force_insert=True)
    return event


# --- booking -------------------------------------------------------------------


def _check_ride_id(ride_id: object) -> None:
    # fullmatch: the pattern's `$` alone lets a trailing newline through.
    if not isinstance(ride_id, str) or not re.fullmatch(RIDE_ID_PATTERN, ride_id):
        raise DispatchError(
            "ride_id must be 1-64 letters, digits, '-' or '_'.",
            fields={"ride_id": "1-64 of A-Z a-z 0-9 _ -"},
        )


def opened(
    *, ride_id: str, passenger: User, booked_by: User, needs_wheelchair: bool | None, **details
) -> tuple[Ride, list[RideEvent]]:
    """
    A new ride as booked, in memory: `requested` (version 1), then
    `searching` (version 2), with the events of both. A wheelchair is the
    booking's word, else the passenger profile's.
    """
    _check_ride_id(ride_id)
    # With the profile the needs card reads.
    passenger = User.objects.select_related("passenger_profile").get(pk=passenger.pk)
    if booked_by.pk == passenger.pk:
        booked_by = passenger
    role = access.booker_role(booked_by, passenger)
    ride = Ride(
        ride_id=ride_id,
        passenger=passenger,
        booked_by=booked_by,
        needs_wheelchair=profiles.needs_wheelchair(passenger, needs_wheelchair),
        status=S.REQUESTED,
        version=1,
        **details,
    )
    requested = _event(ride, "requested", actor=booked_by, role=role, from_status="", payload={})
    searching = advance(ride, S.SEARCHING, kind="searching", actor=booked_by, role=role)
    return ride, [requested, searching]


def opened_ahead(
    *, ride_id: str, passenger: User, booked_by: User, role: str, **details
) -> tuple[Ride, RideEvent]:
    """A ride booked ahead, in memory: `scheduled` (version 1), and its event."""
    _check_ride_id(ride_id)
    ride = Ride(
        ride_id=ride_id,
        passenger=passenger,
        booked_by=booked_by,
        status=S.SCHEDULED,
        version=1,
        **details,
    )
    return ride, _event(ride, "scheduled", actor=booked_by, role=role, from_status="", payload={})


def insert(ride: Ride, events: list[RideEvent]) -> None:
    """
    Write a ride `opened` built, with its events, inside the caller's
    transaction; a taken id or an active ride raises IntegrityError, which
    `booking_conflict` explains once the transaction has rolled back.
    """
    ride.save(force_insert=True)
    RideEvent.objects.bulk_create(events)


def ride_request(
    *,
    ride_id: str,
    passenger: User,
    booked_by: User,
    needs_wheelchair: bool | None = None,
    **details,
) -> Ride:
    """Book a ride without matching it: it is created and searching (`opened`'s keywords)."""
    ride, events = opened(
        ride_id=ride_id,
        passenger=passenger,
        booked_by=booked_by,
        needs_wheelchair=needs_wheelchair,
        **details,
    )
    try:
        with transaction.atomic():
            insert(ride, events)
            broadcast.ride_changed(ride, "searching")
    except IntegrityError as exc:
        conflict = booking_conflict(ride.ride_id, passenger)
        if conflict is None:
            raise
        raise conflict from exc
    return ride


def booking_conflict(ride_id: str, passenger: User) -> RideConflict | None:
    """What a failed booking insert means to the app, if it is a conflict."""
    if Ride.objects.filter(ride_id=ride_id).exists():
        return RideConflict(f"Ride {ride_id} already exists.", ride_id=ride_id)
    active = Ride.objects.active().filter(passenger=passenger).first()
    if active is not None:
        return RideConflict(
            f"The passenger already has an active ride ({active.ride_id}).",
            active_ride_id=active.ride_id,
        )
    return None


# --- endings ---------------------------------------------------------------------


def withdraw_offers(ride: Ride, except_driver_id: int | None = None) -> list[int]:
    """Close the ride's open offers; returns the drivers who must be told."""
    open_offers = RideOffer.objects.filter(ride=ride, status=OfferStatus.OFFERED)
    offered = list(open_offers.values_list("driver_id", flat=True))
    if offered:
        open_offers.update(status=OfferStatus.WITHDRAWN, responded_at=timezone.now())
    return [d for d in offered if d != except_driver_id]


def freed_driver(ride: Ride) -> int | None:
    """
    The driver a ride's ending (or its driver leaving it: given back,
    reassigned) frees, read before the change, once they carry no other
    rider (a run's, drivers.carry, beside one on demand). Their status row
    is locked first (drivers.lock_status), so an ending or a run's rider
    reached meanwhile is read, not missed.
    """
    if ride.status not in DRIVER_HELD_STATUSES:
        return None
    drivers.lock_status(ride.driver_id)
    if Ride.objects.held_by(ride.driver_id).exclude(pk=ride.pk).exists():
        return None
    return ride.driver_id


# A cancel that pins no version reads the ride again this often when it
# changed between the read and the write.
CANCEL_TRIES = 3


def ride_cancel(
    *,
    ride: Ride,
    actor: User | None,
    cancelled_by: str,
    reason: str = "",
    expected_version: int | None = None,
    keep_return: bool = False,
) -> Ride:
    """
    Cancel a ride; its driver is released and everyone watching is told.
    An outbound trip takes its returns with it (returns_going_with);
    `keep_return`: the rider gets there another way, and the ride home stays.
    """
    if cancelled_by not in CancelledBy.values:
        raise DispatchError("Unknown canceller.", fields={"cancelled_by": "unknown"})
    # Without a version pinned, the ride is cancelled as it is now: read
    # again if it changed since it was read (a driver found meanwhile).
    for _ in range(CANCEL_TRIES - 1):
        try:
            _cancel(ride, actor, cancelled_by, reason, expected_version, keep_return)
            return ride
        except ChangedMeanwhile:
            if expected_version is not None:
                raise
            ride.refresh_from_db()
    _cancel(ride, actor, cancelled_by, reason, expected_version, keep_return)
    return ride


def _cancel(
    ride: Ride,
    actor: User | None,
    cancelled_by: str,
    reason: str,
    expected_version: int | None,
    keep_return: bool,
) -> None:
    with transaction.atomic():
        going = [] if keep_return else list(returns_going_with(ride))
        driver_id = freed_driver(ride)
        transition(
            ride,
            S.CANCELLED,
            kind="cancelled",
            actor=actor,
            role=cancelled_by,
            expected_version=expected_version,
            payload={"reason": reason, "driver_id": driver_id},
            cancelled_by=cancelled_by,
            cancel_reason=reason[:64],
            ended_at=timezone.now(),
        )
        withdrawn = withdraw_offers(ride)
        drivers.release(driver_id)
        broadcast.ride_changed(ride, "cancelled", withdrawn_driver_ids=withdrawn)
        returns_cancel(going, actor=actor, cancelled_by=cancelled_by, reason=reason)


def returns_going_with(outbound: Ride) -> QuerySet[Ride]:
    """
    The returns that end with an outbound trip which will not take its
    rider out (cancelled, a no-show, unfulfilled), read before its change: those still
    waiting to begin (`scheduled`), for nobody would be there to fetch.
    None once the rider is aboard (a breakdown on the way): they are away
    from home, and the ride home stays.
    """
    if outbound.status == S.IN_PROGRESS:
        return Ride.objects.none()
    return Ride.objects.filter(outbound=outbound, status=S.SCHEDULED).order_by("pk")


def returns_cancel(going, *, actor: User | None, cancelled_by: str, reason: str) -> None:
    """End the returns `going` (returns_going_with) as the outbound trip's ending says."""
    for back in going:
        ride_cancel(ride=back, actor=actor, cancelled_by=cancelled_by, reason=reason)


def ride_mark_unfulfilled(
    *,
    ride: Ride,
    actor: User | None,
    reason: str = "",
    expected_version: int | None = None,
    keep_return: bool = False,
) -> Ride:
    """
    A dispatcher gives up on a ride nobody can take; the passenger is told
    why. An outbound trip's returns end with it, as with a cancel.
    """
    with transaction.atomic():
        going = [] if keep_return else list(returns_going_with(ride))
        driver_id = freed_driver(ride)
        transition(
            ride,
            S.UNFULFILLED,
            kind="unfulfilled",
            actor=actor,
            role="dispatcher",
            expected_version=expected_version,
            payload={"reason": reason},
            cancelled_by=CancelledBy.DISPATCHER,
            cancel_reason=reason[:64],
            ended_at=timezone.now(),
        )
        drivers.release(driver_id)
        withdrawn = withdraw_offers(ride)
        broadcast.ride_changed(ride, "unfulfilled", withdrawn_driver_ids=withdrawn)
        returns_cancel(going, actor=actor, cancelled_by=CancelledBy.DISPATCHER, reason=reason)
    return ride


def ride_needs_changed(*, passenger_id: int) -> None:
    """
    The passenger's needs changed: the driver of their active ride is told,
    and the drivers of runs that will fetch them read their manifests again
    (the next stop's rider's needs card is in it).
    """
    ride = (
        Ride.objects.with_people()
        .filter(passenger_id=passenger_id, status__in=DRIVER_HELD_STATUSES)
        .first()
    )
    if ride is not None:
        broadcast.ride_changed(ride, "needs_updated")
    planned = (
        Ride.objects.scheduled()
        .filter(passenger_id=passenger_id, run__isnull=False)
        .filter(service_date__gte=timezone.localdate() - timedelta(days=1))
        .order_by()
        .values_list("service_date", "run__driver_id")
        .distinct()
    )
    for service_date, driver_id in planned:
        broadcast.manifests_changed(service_date, [driver_id], "needs_updated")
