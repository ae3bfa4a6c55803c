"""
Every change to drivers and rides happens here, in exactly one function per
change. Consumers, views, admin actions and commands call these; nothing
else writes the dispatch models (`ride_book`'s one-statement booking on
PostgreSQL lives in dispatch.pg_booking, and only `ride_book` calls it).

Each write is atomic, records a RideEvent with the ride's next version, and
hands its notifications to transaction.on_commit (dispatch.events).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from itertools import islice

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from dispatch import events
from dispatch.geo import Point
from dispatch.locations import location_store
from dispatch.models import (
    DRIVER_HELD_STATUSES,
    RIDE_ID_PATTERN,
    CancelledBy,
    DriverState,
    DriverStatus,
    OfferStatus,
    Ride,
    RideEvent,
    RideOffer,
    RideStatus,
)
from people.models import DriverProfile, PassengerProfile, User, VehicleType

log = logging.getLogger(__name__)

# How many of the nearest drivers a one-statement booking considers; past
# them (all busy, unverified or unable to carry the passenger) the booking
# goes on step by step.
BOOK_CANDIDATES = 32
# Positions copied to the database per transaction (drivers_persist_locations).
PERSIST_CHUNK = 50

S = RideStatus
# The one state machine: every ride transition is checked against it.
TRANSITIONS: dict[str, set[str]] = {
    S.REQUESTED: {S.SEARCHING, S.CANCELLED},
    S.SEARCHING: {S.SEARCHING, S.ASSIGNED, S.CANCELLED, S.UNFULFILLED},
    S.ASSIGNED: {S.ASSIGNED, S.DRIVER_ARRIVED, S.SEARCHING, S.CANCELLED},
    S.DRIVER_ARRIVED: {S.ASSIGNED, S.IN_PROGRESS, S.SEARCHING, S.CANCELLED, S.NO_SHOW},
    S.IN_PROGRESS: {S.COMPLETED, S.CANCELLED},
    S.COMPLETED: set(),
    S.CANCELLED: set(),
    S.NO_SHOW: set(),
    S.UNFULFILLED: set(),
}


class DispatchError(Exception):
    """A request that cannot be carried out; `code` goes to the client."""

    code = "invalid_request"

    def __init__(self, message: str, **extra) -> None:
        super().__init__(message)
        self.extra = extra


class IllegalTransition(DispatchError):
    code = "invalid_state"

    def __init__(self, ride: Ride, to_status: str, message: str | None = None) -> None:
        super().__init__(
            message or f"Ride {ride.ride_id} is {ride.status}; it cannot become {to_status}.",
            current_status=ride.status,
            version=ride.version,
        )


class RideConflict(DispatchError):
    code = "conflict"


class DriverUnavailable(DispatchError):
    code = "driver_unavailable"


class NotAllowed(DispatchError):
    code = "forbidden"


@dataclass
class MatchResult:
    ride: Ride
    driver_id: int | None = None
    distance_km: float | None = None
    offered: bool = False


# --- events and transitions ------------------------------------------------


def _event(
    ride: Ride,
    kind: str,
    *,
    actor: User | None,
    role: str,
    from_status: str = "",
    payload: dict | None = None,
) -> RideEvent:
    """The event of the ride's current version (not saved)."""
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


def _record(ride: Ride, kind: str, **event_fields) -> RideEvent:
    """Bump the ride's version and write its event (`_event`'s keywords).

    The caller holds the row.
    """
    Ride.objects.filter(pk=ride.pk).update(version=F("version") + 1)
    ride.version += 1
    event = _event(ride, kind, **event_fields)
    event.save(force_insert=True)
    return event


