"""
Booking a ride (find_driver): the ride is created and, in the same
transaction, the nearest eligible driver claimed.

Two paths behind the one function `ride_book`, through the same state
machine (dispatch.rides) and the same rules (`DriverState.objects.eligible`,
dispatch.drivers.is_stale, the caregivers people.access says follow a
passenger):

- On PostgreSQL in auto mode, one statement inserts the ride and its first
  events, claims the first free eligible candidate (`FOR UPDATE SKIP
  LOCKED`: a concurrent booking takes the next driver instead of waiting)
  and reads who hears of it (the caregivers following). Its events are
  the notices they owe (dispatch.notify.outbox reads them from the log),
  so notifications add nothing to a booking: no row, no statement, nobody's
  choices read.
  The rules are the ORM's own querysets, compiled into it; the steps and
  versions are the ones `rides.advance` plans. Measured clearly faster than
  the ORM path (docs/benchmarks.md, Decisions, "Booking").
- Elsewhere (SQLite, offer mode), the ORM: the same writes in one
  transaction.

Past the nearest candidates (all busy, unverified, unable to carry the
passenger) the search goes on step by step (`matching.ride_match`).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import islice

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Model
from django.db.models.expressions import RawSQL
from django.utils import timezone

from dispatch import broadcast, drivers, rides
from dispatch.geo import Point
from dispatch.matching import BOOK_CANDIDATES, MatchResult, nearby, put_on_ride, ride_match
from dispatch.models import DriverState, DriverStatus, Ride, RideEvent, RideStatus
from people.access import caregivers_following, caregivers_following_query
from people.models import DriverProfile, User
from project.common.sql import insert_params, insert_sql

# False: PostgreSQL books through the ORM path too (the equivalence tests and
# the benchmark's comparison of the two paths set it).
ONE_STATEMENT = True


def ride_book(
    *,
    ride_id: str,
    passenger: User,
    booked_by: User,
    nearby_drivers: Sequence[tuple[int, float, Point]] | None = None,
    needs_wheelchair: bool | None = None,
    **details,
) -> MatchResult:
    """
    find_driver: the ride is created and the nearest eligible driver among
    the BOOK_CANDIDATES nearest claimed, together; in offer mode the ride
    is offered instead. `nearby_drivers`: the nearest drivers to the pickup,
    if the caller has looked them up already (a socket does, on its event
    loop: `matching.anearby`).
    """
    if settings.DISPATCH_MODE == "offer":
        ride = rides.ride_request(
            ride_id=ride_id,
            passenger=passenger,
            booked_by=booked_by,
            needs_wheelchair=needs_wheelchair,
            **details,
        )
        return ride_match(ride=ride, fresh=True)
    ride, opening = rides.opened(
        ride_id=ride_id,
        passenger=passenger,
        booked_by=booked_by,
        needs_wheelchair=needs_wheelchair,
        **details,
    )
    if nearby_drivers is None:
        nearby_drivers = nearby(ride)
    fresh = {
        driver_id: (distance, point)
        for driver_id, distance, point in islice(nearby_drivers, BOOK_CANDIDATES)
        if not drivers.is_stale(point)
    }
    try:
        if connection.vendor == "postgresql" and ONE_STATEMENT:
            claimed = _in_one_statement(ride, opening, fresh)
        else:
            claimed = _with_the_orm(ride, opening, fresh)
    except IntegrityError as exc:
        conflict = rides.booking_conflict(ride_id, ride.passenger)
        if conflict is None:
            raise
        raise conflict from exc
    if claimed is None:
        return ride_match(ride=ride, fresh=True)
    return MatchResult(ride=ride, driver_id=claimed[0].pk, distance_km=claimed[1])


def _with_the_orm(
    ride: Ride, opening: list[RideEvent], fresh: dict[int, tuple[float, Point]]
) -> tuple[User, float] | None:
    with transaction.atomic():
        rides.insert(ride, opening)
        watchers = caregivers_following(ride.passenger_id)
        broadcast.ride_changed(ride, "searching", watchers=watchers)
        free = {
            state.driver_id: state
            for state in DriverState.objects.eligible(needs_wheelchair=ride.needs_wheelchair)
            .filter(driver_id__in=list(fresh))
            .select_related("driver__driver_profile")
            .select_for_update(skip_locked=True, of=("self",))
        }
        for driver_id, (distance, point) in fresh.items():
            state = free.get(driver_id)
            if state is not None and drivers.claim(
                driver_id, needs_wheelchair=ride.needs_wheelchair
            ):
                state.status = DriverStatus.ON_TRIP
                state.driver.driver_state = state
                put_on_ride(
                    ride, state.driver, distance, watchers=watchers, new_ride=True, at=point
                )
                return state.driver, distance
    return None


# --- PostgreSQL: one statement -----------------------------------------------------

# The passenger and the claimed driver come back with the statement, as the
# messages show them (model, alias, column = the person's id).
DRIVER_ROWS = (
    (User, "du", "id"),
    (DriverProfile, "dp", "user_id"),
    (DriverState, "dst", "driver_id"),
)
CLAIMED = "claim.driver_id IS NOT NULL"
# The statement, built on first use; only its parameters change.
_statement: tuple[str, list, list, list] | None = None


@dataclass
class _Planned:
    """The ride's steps as the state machine plans them, claimed or not."""

    searching: Ride
    assigned: Ride
    event: RideEvent


