"""
A booking in one PostgreSQL statement: the ride is inserted and the nearest
eligible driver claimed together, with the ride's first events.

Booking step by step (`ride_request`, then `ride_match`) takes eleven
statements in two transactions, and on the test machine the ORM spends about
half a millisecond of CPU building each one: two thirds of a booking's time.
This statement does the same writes in one round trip:

* **Who may drive** is the ORM's own `eligible_drivers` queryset, compiled
  into the statement, so the rules live in one place: both of its forms,
  and the wheelchair one applies when the ride needs it. The need is the
  request's if it says, else the passenger's profile's, read in the
  statement (a separate read of the passenger was one more round trip on
  the database thread, each of which waits for the GIL on a busy worker).
* **Which one:** the first of the candidates (nearest first, from the
  location store) that is eligible, reported recently or is a demo driver,
  and that no other booking is claiming right now (`FOR UPDATE SKIP
  LOCKED`: a concurrent booking takes the next driver instead of waiting).
* **The writes:** the driver goes from available to on_trip, the ride is
  inserted as `assigned` (version 3) with its `requested`, `searching` and
  `assigned` events, exactly as `ride_request` + `ride_assign` write them.
  With nobody to claim, the ride is inserted as `searching` (version 2) with
  its two events, and the caller matches it step by step.
* **What the news needs** comes back in the same row: the passenger as
  they are now with their profile, the claimed driver with profile and
  state, and the caregivers to tell (the ORM's `caregiver_watchers_query`,
  compiled in).
* **Columns and values** come from the models and the instances the caller
  built (`Field.get_db_prep_save`), so the statement follows the models.

The SQL is built once; only the parameters change, so psycopg prepares it.
It is sent with PostgreSQL's own `$1` placeholders through psycopg's
`RawCursor`: psycopg caches its conversion of `%s` placeholders only for
statements of up to 4,096 bytes and 50 parameters, this one is longer and
has more, and converting it again for every booking cost a third of a
millisecond of the database thread's CPU on the benchmark machine
(docs/benchmarks.md). While Django logs
queries (DEBUG, tests that capture them), it goes through Django's own
cursor with `%s`, because the log renders each statement with psycopg's
`%s` substitution.
One statement is one transaction: a constraint that fails (this ride_id
taken, the passenger's active ride) rolls the claim back with it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from django.db import connection
from django.db.backends.postgresql.psycopg_any import register_tzloader
from django.db.models import F, Model
from django.db.models.expressions import RawSQL
from psycopg import RawCursor
from psycopg.pq import Format

from dispatch.models import DriverState, DriverStatus, Ride, RideEvent, RideStatus
from people.models import DriverProfile, PassengerProfile, User

CLAIMED = "claim.driver_id IS NOT NULL"
# Fields whose value the statement computes (their parameters are passed
# to `_insert_params`).
RIDE_EXPRS = {
    # The request's need, else the passenger's profile's, else none.
    "needs_wheelchair": "(SELECT wheelchair FROM need)",
    "status": f"CASE WHEN {CLAIMED} THEN %s ELSE %s END",
    "version": f"CASE WHEN {CLAIMED} THEN 3 ELSE 2 END",
    "driver": "claim.driver_id",
    "assigned_at": f"CASE WHEN {CLAIMED} THEN %s::timestamptz END",
}
EVENT_EXPRS = {"ride": "ride.id"}
ASSIGNED_EXPRS = {
    **EVENT_EXPRS,
    "payload": (
        "jsonb_build_object('driver_id', claim.driver_id, 'previous_driver_id', NULL, "
        "'distance_km', round(claim.distance_km::numeric, 3))"
    ),
}
# The passenger and the claimed driver come back with the statement, as the
# messages show them (model, alias, column = the person's id).
PASSENGER_ROWS = (
    (User, "pu", "id"),
    (PassengerProfile, "pprof", "user_id"),
)
DRIVER_ROWS = (
    (User, "du", "id"),
    (DriverProfile, "dp", "user_id"),
    (DriverState, "dst", "driver_id"),
)

# (SQL with %s, the same with $1..., parameters of the compiled querysets),
# built on first use.
_sql_cache: list[tuple[str, str, list]] = []


@dataclass
class Booked:
    pk: int
    watchers: list[int]
    needs_wheelchair: bool
    # As they are now, with their profile (None if they have none).
    passenger: User
    # Claimed, with profile and state (now on_trip); None when nobody was free.
    driver: User | None
    distance_km: float | None


def _fields(model: type[Model]) -> list:
    return [f for f in model._meta.concrete_fields if not f.primary_key]


def _insert_sql(model: type[Model], exprs: dict[str, str]) -> tuple[str, str]:
    """Column list and value list to insert a `model` row; `exprs` replace values."""
    columns = ", ".join(connection.ops.quote_name(f.column) for f in _fields(model))
    values = ", ".join(
        exprs[f.name] if f.name in exprs else f"%s::{f.cast_db_type(connection)}"
        for f in _fields(model)
    )
    return columns, values


def _insert_params(instance: Model, exprs: dict[str, list]) -> list:
    """The parameters of `_insert_sql` for `instance`, in order."""
    params: list = []
    for field in _fields(type(instance)):
        if field.name in exprs:
            params += exprs[field.name]
        else:
            params.append(field.get_db_prep_save(field.pre_save(instance, add=True), connection))
    return params


def _columns(rows) -> str:
    return ", ".join(
        f"{alias}.{connection.ops.quote_name(field.column)}"
        for model, alias, _ in rows
        for field in model._meta.concrete_fields
    )


def _joins(rows, on: str) -> str:
    return " ".join(
        f"LEFT JOIN {model._meta.db_table} {alias} ON {alias}.{key} = {on}"
        for model, alias, key in rows
    )


def _build_sql() -> tuple[str, list]:
    from dispatch.events import caregiver_watchers_query
    from dispatch.services import eligible_drivers

    eligible_sql, eligible_params = (
        eligible_drivers(needs_wheelchair=False)
        .annotate(is_demo=F("driver__driver_profile__is_demo"))
        .values("driver_id", "is_demo")
        .query.sql_with_params()
    )
    carries_sql, carries_params = (
        eligible_drivers(needs_wheelchair=True).values("driver_id").query.sql_with_params()
    )
    watchers_sql, watchers_params = caregiver_watchers_query(
        RawSQL("(SELECT passenger_id FROM ride)", ())
    ).query.sql_with_params()
    ride_cols, ride_values = _insert_sql(Ride, RIDE_EXPRS)
    event_cols, event_values = _insert_sql(RideEvent, EVENT_EXPRS)
    _, assigned_values = _insert_sql(RideEvent, ASSIGNED_EXPRS)
    state = DriverState._meta.db_table
    sql = f"""
        WITH need AS (
            SELECT COALESCE(
                %s::bool,
                (SELECT needs_wheelchair FROM {PassengerProfile._meta.db_table}
                 WHERE user_id = %s),
                false
            ) AS wheelchair
        ),
        cand AS (
            SELECT c.driver_id, c.distance_km, c.fresh, c.ord
            FROM unnest(%s::bigint[], %s::float8[], %s::bool[])
                WITH ORDINALITY AS c(driver_id, distance_km, fresh, ord)
        ),
        pick AS (
            SELECT ds.driver_id, cand.distance_km
            FROM cand
            JOIN need ON TRUE
            JOIN ({eligible_sql}) AS eligible ON eligible.driver_id = cand.driver_id
            LEFT JOIN ({carries_sql}) AS carries ON carries.driver_id = cand.driver_id
            JOIN {state} ds ON ds.driver_id = cand.driver_id
            WHERE (cand.fresh OR eligible.is_demo) AND ds.status = %s
                AND (NOT need.wheelchair OR carries.driver_id IS NOT NULL)
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
            RETURNING id, passenger_id, needs_wheelchair
        ),
        events AS (
            INSERT INTO {RideEvent._meta.db_table} ({event_cols})
            SELECT {event_values} FROM ride
            UNION ALL SELECT {event_values} FROM ride
            UNION ALL SELECT {assigned_values} FROM ride JOIN claim ON TRUE
        )
        SELECT ride.id, ARRAY({watchers_sql}), ride.needs_wheelchair, claim.distance_km,
            {_columns(PASSENGER_ROWS)}, {_columns(DRIVER_ROWS)}
        FROM ride LEFT JOIN claim ON TRUE
            {_joins(PASSENGER_ROWS, "ride.passenger_id")} {_joins(DRIVER_ROWS, "claim.driver_id")}
    """
    return sql, [list(eligible_params), list(carries_params), list(watchers_params)]


def _numbered(sql: str) -> str:
    """`sql` with its `%s` placeholders numbered as PostgreSQL's `$1`, `$2`, ..."""
    parts = sql.split("%s")
    if any("%" in part for part in parts):
        # `%%` or `%(name)s` would need psycopg's own parser.
        raise ValueError("The booking statement may hold no % but its %s placeholders.")
    return parts[0] + "".join(f"${number}{part}" for number, part in enumerate(parts[1:], 1))