def _transition(
    ride: Ride,
    to_status: str,
    *,
    kind: str,
    actor: User | None,
    role: str,
    payload: dict | None = None,
    **fields,
) -> Ride:
    """
    Move the ride to `to_status` if the state machine allows it and nobody
    changed it since it was read (compare-and-set on status and version; the
    same UPDATE bumps the version).
    """
    if to_status not in TRANSITIONS[ride.status]:
        raise IllegalTransition(ride, to_status)
    now = timezone.now()
    updated = Ride.objects.filter(pk=ride.pk, status=ride.status, version=ride.version).update(
        status=to_status, version=F("version") + 1, updated_at=now, **fields
    )
    if not updated:
        current = Ride.objects.get(pk=ride.pk)
        raise IllegalTransition(
            current,
            to_status,
            f"Ride {ride.ride_id} changed meanwhile; it is now {current.status}.",
        )
    from_status = ride.status
    ride.status = to_status
    ride.version += 1
    for name, value in fields.items():
        setattr(ride, name, value)
    _event(ride, kind, actor=actor, role=role, from_status=from_status, payload=payload).save(
        force_insert=True
    )
    return ride


def _release_driver(driver_id: int | None) -> None:
    if driver_id is None:
        return
    released = DriverState.objects.filter(driver_id=driver_id, status=DriverStatus.ON_TRIP).update(
        status=DriverStatus.AVAILABLE
    )
    if released:
        events.publish_driver(driver_id, "available")


def _withdraw_offers(ride: Ride, except_driver_id: int | None = None) -> list[int]:
    """Close the ride's open offers; returns the drivers who must be told."""
    open_offers = RideOffer.objects.filter(ride=ride, status=OfferStatus.OFFERED)
    offered = list(open_offers.values_list("driver_id", flat=True))
    if offered:
        open_offers.update(status=OfferStatus.WITHDRAWN, responded_at=timezone.now())
    return [d for d in offered if d != except_driver_id]


def _role_of(user: User | None, ride: Ride) -> str:
    if user is None:
        return "system"
    if user.pk == ride.passenger_id:
        return "passenger"
    if ride.driver_id and user.pk == ride.driver_id:
        return "driver"
    if user.is_staff:
        return "dispatcher"
    return "caregiver"


# --- drivers -----------------------------------------------------------------


def driver_state_for(driver: User) -> DriverState:
    state, _ = DriverState.objects.get_or_create(driver=driver)
    return state


def driver_set_status(*, driver: User, status: str) -> DriverState:
    """A driver goes online (available) or offline."""
    if status not in (DriverStatus.AVAILABLE, DriverStatus.OFFLINE):
        raise DispatchError("status must be 'available' or 'offline'.", field="status")
    profile = DriverProfile.objects.filter(user=driver).first()
    if profile is None:
        raise NotAllowed("Only drivers can go online.")
    if status == DriverStatus.AVAILABLE and not profile.is_verified:
        raise NotAllowed("Your driver account is not verified yet; support will contact you.")
    with transaction.atomic():
        state = DriverState.objects.select_for_update().get_or_create(driver=driver)[0]
        if state.status == DriverStatus.ON_TRIP:
            raise DispatchError(
                "You have an active ride: finish or cancel it first.", current_status=state.status
            )
        if state.status != status:
            state.status = status
            state.last_seen_at = timezone.now()
            state.save(update_fields=["status", "last_seen_at", "updated_at"])
            events.publish_driver(driver.pk, status)
    if status == DriverStatus.OFFLINE:
        transaction.on_commit(lambda: location_store().remove(driver.pk))
    elif state.latitude is not None and location_store().get(driver.pk) is None:
        # Back online where it was last seen, until the app reports again.
        seen = state.location_updated_at.timestamp() if state.location_updated_at else 0.0
        location_store().put(
            driver.pk,
            Point(state.latitude, state.longitude, seen, state.heading, state.speed),
            reports=not _is_demo(driver),
        )
    return state


def drivers_persist_locations(*, positions: dict[int, Point]) -> int:
    """
    Copy live positions to the database. Workers call this once per
    LOCATION_PERSIST_INTERVAL_S with the latest report of each driver, never
    once per report. One parameterised UPDATE run for every driver
    (executemany: pipelined on PostgreSQL); the ORM's bulk_update builds a
    CASE per column and row, which cost more than the rest of the interval's
    work put together.

    The rows go in chunks of PERSIST_CHUNK, each its own transaction (a
    savepoint inside a caller's). One transaction for the batch held every row
    it had updated until it ended (thousands of rows at 10,000 drivers):
    bookings skipped the nearest drivers, whose rows were locked, or waited
    out the whole batch.
    """
    if not positions:
        return 0
    ops = connection.ops
    table = ops.quote_name(DriverState._meta.db_table)
    sql = (
        f"UPDATE {table} SET latitude = %s, longitude = %s, heading = %s, speed = %s, "
        "location_updated_at = %s, last_seen_at = %s WHERE driver_id = %s"
    )
    rows = []
    for driver_id, p in positions.items():
        seen = ops.adapt_datetimefield_value(datetime.fromtimestamp(p.seen, tz=UTC))
        rows.append((p.lat, p.lng, p.heading, p.speed, seen, seen, driver_id))
    written = 0
    with connection.cursor() as cursor:
        for start in range(0, len(rows), PERSIST_CHUNK):
            with transaction.atomic():
                cursor.executemany(sql, rows[start : start + PERSIST_CHUNK])
                written += cursor.rowcount
    return written


