"""
A booking in one PostgreSQL statement: the ride is inserted and the nearest
eligible driver claimed together, with the ride's first events.

Booking step by step (`ride_request`, then `ride_match`) takes eleven
statements in two transactions, and on the test machine the ORM spends about
half a millisecond of CPU building each one: two thirds of a booking's time.
This statement does the same writes in one round trip:

* **Who may drive** is the ORM's own `eligible_drivers` queryset, compiled
  once and embedded, so the rules live in one place.
* **Which one:** the first of the candidates (nearest first, from the
  location store) that is eligible, reported recently or is a demo driver,
  and that no other booking is claiming right now (`FOR UPDATE SKIP
  LOCKED`: a concurrent booking takes the next driver instead of waiting).
* **The writes:** the driver goes from available to on_trip, the ride is
  inserted as `assigned` (version 3) with its `requested`, `searching` and
  `assigned` events, exactly as `ride_request` + `ride_assign` write them.
  With nobody to claim, the ride is inserted as `searching` (version 2) with
  its two events, and the caller matches it step by step.
* **Columns and values** come from the model instances the caller built
  (`Field.get_db_prep_save`), so the statement follows the models.

One statement is one transaction: a constraint that fails (this ride_id
taken, the passenger's active ride) rolls the claim back with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from django.db import connection
from django.db.models import F, Model

from dispatch.models import DriverState, DriverStatus, Ride, RideEvent, RideStatus

# The statement's SQL per wheelchair need (it depends on nothing else).
_sql_cache: dict[bool, tuple[str, tuple]] = {}


def _insert_parts(instance: Model, exprs: dict[str, tuple[str, list]]) -> tuple[str, str, list]:
    """
    Column list, value list and parameters to insert `instance`; a field
    named in `exprs` takes that (SQL, parameters) instead of its value.
    """
    ops = connection.ops
    columns, values, params = [], [], []
    for field in instance._meta.concrete_fields:
        if field.primary_key:
            continue
        columns.append(ops.quote_name(field.column))
        if field.name in exprs:
            sql, sql_params = exprs[field.name]
            values.append(sql)
            params += sql_params
        else:
            values.append(f"%s::{field.cast_db_type(connection)}")
            params.append(field.get_db_prep_save(field.pre_save(instance, add=True), connection))
    return ", ".join(columns), ", ".join(values), params


def _statement(
    ride: Ride, opening: Sequence[RideEvent], assigned: RideEvent, now: datetime
) -> tuple[str, list]:
    from dispatch.services import eligible_drivers

    if ride.needs_wheelchair not in _sql_cache:
        eligible = (
            eligible_drivers(needs_wheelchair=ride.needs_wheelchair)
            .annotate(is_demo=F("driver__driver_profile__is_demo"))
            .values("driver_id", "is_demo")
        )
        _sql_cache[ride.needs_wheelchair] = eligible.query.sql_with_params()
    eligible_sql, eligible_params = _sql_cache[ride.needs_wheelchair]
    claimed = "claim.driver_id IS NOT NULL"
    ride_cols, ride_values, ride_params = _insert_parts(
        ride,
        {
            "status": (
                f"CASE WHEN {claimed} THEN %s ELSE %s END",
                [RideStatus.ASSIGNED, RideStatus.SEARCHING],
            ),
            "version": (f"CASE WHEN {claimed} THEN 3 ELSE 2 END", []),
            "driver": ("claim.driver_id", []),
            "assigned_at": (f"CASE WHEN {claimed} THEN %s::timestamptz END", [now]),
        },
    )
    to_ride = {"ride": ("ride.id", [])}
    event_cols, _, _ = _insert_parts(opening[0], to_ride)
    rows, event_params = [], []
    for event in opening:
        _, values, params = _insert_parts(event, to_ride)
        rows.append(f"SELECT {values} FROM ride")
        event_params += params
    payload = (
        "jsonb_build_object('driver_id', claim.driver_id, 'previous_driver_id', NULL, "
        "'distance_km', round(claim.distance_km::numeric, 3))"
    )
    _, values, params = _insert_parts(assigned, {**to_ride, "payload": (payload, [])})
    rows.append(f"SELECT {values} FROM ride JOIN claim ON TRUE")
    event_params += params
    state = DriverState._meta.db_table
    sql = f"""
        WITH cand AS (
            SELECT c.driver_id, c.distance_km, c.fresh, c.ord
            FROM unnest(%s::bigint[], %s::float8[], %s::bool[])
                WITH ORDINALITY AS c(driver_id, distance_km, fresh, ord)
        ),
        pick AS (
            SELECT ds.driver_id, cand.distance_km
            FROM cand
            JOIN ({eligible_sql}) AS eligible ON eligible.driver_id = cand.driver_id
            JOIN {state} ds ON ds.driver_id = cand.driver_id
            WHERE (cand.fresh OR eligible.is_demo) AND ds.status = %s
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
            RETURNING id, driver_id
        ),
        events AS (
            INSERT INTO {RideEvent._meta.db_table} ({event_cols})
            {" UNION ALL ".join(rows)}
        )
        SELECT ride.id, ride.driver_id, claim.distance_km FROM ride LEFT JOIN claim ON TRUE
    """
    params = [
        *eligible_params,
        DriverStatus.AVAILABLE,
        DriverStatus.ON_TRIP,
        now,
        DriverStatus.AVAILABLE,
        *ride_params,
        *event_params,
    ]
    return sql, params


def insert_and_claim(
    ride: Ride,
    opening: Sequence[RideEvent],
    assigned: RideEvent,
    candidates: Sequence[tuple[int, float, bool]],
    now: datetime,
) -> tuple[int, int | None, float | None]:
    """
    Insert `ride` (built as searching, version 2, with its `opening` events)
    and claim the first free eligible driver of `candidates` ((driver_id,
    distance_km, reported recently), nearest first), as of `now`. Returns the ride's pk,
    the claimed driver and their distance (None, None when nobody was free).
    Raises IntegrityError, with nothing written, when a constraint fails.
    """
    sql, params = _statement(ride, opening, assigned, now)
    ids = [c[0] for c in candidates]
    distances = [c[1] for c in candidates]
    fresh = [c[2] for c in candidates]
    with connection.cursor() as cursor:
        cursor.execute(sql, [ids, distances, fresh, *params])
        pk, driver_id, distance = cursor.fetchone()
    return pk, driver_id, distance
