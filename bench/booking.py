"""
The two PostgreSQL booking paths of dispatch.booking, side by side
(python -m bench --only booking).

In the bench process, on the bench database: 1,000 of the seeded drivers
stand still around Johannesburg, and each round books the same 200 rides
once through the one-statement path and once through the ORM path
(`booking.ONE_STATEMENT`), in alternating order, so a noisy neighbour
weighs on both alike. The figure is process CPU per `ride_book` call: the
database's own work is the same SQL either way, and what the one statement
saves is Python (the ORM's querysets and round trips).
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time

from bench import env
from bench.env import Cast
from bench.scenarios import Result

DRIVERS = 1_000
RIDES = 200
ROUNDS = 3
JOHANNESBURG = (-26.2041, 28.0473)


def _stage(driver_ids: list[int], seed: int) -> None:
    """Every staged driver available and freshly placed; no bench bookings left."""
    from dispatch.geo import Point
    from dispatch.locations import location_store
    from dispatch.models import DriverState, DriverStatus, Ride

    Ride.objects.filter(ride_id__startswith="bench-book-").delete()
    DriverState.objects.filter(driver_id__in=driver_ids).update(status=DriverStatus.AVAILABLE)
    rng = random.Random(seed)
    now = time.time()
    store = location_store()
    for driver_id in driver_ids:
        lat = JOHANNESBURG[0] + rng.uniform(-0.1, 0.1)
        lng = JOHANNESBURG[1] + rng.uniform(-0.1, 0.1)
        store.put(driver_id, Point(lat, lng, now, reported=True))


async def book_each(passengers, tag: str, seed: int, clock, before=None) -> list[float]:
    """
    Book a ride for each passenger, one after another, near Johannesburg
    (seeded); each booking's milliseconds by `clock` (wall or CPU time).
    `before(i)`: called ahead of booking i (outside its time).
    """
    from dispatch import booking, matching
    from project.common.db import db_async

    rng = random.Random(seed)
    book = db_async(booking.ride_book)
    spent = []
    for i, passenger in enumerate(passengers):
        lat = JOHANNESBURG[0] + rng.uniform(-0.05, 0.05)
        lng = JOHANNESBURG[1] + rng.uniform(-0.05, 0.05)
        nearby = await matching.anearby(lat, lng)
        if before is not None:
            before(i)
        started = clock()
        result = await book(
            ride_id=f"bench-book-{tag}-{i}",
            passenger=passenger,
            booked_by=passenger,
            nearby_drivers=nearby,
            pickup_latitude=lat,
            pickup_longitude=lng,
            dropoff_latitude=JOHANNESBURG[0],
            dropoff_longitude=JOHANNESBURG[1],
        )
        spent.append((clock() - started) * 1000)
        if result.driver_id is None:
            raise RuntimeError(f"booking {i} ({tag}) found no driver: the staging is wrong")
    return spent


async def _round(one_statement: bool, tag: str, passengers: list, seed: int) -> float:
    """Milliseconds of process CPU per booking, all RIDES booked one after another."""
    from dispatch import booking

    booking.ONE_STATEMENT = one_statement
    spent = await book_each(passengers, tag, seed, time.process_time)
    return sum(spent) / len(spent)


async def results(cast: Cast) -> list[Result]:
    from dispatch import booking
    from people.models import User
    from project.common.db import db_async

    # From no rides, as every phase starts: the burst before leaves its
    # passengers and drivers holding theirs.
    await asyncio.to_thread(env.reset_rides)
    driver_ids = [d.pk for d in cast.drivers[:DRIVERS]]
    passengers = await db_async(
        lambda: list(User.objects.filter(pk__in=[p.pk for p in cast.passengers[:RIDES]]))
    )()
    cpu: dict[bool, list[float]] = {True: [], False: []}
    try:
        for r in range(ROUNDS):
            order = (True, False) if r % 2 == 0 else (False, True)
            for one in order:
                await db_async(_stage)(driver_ids, seed=r)
                cpu[one].append(await _round(one, f"{r}{int(one)}", passengers, seed=100 + r))
                # Let the positions' writer and the broadcasts settle between rounds.
                await asyncio.sleep(0.5)
    finally:
        booking.ONE_STATEMENT = True
        await db_async(_stage)(driver_ids, seed=0)
    one, orm = statistics.median(cpu[True]), statistics.median(cpu[False])
    return [
        Result(
            f"booking CPU, {RIDES} rides x {ROUNDS} rounds, {DRIVERS:,} drivers [one statement]",
            f"{one:.2f} ms per booking (rounds: {', '.join(f'{v:.2f}' for v in cpu[True])})",
            "",
            None,
        ),
        Result(
            "  the same rides through the ORM path, same run",
            f"{orm:.2f} ms per booking (rounds: {', '.join(f'{v:.2f}' for v in cpu[False])})",
            "",
            None,
        ),
        Result(
            "  one statement against the ORM path",
            f"{orm / one:.2f}x less CPU per booking",
            "> 1x (the reason it exists)",
            orm > one,
        ),
    ]