def _is_demo(driver: User) -> bool:
    """Demo drivers stand still and never report (dispatch/demo.py)."""
    profile = getattr(driver, "driver_profile", None)
    return profile is not None and profile.is_demo


def driver_place(
    *,
    driver: User,
    latitude: float,
    longitude: float,
    heading: float | None = None,
    speed: float | None = None,
) -> None:
    """Set a driver's position now, in the live store and the database."""
    point = Point(latitude, longitude, timezone.now().timestamp(), heading, speed)
    location_store().put(driver.pk, point, reports=not _is_demo(driver))
    driver_state_for(driver)
    drivers_persist_locations(positions={driver.pk: point})


def ride_needs_changed(*, passenger_id: int) -> None:
    """The passenger's needs changed: the driver of their active ride is told."""
    ride = (
        Ride.objects.filter(passenger_id=passenger_id, driver__isnull=False)
        .filter(status__in=[*DRIVER_HELD_STATUSES, S.IN_PROGRESS])
        .first()
    )
    if ride is not None:
        events.publish_ride(ride.pk, "needs_updated")


# --- requesting --------------------------------------------------------------


def _new_ride(
    *, ride_id: str, passenger: User, booked_by: User, needs_wheelchair: bool | None, **details
) -> tuple[Ride, list[RideEvent]]:
    """
    The ride as booked (searching, version 2, not saved) and the events of its
    first two versions, `requested` and `searching`.
    """
    if not re.match(RIDE_ID_PATTERN, ride_id or ""):
        raise DispatchError("ride_id must be 1-64 letters, digits, '-' or '_'.", field="ride_id")
    if needs_wheelchair is None:
        profile = PassengerProfile.objects.filter(user=passenger).first()
        needs_wheelchair = bool(profile and profile.needs_wheelchair)
    role = "passenger" if booked_by.pk == passenger.pk else "caregiver"
    ride = Ride(
        ride_id=ride_id,
        passenger=passenger,
        booked_by=booked_by,
        needs_wheelchair=needs_wheelchair,
        status=S.REQUESTED,
        version=1,
        **details,
    )
    requested = _event(ride, "requested", actor=booked_by, role=role)
    ride.status, ride.version = S.SEARCHING, 2
    searching = _event(ride, "searching", actor=booked_by, role=role, from_status=S.REQUESTED)
    return ride, [requested, searching]


def _ride_conflict(ride_id: str, passenger: User) -> RideConflict | None:
    """What an IntegrityError on booking means to the app, if it is a conflict."""
    if Ride.objects.filter(ride_id=ride_id).exists():
        return RideConflict(f"Ride {ride_id} already exists.", ride_id=ride_id)
    active = Ride.objects.active().filter(passenger=passenger).first()
    if active is not None:
        return RideConflict(
            f"The passenger already has an active ride ({active.ride_id}).",
            active_ride_id=active.ride_id,
        )
    return None


