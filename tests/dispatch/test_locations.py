"""Live positions: the memory grid and the Redis GEO store answer alike."""

from __future__ import annotations

import asyncio
import time

import pytest

from dispatch.drivers import stale_before
from dispatch.geo import Point
from dispatch.locations import MemoryLocationStore, RedisLocationStore, WriteBatches

JHB = (-26.2041, 28.0473)


def _exercise(store):
    now = time.time()
    store.put(1, Point(JHB[0] + 0.05, JHB[1], now))
    store.put(2, Point(JHB[0] + 0.01, JHB[1], now, heading=90.0, speed=10.0))
    store.put(3, Point(JHB[0] + 0.2, JHB[1], now))  # ~22 km: outside 10 km
    found = [(key, round(d, 1)) for key, d, _ in store.nearest(*JHB, 10)]
    assert found == [(2, 1.1), (1, 5.6)]
    assert store.get(2).heading == 90.0 and store.get(2).speed == 10.0
    store.put(2, Point(JHB[0] + 0.3, JHB[1], now))
    assert [key for key, _, _ in store.nearest(*JHB, 10)] == [1]
    store.remove(1)
    assert list(store.nearest(*JHB, 10)) == []
    assert set(store.all()) == {2, 3}


@pytest.mark.django_db
def test_memory_store_finds_nearest_first_and_forgets_removed_drivers():
    """Memory store: nearest first, moves followed, removals forgotten."""
    _exercise(MemoryLocationStore())


@pytest.mark.django_db
def test_memory_store_warms_from_the_database(make_driver):
    """A fresh process knows where online drivers were last persisted."""
    driver = make_driver(*JHB)
    store = MemoryLocationStore()
    assert [key for key, _, _ in store.nearest(*JHB, 1)] == [driver.pk]


@pytest.fixture
def redis_store(settings):
    """An empty Redis store, marked warm (no database warm-up)."""
    store = RedisLocationStore(settings.REDIS_URL)
    store.clear()
    store.sync.set(store.WARM_KEY, "1")
    yield store
    store.clear()


@pytest.mark.redis
@pytest.mark.django_db
def test_redis_store_answers_like_the_memory_store(redis_store):
    """Redis GEO store: the same answers, shared by every worker."""
    _exercise(redis_store)


@pytest.mark.redis
@pytest.mark.django_db
async def test_redis_store_async_put_is_seen_by_sync_search(redis_store):
    """A position written from a socket (async) is found by the matcher (sync)."""
    from channels.db import database_sync_to_async

    await redis_store.aput(7, Point(*JHB, time.time()))
    found = await database_sync_to_async(lambda: list(redis_store.nearest(*JHB, 1)))()
    assert [key for key, _, _ in found] == [7]


async def _exercise_async(store):
    """`anearest`, the socket's one-round-trip search: the nearest `limit`, in order."""
    now = time.time()
    await store.aput(1, Point(JHB[0] + 0.05, JHB[1], now))
    await store.aput(2, Point(JHB[0] + 0.01, JHB[1], now, heading=90.0, speed=10.0))
    await store.aput(3, Point(JHB[0] + 0.2, JHB[1], now))  # ~22 km: outside 10 km
    found = await store.anearest(*JHB, 10, 5)
    assert [(key, round(d, 1)) for key, d, _ in found] == [(2, 1.1), (1, 5.6)]
    assert found[0][2].heading == 90.0 and found[0][2].seen == pytest.approx(now)
    assert [key for key, _, _ in await store.anearest(*JHB, 10, 1)] == [2]


@pytest.mark.django_db(transaction=True)
async def test_memory_store_async_search_warms_from_the_database_then_answers(make_driver):
    from channels.db import database_sync_to_async

    driver = await database_sync_to_async(make_driver)(JHB[0] + 0.001, JHB[1])
    store = MemoryLocationStore()
    assert [key for key, _, _ in await store.anearest(*JHB, 1, 5)] == [driver.pk]
    store.clear()
    store._warm = True  # the database's drivers are known; these three are not
    await _exercise_async(store)


@pytest.mark.redis
@pytest.mark.django_db
async def test_redis_store_async_search_answers_like_the_sync_one(redis_store):
    from channels.db import database_sync_to_async

    await _exercise_async(redis_store)
    found = await database_sync_to_async(lambda: list(redis_store.nearest(*JHB, 10)))()
    assert [key for key, _, _ in found] == [2, 1]