def _plan(ride: Ride, now: datetime) -> _Planned:
    claimed = copy.copy(ride)
    event = rides.advance(claimed, RideStatus.ASSIGNED, kind="assigned", assigned_at=now)
    return _Planned(searching=ride, assigned=claimed, event=event)


def _in_one_statement(
    ride: Ride, opening: list[RideEvent], fresh: dict[int, tuple[float, Point]]
) -> tuple[User, float] | None:
    global _statement
    now = timezone.now()
    plan = _plan(ride, now)
    if _statement is None:
        _statement = _build()
    sql, eligible_params, carries_params, watchers_params = _statement
    params = [
        list(fresh),
        [distance for distance, _ in fresh.values()],
        *eligible_params,
        *carries_params,
        ride.needs_wheelchair,
        DriverStatus.AVAILABLE,
        DriverStatus.ON_TRIP,
        now,
        DriverStatus.AVAILABLE,
        *insert_params(
            ride,
            {
                "status": [plan.assigned.status, plan.searching.status],
                "version": [plan.assigned.version, plan.searching.version],
                "driver": [],
                "assigned_at": [now],
            },
        ),
        *insert_params(opening[0], {"ride": []}),
        *insert_params(opening[1], {"ride": []}),
        *insert_params(plan.event, {"ride": [], "payload": []}),
        *watchers_params,
    ]
    # One statement is one transaction (a savepoint inside a caller's): a
    # constraint that fails rolls the claim back with it.
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            pk, watchers, distance, *row = cursor.fetchone()
        ride.pk = pk
        # Saved now, as Model._state (documented) records for a saved row.
        ride._state.adding, ride._state.db = False, connection.alias
        broadcast.ride_changed(ride, "searching", watchers=watchers)
        driver = _driver_of(row)
        if driver is None:
            return None
        rides.advance(ride, RideStatus.ASSIGNED, kind="assigned", driver=driver, assigned_at=now)
        broadcast.ride_changed(
            ride,
            "assigned",
            watchers=watchers,
            driver_at=fresh[driver.pk][1],
        )
        broadcast.driver_changed(driver.pk, DriverStatus.ON_TRIP)
    return driver, distance


def _driver_of(row: Sequence) -> User | None:
    """The claimed driver, with profile and state, from the statement's row."""
    loaded: list[Model | None] = []
    for model, _, _ in DRIVER_ROWS:
        fields = model._meta.concrete_fields
        values, row = list(row[: len(fields)]), row[len(fields) :]
        if values[fields.index(model._meta.pk)] is None:
            return None
        for i, field in enumerate(fields):
            for convert in field.get_db_converters(connection):
                values[i] = convert(values[i], None, connection)
        loaded.append(model.from_db(connection.alias, [f.attname for f in fields], values))
    driver, profile, state = loaded
    driver.driver_profile, driver.driver_state = profile, state
    return driver


