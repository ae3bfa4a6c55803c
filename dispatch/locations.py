"""
Live driver positions, kept out of the database's hot path.

Drivers report every few seconds; writing each report through the ORM would
queue every socket behind the one database thread. Positions live here
instead: in process memory on one machine, in Redis (GEO commands) across
several. The database gets a copy at intervals (LOCATION_PERSIST_INTERVAL_S)
and stays the authority for each driver's status, which claims update
atomically.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from itertools import islice
from typing import Protocol

from django.conf import settings

from dispatch.geo import GridIndex, Point
from project.common.db import db_async
from project.common.sockets import per_event_loop

log = logging.getLogger(__name__)


class LocationStore(Protocol):
    def put(self, driver_id: int, point: Point) -> None: ...
    async def aput(self, driver_id: int, point: Point) -> None: ...
    def note(self, driver_id: int, point: Point) -> None: ...
    async def flushed(self) -> None: ...
    def remove(self, driver_id: int) -> None: ...
    def get(self, driver_id: int) -> Point | None: ...
    # `stale_before`: reports older than this (unix seconds) are stale
    # (dispatch.drivers.stale_before); a store may drop them from the search.
    def nearest(
        self, lat: float, lng: float, radius_km: float, *, stale_before: float | None = None
    ) -> Iterator[tuple[int, float, Point]]: ...
    async def anearest(
        self,
        lat: float,
        lng: float,
        radius_km: float,
        limit: int,
        *,
        stale_before: float | None = None,
    ) -> list[tuple[int, float, Point]]: ...
    def all(self) -> dict[int, Point]: ...
    def clear(self) -> None: ...


# Where a cold store finds the positions it starts from: registered by
# dispatch.drivers (the saved copies in the database); none by default.
_saved_positions: Callable[[], dict[int, Point]] = dict


def start_from(loader: Callable[[], dict[int, Point]]) -> None:
    """Register where a cold store reads its first positions from."""
    global _saved_positions
    _saved_positions = loader


class MemoryLocationStore:
    """One process's positions in a grid index; warmed from the database."""

    def __init__(self) -> None:
        self.index = GridIndex()
        self._warm = False
        self._warm_lock = threading.Lock()

    def _ensure_warm(self) -> None:
        if self._warm:
            return
        with self._warm_lock:
            if self._warm:
                return
            for driver_id, point in _saved_positions().items():
                # A report that arrived before the warm-up is fresher.
                if driver_id not in self.index:
                    self.index.put(driver_id, point)
            self._warm = True

    def put(self, driver_id: int, point: Point) -> None:
        # Silent drivers stay in this index; matching skips them.
        self.index.put(driver_id, point)

    async def aput(self, driver_id: int, point: Point) -> None:
        self.index.put(driver_id, point)

    def note(self, driver_id: int, point: Point) -> None:
        self.index.put(driver_id, point)

    async def flushed(self) -> None:
        return None

    def remove(self, driver_id: int) -> None:
        self.index.remove(driver_id)

    def get(self, driver_id: int) -> Point | None:
        self._ensure_warm()
        return self.index.get(driver_id)

    def nearest(
        self, lat: float, lng: float, radius_km: float, *, stale_before: float | None = None
    ):
        self._ensure_warm()
        return self.index.nearest(lat, lng, radius_km)

    async def anearest(
        self,
        lat: float,
        lng: float,
        radius_km: float,
        limit: int,
        *,
        stale_before: float | None = None,
    ):
        if not self._warm:
            await db_async(self._ensure_warm)()
        return list(islice(self.index.nearest(lat, lng, radius_km), limit))

    def all(self) -> dict[int, Point]:
        self._ensure_warm()
        return dict(self.index.items())

    def clear(self) -> None:
        self.index.clear()
        self._warm = False