@pytest.mark.redis
@pytest.mark.django_db
async def test_redis_search_leaves_out_drivers_silent_past_the_stale_limit(redis_store, settings):
    """
    A driver whose app died without going offline leaves the search (so the
    candidates a booking gets are ones it can book), keeps their last
    position for the console, and is back with their next report.
    """
    from channels.db import database_sync_to_async

    now = time.time()
    silent = now - settings.DRIVER_STALE_AFTER_S - 5
    await redis_store.aput(1, Point(JHB[0] + 0.02, JHB[1], now))
    await redis_store.aput(2, Point(JHB[0] + 0.01, JHB[1], silent))  # nearer, but silent
    redis_store.put(3, Point(JHB[0] + 0.03, JHB[1], silent, reported=False))  # a demo driver
    assert [
        key for key, _, _ in await redis_store.anearest(*JHB, 10, 5, stale_before=stale_before())
    ] == [1, 3]
    assert redis_store.sync.zscore(redis_store.GEO_KEY, 2) is None
    assert redis_store.get(2).seen == pytest.approx(silent)  # the console still has it
    await redis_store.aput(2, Point(JHB[0] + 0.01, JHB[1], time.time()))
    found = await database_sync_to_async(
        lambda: list(redis_store.nearest(*JHB, 10, stale_before=stale_before()))
    )()
    assert [key for key, _, _ in found] == [2, 1, 3]
    redis_store.remove(2)
    assert redis_store.sync.zscore(redis_store.SEEN_KEY, 2) is None


@pytest.mark.redis
@pytest.mark.django_db
def test_redis_warm_up_keeps_demo_drivers_and_leaves_out_silent_ones(make_driver, settings):
    """After a Redis restart: demo drivers (who never report) are matched, long-silent ones not."""
    from datetime import timedelta

    from django.utils import timezone

    from dispatch.models import DriverState

    demo = make_driver(JHB[0] + 0.001, JHB[1], demo=True)
    gone = make_driver(JHB[0] + 0.002, JHB[1])
    here = make_driver(JHB[0] + 0.003, JHB[1])
    long_ago = timezone.now() - timedelta(hours=3)
    DriverState.objects.filter(driver__in=[demo, gone]).update(location_updated_at=long_ago)
    store = RedisLocationStore(settings.REDIS_URL)
    store.clear()  # as after a Redis restart: the store warms from the database
    try:
        assert [key for key, _, _ in store.nearest(*JHB, 1, stale_before=stale_before())] == [
            demo.pk,
            here.pk,
        ]
        assert set(store.all()) >= {demo.pk, gone.pk, here.pk}
    finally:
        store.clear()


def _persist_and_read(make_driver):
    from dispatch.drivers import persist_positions
    from dispatch.models import DriverState

    drivers = [make_driver(*JHB) for _ in range(3)]
    seen = time.time() - 5
    written = persist_positions(
        positions={
            drivers[0].pk: Point(-26.1, 28.1, seen, heading=45.0, speed=12.5),
            drivers[1].pk: Point(-26.3, 28.2, seen),
        }
    )
    assert written == 2
    rows = {s.driver_id: s for s in DriverState.objects.filter(driver__in=drivers)}
    first, second, untouched = (rows[d.pk] for d in drivers)
    assert (first.latitude, first.longitude, first.heading, first.speed) == (
        -26.1,
        28.1,
        45.0,
        12.5,
    )
    assert (second.latitude, second.longitude, second.heading) == (-26.3, 28.2, None)
    assert first.location_updated_at.timestamp() == pytest.approx(seen, abs=0.001)
    assert first.last_seen_at == first.location_updated_at
    assert (untouched.latitude, untouched.longitude) == JHB  # not in the batch


@pytest.mark.django_db
def test_positions_are_persisted_in_one_batch_with_their_report_time(make_driver):
    """The interval writer stores each driver's latest report and when it was made."""
    _persist_and_read(make_driver)


@pytest.mark.postgres
@pytest.mark.django_db
def test_positions_persist_on_postgresql(make_driver):
    """The same batch on PostgreSQL, where executemany is pipelined."""
    _persist_and_read(make_driver)


class SlowWrites:
    """A store's write that takes as long as the test says, and records batches."""

    def __init__(self) -> None:
        self.batches: list[dict] = []
        self.release = asyncio.Event()
        self.fail_next = False

    async def __call__(self, points: dict) -> None:
        self.batches.append(dict(points))
        await self.release.wait()
        self.release.clear()
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("redis went away")


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def _batches(writes, window_s: float = 0.0) -> WriteBatches:
    batches = WriteBatches(writes)
    batches.WINDOW_S = window_s
    return batches


async def test_a_quiet_loop_writes_at_once_and_a_busy_one_once_per_window():
    """
    The first report goes out at once; those noted during the window after
    a write wait for its end and go out together, the latest per driver.
    """
    writes = SlowWrites()
    writes.release.set()
    batches = _batches(writes, window_s=0.2)
    batches.note(1, Point(*JHB, 1))
    await _settle()
    assert [sorted(b) for b in writes.batches] == [[1]]
    writes.release.set()
    batches.note(2, Point(*JHB, 2))
    batches.note(3, Point(*JHB, 3))
    batches.note(2, Point(*JHB, 4))
    await _settle()
    assert [sorted(b) for b in writes.batches] == [[1]]
    await batches.flushed()
    assert [sorted(b) for b in writes.batches] == [[1], [2, 3]]
    assert writes.batches[1][2].seen == 4