def ride_request(
    *,
    ride_id: str,
    passenger: User,
    booked_by: User,
    pickup_latitude: float,
    pickup_longitude: float,
    pickup_address: str = "",
    dropoff_latitude: float,
    dropoff_longitude: float,
    dropoff_address: str = "",
    distance_km: Decimal | None = None,
    estimated_duration_minutes: int | None = None,
    fare_amount: Decimal | None = None,
    needs_wheelchair: bool | None = None,
    notes: str = "",
) -> Ride:
    """Book a ride: it is created and starts searching for a driver."""
    ride, opening = _new_ride(
        ride_id=ride_id,
        passenger=passenger,
        booked_by=booked_by,
        needs_wheelchair=needs_wheelchair,
        pickup_latitude=pickup_latitude,
        pickup_longitude=pickup_longitude,
        pickup_address=pickup_address,
        dropoff_latitude=dropoff_latitude,
        dropoff_longitude=dropoff_longitude,
        dropoff_address=dropoff_address,
        distance_km=distance_km,
        estimated_duration_minutes=estimated_duration_minutes,
        fare_amount=fare_amount,
        notes=notes,
    )
    try:
        with transaction.atomic():
            # Created searching, with the two events of its first versions
            # written in one statement.
            ride.save(force_insert=True)
            RideEvent.objects.bulk_create(opening)
            events.publish_ride(ride.pk, "searching")
    except IntegrityError as exc:
        conflict = _ride_conflict(ride_id, passenger)
        if conflict is not None:
            raise conflict from exc
        raise
    return ride


def books_in_one_statement() -> bool:
    """Whether `ride_book` inserts and claims in one statement (PostgreSQL, auto mode)."""
    return connection.vendor == "postgresql" and settings.DISPATCH_MODE != "offer"


def ride_book(
    *,
    ride_id: str,
    passenger: User,
    booked_by: User,
    nearby: Sequence[tuple[int, float, Point]] | None = None,
    **details,
) -> MatchResult:
    """
    find_driver: request the ride and match it (`ride_request`'s keywords).

    On PostgreSQL in auto mode, the ride is inserted and the nearest free
    driver claimed in one statement (dispatch.pg_booking), with the same
    writes and the same news as `ride_request` followed by `ride_match`. It
    falls back to those two when that statement finds nobody free among the
    nearest candidates, and when it hits a constraint (they tell which).

    `nearby`: the BOOK_CANDIDATES nearest drivers to the pickup, nearest
    first, if the caller has looked them up already (a socket does, on its
    event loop: `LocationStore.anearest`). Otherwise they are looked up here.
    """

    needs_wheelchair = details.pop("needs_wheelchair", None)

    def step_by_step() -> MatchResult:
        ride = ride_request(
            ride_id=ride_id,
            passenger=passenger,
            booked_by=booked_by,
            needs_wheelchair=needs_wheelchair,
            **details,
        )
        return ride_match(ride=ride, fresh=True)

    if not books_in_one_statement():
        return step_by_step()
    from dispatch import pg_booking

    # The statement decides from the passenger's profile when the request
    # does not say; the ride is built with a stand-in until then.
    ride, opening = _new_ride(
        ride_id=ride_id,
        passenger=passenger,
        booked_by=booked_by,
        needs_wheelchair=bool(needs_wheelchair),
        **details,
    )
    now = timezone.now()
    assigned = _event(ride, "assigned", actor=None, role="system", from_status=S.SEARCHING)
    assigned.version, assigned.to_status = 3, S.ASSIGNED
    stale_before = now.timestamp() - settings.DRIVER_STALE_AFTER_S
    if nearby is None:
        nearby = location_store().nearest(
            ride.pickup_latitude, ride.pickup_longitude, settings.MATCH_RADIUS_KM
        )
    candidates = [
        (driver_id, distance, point.seen >= stale_before)
        for driver_id, distance, point in islice(nearby, BOOK_CANDIDATES)
    ]
    try:
        # A savepoint only inside a caller's transaction (tests): alone, the
        # statement is its own transaction.
        with transaction.atomic() if connection.in_atomic_block else nullcontext():
            booked = pg_booking.insert_and_claim(
                ride, needs_wheelchair, opening, assigned, candidates, now
            )
    except IntegrityError as exc:
        conflict = _ride_conflict(ride_id, passenger)
        if conflict is not None:
            raise conflict from exc
        # Not this ride's own constraints (a driver's data out of step):
        # book step by step, which skips such a driver.
        return step_by_step()
    ride.pk, ride.needs_wheelchair = booked.pk, booked.needs_wheelchair
    # The passenger as they are now, with the needs their driver is shown.
    ride.passenger = booked.passenger
    if booked_by.pk == passenger.pk:
        ride.booked_by = booked.passenger
    watchers, driver, distance = booked.watchers, booked.driver, booked.distance_km
    ride._state.adding, ride._state.db = False, connection.alias
    sends = events.ride_sends(ride, "searching", {}, watchers)
    if driver is not None:
        ride.driver = driver
        ride.status, ride.version, ride.assigned_at, ride.updated_at = S.ASSIGNED, 3, now, now
        sends += events.ride_sends(ride, "assigned", {}, watchers)
        sends += events.driver_sends(driver.pk, "on_trip")
    transaction.on_commit(partial(events.send_now, sends))
    if driver is None:
        return ride_match(ride=ride, fresh=True)
    return MatchResult(ride=ride, driver_id=driver.pk, distance_km=distance)