class WriteBatches:
    """
    One event loop's position writes, in batches. A socket notes a report
    and goes on; a task of its own writes what has been noted: at once when
    the loop was quiet, then at most once per WINDOW_S while reports keep
    coming, so a busy worker makes one round trip per window for all its
    drivers instead of one per report or two. The latest report of a driver
    wins. `flushed()` waits until everything noted so far is written, for a
    caller that must see its own position at once (a driver about to be
    matched).
    """

    # Matching sees a report at most this late; drivers report every few
    # seconds. A batch sent as soon as the last one returned cost a busy
    # worker far more (docs/benchmarks.md, Decisions).
    WINDOW_S = 0.05

    def __init__(self, write: Callable[[dict[int, Point]], Awaitable[None]]) -> None:
        self.write = write
        self.pending: dict[int, Point] = {}
        # Done when the pending reports are written; made only for a waiter.
        self.pending_written: asyncio.Future | None = None
        self.in_flight: asyncio.Future | None = None
        self.task: asyncio.Task | None = None
        self.failing = False

    def note(self, driver_id: int, point: Point) -> None:
        self.pending[driver_id] = point
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._run())

    async def put(self, driver_id: int, point: Point) -> None:
        self.note(driver_id, point)
        await self.flushed()

    async def flushed(self) -> None:
        if self.pending:
            if self.pending_written is None:
                self.pending_written = _retrieved(asyncio.get_running_loop().create_future())
            done = self.pending_written
        elif self.in_flight is not None:
            done = self.in_flight
        else:
            return
        # Shielded: one waiter's cancellation must not cancel the others'.
        await asyncio.shield(done)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self.pending:
            batch, done = self.pending, self.pending_written
            self.pending, self.pending_written = {}, None
            self.in_flight = done = done or _retrieved(loop.create_future())
            try:
                await self.write(batch)
            except asyncio.CancelledError:
                done.cancel()
                raise
            except Exception as exc:
                # Once per outage, not once per window.
                if not self.failing:
                    log.exception("writing %d positions failed", len(batch))
                self.failing = True
                done.set_exception(exc)
            else:
                if self.failing:
                    log.warning("writing positions works again")
                self.failing = False
                done.set_result(None)
            finally:
                self.in_flight = None
            await asyncio.sleep(self.WINDOW_S)


def _prune_below(stale_before: float | None) -> float | str:
    return "-inf" if stale_before is None else stale_before


def _retrieved(future: asyncio.Future) -> asyncio.Future:
    """A future whose exception counts as seen even when no waiter is left."""
    future.add_done_callback(lambda f: f.cancelled() or f.exception())
    return future


