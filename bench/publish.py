"""
Publishing a plan to connected drivers (python -m bench --only publish).

A day of runs for N drivers (four riders each, booked ahead, eight stops
a run) is written to the bench database; the N drivers' apps connect to a
real worker; then the bench process publishes the plan (dispatch.planning.
services.plan_publish: every rider told their window, every driver nudged)
and times, for each driver, how long after the publish committed its
`manifest_updated` arrived, and checks it lists that driver's own stops.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta
from datetime import time as clock

from bench import env
from bench.clients import AppSocket, open_many
from bench.hist import Histogram
from bench.scenarios import BASE_PORT, Result

RIDERS_PER_RUN = 4


def _day(cast: env.Cast, n_drivers: int):
    """Tomorrow's plan: a shift, a run and four riders' trips per driver (not yet published)."""
    from django.db import connection
    from django.utils import timezone

    from dispatch.models import DayPlan, DriverShift, Ride, Run, Stop, StopKind
    from dispatch.scheduling import Needs, Place, ride_book_ahead
    from people.models import User

    service_date = timezone.localdate() + timedelta(days=1)
    DayPlan.objects.filter(service_date=service_date).delete()
    plan = DayPlan.objects.create(service_date=service_date)

    def at(hour: int, minute: int = 0) -> datetime:
        return timezone.make_aware(datetime.combine(service_date, clock(hour, minute)))

    riders = iter(cast.passengers)
    stops: dict[int, int] = {}
    for d in cast.drivers[:n_drivers]:
        shift = DriverShift.objects.create(
            driver_id=d.pk,
            start_at=at(6),
            end_at=at(15),
            start_latitude=d.lat,
            start_longitude=d.lng,
            end_latitude=d.lat,
            end_longitude=d.lng,
        )
        run = Run.objects.create(
            plan=plan, shift=shift, driver_id=d.pk, departs_at=at(6), returns_at=at(14)
        )
        rows = []
        for n in range(RIDERS_PER_RUN):
            rider = next(riders)
            pickup = at(7 + 2 * n)
            ride = ride_book_ahead(
                passenger=User.objects.get(pk=rider.pk),
                booked_by=User.objects.get(pk=rider.pk),
                pickup=Place(rider.lat, rider.lng, "Home"),
                dropoff=Place(rider.lat + 0.02, rider.lng + 0.02, "Clinic"),
                pickup_at=pickup,
                needs=Needs(),
            )
            Ride.objects.filter(pk=ride.pk).update(run=run)
            window = (pickup - timedelta(minutes=15), pickup + timedelta(minutes=15))
            for k, kind in enumerate((StopKind.PICKUP, StopKind.DROPOFF)):
                when = pickup + timedelta(minutes=30 * k)
                rows.append(
                    Stop(
                        run=run,
                        ride=ride,
                        kind=kind,
                        sequence=2 * n + k,
                        arrival_at=when,
                        service_at=when,
                        departure_at=when + timedelta(minutes=2),
                        window_start=window[0] if k == 0 else when - timedelta(hours=1),
                        window_end=window[1] if k == 0 else when + timedelta(minutes=10),
                    )
                )
        Stop.objects.bulk_create(rows)
        stops[d.pk] = len(rows)
    connection.close()
    return plan, stops


def _publish(plan) -> float:
    """Publish, and return the moment it committed (before any news is sent)."""
    from django.db import connection, transaction

    from dispatch.planning import services

    committed: list[float] = []
    with transaction.atomic():
        # The first of the commit's callbacks: every message is sent after it.
        transaction.on_commit(lambda: committed.append(time.perf_counter()))
        services.plan_publish(plan=plan)
    connection.close()
    return committed[0]


async def publish_to_drivers(cast: env.Cast, n_drivers: int = 100) -> list[Result]:
    await asyncio.to_thread(env.reset_rides)
    plan, stops = await asyncio.to_thread(_day, cast, n_drivers)
    workers = env.start_workers(1, BASE_PORT, "publish")
    sockets: list[AppSocket] = []
    try:
        url = f"ws://127.0.0.1:{workers.ports[0]}/ws/driver/"
        sockets = await open_many([(url, d) for d in cast.drivers[:n_drivers]])
        waits = [asyncio.create_task(s.wait({"manifest_updated"}, timeout=60)) for s in sockets]
        started = time.perf_counter()
        committed = await asyncio.to_thread(_publish, plan)
        done = await asyncio.gather(*waits, return_exceptions=True)
    finally:
        for s in sockets:
            await s.close()
        workers.stop()
    hist = Histogram()
    delivered = right = 0
    for sock, outcome in zip(sockets, done, strict=True):
        if isinstance(outcome, BaseException):
            continue
        message, received = outcome
        delivered += 1
        hist.record(max(0.0, received - committed))
        own = message["driver_id"] == sock.person.pk
        right += own and len(message["stops"]) == stops[sock.person.pk]
    publish_s = committed - started
    p99 = hist.percentile_ms(99) if delivered else float("nan")
    crashes = workers.crashes() + workers.errors()
    return [
        Result(
            f"publish a plan to {n_drivers} connected drivers",
            f"{delivered}/{n_drivers} manifests delivered ({right} with the driver's own stops); "
            f"after commit p50 {hist.percentile_ms(50):.0f} ms, p99 {p99:.0f} ms, "
            f"max {hist.max_ms:.0f} ms",
            "every manifest delivered, each the driver's own; p99 reported",
            delivered == right == n_drivers and not crashes,
            f"publish transaction {publish_s * 1000:.0f} ms "
            f"({n_drivers * RIDERS_PER_RUN} riders told their window); "
            f"worker errors {len(crashes)}",
        )
    ]