# --- matching ----------------------------------------------------------------


def _excluded_drivers(ride: Ride) -> set[int]:
    """Drivers who gave this ride back: they are not asked again."""
    ids = RideEvent.objects.filter(
        ride=ride, kind__in=["driver_cancelled", "offer_declined", "offer_expired"]
    ).values_list("payload__driver_id", flat=True)
    return {int(i) for i in ids if i is not None}


def eligible_drivers(*, needs_wheelchair: bool):
    """Drivers who may take a ride now: available, active, verified, and able to carry it."""
    eligible = DriverState.objects.filter(
        status=DriverStatus.AVAILABLE,
        driver__is_active=True,
        driver__driver_profile__is_verified=True,
    )
    if needs_wheelchair:
        eligible = eligible.filter(
            driver__driver_profile__vehicle_type=VehicleType.WHEELCHAIR_ACCESSIBLE
        )
    return eligible


def ride_candidates(
    ride: Ride, *, batch: int = 16, excluded: set[int] | None = None
) -> Iterator[tuple[int, float]]:
    """
    Drivers who may take the ride, nearest first: available, verified, with a
    vehicle that can carry the passenger, reporting within
    DRIVER_STALE_AFTER_S (seeded demo drivers excepted), within
    MATCH_RADIUS_KM.
    """
    stale_before = timezone.now().timestamp() - settings.DRIVER_STALE_AFTER_S
    if excluded is None:
        excluded = _excluded_drivers(ride)
    nearby = location_store().nearest(
        ride.pickup_latitude, ride.pickup_longitude, settings.MATCH_RADIUS_KM
    )
    while True:
        chunk = []
        for driver_id, distance, point in nearby:
            if driver_id not in excluded:
                chunk.append((driver_id, distance, point))
            if len(chunk) >= batch:
                break
        if not chunk:
            return
        eligible = eligible_drivers(needs_wheelchair=ride.needs_wheelchair).filter(
            driver_id__in=[c[0] for c in chunk]
        )
        demo = dict(eligible.values_list("driver_id", "driver__driver_profile__is_demo"))
        for driver_id, distance, point in chunk:
            if driver_id in demo and (demo[driver_id] or point.seen >= stale_before):
                yield driver_id, distance


def ride_assign(
    *,
    ride: Ride,
    driver_id: int,
    actor: User | None = None,
    role: str = "system",
    distance_km: float | None = None,
) -> Ride:
    """
    Put a driver on a ride, atomically: the driver's status goes from
    available to on_trip in one conditional UPDATE, so no driver ever holds
    two rides. Used by the matcher and by dispatchers alike.

    An assigned ride (or one whose driver has arrived) is reassigned: the
    previous driver is released and told.
    """
    with transaction.atomic():
        claimed = DriverState.objects.filter(
            driver_id=driver_id, status=DriverStatus.AVAILABLE
        ).update(status=DriverStatus.ON_TRIP, updated_at=timezone.now())
        if not claimed:
            raise DriverUnavailable("That driver is no longer available.", driver_id=driver_id)
        previous = ride.driver_id if ride.status in DRIVER_HELD_STATUSES else None
        kind = "reassigned" if previous else "assigned"
        try:
            # No savepoint: any failure here leaves this transaction (or
            # savepoint) by the exception, which rolls the claim back too.
            _transition(
                ride,
                S.ASSIGNED,
                kind=kind,
                actor=actor,
                role=role,
                payload={
                    "driver_id": driver_id,
                    "previous_driver_id": previous,
                    "distance_km": None if distance_km is None else round(distance_km, 3),
                },
                driver_id=driver_id,
                assigned_at=timezone.now(),
                arrived_at=None,
                no_driver_found_at=None,
            )
        except IntegrityError as exc:
            raise DriverUnavailable("That driver already has a ride.", driver_id=driver_id) from exc
        withdrawn = _withdraw_offers(ride, except_driver_id=driver_id)
        _release_driver(previous)
        events.publish_ride(
            ride.pk,
            kind,
            withdrawn_driver_ids=withdrawn,
            released_driver_id=previous,
            released_reason="reassigned",
            released_by="dispatcher",
        )
        events.publish_driver(driver_id, "on_trip")
    return ride