class RedisLocationStore:
    """
    Positions shared by every worker: a GEO set plus a hash of details, and
    the time of each driver's last report.

    A driver whose app died without going offline stays available, and would
    stay in the search for good. Matching skips such a driver once silent
    for DRIVER_STALE_AFTER_S, but the nearest candidates handed to a
    booking would fill up with them. So each search first takes silent
    drivers out of the GEO set (at most PRUNE_MAX a search); their details
    stay for the console, and their next report puts them back. Demo
    drivers' positions are placed, never reported (`Point.reported`): they
    are never in the set of report times, and never taken out.
    """

    GEO_KEY = "cc:loc:geo"
    META_KEY = "cc:loc:meta"
    SEEN_KEY = "cc:loc:seen"
    WARM_KEY = "cc:loc:warm"
    BATCH = 64
    WARM_CHECK_S = 1.0
    PRUNE_MAX = 1000
    SEARCH_KEYS = (GEO_KEY, META_KEY, SEEN_KEY)
    # The silent drivers out of the search, then GEOSEARCH and the details of
    # what it found, in one round trip (HMGET in parts: Lua's unpack takes a
    # few thousand values at most).
    NEAREST_LUA = """
        local silent = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', '(' .. ARGV[5],
            'LIMIT', 0, ARGV[6])
        if #silent > 0 then
            redis.call('ZREM', KEYS[1], unpack(silent))
            redis.call('ZREM', KEYS[3], unpack(silent))
        end
        local rows = redis.call('GEOSEARCH', KEYS[1], 'FROMLONLAT', ARGV[1], ARGV[2],
            'BYRADIUS', ARGV[3], 'km', 'ASC', 'COUNT', ARGV[4], 'WITHDIST')
        local metas = {}
        for i = 1, #rows, 1000 do
            local ids = {}
            for j = i, math.min(i + 999, #rows) do ids[#ids + 1] = rows[j][1] end
            local part = redis.call('HMGET', KEYS[2], unpack(ids))
            for j = 1, #ids do metas[#metas + 1] = part[j] end
        end
        return {rows, metas}
    """

    def __init__(self, url: str) -> None:
        import redis
        import redis.asyncio

        self.url = url
        self.sync = redis.Redis.from_url(url, socket_timeout=None)
        # Per event loop: (client, the nearest script bound to it).
        self._async_clients: dict[int, tuple[redis.asyncio.Redis, object]] = {}
        self._decoded: dict[bytes, Point] = {}
        self._writes = per_event_loop(lambda: WriteBatches(self._write))
        self._warm_checked = float("-inf")
        self._search = self.sync.register_script(self.NEAREST_LUA)

    def _aclient(self):
        client, _ = self._async()
        return client

    def _async(self):
        """This event loop's client, and the nearest script bound to it."""
        import redis.asyncio

        # A client's connections belong to the event loop that made them.
        loop_id = id(asyncio.get_running_loop())
        pair = self._async_clients.get(loop_id)
        if pair is None:
            client = redis.asyncio.Redis.from_url(self.url, socket_timeout=None)
            pair = self._async_clients[loop_id] = (
                client,
                client.register_script(self.NEAREST_LUA),
            )
        return pair

    @staticmethod
    def _encode(point: Point) -> str:
        return json.dumps(
            [point.lat, point.lng, point.seen, point.heading, point.speed, point.reported]
        )

    @staticmethod
    def _decode(raw: bytes | None) -> Point | None:
        if raw is None:
            return None
        lat, lng, seen, heading, speed, *reported = json.loads(raw)
        return Point(lat, lng, seen, heading, speed, reported[0] if reported else True)

    def _warm_check_due(self) -> bool:
        # At most once a second: a booking should not pay a round trip for
        # it, and an emptied Redis is refilled within the second.
        return time.monotonic() - self._warm_checked >= self.WARM_CHECK_S

    def _ensure_warm(self) -> None:
        if not self._warm_check_due():
            return
        self._warm_checked = time.monotonic()
        if self.sync.set(self.WARM_KEY, "1", nx=True):
            points = _saved_positions()
            if points:
                pipe = self.sync.pipeline(transaction=False)
                for driver_id, point in points.items():
                    if point.reported:
                        pipe.zadd(self.SEEN_KEY, {driver_id: point.seen}, nx=True)
                    pipe.geoadd(self.GEO_KEY, [point.lng, point.lat, driver_id], nx=True)
                    pipe.hsetnx(self.META_KEY, driver_id, self._encode(point))
                pipe.execute()

    def put(self, driver_id: int, point: Point) -> None:
        pipe = self.sync.pipeline(transaction=False)
        if point.reported:
            # The report's time first: a search in between sees it and
            # leaves the driver in.
            pipe.zadd(self.SEEN_KEY, {driver_id: point.seen})
        else:
            pipe.zrem(self.SEEN_KEY, driver_id)
        pipe.geoadd(self.GEO_KEY, [point.lng, point.lat, driver_id])
        pipe.hset(self.META_KEY, driver_id, self._encode(point))
        pipe.execute()

    async def aput(self, driver_id: int, point: Point) -> None:
        """Written when it returns, with the other reports this loop had meanwhile."""
        await self._writes().put(driver_id, point)

    def note(self, driver_id: int, point: Point) -> None:
        """Written within WriteBatches.WINDOW_S, with the other reports of this loop."""
        self._writes().note(driver_id, point)

    async def flushed(self) -> None:
        await self._writes().flushed()

    async def _write(self, points: dict[int, Point]) -> None:
        geo: list = []
        for driver_id, point in points.items():
            geo += [point.lng, point.lat, driver_id]
        pipe = self._aclient().pipeline(transaction=False)
        # The reports' times first, as in `put`.
        seen = {key: p.seen for key, p in points.items() if p.reported}
        if seen:
            pipe.zadd(self.SEEN_KEY, seen)
        pipe.geoadd(self.GEO_KEY, geo)
        pipe.hset(self.META_KEY, mapping={key: self._encode(p) for key, p in points.items()})
        await pipe.execute()

    def remove(self, driver_id: int) -> None:
        pipe = self.sync.pipeline(transaction=False)
        pipe.zrem(self.GEO_KEY, driver_id)
        pipe.zrem(self.SEEN_KEY, driver_id)
        pipe.hdel(self.META_KEY, driver_id)
        pipe.execute()

    def get(self, driver_id: int) -> Point | None:
        self._ensure_warm()
        return self._decode(self.sync.hget(self.META_KEY, driver_id))

    def nearest(
        self, lat: float, lng: float, radius_km: float, *, stale_before: float | None = None
    ):
        self._ensure_warm()
        count = self.BATCH
        seen: set[int] = set()
        while True:
            rows, metas = self._search(
                keys=self.SEARCH_KEYS,
                args=[lng, lat, radius_km, count, _prune_below(stale_before), self.PRUNE_MAX],
            )
            yield from self._found(rows, metas, seen)
            if len(rows) < count:
                return
            count *= 4

    async def anearest(
        self,
        lat: float,
        lng: float,
        radius_km: float,
        limit: int,
        *,
        stale_before: float | None = None,
    ):
        """The `limit` nearest, in one round trip from the event loop."""
        if self._warm_check_due():
            await db_async(self._ensure_warm)()
        _, search = self._async()
        rows, metas = await search(
            keys=self.SEARCH_KEYS,
            args=[lng, lat, radius_km, limit, _prune_below(stale_before), self.PRUNE_MAX],
        )
        return list(self._found(rows, metas, set()))

    def _found(self, rows: list, metas: list, seen: set[int]):
        """(driver_id, distance_km, point) of a search's rows not in `seen`."""
        for (member, dist), raw in zip(rows, metas, strict=True):
            driver_id = int(member)
            if driver_id in seen:
                continue
            seen.add(driver_id)
            point = self._decode(raw)
            if point is not None:
                yield driver_id, float(dist), point

    def all(self) -> dict[int, Point]:
        self._ensure_warm()
        # The consoles' map reads every position several times a second, and
        # most have not changed since the last read: decode only those.
        known, decoded = self._decoded, {}
        points: dict[int, Point] = {}
        for key, raw in self.sync.hgetall(self.META_KEY).items():
            point = known.get(raw) or self._decode(raw)
            decoded[raw] = point
            points[int(key)] = point
        self._decoded = decoded
        return points

    def clear(self) -> None:
        self.sync.delete(self.GEO_KEY, self.META_KEY, self.SEEN_KEY, self.WARM_KEY)
        self._warm_checked = float("-inf")


def saved_point(state) -> Point | None:
    """The position last copied to a driver's DriverState, if any."""
    if state is None or state.latitude is None or state.longitude is None:
        return None
    seen = state.location_updated_at.timestamp() if state.location_updated_at else 0.0
    return Point(state.latitude, state.longitude, seen, state.heading, state.speed)


def live_position(driver_id: int, state=None) -> Point | None:
    """
    Where a driver is: their live position, else the last copy saved on
    `state` (their DriverState), else None.
    """
    return location_store().get(driver_id) or saved_point(state)


_store: LocationStore | None = None
_store_lock = threading.Lock()


def location_store() -> LocationStore:
    global _store
    if _store is None:
        with _store_lock:
            if _store is None:
                if settings.LOCATION_STORE == "redis":
                    _store = RedisLocationStore(settings.REDIS_URL)
                else:
                    _store = MemoryLocationStore()
    return _store


def reset_location_store() -> None:
    """Forget every position (tests, and after a database reset)."""
    global _store
    if _store is not None:
        _store.clear()
    _store = None