def _build() -> tuple[str, list, list, list]:
    """The statement, and the parameters of the querysets compiled into it."""
    eligible_sql, eligible_params = (
        DriverState.objects.eligible(needs_wheelchair=False)
        .values("driver_id")
        .query.sql_with_params()
    )
    carries_sql, carries_params = (
        DriverState.objects.eligible(needs_wheelchair=True)
        .values("driver_id")
        .query.sql_with_params()
    )
    passenger_id = RawSQL("(SELECT passenger_id FROM ride)", ())
    watchers_sql, watchers_params = caregivers_following_query(passenger_id).query.sql_with_params()
    ride_cols, ride_values = insert_sql(
        Ride,
        {
            "status": f"CASE WHEN {CLAIMED} THEN %s ELSE %s END",
            "version": f"CASE WHEN {CLAIMED} THEN %s ELSE %s END",
            "driver": "claim.driver_id",
            "assigned_at": f"CASE WHEN {CLAIMED} THEN %s::timestamptz END",
        },
    )
    event_cols, event_values = insert_sql(RideEvent, {"ride": "ride.id"})
    _, assigned_values = insert_sql(
        RideEvent,
        {
            "ride": "ride.id",
            "payload": (
                "jsonb_build_object('driver_id', claim.driver_id, 'previous_driver_id', NULL, "
                "'distance_km', round(claim.distance_km::numeric, 3))"
            ),
        },
    )
    state = DriverState._meta.db_table
    driver_columns = ", ".join(
        f"{alias}.{connection.ops.quote_name(field.column)}"
        for model, alias, _ in DRIVER_ROWS
        for field in model._meta.concrete_fields
    )
    driver_joins = " ".join(
        f"LEFT JOIN {model._meta.db_table} {alias} ON {alias}.{key} = claim.driver_id"
        for model, alias, key in DRIVER_ROWS
    )
    sql = f"""
        WITH cand AS (
            SELECT c.driver_id, c.distance_km, c.ord
            FROM unnest(%s::bigint[], %s::float8[])
                WITH ORDINALITY AS c(driver_id, distance_km, ord)
        ),
        pick AS (
            SELECT ds.driver_id, cand.distance_km
            FROM cand
            JOIN ({eligible_sql}) AS eligible ON eligible.driver_id = cand.driver_id
            LEFT JOIN ({carries_sql}) AS carries ON carries.driver_id = cand.driver_id
            JOIN {state} ds ON ds.driver_id = cand.driver_id
            WHERE (NOT %s::bool OR carries.driver_id IS NOT NULL) AND ds.status = %s
            ORDER BY cand.ord
            LIMIT 1
            FOR UPDATE OF ds SKIP LOCKED
        ),
        claim AS (
            UPDATE {state} ds SET status = %s, updated_at = %s::timestamptz
            FROM pick WHERE ds.driver_id = pick.driver_id AND ds.status = %s
            RETURNING ds.driver_id, pick.distance_km
        ),
        ride AS (
            INSERT INTO {Ride._meta.db_table} ({ride_cols})
            SELECT {ride_values} FROM (SELECT 1) AS one LEFT JOIN claim ON TRUE
            RETURNING id, passenger_id
        ),
        events AS (
            INSERT INTO {RideEvent._meta.db_table} ({event_cols})
            SELECT {event_values} FROM ride
            UNION ALL SELECT {event_values} FROM ride
            UNION ALL SELECT {assigned_values} FROM ride JOIN claim ON TRUE
        )
        SELECT ride.id, ARRAY({watchers_sql}), claim.distance_km, {driver_columns}
        FROM ride LEFT JOIN claim ON TRUE {driver_joins}
    """
    return sql, list(eligible_params), list(carries_params), list(watchers_params)