async def test_flushed_waits_for_the_write_that_holds_the_report():
    writes = SlowWrites()
    batches = _batches(writes)
    batches.note(1, Point(*JHB, 1))
    await _settle()
    assert batches.pending == {}  # in flight now
    waiter = asyncio.create_task(batches.flushed())
    await _settle()
    assert not waiter.done()
    writes.release.set()
    await waiter
    await batches.flushed()  # nothing noted, nothing in flight: at once


async def test_reports_arriving_during_a_write_go_out_together_in_the_next():
    """One write in flight; three reports meanwhile make one batch, latest per driver."""
    writes = SlowWrites()
    batches = _batches(writes)
    first = asyncio.create_task(batches.put(1, Point(*JHB, 1)))
    await _settle()
    later = [
        asyncio.create_task(batches.put(2, Point(*JHB, 2))),
        asyncio.create_task(batches.put(3, Point(*JHB, 3))),
        asyncio.create_task(batches.put(2, Point(*JHB, 4))),
    ]
    await _settle()
    assert [sorted(b) for b in writes.batches] == [[1]]
    assert not any(t.done() for t in [first, *later])

    writes.release.set()
    await _settle()
    assert first.done() and not any(t.done() for t in later)
    assert [sorted(b) for b in writes.batches] == [[1], [2, 3]]
    assert writes.batches[1][2].seen == 4

    writes.release.set()
    await asyncio.gather(*later)


@pytest.mark.logs_errors
async def test_a_failed_write_fails_its_reports_only_and_a_gone_waiter_stops_nobody(caplog):
    writes = SlowWrites()
    batches = _batches(writes)
    writes.fail_next = True
    failed = asyncio.create_task(batches.put(1, Point(*JHB, 1)))
    await _settle()
    gone = asyncio.create_task(batches.put(2, Point(*JHB, 2)))
    kept = asyncio.create_task(batches.put(3, Point(*JHB, 3)))
    await _settle()
    gone.cancel()
    writes.release.set()
    with pytest.raises(ConnectionError):
        await failed
    assert "writing 1 positions failed" in caplog.text
    await _settle()
    writes.release.set()
    await kept
    assert [sorted(b) for b in writes.batches] == [[1], [2, 3]]
    assert "works again" in caplog.text


@pytest.mark.logs_errors
async def test_an_outage_is_logged_once_not_once_per_window(caplog):
    writes = SlowWrites()
    batches = _batches(writes)
    for n in range(3):
        writes.fail_next = True
        writes.release.set()
        with pytest.raises(ConnectionError):
            await batches.put(n, Point(*JHB, n))
    assert caplog.text.count("positions failed") == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_position_copy_holds_no_driver_row_past_its_chunk(make_driver, monkeypatch):
    """
    A batch commits chunk by chunk: while one driver's row is locked
    elsewhere (a claim in progress), the chunks before it are written and
    their rows free already, instead of all waiting for the batch to end.
    """
    import threading

    import psycopg
    from django.db import connection

    from dispatch import drivers
    from dispatch.models import DriverState

    monkeypatch.setattr(drivers, "PERSIST_CHUNK", 1)
    params = connection.settings_dict
    dsn = {
        "dbname": params["NAME"],
        "user": params["USER"],
        "host": params["HOST"],
        "port": params["PORT"] or 5432,
    }
    first, held, last = (make_driver(*JHB) for _ in range(3))
    table = DriverState._meta.db_table
    moved = {d.pk: Point(-26.0, 28.3, time.time()) for d in (first, held, last)}
    with psycopg.connect(**dsn) as claim, psycopg.connect(**dsn, autocommit=True) as reader:
        claim.execute(f"SELECT 1 FROM {table} WHERE driver_id = %s FOR UPDATE", [held.pk])

        def persist() -> None:
            try:
                drivers.persist_positions(positions=moved)
            finally:
                connection.close()

        writer = threading.Thread(target=persist)
        writer.start()

        def latitude(driver) -> float:
            sql = f"SELECT latitude FROM {table} WHERE driver_id = %s"
            return reader.execute(sql, [driver.pk]).fetchone()[0]

        deadline = time.time() + 10
        while latitude(first) != -26.0 and time.time() < deadline:
            time.sleep(0.05)
        assert latitude(first) == -26.0
        assert writer.is_alive()  # still waiting for the held row
        # The first driver's row is free: a claim takes it at once.
        reader.execute(f"SELECT 1 FROM {table} WHERE driver_id = %s FOR UPDATE NOWAIT", [first.pk])
        claim.rollback()
        writer.join(10)
        assert not writer.is_alive()
        assert latitude(held) == latitude(last) == -26.0
