"""
A PostgreSQL connection on the event loop, for the one statement a socket
runs there instead of on a database thread: the booking (dispatch.pg_booking).

Django's ORM is synchronous, so from a consumer every query goes through a
thread (project.db). For a booking that cost two thread hops and a round
trip in which the database thread waits for the GIL while the event loop
handles drivers' reports (docs/benchmarks.md). psycopg's AsyncConnection
runs it from the loop itself.

Each event loop has one connection, made from the default database's
Django connection parameters: the same database and credentials, the same
adapters (so values read back convert as the ORM's do), the same binding
and preparing. It is in autocommit: each statement is its own
transaction. Statements from the same loop take turns on it (psycopg
queues them; the 500-request burst showed no queue worth a pool). A
connection that broke is replaced at the next statement; the statement
that found it broken fails with Django's OperationalError
(dispatch.services.aride_book then books on a thread instead).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Sequence

import psycopg
from django.db import connections

# event loop -> its connection, and the lock that makes one at a time.
_connections: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_locks: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _params() -> dict:
    """Django's connection parameters, with psycopg's async cursor classes."""
    wrapper = connections["default"]
    params = wrapper.get_connection_params()
    server_binding = wrapper.settings_dict["OPTIONS"].get("server_side_binding") is True
    params["cursor_factory"] = psycopg.AsyncCursor if server_binding else psycopg.AsyncClientCursor
    params["autocommit"] = True
    return params


async def _connect() -> psycopg.AsyncConnection:
    wrapper = connections["default"]
    with wrapper.wrap_database_errors:
        conn = await psycopg.AsyncConnection.connect(**_params())
        # As Django sets up its own (DatabaseWrapper._configure_timezone).
        zone = wrapper.timezone_name
        if zone and conn.info.parameter_status("TimeZone") != zone:
            await conn.execute(wrapper.ops.set_time_zone_sql(), [zone])
    return conn


def usable() -> bool:
    """Whether this event loop's connection is open and unbroken."""
    conn = _connections.get(asyncio.get_running_loop())
    return conn is not None and not conn.closed and not conn.broken


async def connection() -> psycopg.AsyncConnection:
    """This event loop's connection, made (or remade) if need be."""
    loop = asyncio.get_running_loop()
    if not usable():
        async with _locks.setdefault(loop, asyncio.Lock()):
            if not usable():
                _connections[loop] = await _connect()
    return _connections[loop]


async def fetchone(sql: str, params: Sequence) -> tuple | None:
    """Run one statement and return its first row; database errors as Django's."""
    conn = await connection()
    with connections["default"].wrap_database_errors:
        async with conn.cursor() as cursor:
            await cursor.execute(sql, params)
            return await cursor.fetchone()


async def close() -> None:
    """Close this event loop's connection (tests, shutdown)."""
    conn = _connections.pop(asyncio.get_running_loop(), None)
    if conn is not None:
        await conn.close()