@contextmanager
def _raw_cursor() -> Iterator:
    """
    A psycopg `RawCursor` on Django's connection, made ready and wrapped as
    `connection.cursor()` makes and wraps Django's own when queries are not
    logged: errors come out as Django's (IntegrityError), and execute
    wrappers see the statement.
    """
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    connection.validate_thread_sharing()
    raw = RawCursor(connection.connection)
    # As Django's `create_cursor`: datetimes read in the connection's zone.
    timestamptz = raw.adapters.types["timestamptz"].oid
    if raw.adapters.get_loader(timestamptz, Format.TEXT).timezone != connection.timezone:
        register_tzloader(connection.timezone, raw)
    with connection.make_cursor(raw) as cursor:
        yield cursor


def _load(rows, row: Sequence) -> tuple[list[Model | None], Sequence]:
    """
    The instances of `rows` (model, alias, key) from the start of `row`
    (None where the LEFT JOIN found none), and the rest of `row`.
    """
    loaded: list[Model | None] = []
    for model, _, _ in rows:
        fields = model._meta.concrete_fields
        values, row = list(row[: len(fields)]), row[len(fields) :]
        if values[fields.index(model._meta.pk)] is None:
            loaded.append(None)
            continue
        for i, field in enumerate(fields):
            for convert in field.get_db_converters(connection):
                values[i] = convert(values[i], None, connection)
        loaded.append(model.from_db(connection.alias, [f.attname for f in fields], values))
    return loaded, row


