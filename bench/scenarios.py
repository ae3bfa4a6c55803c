"""
The measurements. Each returns Result rows: a figure, its target, PASS/MISS.
Everything runs against real worker processes (Daphne, PostgreSQL, Redis)
except the index search, which is a function call.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass

from bench import env
from bench.clients import (
    FleetProcess,
    find_driver,
    fleet_drivers,
    open_many,
    settle,
    start_consoles,
    stop_consoles,
)
from bench.fleet import stamp
from bench.hist import Histogram
from bench.loadgen import Recorder, open_loop

BASE_PORT = int(os.environ.get("BENCH_BASE_PORT", "8700"))


@dataclass
class Result:
    name: str
    figure: str
    target: str
    ok: bool | None  # None: informational
    note: str = ""


def verdict(ok: bool | None) -> str:
    return {True: "PASS", False: "MISS", None: "info"}[ok]


def layer_env(layer: str, db: str = "persistent") -> dict[str, str]:
    overrides = {"CHANNEL_LAYER_BACKEND": "pubsub" if layer == "pubsub" else "core"}
    if db == "pool":
        overrides["DJANGO_SETTINGS_MODULE"] = "bench.settings_pool"
    elif db == "one-thread":
        # Every database call of a worker on one thread, as Channels does.
        overrides["DB_THREADS"] = "1"
    return overrides


# --- 1. nearest-driver search ------------------------------------------------------


def geo_search(
    n_drivers: int = 100_000, span: float = 1.0, queries: int = 2000, naive_queries: int = 30
) -> list:
    """
    Drivers spread uniformly over `span` degrees square around Johannesburg
    (1.0: about 110 x 100 km, Gauteng-sized, 9 drivers a km2). Wall time and
    CPU time are both kept: on a shared machine a query preempted by another
    process shows a wall-time tail that is not the index's doing.
    """
    import gc

    from dispatch.geo import GridIndex, Point, naive_nearest

    rng = random.Random(3)
    grid, points = GridIndex(), {}
    now = time.time()
    for key in range(n_drivers):
        lat = env.CENTRE[0] + rng.uniform(-span / 2, span / 2)
        lng = env.CENTRE[1] + rng.uniform(-span / 2, span / 2)
        p = Point(lat, lng, now)
        grid.put(key, p)
        points[key] = p
    # A long-running worker's index sits in the oldest generation too.
    gc.collect()
    gc.freeze()
    grid_hist, cpu_hist, naive_hist = Histogram(), Histogram(), Histogram()
    for _ in range(queries):
        lat = env.CENTRE[0] + rng.uniform(-span / 2, span / 2)
        lng = env.CENTRE[1] + rng.uniform(-span / 2, span / 2)
        t, c = time.perf_counter(), time.thread_time()
        # What the matcher takes: the nearest batch of 16.
        found = []
        for item in grid.nearest(lat, lng, 10.0):
            found.append(item)
            if len(found) == 16:
                break
        grid_hist.record(time.perf_counter() - t)
        cpu_hist.record(time.thread_time() - c)
    for _ in range(naive_queries):
        lat = env.CENTRE[0] + rng.uniform(-span / 2, span / 2)
        lng = env.CENTRE[1] + rng.uniform(-span / 2, span / 2)
        t = time.perf_counter()
        naive_nearest(points, lat, lng, 10.0)[:16]
        naive_hist.record(time.perf_counter() - t)
    gc.unfreeze()
    p99 = grid_hist.percentile_ms(99)
    speedup = naive_hist.percentile_ms(50) / grid_hist.percentile_ms(50)
    return [
        Result(
            f"nearest 16 of {n_drivers:,} drivers over {span} deg square (GridIndex)",
            f"p50 {grid_hist.percentile_ms(50):.3f} / p99 {p99:.3f} "
            f"/ max {grid_hist.max_ms:.2f} ms",
            "p99 <= 1 ms",
            p99 <= 1.0,
            f"wall {grid_hist.summary()}; CPU time p99 {cpu_hist.percentile_ms(99):.3f} ms; "
            f"load average {_load()}",
        ),
        Result(
            "  grid vs naive scan (p50, same run)",
            f"{speedup:,.0f}x (naive p50 {naive_hist.percentile_ms(50):.1f} ms)",
            ">= 100x",
            speedup >= 100,
        ),
    ]


def _load() -> str:
    return " ".join(open("/proc/loadavg").read().split()[:3])


# --- 2. ping through the consumer vs a bare echo server --------------------------------


async def ping_ratio(rate: float = 200, seconds: float = 10, sockets: int = 20) -> list:
    workers = env.start_workers(1, BASE_PORT, "ping", **layer_env("core"))
    echo_port = BASE_PORT + 50
    env.port_free(echo_port)
    echo = subprocess.Popen(
        [sys.executable, "-m", "bench.echo", str(echo_port)],
        cwd=env.ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        await asyncio.to_thread(echo.stdout.readline)
        app = await open_many(
            [(f"ws://127.0.0.1:{workers.ports[0]}/ws/ride/ping-{i}/", None) for i in range(sockets)]
        )
        import websockets

        bare = [
            await websockets.connect(
                f"ws://127.0.0.1:{echo_port}/", compression=None, ping_interval=None
            )
            for _ in range(sockets)
        ]
        n = int(rate * seconds)

        async def run_app() -> Recorder:
            rec = Recorder("ping")
            locks = [asyncio.Lock() for _ in app]

            async def fire(i, due):
                sock = app[i % sockets]
                async with locks[i % sockets]:
                    await sock.send({"type": "ping"})
                    try:
                        await sock.wait({"pong"}, 10)
                        rec.ok(due)
                    except Exception as exc:  # noqa: BLE001
                        rec.fail(repr(exc))

            await open_loop(rate, n, fire)
            return rec

        async def run_echo() -> Recorder:
            rec = Recorder("echo")
            locks = [asyncio.Lock() for _ in bare]

            async def fire(i, due):
                ws = bare[i % sockets]
                async with locks[i % sockets]:
                    await ws.send('{"type": "ping"}')
                    await ws.recv()
                    rec.ok(due)

            await open_loop(rate, n, fire)
            return rec

        await run_app()  # warm-up
        app_rec, echo_rec = await run_app(), await run_echo()
        for s in app:
            await s.close()
        for ws in bare:
            await ws.close()
    finally:
        echo.terminate()
        echo.wait()
        workers.stop()
    ratio50 = app_rec.hist.percentile_ms(50) / echo_rec.hist.percentile_ms(50)
    ratio99 = app_rec.hist.percentile_ms(99) / echo_rec.hist.percentile_ms(99)
    return [
        Result(
            f"ping round trip, consumer ({rate:.0f}/s open loop)",
            f"p50 {app_rec.hist.percentile_ms(50):.2f} "
            f"/ p99 {app_rec.hist.percentile_ms(99):.2f} ms",
            "",
            None,
            app_rec.hist.summary(),
        ),
        Result(
            "  bare websockets echo, same run",
            f"p50 {echo_rec.hist.percentile_ms(50):.2f} "
            f"/ p99 {echo_rec.hist.percentile_ms(99):.2f} ms",
            "",
            None,
            echo_rec.hist.summary(),
        ),
        Result(
            "  ratio consumer / echo",
            f"p50 {ratio50:.2f}x, p99 {ratio99:.2f}x",
            "p50 <= 2x (goal)",
            ratio50 <= 2.0,
        ),
    ]


# --- 3. find_driver -> driver_assigned under a streaming fleet ----------------------------


async def match(
    cast: env.Cast,
    *,
    n_drivers: int,
    rate: float,
    seconds: float,
    layer: str,
    db: str = "persistent",
    workers_n: int = 2,
    p50_target: float | None = 10,
    p99_target: float = 50,
    hold_s: float = 1.0,
    settle_s: float = 10.0,
    extra_env: dict | None = None,
) -> tuple[list, dict]:
    extra_env = extra_env or {}
    tag = f"match-{n_drivers}-{layer}-{db}"
    await asyncio.to_thread(env.reset_rides)
    workers = env.start_workers(workers_n, BASE_PORT, tag, **layer_env(layer, db), **extra_env)
    n_rides = int(rate * seconds)
    fleet = FleetProcess(
        tag,
        {
            "drivers": fleet_drivers(cast.drivers[:n_drivers], workers.ports),
            "interval": 4.0,
            "layer": layer,
            "redis_url": env.BENCH_REDIS_URL,
        },
    )
    rec = Recorder(tag)
    outcomes: dict[str, int] = {}
    try:
        # Passengers are in before the fleet, whose start-up (every driver's
        # first report persists and looks for waiting rides) floods the
        # database thread for a few seconds.
        passengers = cast.passengers[:n_rides]
        run = int(time.time())
        socks = await open_many(
            [
                (f"ws://127.0.0.1:{workers.ports[i % workers_n]}/ws/ride/m{run}-{i}/", p)
                for i, p in enumerate(passengers)
            ]
        )
        await fleet.start()
        # Every driver has reported at least once, and the start-up is over.
        await asyncio.sleep(4.5)
        settled = await asyncio.gather(*(settle(port) for port in workers.ports))
        rss_start = workers.rss_mb()

        async def fire(i, due):
            sock = socks[i]
            await sock.send(find_driver(sock.person))
            try:
                message, _ = await sock.wait({"driver_assigned", "no_drivers", "error"}, 30)
            except Exception as exc:  # noqa: BLE001
                rec.fail(f"timeout {exc!r}")
                return
            kind = message["type"]
            outcomes[kind] = outcomes.get(kind, 0) + 1
            if kind == "driver_assigned":
                rec.ok(due)
                await asyncio.sleep(hold_s)
                # The passenger lets the driver go, so the fleet stays free.
                await sock.send({"type": "cancel_ride", "reason": "bench"})
            else:
                rec.fail(f"{kind}: {message.get('message', '')[:80]}")

        elapsed, late = await open_loop(rate, n_rides, fire)
        await asyncio.sleep(1)
        stats = await fleet.stop()
        rss_end = workers.rss_mb()
        for s in socks:
            await s.close()
        crashes = workers.crashes()
    finally:
        if fleet.proc and fleet.proc.poll() is None:
            fleet.proc.kill()
        workers.stop()
    h = rec.hist
    p50, p99 = h.percentile_ms(50), h.percentile_ms(99)
    ok = p99 <= p99_target and (p50_target is None or p50 <= p50_target) and not rec.errors
    target = (f"p50 <= {p50_target} ms, " if p50_target else "") + f"p99 <= {p99_target} ms"
    label = f"find_driver->driver_assigned, {n_drivers:,} drivers @4 s, {rate:.0f} rides/s"
    info = {
        "hist": h,
        "errors": rec.errors,
        "outcomes": outcomes,
        "fleet": stats,
        "late": late,
        "rss": (rss_start, rss_end),
        "crashes": crashes,
        "connect_s": fleet.connect_s,
    }
    rows = [
        Result(
            f"{label} [{layer}, {db}]",
            f"p50 {p50:.1f} / p99 {p99:.1f} / max {h.max_ms:.0f} ms",
            target,
            ok,
            f"{h.summary()}; outcomes {outcomes}; errors {rec.errors[:3]}; "
            f"fleet sent {stats['sent']} reports, {stats['connected']} drivers in "
            f"{fleet.connect_s:.0f} s, settled in {max(settled):.0f} s; late arrivals {late}; "
            f"worker RSS {rss_end} MB; "
            f"crashes {len(crashes)}",
        )
    ]
    return rows, info


# --- 4. idle sockets ---------------------------------------------------------------------


async def idle_sockets(cast: env.Cast, n: int = 5000) -> list:
    await asyncio.to_thread(env.reset_rides)
    workers = env.start_workers(1, BASE_PORT, "idle", **layer_env("core"))
    fleet = FleetProcess(
        "idle",
        {
            "drivers": fleet_drivers(cast.drivers[:n], workers.ports),
            "interval": 0,
            "redis_url": env.BENCH_REDIS_URL,
            "drain_s": 0,
        },
    )
    try:
        before = workers.rss_mb()[0]
        await fleet.start()
        await asyncio.sleep(5)
        after = workers.rss_mb()[0]
        stats = await fleet.stop()
    finally:
        workers.stop()
    per_socket_kb = (after - before) * 1024 / max(1, stats["connected"])
    return [
        Result(
            f"{stats['connected']:,} idle driver sockets on one worker",
            f"RSS {after:.0f} MB (from {before:.0f} MB; {per_socket_kb:.0f} KB/socket)",
            f"{n:,} sockets <= 300 MB",
            stats["connected"] >= n and after <= 300,
            f"connected in {fleet.connect_s:.0f} s, failures {stats['connect_failures']}",
        )
    ]


# --- 5. console fan-out and the location path ------------------------------------------


async def fleet_on_one_worker(
    cast: env.Cast, *, layer: str, n_fleet: int = 2000, pairs: int = 20, phase_s: float = 20
) -> list:
    """
    One worker holds n_fleet drivers reporting every 4 s while 10 real
    consoles watch the map and `pairs` drivers on active rides stream once a
    second to their passengers. Phase B stalls the database (the rides table
    locked, get_status requests piling up behind it); positions must not
    queue behind it.
    """
    from django.db import connection

    from dispatch.models import DriverState, DriverStatus

    tag = f"fleet-{layer}"
    await asyncio.to_thread(env.reset_rides)
    fleet_people = cast.drivers[:n_fleet]
    pair_drivers = cast.drivers[n_fleet : n_fleet + pairs]

    def offline_fleet():
        DriverState.objects.filter(driver_id__in=[d.pk for d in fleet_people]).update(
            status=DriverStatus.OFFLINE
        )
        connection.close()

    await asyncio.to_thread(offline_fleet)
    workers = env.start_workers(1, BASE_PORT, tag, **layer_env(layer))
    port = workers.ports[0]
    fleet = FleetProcess(
        tag,
        {
            "drivers": fleet_drivers(fleet_people, [port]),
            "interval": 4.0,
            "layer": layer,
            "redis_url": env.BENCH_REDIS_URL,
        },
    )
    consoles: list = []
    pair_sent = 0
    loc_a, loc_b, status_rec = Histogram(), Histogram(), Recorder("get_status")
    try:
        # The rides first: the fleet's start-up floods the database thread.
        drivers = await open_many([(f"ws://127.0.0.1:{port}/ws/driver/", d) for d in pair_drivers])
        for d in drivers:
            await d.send(
                {"type": "location_update", "latitude": d.person.lat, "longitude": d.person.lng}
            )
        passengers = cast.passengers[:pairs]
        run = int(time.time())
        pax = await open_many(
            [(f"ws://127.0.0.1:{port}/ws/ride/f{run}-{i}/", p) for i, p in enumerate(passengers)]
        )
        await asyncio.sleep(1)
        for p, d in zip(pax, pair_drivers, strict=True):
            p.person.lat, p.person.lng = d.lat, d.lng
            await p.send(find_driver(p.person))
            await p.wait({"driver_assigned"}, 30)
        consoles = await start_consoles(tag, 10, [port], cast.console_cookie)
        await fleet.start()
        await asyncio.sleep(4.5)
        settled = await settle(port)
        sent: dict[tuple[int, float], float] = {}
        current = {"hist": loc_a}

        def on_location(message, received):
            if message.get("type") == "driver_location":
                t = sent.get((message["driver_id"], message["latitude"]))
                if t is not None:
                    current["hist"].record(received - t)

        for p in pax:
            p.on_message = on_location

        async def stream(stop: asyncio.Event):
            nonlocal pair_sent
            seq = 0
            while not stop.is_set():
                seq += 1
                for d in drivers:
                    lat = round(d.person.lat, 4) + seq * 1e-7
                    sent[(d.person.pk, lat)] = time.perf_counter()
                    await d.send(
                        {
                            "type": "location_update",
                            "latitude": lat,
                            "longitude": stamp(d.person.lng),
                        }
                    )
                    pair_sent += 1
                await asyncio.sleep(1.0)

        stop = asyncio.Event()
        streamer = asyncio.create_task(stream(stop))
        await asyncio.sleep(phase_s)

        def n_updates() -> int:
            import psycopg

            with psycopg.connect(env.BENCH_DATABASE_URL, autocommit=True) as conn:
                # Statistics lag up to PGSTAT_MIN_INTERVAL; flush them first.
                conn.execute("SELECT pg_stat_clear_snapshot()")
                row = conn.execute(
                    "SELECT n_tup_upd FROM pg_stat_user_tables "
                    "WHERE relname = 'dispatch_driverstate'"
                ).fetchone()
                return row[0]

        upd0 = await asyncio.to_thread(n_updates)

        # Other passengers ask: a socket handles one message at a time, so a
        # passenger's own get_status would hold up their own positions.
        askers = await open_many(
            [
                (f"ws://127.0.0.1:{port}/ws/ride/q{run}-{i}/", p)
                for i, p in enumerate(cast.passengers[pairs : 2 * pairs])
            ]
        )

        # Phase B: the database stalls. A transaction holds the rides table
        # locked, so every get_status (and anything else that reads rides)
        # waits on the worker's database threads for the whole phase.
        # Positions must not notice.
        import psycopg

        blocker = await psycopg.AsyncConnection.connect(env.BENCH_DATABASE_URL)
        await blocker.execute("LOCK TABLE dispatch_ride IN ACCESS EXCLUSIVE MODE")
        current["hist"] = loc_b

        async def fire(i, due):
            sock = askers[i % pairs]
            await sock.send({"type": "get_status"})
            try:
                await sock.wait({"ride_status", "error"}, 60)
                status_rec.ok(due)
            except Exception as exc:  # noqa: BLE001
                status_rec.fail(repr(exc))

        t0 = time.perf_counter()
        statuses = asyncio.create_task(open_loop(20, int(20 * phase_s), fire))
        await asyncio.sleep(phase_s)
        window = time.perf_counter() - t0
        # The backlog answered at once when the lock goes is not the stall.
        current["hist"] = Histogram()
        await blocker.rollback()
        await blocker.close()
        await statuses
        for sock in askers:
            await sock.close()
        upd1 = await asyncio.to_thread(n_updates)
        stop.set()
        await streamer
        stats = await fleet.stop()
        console, console_received, unmatched = await stop_consoles(consoles)
        consoles = []
        rss = workers.rss_mb()[0]
        for s in [*pax, *drivers]:
            await s.close()
        crashes = workers.crashes()
    finally:
        for proc in [fleet, *consoles]:
            if proc.proc and proc.proc.poll() is None:
                proc.proc.kill()
        workers.stop()
    # A console sees each driver at most once a batch, so a pair driver's
    # reports (one a second) can share one; the fleet's (every 4 s) cannot.
    expected = stats["sent"] * 10
    missing = expected - console_received
    reports_per_s = (n_fleet / 4 + pairs) * 1.0
    persists_per_s = (upd1 - upd0) / window
    c99 = console.percentile_ms(99)
    return [
        Result(
            f"console map, 10 consoles, {n_fleet:,} moving drivers on one worker [{layer}]",
            f"p50 {console.percentile_ms(50):.1f} / p99 {c99:.1f} / max {console.max_ms:.0f} ms",
            "p99 <= 500 ms",
            c99 <= 500 and missing <= expected * 0.02,
            f"age of each position when it reaches one of 10 real console sockets "
            f"(map.positions, once per CONSOLE_MAP_BATCH_S); settled in "
            f"{settled:.0f} s; "
            f"{console_received:,} of {expected:,} deliveries ({unmatched} unstamped), "
            f"{max(0, missing)} missing; worker RSS {rss:.0f} MB; crashes {len(crashes)}",
        ),
        Result(
            f"location path, {n_fleet + pairs:,} drivers on one worker: driver->passenger",
            f"p90 {loc_a.percentile_ms(90):.1f} / p99 {loc_a.percentile_ms(99):.1f} ms; "
            f"database stalled {phase_s:.0f} s: p90 {loc_b.percentile_ms(90):.1f} / "
            f"p99 {loc_b.percentile_ms(99):.1f} / max {loc_b.max_ms:.0f} ms",
            "no queueing behind the database: stalled p90 <= 2x, max < 1 s",
            # Reports that queued behind the database would wait out the stall.
            loc_b.percentile_ms(90) <= max(100.0, 2 * loc_a.percentile_ms(90))
            and loc_b.max_ms < 1000,
            f"A {loc_a.summary()}; B (rides table locked for {phase_s:.0f} s) "
            f"{loc_b.summary()}; get_status sent meanwhile, answered after the lock "
            f"{status_rec.hist.summary()}, errors {status_rec.errors[:2]}",
        ),
        Result(
            "  DB writes from positions",
            f"{persists_per_s:.0f} UPDATE/s for {reports_per_s:.0f} reports/s",
            "only every LOCATION_PERSIST_INTERVAL_S",
            persists_per_s <= reports_per_s / 2,
            "pg_stat_user_tables n_tup_upd on dispatch_driverstate during phase B",
        ),
    ]


# --- 6. simultaneous requests on PostgreSQL ---------------------------------------------


async def burst(cast: env.Cast, *, n: int = 500, spare: int = 20, db: str = "persistent") -> tuple:
    from django.db import connection
    from django.db.models import Count

    from dispatch.models import Ride, RideStatus

    await asyncio.to_thread(env.reset_rides)
    workers = env.start_workers(2, BASE_PORT, f"burst-{db}", **layer_env("core", db))
    # Everyone within a 0.05-degree square (about 5 x 5.5 km), so every
    # driver is inside MATCH_RADIUS_KM of every pickup: "drivers >= requests"
    # then means what it says, whatever order the claims land in.
    rng = random.Random(11)

    def near() -> tuple[float, float]:
        return (
            env.CENTRE[0] + rng.uniform(-0.025, 0.025),
            env.CENTRE[1] + rng.uniform(-0.025, 0.025),
        )

    drivers = [env.Person(d.pk, d.token, *near()) for d in cast.drivers[: n + spare]]
    riders = [env.Person(p.pk, p.token, *near()) for p in cast.passengers[:n]]
    env.place_drivers(drivers)
    run = int(time.time())
    rec = Recorder("burst")
    outcomes: dict[str, int] = {}
    try:
        socks = await open_many(
            [
                (f"ws://127.0.0.1:{workers.ports[i % 2]}/ws/ride/b{run}-{i}/", p)
                for i, p in enumerate(riders)
            ]
        )
        env.place_drivers(drivers)  # fresh again after the connects
        due = time.perf_counter()

        async def one(sock):
            await sock.send(find_driver(sock.person))
            try:
                message, _ = await sock.wait({"driver_assigned", "no_drivers", "error"}, 60)
            except Exception as exc:  # noqa: BLE001
                rec.fail(f"timeout {exc!r}")
                return
            outcomes[message["type"]] = outcomes.get(message["type"], 0) + 1
            rec.ok(due)

        await asyncio.gather(*(one(s) for s in socks))
        for s in socks:
            await s.close()

        def check():
            rides = Ride.objects.filter(ride_id__startswith=f"b{run}-")
            assigned = rides.filter(status=RideStatus.ASSIGNED).count()
            doubles = (
                Ride.objects.active()
                .exclude(driver=None)
                .values("driver_id")
                .annotate(n=Count("id"))
                .filter(n__gt=1)
                .count()
            )
            distinct = rides.exclude(driver=None).values("driver_id").distinct().count()
            connection.close()
            return assigned, doubles, distinct

        assigned, doubles, distinct = await asyncio.to_thread(check)
        crashes = workers.crashes()
    finally:
        workers.stop()
    served = assigned / n * 100
    return [
        Result(
            f"{n} simultaneous find_driver, {n + spare} drivers within 5 km, 2 workers [{db}]",
            f"{doubles} double assignments, {served:.1f} % served "
            f"({assigned} assigned, {distinct} distinct drivers)",
            "0 doubles, >= 99 % served",
            doubles == 0 and served >= 99 and assigned == distinct,
            f"all answered in p50 {rec.hist.percentile_ms(50):.0f} / max {rec.hist.max_ms:.0f} ms; "
            f"outcomes {outcomes}; errors {rec.errors[:3]}; crashes {len(crashes)}",
        )
    ], rec.hist


# --- 7. soak ------------------------------------------------------------------------------


async def _ride_pairs(drivers: list, passengers: list, ports: list[int], run: str):
    """Drivers on one worker, each on a ride with a passenger on the other."""
    n = len(drivers)
    dsocks = await open_many(
        [(f"ws://127.0.0.1:{ports[i % len(ports)]}/ws/driver/", d) for i, d in enumerate(drivers)]
    )
    for d in dsocks:
        await d.send(
            {"type": "location_update", "latitude": d.person.lat, "longitude": d.person.lng}
        )
    psocks = await open_many(
        [
            (f"ws://127.0.0.1:{ports[(i + 1) % len(ports)]}/ws/ride/{run}-{i}/", p)
            for i, p in enumerate(passengers[:n])
        ]
    )
    await asyncio.sleep(1)
    for p, d in zip(psocks, dsocks, strict=True):
        p.person.lat, p.person.lng = d.person.lat, d.person.lng
        await p.send(find_driver(p.person))
        message, _ = await p.wait({"driver_assigned", "no_drivers", "error"}, 30)
        if message.get("driver_id") != d.person.pk:
            raise RuntimeError(f"pair not matched as planned: {message}")
    return dsocks, psocks


async def soak(
    cast: env.Cast,
    *,
    seconds: float,
    layer: str,
    churn_per_min: float = 200,
    consoles_n: int = 2,
    pairs: int = 20,
    warmup_s: float = 60,
) -> list:
    """
    1,000 drivers streaming over two workers while `churn_per_min` more
    connect, report and leave each minute; `pairs` drivers on rides stream
    once a second to passengers on the other worker, through the channel
    layer, each report numbered so a lost one is counted; `consoles_n` real
    consoles watch the map. RSS growth is measured from the end of a
    `warmup_s` warm-up (and from the start, reported beside it).
    """
    tag = f"soak-{layer}"
    await asyncio.to_thread(env.reset_rides)
    workers = env.start_workers(2, BASE_PORT, tag, **layer_env(layer))
    fleet = FleetProcess(
        tag,
        {
            "drivers": fleet_drivers(cast.drivers[:1000], workers.ports),
            "churn_drivers": fleet_drivers(cast.drivers[1000:1200], workers.ports),
            "churn_per_min": churn_per_min,
            "interval": 4.0,
            "layer": layer,
            "redis_url": env.BENCH_REDIS_URL,
        },
    )
    samples = []
    consoles: list = []
    got: dict[int, set[int]] = {}
    sent = 0
    try:
        dsocks, psocks = await _ride_pairs(
            cast.drivers[1200 : 1200 + pairs],
            cast.passengers[:pairs],
            workers.ports,
            f"soak{int(time.time())}",
        )
        for p in psocks:

            def on_location(message, received, p=p):
                if message.get("type") == "driver_location":
                    seq = round((message["latitude"] - round(p.person.lat, 3)) * 1e7)
                    got.setdefault(message["driver_id"], set()).add(seq)

            p.on_message = on_location
        consoles = await start_consoles(tag, consoles_n, workers.ports, cast.console_cookie)
        await fleet.start()
        await asyncio.sleep(4.5)
        await asyncio.gather(*(settle(port) for port in workers.ports))
        rss_first = workers.rss_mb()

        async def stream(stop: asyncio.Event):
            nonlocal sent
            seq = 0
            while not stop.is_set():
                seq += 1
                for d in dsocks:
                    lat = round(d.person.lat, 3) + seq * 1e-7
                    await d.send(
                        {
                            "type": "location_update",
                            "latitude": lat,
                            "longitude": stamp(d.person.lng),
                        }
                    )
                    sent += 1
                await asyncio.sleep(1.0)

        stop = asyncio.Event()
        streamer = asyncio.create_task(stream(stop))
        await asyncio.sleep(warmup_s)
        rss_start = workers.rss_mb()
        t_end = time.monotonic() + seconds
        while time.monotonic() < t_end:
            await asyncio.sleep(min(30, max(0, t_end - time.monotonic())))
            samples.append(workers.rss_mb())
        stop.set()
        await streamer
        await asyncio.sleep(2)
        stats = await fleet.stop()
        hist, received, unmatched = await stop_consoles(consoles)
        consoles = []
        rss_end = workers.rss_mb()
        for sock in [*psocks, *dsocks]:
            await sock.close()
        alive = workers.alive()
        crashes = workers.crashes()
        layer_errors = workers.errors()
    finally:
        for proc in [fleet, *consoles]:
            if proc.proc and proc.proc.poll() is None:
                proc.proc.kill()
        workers.stop()
    delivered = sum(len(v) for v in got.values())
    drops = max(0, sent - delivered)
    growth = max((e - s) / s * 100 for s, e in zip(rss_start, rss_end, strict=True))
    growth_first = max((e - s) / s * 100 for s, e in zip(rss_first, rss_end, strict=True))
    ok = (
        drops == 0
        and growth <= 10
        and alive
        and not crashes
        and stats["churn_failures"] == 0
        and stats["closed_unexpectedly"] == 0
    )
    minutes = seconds / 60
    return [
        Result(
            f"soak {minutes:.0f} min [{layer}]: 1,000 drivers, {churn_per_min:.0f} "
            f"connect/disconnect a minute, {pairs} rides across workers, {consoles_n} consoles",
            f"{drops} channel-layer drops of {sent:,}; RSS +{growth:.1f} % after "
            f"{warmup_s:.0f} s warm-up (+{growth_first:.1f} % from start); "
            f"{len(crashes)} crashes; {stats['churn_cycles']} cycles",
            "0 drops, RSS <= +10 %, 0 crashes",
            ok,
            f"console position ages {hist.summary()}, {received:,} read, {unmatched} unstamped; "
            f"RSS MB first {rss_first} start {rss_start} end {rss_end} samples {samples}; "
            f"churn failures {stats['churn_failures']}; unexpected closes "
            f"{stats['closed_unexpectedly']}; errors {stats['errors'][:3]}; crashes "
            f"{crashes[:3]}; other ERROR lines {len(layer_errors)} {layer_errors[:2]}",
        )
    ]