def ride_match(*, ride: Ride, fresh: bool = False) -> MatchResult:
    """
    Find the ride a driver: the nearest eligible one gets it (auto mode) or is
    offered it (offer mode). A lost race moves on to the next candidate. When
    nobody is left the ride stays pending for a dispatcher and the apps hear
    `no_drivers`.

    `fresh`: the ride was just requested by the caller, so it is read from
    memory and nobody has given it back yet. A change made meanwhile still
    fails the compare-and-set of the assignment.
    """
    if not fresh:
        ride.refresh_from_db()
    if ride.status != S.SEARCHING:
        return MatchResult(ride=ride, driver_id=ride.driver_id)
    offer_mode = settings.DISPATCH_MODE == "offer"
    for driver_id, distance in ride_candidates(ride, excluded=set() if fresh else None):
        try:
            if offer_mode:
                ride_offer(ride=ride, driver_id=driver_id, distance_km=distance)
                return MatchResult(
                    ride=ride, driver_id=driver_id, distance_km=distance, offered=True
                )
            ride_assign(ride=ride, driver_id=driver_id, distance_km=distance)
            return MatchResult(ride=ride, driver_id=driver_id, distance_km=distance)
        except DriverUnavailable:
            continue
        except IllegalTransition:
            ride.refresh_from_db()
            return MatchResult(ride=ride, driver_id=ride.driver_id)
    with transaction.atomic():
        updated = Ride.objects.filter(pk=ride.pk, status=S.SEARCHING, version=ride.version).update(
            no_driver_found_at=timezone.now()
        )
        if updated:
            ride.no_driver_found_at = timezone.now()
            _record(ride, "no_drivers", actor=None, role="system", from_status=ride.status)
            events.publish_ride(ride.pk, "no_drivers")
    return MatchResult(ride=ride)


def rides_match_near_driver(*, driver_id: int, latitude: float, longitude: float) -> int:
    """
    A driver has just become available here: rides still waiting for a
    driver (no_drivers) within MATCH_RADIUS_KM are matched again, oldest
    first, so a frail passenger is not left waiting for a dispatcher. Returns
    how many rides got a driver or an offer.
    """
    from dispatch.geo import haversine_km

    profile = DriverProfile.objects.filter(user_id=driver_id).first()
    if profile is None or not profile.is_verified:
        return 0
    span = settings.MATCH_RADIUS_KM / 111.0 + 0.01
    waiting = Ride.objects.filter(
        status=S.SEARCHING,
        no_driver_found_at__isnull=False,
        pickup_latitude__range=(latitude - span, latitude + span),
    ).order_by("created_at")
    if profile.vehicle_type != VehicleType.WHEELCHAIR_ACCESSIBLE:
        waiting = waiting.filter(needs_wheelchair=False)
    matched = 0
    for ride in waiting[:20]:
        distance = haversine_km(latitude, longitude, ride.pickup_latitude, ride.pickup_longitude)
        if distance > settings.MATCH_RADIUS_KM or driver_id in _excluded_drivers(ride):
            continue
        result = ride_match(ride=ride)
        if result.driver_id is not None:
            matched += 1
        if result.driver_id == driver_id:
            break
    return matched


# --- offers (DISPATCH_MODE=offer) ----------------------------------------------