def insert_and_claim(
    ride: Ride,
    needs_wheelchair: bool | None,
    opening: Sequence[RideEvent],
    assigned: RideEvent,
    candidates: Sequence[tuple[int, float, bool]],
    now: datetime,
) -> Booked:
    """
    Insert `ride` (built as searching, version 2, with its two `opening`
    events) and claim the first free eligible driver of `candidates`
    ((driver_id, distance_km, reported recently), nearest first) as of
    `now`, writing the `assigned` event too. The ride needs a wheelchair
    accessible vehicle if `needs_wheelchair` says so, or, when it is None,
    if the passenger's profile does (`ride.needs_wheelchair` is not read).

    Raises IntegrityError, with nothing written, when a constraint fails.
    """
    if not _sql_cache:
        sql, params = _build_sql()
        _sql_cache.append((sql, _numbered(sql), params))
    sql, numbered, (eligible_params, carries_params, watchers_params) = _sql_cache[0]
    params = [
        needs_wheelchair,
        ride.passenger_id,
        [c[0] for c in candidates],
        [c[1] for c in candidates],
        [c[2] for c in candidates],
        *eligible_params,
        *carries_params,
        DriverStatus.AVAILABLE,
        DriverStatus.ON_TRIP,
        now,
        DriverStatus.AVAILABLE,
        *_insert_params(
            ride,
            {
                "needs_wheelchair": [],
                "status": [RideStatus.ASSIGNED, RideStatus.SEARCHING],
                "version": [],
                "driver": [],
                "assigned_at": [now],
            },
        ),
        *_insert_params(opening[0], {"ride": []}),
        *_insert_params(opening[1], {"ride": []}),
        *_insert_params(assigned, {"ride": [], "payload": []}),
        *watchers_params,
    ]
    if connection.queries_logged:
        opened, statement = connection.cursor(), sql
    else:
        opened, statement = _raw_cursor(), numbered
    with opened as cursor:
        cursor.execute(statement, params)
        pk, watchers, wheelchair, distance, *row = cursor.fetchone()
    (passenger, passenger_profile), row = _load(PASSENGER_ROWS, row)
    # Cached as select_related caches it, None included: messages read it, with no query.
    User.passenger_profile.related.set_cached_value(passenger, passenger_profile)
    (driver, profile, state), _ = _load(DRIVER_ROWS, row)
    if driver is not None:
        driver.driver_profile, driver.driver_state = profile, state
        # The row was read as the statement began, before the claim.
        state.status, state.updated_at = DriverStatus.ON_TRIP, now
    return Booked(pk, watchers, wheelchair, passenger, driver, distance)
