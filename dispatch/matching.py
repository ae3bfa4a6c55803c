"""
Who may drive whom, and who is nearest: candidates, booking, assignment by
the matcher or a dispatcher, matching again, and offers.

The rules of who may drive a ride:
- hard (nobody can override them): the driver is available, active,
  verified, and their vehicle can carry the passenger
  (`DriverState.objects.eligible`);
- soft (the matcher keeps to them; a dispatcher may override them after a
  confirmation): the driver has reported recently (dispatch.drivers.is_stale)
  and is within MATCH_RADIUS_KM of the pickup.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from dispatch import broadcast, drivers, payloads, rides, trips
from dispatch.errors import (
    DispatchError,
    DriverUnavailable,
    IllegalTransition,
    NeedsConfirmation,
    NotAllowed,
)
from dispatch.geo import Point, haversine_km
from dispatch.locations import live_position, location_store
from dispatch.models import (
    DRIVER_HELD_STATUSES,
    DriverState,
    DriverStatus,
    OfferStatus,
    Ride,
    RideEvent,
    RideOffer,
    RideStatus,
)
from dispatch.planning import day as on_the_day
from people.models import User
from project.common.db import db_async

S = RideStatus
# How many of the nearest drivers a booking tries in its own transaction;
# past them (all busy, unverified or unable to carry the passenger) the
# search goes on step by step.
BOOK_CANDIDATES = 32


@dataclass
class MatchResult:
    ride: Ride
    driver_id: int | None = None
    distance_km: float | None = None
    offered: bool = False


@dataclass
class Candidate:
    """A driver a dispatcher may put on a ride, and what speaks against it."""

    driver: User
    point: Point | None
    distance_km: float | None
    eta_minutes: int | None
    stale: bool
    warnings: list[str] = field(default_factory=list)


# --- candidates ------------------------------------------------------------------


def excluded_drivers(ride: Ride) -> set[int]:
    """
    Drivers who gave this ride back or let its offer go (declined, or let it
    expire): they are not asked again. An offer let go counts by its own
    row, so also when the ride changed at that moment and its log took no
    offer_declined or offer_expired event.
    """
    ids = RideEvent.objects.filter(ride=ride, kind="driver_cancelled").values_list(
        "payload__driver_id", flat=True
    )
    let_go = RideOffer.objects.filter(
        ride=ride, status__in=[OfferStatus.DECLINED, OfferStatus.EXPIRED]
    ).values_list("driver_id", flat=True)
    return {int(i) for i in ids if i is not None} | set(let_go)


def nearby(ride: Ride) -> Iterator[tuple[int, float, Point]]:
    """Drivers with a position within MATCH_RADIUS_KM of the pickup, nearest first."""
    return location_store().nearest(
        ride.pickup_latitude,
        ride.pickup_longitude,
        settings.MATCH_RADIUS_KM,
        stale_before=drivers.stale_before(),
    )


async def anearby(latitude: float, longitude: float) -> list[tuple[int, float, Point]]:
    """The BOOK_CANDIDATES nearest to a pickup, looked up from the event loop."""
    return await location_store().anearest(
        latitude,
        longitude,
        settings.MATCH_RADIUS_KM,
        BOOK_CANDIDATES,
        stale_before=drivers.stale_before(),
    )


def candidates(
    ride: Ride, *, excluded: set[int] | None = None, batch: int = 16
) -> Iterator[tuple[int, float]]:
    """
    (driver_id, distance_km) of the drivers who may take the ride, nearest
    first: eligible, not stale, within the radius, and not excluded.
    """
    if excluded is None:
        excluded = excluded_drivers(ride)
    found = nearby(ride)
    while True:
        chunk = []
        for driver_id, distance, point in found:
            if driver_id not in excluded and not drivers.is_stale(point):
                chunk.append((driver_id, distance))
            if len(chunk) >= batch:
                break
        if not chunk:
            return
        eligible = set(
            DriverState.objects.eligible(needs_wheelchair=ride.needs_wheelchair)
            .filter(driver_id__in=[c[0] for c in chunk])
            .values_list("driver_id", flat=True)
        )
        yield from (c for c in chunk if c[0] in eligible)


# --- putting a driver on a ride --------------------------------------------------


def put_on_ride(
    ride: Ride,
    driver: User,
    distance_km: float | None,
    *,
    actor: User | None = None,
    role: str = "system",
    expected_version: int | None = None,
    watchers: list[int] | None = None,
    new_ride: bool = False,
    at: Point | None = None,
) -> None:
    """
    The claimed `driver` goes on the ride (inside the caller's transaction):
    the step of the state machine, the previous driver released, open
    offers withdrawn, and the news.
    `new_ride`: booked in this transaction, so no offer of it is open.
    """
    previous = ride.driver_id if ride.status in DRIVER_HELD_STATUSES else None
    freed = rides.freed_driver(ride)
    kind = "reassigned" if previous else "assigned"
    now = timezone.now()
    try:
        rides.transition(
            ride,
            S.ASSIGNED,
            kind=kind,
            actor=actor,
            role=role,
            expected_version=expected_version,
            payload={
                "driver_id": driver.pk,
                "previous_driver_id": previous,
                "distance_km": None if distance_km is None else round(distance_km, 3),
            },
            driver=driver,
            assigned_at=now,
            arrived_at=None,
            no_driver_found_at=None,
        )
    except IntegrityError as exc:
        raise DriverUnavailable("That driver already has a ride.", driver_id=driver.pk) from exc
    withdrawn = [] if new_ride else rides.withdraw_offers(ride, except_driver_id=driver.pk)
    drivers.release(freed)
    broadcast.ride_changed(
        ride,
        kind,
        released_driver_id=previous,
        released_reason="reassigned",
        withdrawn_driver_ids=withdrawn,
        watchers=watchers,
        driver_at=at,
    )
    broadcast.driver_changed(driver.pk, DriverStatus.ON_TRIP)


# --- assignment --------------------------------------------------------------------


def _soft_warnings(ride: Ride, point: Point | None, name: str) -> tuple[float | None, list[str]]:
    """The distance to the pickup, and which soft rules the driver breaks."""
    if point is None:
        return None, [f"{name}'s position is unknown."]
    distance = haversine_km(point.lat, point.lng, ride.pickup_latitude, ride.pickup_longitude)
    warnings = []
    if drivers.is_stale(point):
        warnings.append(f"{name} has not reported a position lately.")
    if distance > settings.MATCH_RADIUS_KM:
        warnings.append(
            f"{name} is {distance:.1f} km from the pickup (about "
            f"{payloads.eta_minutes(distance)} min), beyond the "
            f"{settings.MATCH_RADIUS_KM:g} km match radius."
        )
    return distance, warnings


def _refusal(ride: Ride, driver_id: int, role: str) -> DispatchError:
    """
    Why a claim of this driver for this ride failed: the hard rules, in
    words for whoever asked (the driver accepting an offer, or a dispatcher).
    """
    state = (
        DriverState.objects.select_related("driver__driver_profile")
        .filter(driver_id=driver_id)
        .first()
    )
    own = role == "driver"
    if state is None or state.status != DriverStatus.AVAILABLE:
        busy = state is not None and state.status == DriverStatus.ON_TRIP
        return DriverUnavailable(
            (
                "You are on a trip: finish it first."
                if busy
                else "You are offline: go online to take rides."
            )
            if own
            else "That driver is no longer available.",
            driver_id=driver_id,
        )
    if not DriverState.objects.eligible(needs_wheelchair=False).filter(pk=state.pk).exists():
        return NotAllowed(
            "Your account may not take rides now; support will contact you."
            if own
            else f"{state.driver} is not verified, or their account is off."
        )
    return NotAllowed(
        "Your vehicle cannot carry a wheelchair, which this ride needs."
        if own
        else f"{state.driver}'s vehicle cannot carry a wheelchair, which this ride needs.",
        driver_id=driver_id,
    )


def ride_assign(
    *,
    ride: Ride,
    driver_id: int,
    actor: User | None = None,
    role: str = "system",
    expected_version: int | None = None,
    confirmed: bool = False,
) -> Ride:
    """
    Put a driver on a ride, by a dispatcher (or a driver accepting an
    offer). The hard rules always hold; a driver who breaks a soft rule
    (stale, beyond the radius, position unknown) is assigned only when
    `confirmed`, else NeedsConfirmation lists what speaks against them. An
    assigned ride is reassigned: the previous driver is released and told.
    A ride on a run goes with its run's driver: it is moved on the day's
    plan, not here. A ride that changed since `expected_version` is refused
    before anything is said of the driver: the choice was made on a ride
    that is no more.
    """
    rides.check_seen(ride, expected_version)
    if ride.run_id is not None:
        raise IllegalTransition(
            ride,
            S.ASSIGNED,
            f"Ride {ride.ride_id} is on a run of the day's plan: its run's driver takes it, "
            "so it is not reassigned here.",
        )
    state = (
        DriverState.objects.eligible(needs_wheelchair=ride.needs_wheelchair)
        .select_related("driver__driver_profile")
        .filter(driver_id=driver_id)
        .first()
    )
    if state is None:
        raise _refusal(ride, driver_id, role)
    driver = state.driver
    distance, warnings = _soft_warnings(ride, live_position(driver_id, state), str(driver))
    if warnings and not confirmed:
        raise NeedsConfirmation(
            " ".join(warnings) + " Assign anyway?",
            warnings=warnings,
            distance_km=None if distance is None else round(distance, 2),
            eta_minutes=None if distance is None else payloads.eta_minutes(distance),
        )
    with transaction.atomic():
        if not drivers.claim(driver_id, needs_wheelchair=ride.needs_wheelchair):
            raise _refusal(ride, driver_id, role)
        put_on_ride(
            ride, driver, distance, actor=actor, role=role, expected_version=expected_version
        )
    return ride


def assign_candidates(ride: Ride, *, limit: int = 25) -> list[Candidate]:
    """
    Drivers a dispatcher may put on the ride (the hard rules), nearest
    first, those breaking a soft rule after those who do not; none for a
    ride on a run (`ride_assign`).
    """
    if ride.run_id is not None:
        return []
    states = (
        DriverState.objects.eligible(needs_wheelchair=ride.needs_wheelchair)
        .exclude(driver_id=ride.driver_id)
        .select_related("driver__driver_profile")
    )
    found = []
    for state in states:
        point = live_position(state.driver_id, state)
        distance, warnings = _soft_warnings(ride, point, str(state.driver))
        found.append(
            Candidate(
                driver=state.driver,
                point=point,
                distance_km=distance,
                eta_minutes=None if distance is None else payloads.eta_minutes(distance),
                stale=drivers.is_stale(point),
                warnings=warnings,
            )
        )
    found.sort(key=lambda c: (bool(c.warnings), c.distance_km is None, c.distance_km or 0.0))
    return found[:limit]


# --- matching again ----------------------------------------------------------------


def ride_match(*, ride: Ride, fresh: bool = False) -> MatchResult:
    """
    Find the ride a driver: the nearest candidate gets it (auto mode) or is
    offered it (offer mode). A lost race moves on to the next candidate.
    When nobody is left the ride stays pending for a dispatcher, and the
    apps hear `no_drivers`.

    `fresh`: the caller has just booked the ride, so it is used as held and
    nobody has given it back yet. A change made meanwhile still fails the
    compare-and-set of the assignment.
    """
    if not fresh:
        ride.refresh_from_db()
    if ride.status != S.SEARCHING:
        return MatchResult(ride=ride, driver_id=ride.driver_id)
    for driver_id, distance in candidates(ride, excluded=set() if fresh else None):
        try:
            if settings.DISPATCH_MODE == "offer":
                ride_offer(ride=ride, driver_id=driver_id, distance_km=distance)
                return MatchResult(ride, driver_id, distance, offered=True)
            with transaction.atomic():
                if not drivers.claim(driver_id, needs_wheelchair=ride.needs_wheelchair):
                    continue
                driver = User.objects.select_related("driver_profile").get(pk=driver_id)
                put_on_ride(ride, driver, distance)
            return MatchResult(ride=ride, driver_id=driver_id, distance_km=distance)
        except DriverUnavailable:
            continue
        except IllegalTransition:
            ride.refresh_from_db()
            return MatchResult(ride=ride, driver_id=ride.driver_id)
    with transaction.atomic():
        if rides.record(ride, "no_drivers", no_driver_found_at=timezone.now()):
            broadcast.ride_changed(ride, "no_drivers")
    return MatchResult(ride=ride)


def match_waiting_near(*, driver_id: int) -> int | None:
    """
    A driver has just come online, or their last ride has ended: rides
    still waiting for a driver (no_drivers) within MATCH_RADIUS_KM of them
    are matched again, longest waiting first, so a frail passenger is not
    left waiting for a dispatcher. Not for a run's driver with stops still
    ahead today: their next riders are booked, and a ride on demand would
    put those pickups at risk. Returns how many got a driver or an offer;
    None when the driver's position is not known (or not fresh) yet: try
    again at their next report.
    """
    point = location_store().get(driver_id)
    if drivers.is_stale(point):
        return None
    eligible = DriverState.objects.filter(driver_id=driver_id)
    if not eligible.eligible(needs_wheelchair=False).exists():
        return 0
    if on_the_day.run_stops_ahead(driver_id, timezone.localdate()):
        return 0
    span = settings.MATCH_RADIUS_KM / 111.0 + 0.01
    waiting = (
        Ride.objects.pending()
        .filter(
            status=S.SEARCHING,
            no_driver_found_at__isnull=False,
            pickup_latitude__range=(point.lat - span, point.lat + span),
        )
        # One put to a driver already waits for their answer.
        .exclude(offers__status=OfferStatus.OFFERED)
        .order_by("waiting_since", "pk")
    )
    if not eligible.eligible(needs_wheelchair=True).exists():
        waiting = waiting.filter(needs_wheelchair=False)
    matched = 0
    for ride in waiting[:20]:
        distance = haversine_km(point.lat, point.lng, ride.pickup_latitude, ride.pickup_longitude)
        if distance > settings.MATCH_RADIUS_KM or driver_id in excluded_drivers(ride):
            continue
        result = ride_match(ride=ride)
        matched += result.driver_id is not None
        if result.driver_id == driver_id:
            break
    return matched


async def amatch_waiting_near(driver_id: int) -> int | None:
    """`match_waiting_near` from a socket, once this worker's reports are in the store."""
    await location_store().flushed()
    return await db_async(match_waiting_near)(driver_id=driver_id)


def ride_driver_cancel(*, ride: Ride, driver: User, reason: str = "") -> MatchResult:
    """
    A driver gives an assigned ride back: it searches again, without them,
    and is matched again at once.
    """
    trips.drivers_own(ride, driver)
    if ride.status == S.IN_PROGRESS:
        raise IllegalTransition(ride, S.SEARCHING, "A trip in progress cannot be given back.")
    if ride.run_id is not None:
        # Matched again, it would claim an on-demand driver whom the end of
        # a run's ride never frees.
        raise IllegalTransition(
            ride, S.SEARCHING, "A ride of your run is not given back here: call dispatch."
        )
    with transaction.atomic():
        freed = rides.freed_driver(ride)
        rides.transition(
            ride,
            S.SEARCHING,
            kind="driver_cancelled",
            actor=driver,
            role="driver",
            payload={"driver_id": driver.pk, "reason": reason},
            driver=None,
            assigned_at=None,
            arrived_at=None,
        )
        drivers.release(freed)
        broadcast.ride_changed(
            ride,
            "searching",
            released_driver_id=driver.pk,
            released_by="driver",
            released_reason=reason or "driver_cancelled",
        )
    return ride_match(ride=ride)


# --- offers (DISPATCH_MODE=offer) ----------------------------------------------------


def ride_offer(*, ride: Ride, driver_id: int, distance_km: float | None = None) -> RideOffer:
    """Put the ride to one driver, who has OFFER_TIMEOUT_S to accept (dispatch.offers)."""
    expires_at = timezone.now() + timedelta(seconds=settings.OFFER_TIMEOUT_S)
    try:
        with transaction.atomic():
            offer = RideOffer.objects.create(
                ride=ride, driver_id=driver_id, distance_km=distance_km, expires_at=expires_at
            )
            if (
                rides.record(
                    ride, "offered", payload={"driver_id": driver_id, "offer_id": offer.pk}
                )
                is None
            ):
                raise IllegalTransition(ride, S.SEARCHING, "The ride changed meanwhile.")
            broadcast.ride_changed(
                ride,
                "offered",
                offered_driver_id=driver_id,
                offer_distance_km=distance_km,
                offer_expires_at=expires_at,
            )
    except IntegrityError as exc:
        raise DriverUnavailable("That driver has an open offer.", driver_id=driver_id) from exc
    return offer
