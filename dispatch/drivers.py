"""
Drivers: the status table (offline, available, on_trip), where each one is,
when a position is stale, and whether support has verified them.

The status row in the database is the authority for who may be claimed;
claims change it with one conditional UPDATE. Live positions stream through
the location store (dispatch.locations) and are copied to the database at
intervals.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from dispatch import broadcast
from dispatch.errors import DispatchError, NotAllowed
from dispatch.geo import Point
from dispatch.locations import live_position, location_store
from dispatch.models import MAY_DRIVE, DriverState, DriverStatus, Ride
from dispatch.notify import near
from people.audit import audit_event_record
from people.models import DriverProfile, User
from project.common.batching import LatestPerKey
from project.common.db import db_background
from project.common.sockets import CLOSE_FORBIDDEN, per_event_loop

log = logging.getLogger(__name__)

# Positions copied to the database per transaction (persist_positions).
PERSIST_CHUNK = 50


# --- staleness: the one rule ---------------------------------------------------
#
# A driver is stale when their app has not reported for DRIVER_STALE_AFTER_S:
# stale drivers are not matched, and show grey on the console. A position
# that was placed rather than reported (a demo driver standing still) never
# goes stale; an unknown position always is. The three functions below are
# that rule as a time, as a test, and as a threshold for the stores.


def stale_at(point: Point | None, after_s: float | None = None) -> float | None:
    """
    When a driver at `point` turns stale without a new report; None: never.
    `after_s`: a silence other than DRIVER_STALE_AFTER_S (the trip
    watchdog's WATCHDOG_SILENT_MIN), under the same rule.
    """
    if point is None:
        return 0.0
    after = settings.DRIVER_STALE_AFTER_S if after_s is None else after_s
    return point.seen + after if point.reported else None


def is_stale(point: Point | None, now: float | None = None, after_s: float | None = None) -> bool:
    at = stale_at(point, after_s)
    return at is not None and (time.time() if now is None else now) > at


def reports(point: Point) -> bool:
    """Whether the position comes from an app's reports (not placed: a demo driver)."""
    return point.reported


def stale_before(now: float | None = None) -> float:
    """Reports older than this (unix seconds) are stale."""
    return (time.time() if now is None else now) - settings.DRIVER_STALE_AFTER_S


def reports_position(profile: DriverProfile | None) -> bool:
    """Demo drivers stand still and no app reports for them (seed_demo)."""
    return not (profile is not None and profile.is_demo)


def saved_positions() -> dict[int, Point]:
    """The last copied position of every driver who is not offline (a cold store's start)."""
    rows = (
        DriverState.objects.exclude(status=DriverStatus.OFFLINE)
        .filter(latitude__isnull=False, longitude__isnull=False)
        .select_related("driver__driver_profile")
    )
    return {
        row.driver_id: Point(
            row.latitude,
            row.longitude,
            row.location_updated_at.timestamp() if row.location_updated_at else 0.0,
            row.heading,
            row.speed,
            reports_position(getattr(row.driver, "driver_profile", None)),
        )
        for row in rows
    }


# --- status ------------------------------------------------------------------


def driver_state_for(driver: User) -> DriverState:
    state, _ = DriverState.objects.get_or_create(driver=driver)
    return state


def may_drive(driver_id: int) -> bool:
    """Whether the account may drive now (MAY_DRIVE: a driver's, switched on, verified)."""
    return User.objects.filter(pk=driver_id, **MAY_DRIVE).exists()


def driver_set_status(*, driver: User, status: str) -> DriverState:
    """
    A driver goes online (available) or offline. Every socket of the driver
    hears the status set, also when it was already so (the app that asked
    is answered that way).
    """
    if status not in (DriverStatus.AVAILABLE, DriverStatus.OFFLINE):
        raise DispatchError(
            "status must be 'available' or 'offline'.", fields={"status": "available or offline"}
        )
    profile = DriverProfile.objects.filter(user=driver).first()
    if profile is None:
        raise NotAllowed("Only drivers can go online.")
    if status == DriverStatus.AVAILABLE and not profile.is_verified:
        raise NotAllowed("Your driver account is not verified yet; support will contact you.")
    if status == DriverStatus.AVAILABLE and not may_drive(driver.pk):
        raise NotAllowed("Your account may no longer drive; support will contact you.")
    with transaction.atomic():
        state = DriverState.objects.select_for_update().get_or_create(driver=driver)[0]
        carrying = status == DriverStatus.AVAILABLE and Ride.objects.held_by(driver.pk).exists()
        if state.status == DriverStatus.ON_TRIP or carrying:
            raise DispatchError(
                "You have an active ride: finish or cancel it first.",
                code="invalid_state",
                status=409,
                current_status=state.status,
            )
        if state.status != status:
            state.status = status
            # Heard at the moment of the change (freed_while_away).
            state.last_seen_at = state.updated_at = timezone.now()
            DriverState.objects.filter(pk=state.pk).update(
                status=status, last_seen_at=state.last_seen_at, updated_at=state.updated_at
            )
            broadcast.driver_changed(driver.pk, status)
        broadcast.driver_status_set(driver.pk, status)
    store = location_store()
    if status == DriverStatus.OFFLINE:
        transaction.on_commit(lambda: store.remove(driver.pk))
    elif state.latitude is not None and store.get(driver.pk) is None:
        # Back online where it was last seen, until the app reports again.
        point = live_position(driver.pk, state)
        point.reported = reports_position(profile)
        store.put(driver.pk, point)
    return state


def claim(driver_id: int, *, needs_wheelchair: bool) -> bool:
    """
    Put an eligible driver on a trip: available to on_trip in one
    conditional UPDATE, so no driver ever holds two rides. False when the
    driver is not (or no longer) eligible.
    """
    eligible = DriverState.objects.eligible(needs_wheelchair=needs_wheelchair)
    # The status is tested on the row the UPDATE locks, not only inside the
    # eligibility subquery: PostgreSQL re-checks the row's own conditions
    # after waiting for a concurrent claim, never a subquery's.
    return bool(
        DriverState.objects.filter(
            driver_id=driver_id,
            status=DriverStatus.AVAILABLE,
            driver_id__in=eligible.values("driver_id"),
        ).update(status=DriverStatus.ON_TRIP, updated_at=timezone.now())
    )


def lock_status(driver_id: int) -> None:
    """
    Lock the driver's status row until the transaction ends, before a
    change to the rides they hold (one ending, `rides.freed_driver`; a run
    reaching a rider, `trips.ride_run_reached`): two such changes for one
    driver then run one after the other, the second reading what the first
    wrote, so neither leaves them on_trip holding nothing, nor available
    carrying a rider. Taken before any ride row, as a claim takes it
    before writing the ride it assigns; a booking never waits for it
    (SKIP LOCKED).
    """
    list(DriverState.objects.select_for_update().filter(driver_id=driver_id).values_list("pk"))


def carry(driver_id: int) -> None:
    """
    A run's driver has reached a rider: while carrying, not available for
    rides on demand (available to on_trip; offline stays offline).
    """
    carrying = DriverState.objects.filter(
        driver_id=driver_id, status=DriverStatus.AVAILABLE
    ).update(status=DriverStatus.ON_TRIP, updated_at=timezone.now())
    if carrying:
        broadcast.driver_changed(driver_id, DriverStatus.ON_TRIP)


def release(driver_id: int | None) -> None:
    """
    A driver's trip is over (or given away): on_trip to available; to
    offline for a driver who may no longer drive (driver_off_duty: they
    cannot go online again).
    """
    if driver_id is None:
        return
    now = timezone.now()
    on_trip = DriverState.objects.filter(driver_id=driver_id, status=DriverStatus.ON_TRIP)
    if on_trip.may_drive().update(status=DriverStatus.AVAILABLE, updated_at=now):
        broadcast.driver_changed(driver_id, DriverStatus.AVAILABLE)
    elif on_trip.update(status=DriverStatus.OFFLINE, updated_at=now):
        broadcast.driver_changed(driver_id, DriverStatus.OFFLINE)


def freed_while_away(state: DriverState) -> bool:
    """
    Whether the driver became available after their app was last heard
    (its last report copied to the database, or its set_status): their
    ride ended, was cancelled or went to another driver while no socket of
    theirs was open, so nobody gave them the rides left waiting near them.
    A driver who only reconnects (thousands at once after a restart) was
    last heard after that, and is not.
    """
    return state.status == DriverStatus.AVAILABLE and (
        state.last_seen_at is None or state.updated_at > state.last_seen_at
    )


def driver_verify(*, profile: DriverProfile, actor: User | None, verified: bool) -> DriverProfile:
    """
    Support marks a driver verified (they may go online) or not (they go
    off duty: driver_off_duty). Nothing changes, and nothing is audited,
    when the profile already says so.
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
            driver_off_duty(
                driver_id=profile.user_id,
                message="Your driver account is no longer verified; support will contact you.",
            )
    return profile


def driver_off_duty(*, driver_id: int, message: str) -> None:
    """
    A driver who may no longer drive (MAY_DRIVE: support withdrew their
    verification, switched the account off or changed its role). Online
    waiting for rides, they are taken offline at once; on a trip, they
    finish the rides they hold, reach no further rider of their run
    (dispatch.trips.ride_run_reached), go offline when the trip ends
    (release) and cannot go online again. Their sockets close with
    `message`, and ask again.
    """
    with transaction.atomic():
        # Locked, so that no claim puts them on a trip meanwhile.
        waiting = (
            DriverState.objects.select_for_update()
            .filter(driver_id=driver_id, status=DriverStatus.AVAILABLE)
            .select_related("driver")
            .first()
        )
        if waiting is not None:
            driver_set_status(driver=waiting.driver, status=DriverStatus.OFFLINE)
        broadcast.access_ended(driver_id, code=CLOSE_FORBIDDEN, error="forbidden", message=message)


# --- positions -----------------------------------------------------------------


def driver_place(
    *,
    driver: User,
    latitude: float,
    longitude: float,
    heading: float | None = None,
    speed: float | None = None,
) -> None:
    """Set a driver's position now, in the live store and the database (seeding, tests)."""
    profile = DriverProfile.objects.filter(user=driver).first()
    point = Point(
        latitude, longitude, timezone.now().timestamp(), heading, speed, reports_position(profile)
    )
    location_store().put(driver.pk, point)
    driver_state_for(driver)
    persist_positions(positions={driver.pk: point})


async def report_position(driver_id: int, point: Point, held: Mapping[str, int]) -> None:
    """
    A driver's app reported where it is: into the live store, to whoever
    follows the rides the driver holds (`held`: ride_id -> passenger id;
    a run's driver may hold several) and to the consoles, and to the
    database at the next interval; and each ride's people are told once
    when the driver is near its pickup (dispatch.notify.near). Nothing here
    waits for the database but a ride's first report and that telling.
    """
    location_store().note(driver_id, point)
    await broadcast.driver_moved(driver_id, point, held)
    position_writer().note(driver_id, point)
    for ride_id in held:
        await near.driver_moved(ride_id, driver_id, point)


def persist_positions(*, positions: dict[int, Point]) -> int:
    """
    Copy live positions to the database. Workers call this once per
    LOCATION_PERSIST_INTERVAL_S with the latest report of each driver, never
    once per report. One parameterised UPDATE run for every driver
    (executemany: pipelined on PostgreSQL); the ORM's bulk_update builds a
    CASE per column and row, a statement that grows with the batch.

    The rows go in chunks of PERSIST_CHUNK, each its own transaction (a
    savepoint inside a caller's): one transaction for the whole batch held
    every row it had updated until it ended, and bookings skipped or waited
    for those drivers.
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


async def _persist(batch: dict[int, Point]) -> None:
    await db_background(persist_positions)(positions=batch)


# This event loop's copier of positions to the database: the latest report
# of each driver, once per LOCATION_PERSIST_INTERVAL_S, on a thread of its
# own, so a report never waits for the database.
position_writer = per_event_loop(
    lambda: LatestPerKey(
        lambda: settings.LOCATION_PERSIST_INTERVAL_S, _persist, "persisting positions"
    )
)