def ride_offer(*, ride: Ride, driver_id: int, distance_km: float | None = None) -> RideOffer:
    expires_at = timezone.now() + timedelta(seconds=settings.OFFER_TIMEOUT_S)
    try:
        with transaction.atomic():
            current = Ride.objects.select_for_update().get(pk=ride.pk)
            if current.status != S.SEARCHING or current.version != ride.version:
                raise IllegalTransition(current, S.SEARCHING, "The ride changed meanwhile.")
            offer = RideOffer.objects.create(
                ride=ride, driver_id=driver_id, distance_km=distance_km, expires_at=expires_at
            )
            _record(
                ride,
                "offered",
                actor=None,
                role="system",
                from_status=ride.status,
                payload={"driver_id": driver_id, "offer_id": offer.pk},
            )
            events.publish_ride(
                ride.pk,
                "offered",
                driver_id=driver_id,
                distance_km=distance_km,
                expires_at=expires_at,
            )
    except IntegrityError as exc:
        raise DriverUnavailable("That driver has an open offer.", driver_id=driver_id) from exc
    return offer


def _open_offer(ride: Ride, driver: User) -> RideOffer:
    offer = RideOffer.objects.filter(ride=ride, driver=driver, status=OfferStatus.OFFERED).first()
    if offer is None:
        raise DispatchError(f"There is no open offer of ride {ride.ride_id} to you.")
    return offer


def ride_offer_accept(*, ride: Ride, driver: User) -> Ride:
    offer = _open_offer(ride, driver)
    if offer.expires_at <= timezone.now():
        ride_offers_expire()
        raise DispatchError("The offer has expired.")
    with transaction.atomic():
        if not RideOffer.objects.filter(pk=offer.pk, status=OfferStatus.OFFERED).update(
            status=OfferStatus.ACCEPTED, responded_at=timezone.now()
        ):
            raise DispatchError("The offer is no longer open.")
        ride.refresh_from_db()
        ride_assign(
            ride=ride,
            driver_id=driver.pk,
            actor=driver,
            role="driver",
            distance_km=offer.distance_km,
        )
    return ride


def ride_offer_decline(*, ride: Ride, driver: User, reason: str = "") -> MatchResult:
    offer = _open_offer(ride, driver)
    with transaction.atomic():
        if not RideOffer.objects.filter(pk=offer.pk, status=OfferStatus.OFFERED).update(
            status=OfferStatus.DECLINED, responded_at=timezone.now()
        ):
            raise DispatchError("The offer is no longer open.")
        ride.refresh_from_db()
        _record(
            ride,
            "offer_declined",
            actor=driver,
            role="driver",
            from_status=ride.status,
            payload={"driver_id": driver.pk, "reason": reason},
        )
        events.publish_ride(ride.pk, "offer_declined")
    return ride_match(ride=ride)


def ride_offers_expire(*, now: datetime | None = None) -> int:
    """
    Expire offers past their time and offer each ride to the next driver.
    Every worker runs this periodically, so a timeout fires even when the
    process that made the offer is gone; the conditional update makes sure
    only one of them acts on each offer.
    """
    now = now or timezone.now()
    expired = 0
    for offer in RideOffer.objects.filter(status=OfferStatus.OFFERED, expires_at__lte=now):
        with transaction.atomic():
            if not RideOffer.objects.filter(pk=offer.pk, status=OfferStatus.OFFERED).update(
                status=OfferStatus.EXPIRED, responded_at=now
            ):
                continue
            ride = Ride.objects.get(pk=offer.ride_id)
            _record(
                ride,
                "offer_expired",
                actor=None,
                role="system",
                from_status=ride.status,
                payload={"driver_id": offer.driver_id},
            )
            events.publish_ride(ride.pk, "offer_expired", withdrawn_driver_ids=[offer.driver_id])
        expired += 1
        if ride.status == S.SEARCHING:
            ride_match(ride=ride)
    return expired


# --- the trip ----------------------------------------------------------------


def _driver_ride(ride: Ride, driver: User) -> None:
    if ride.driver_id != driver.pk or ride.status not in DRIVER_HELD_STATUSES:
        raise NotAllowed(f"Ride {ride.ride_id} is not assigned to you.")


