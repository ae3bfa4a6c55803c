"""
Running ORM code from async consumers.

Channels' `database_sync_to_async` runs every call of a worker on one thread,
so one booking's round trips to PostgreSQL wait behind another's. On
PostgreSQL, `db_async` runs calls on a small pool of threads instead
(DB_THREADS, each with its own persistent connection), so those waits
overlap. Correctness does not rest on the thread: every service is one
transaction with conditional updates and database constraints, exactly as
when two workers act at once. SQLite takes one writer at a time, so there
calls stay on the worker's one database thread.

`db_background` is for bulk work nobody waits for (copying positions to the
database): a thread of its own, so it never delays a passenger.

Both record the event loop they were called from (`calling_loop`), so sync
code on the database thread can hand work back to that loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings

# name -> (pool, its number of threads)
_pools: dict[str, tuple[ThreadPoolExecutor, int]] = {}
_calling_loop: contextvars.ContextVar[asyncio.AbstractEventLoop | None] = contextvars.ContextVar(
    "calling_loop", default=None
)


def calling_loop() -> asyncio.AbstractEventLoop | None:
    """The running event loop that called this sync code through db_async, if any."""
    loop = _calling_loop.get()
    return loop if loop is not None and loop.is_running() else None


def _pool(name: str, size: int) -> ThreadPoolExecutor:
    if name not in _pools:
        _pools[name] = (ThreadPoolExecutor(max_workers=size, thread_name_prefix=name), size)
    return _pools[name][0]


def _runner(fn: Callable[..., Any], pool: str, size: int) -> Callable[..., Any]:
    if settings.DB_THREADS > 1:
        return database_sync_to_async(fn, thread_sensitive=False, executor=_pool(pool, size))
    return database_sync_to_async(fn)


def _wrap(fn: Callable[..., Any], pool: str, size: Callable[[], int]) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def call(*args: Any, **kwargs: Any) -> Any:
        # asgiref runs `fn` in a copy of this context: the loop travels with it.
        _calling_loop.set(asyncio.get_running_loop())
        return await _runner(fn, pool, size())(*args, **kwargs)

    return call


def db_async(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn` as a coroutine function, on the database pool (or the one thread)."""
    return _wrap(fn, "db", lambda: settings.DB_THREADS)


def db_background(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn` as a coroutine function, on a thread of its own (PostgreSQL only)."""
    return _wrap(fn, "db-bg", lambda: 1)


def close_request_connections(**kwargs: Any) -> None:
    """
    A request_finished receiver. Under ASGI the sync part of each HTTP
    request runs on a thread of its own (asgiref's ThreadSensitiveContext),
    which ends with the request, so a connection kept open there for reuse
    (DB_CONN_MAX_AGE) is never reused and stays open on the server until
    the garbage collector finds it: 60 REST calls held 60 of PostgreSQL's
    100 connections, and then every request failed. The sockets' own
    threads (above) keep theirs. Inside a transaction (tests), nothing.
    """
    from django.db import connections

    for connection in connections.all(initialized_only=True):
        if not connection.in_atomic_block:
            connection.close()


def close_pool_connections() -> None:
    """Close the database connection of every pool thread (tests, shutdown)."""
    from django.db import connections

    for pool, size in list(_pools.values()):
        barrier = threading.Barrier(size)

        def close(barrier: threading.Barrier = barrier) -> None:
            # Each task holds its thread at the barrier, so every thread closes.
            barrier.wait(timeout=10)
            connections.close_all()

        for future in [pool.submit(close) for _ in range(size)]:
            future.result(timeout=15)