def _driver_step(
    ride: Ride, driver: User, to_status: str, kind: str, *, release: bool = False, **fields
) -> Ride:
    """One step of the trip, reported by the ride's own driver."""
    _driver_ride(ride, driver)
    with transaction.atomic():
        _transition(ride, to_status, kind=kind, actor=driver, role="driver", **fields)
        if release:
            _release_driver(driver.pk)
        events.publish_ride(ride.pk, kind)
    return ride


def ride_driver_arrived(*, ride: Ride, driver: User) -> Ride:
    return _driver_step(ride, driver, S.DRIVER_ARRIVED, "driver_arrived", arrived_at=timezone.now())


def ride_start(*, ride: Ride, driver: User) -> Ride:
    return _driver_step(ride, driver, S.IN_PROGRESS, "started", started_at=timezone.now())


def ride_complete(*, ride: Ride, driver: User) -> Ride:
    return _driver_step(
        ride, driver, S.COMPLETED, "completed", release=True, ended_at=timezone.now()
    )


def ride_no_show(*, ride: Ride, driver: User) -> Ride:
    """
    The passenger did not come. Only after the driver has waited
    NO_SHOW_WAIT_MIN at the pickup, whose arrival the passenger and their
    caregivers were told of.
    """
    _driver_ride(ride, driver)
    if ride.status != S.DRIVER_ARRIVED or ride.arrived_at is None:
        raise IllegalTransition(ride, S.NO_SHOW, "Mark arrival at the pickup first.")
    wait_until = ride.arrived_at + timedelta(minutes=settings.NO_SHOW_WAIT_MIN)
    if timezone.now() < wait_until:
        raise IllegalTransition(
            ride,
            S.NO_SHOW,
            f"Wait at the pickup until {timezone.localtime(wait_until):%H:%M:%S} "
            "before recording a no-show.",
        )
    return _driver_step(
        ride,
        driver,
        S.NO_SHOW,
        "no_show",
        release=True,
        ended_at=timezone.now(),
        cancelled_by=CancelledBy.SYSTEM,
        cancel_reason="no_show",
    )


def ride_cancel(*, ride: Ride, actor: User | None, cancelled_by: str, reason: str = "") -> Ride:
    """Cancel a ride; its driver is released and everyone watching is told."""
    if cancelled_by not in CancelledBy.values:
        raise DispatchError("Unknown canceller.", field="cancelled_by")
    with transaction.atomic():
        driver_id = ride.driver_id if ride.status in DRIVER_HELD_STATUSES else None
        _transition(
            ride,
            S.CANCELLED,
            kind="cancelled",
            actor=actor,
            role=cancelled_by,
            payload={"reason": reason, "driver_id": driver_id},
            cancelled_by=cancelled_by,
            cancel_reason=reason[:64],
            ended_at=timezone.now(),
        )
        withdrawn = _withdraw_offers(ride)
        _release_driver(driver_id)
        events.publish_ride(ride.pk, "cancelled", withdrawn_driver_ids=withdrawn)
    return ride


def ride_driver_cancel(*, ride: Ride, driver: User, reason: str = "") -> MatchResult:
    """
    A driver gives an assigned ride back: it searches again, without them,
    and is matched again at once.
    """
    _driver_ride(ride, driver)
    if ride.status == S.IN_PROGRESS:
        raise IllegalTransition(ride, S.SEARCHING, "A trip in progress cannot be given back.")
    with transaction.atomic():
        _transition(
            ride,
            S.SEARCHING,
            kind="driver_cancelled",
            actor=driver,
            role="driver",
            payload={"driver_id": driver.pk, "reason": reason},
            driver_id=None,
            assigned_at=None,
            arrived_at=None,
        )
        _release_driver(driver.pk)
        events.publish_ride(
            ride.pk,
            "searching",
            released_driver_id=driver.pk,
            released_by="driver",
            released_reason=reason or "driver_cancelled",
        )
    return ride_match(ride=ride)


def ride_mark_unfulfilled(*, ride: Ride, actor: User | None, reason: str = "") -> Ride:
    with transaction.atomic():
        _transition(
            ride,
            S.UNFULFILLED,
            kind="unfulfilled",
            actor=actor,
            role=_role_of(actor, ride),
            payload={"reason": reason},
            ended_at=timezone.now(),
        )
        events.publish_ride(ride.pk, "unfulfilled")
    return ride
