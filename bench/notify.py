"""
Notifications (python -m bench --only notify), in the bench process, on the
bench database, with a fake SMS gateway that records when each text is
handed to it:

- booking latency with notifications on and off (NOTIFY_ENABLED), each
  passenger with a caregiver: for half the passengers both hear
  `driver_assigned` by SMS (two rows a booking once the worker fans its
  events out), for the other half neither does (none). The four kinds of
  booking are interleaved in every round (which parity is on swaps every
  round). The booking's events are its notices' debt (the worker reads
  them from the log), so it writes nothing more with notifications on;
- the delay from a ride event (`driver_arrived`, committed) to its SMS handed
  to the gateway, at 20 events a second: with the deliverer woken by the
  commit (a thread of the serving process, `make run`), and polling every
  NOTIFY_POLL_S as `manage.py notify` in its own process does.
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time

from bench import booking as bench_booking
from bench.env import Cast
from bench.scenarios import Result

RIDES = 200
ROUNDS = 8
RATE = 20
TOPICS = ["driver_assigned", "arrived"]


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def _family(passenger_ids: list[int]) -> None:
    """A caregiver per passenger, hearing assigned and arrived by SMS at any hour."""
    from people.models import CaregiverLink, LinkStatus, NoticePreference, User

    if CaregiverLink.objects.filter(passenger_id__in=passenger_ids).exists():
        return
    carers = User.objects.bulk_create(
        [
            User(phone_number=f"2763{i:08d}", first_name="Carer", user_type="caregiver")
            for i in range(len(passenger_ids))
        ]
    )
    links = CaregiverLink.objects.bulk_create(
        [
            CaregiverLink(passenger_id=p, caregiver=c, status=LinkStatus.ACTIVE)
            for p, c in zip(passenger_ids, carers, strict=True)
        ]
    )
    NoticePreference.objects.bulk_create(
        [NoticePreference(link=link, topics=TOPICS, channel="sms") for link in links]
        + [NoticePreference(passenger_id=p, topics=TOPICS, channel="sms") for p in passenger_ids]
    )


def _choose(passenger_ids: list[int], topics: list[str]) -> None:
    """The topics the passengers and their caregivers hear."""
    from django.db.models import Q

    from people.models import NoticePreference

    NoticePreference.objects.filter(
        Q(passenger_id__in=passenger_ids) | Q(link__passenger_id__in=passenger_ids)
    ).update(topics=topics)


async def _event_delays(rides_booked: list, woken: bool) -> list[float]:
    """Arrive at each ride at RATE a second; ms from each commit to its SMS at the gateway."""
    from dispatch import trips
    from dispatch.models import Ride
    from dispatch.notify import delivery
    from people import sms
    from project.common.db import db_async

    handed: dict[str, float] = {}

    def gateway(*, phone_number: str, message: str) -> None:
        if "has arrived" in message:
            handed.setdefault(phone_number, time.perf_counter())

    committed: dict[str, float] = {}

    def arrive(ride_pk: int) -> None:
        ride = Ride.objects.with_people().get(pk=ride_pk)
        trips.ride_driver_arrived(ride=ride, driver=ride.driver)
        committed[ride.passenger.phone_number] = time.perf_counter()

    saved = sms.sms_send, sms.is_textable, delivery.pending
    sms.sms_send, sms.is_textable = gateway, lambda number: True
    if not woken:
        # Nothing in this process wakes it: it finds the rows by polling.
        delivery.pending = threading.Event()
    stop = threading.Event()
    worker = threading.Thread(target=delivery.run, kwargs={"stop": stop}, daemon=True)
    worker.start()
    try:
        started = time.perf_counter()
        for i, ride in enumerate(rides_booked):
            await asyncio.sleep(max(0.0, started + i / RATE - time.perf_counter()))
            await db_async(arrive)(ride.pk)
        deadline = time.perf_counter() + 30
        while set(committed) - set(handed) and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        delivery.pending.set()
        worker.join(10)
        sms.sms_send, sms.is_textable, delivery.pending = saved
    missing = set(committed) - set(handed)
    if missing:
        raise RuntimeError(f"{len(missing)} texts never reached the gateway")
    return [(handed[phone] - at) * 1000 for phone, at in committed.items()]


def _forget_the_bookings_notices() -> None:
    """What the bookings owe taken as told: their events read, their rows not sent."""
    from django.db.models import Max

    from dispatch.models import (
        NoticeDue,
        NoticeLogMark,
        Notification,
        NotificationStatus,
        RideEvent,
    )
    from dispatch.notify import outbox

    outbox.fan_out()  # the mark, if the bench database has none yet
    NoticeDue.objects.all().delete()
    NoticeLogMark.objects.update(
        read_to=RideEvent.objects.aggregate(last=Max("pk"))["last"] or 0, gaps=[]
    )
    Notification.objects.filter(status=NotificationStatus.PENDING).update(
        status=NotificationStatus.SKIPPED
    )


async def results(cast: Cast) -> list[Result]:
    from django.conf import settings

    from dispatch.models import Ride, RideStatus
    from people.models import User
    from project.common.db import db_async

    settings.SMS_MAX_PER_MINUTE = 100_000
    settings.NOTIFY_SMS_MAX_PER_DAY = 100_000
    driver_ids = [d.pk for d in cast.drivers[: bench_booking.DRIVERS]]
    passenger_ids = [p.pk for p in cast.passengers[:RIDES]]
    await db_async(_family)(passenger_ids)
    passengers = await db_async(lambda: list(User.objects.filter(pk__in=passenger_ids)))()
    # (rows owed, outbox on) -> each booking's milliseconds. All four in one
    # run, interleaved: booking i is by a passenger whose family wants the
    # texts (rows owed) when (i // 2) is even, with the outbox on when
    # (i + r) is even, so neighbouring bookings differ in one or both.
    lat: dict[tuple[bool, bool], list[float]] = {
        (rows, on): [] for rows in (True, False) for on in (True, False)
    }

    def owes(i: int) -> bool:
        return (i // 2) % 2 == 0

    try:
        await db_async(_choose)([p for i, p in enumerate(passenger_ids) if owes(i)], TOPICS)
        await db_async(_choose)(
            [p for i, p in enumerate(passenger_ids) if not owes(i)], ["arrived"]
        )
        for r in range(ROUNDS):
            await db_async(bench_booking._stage)(driver_ids, seed=r)
            booked = await bench_booking.book_each(
                passengers,
                f"n{r}",
                200 + r,
                time.perf_counter,
                before=lambda i, r=r: setattr(settings, "NOTIFY_ENABLED", (i + r) % 2 == 0),
            )
            for i, ms in enumerate(booked):
                lat[owes(i), (i + r) % 2 == 0].append(ms)
            await asyncio.sleep(0.5)
        await db_async(_choose)(passenger_ids, TOPICS)
        settings.NOTIFY_ENABLED = True
        delays: dict[bool, list[float]] = {}
        for woken in (True, False):
            await db_async(bench_booking._stage)(driver_ids, seed=9)
            await bench_booking.book_each(passengers, f"e{int(woken)}", 300, time.perf_counter)
            booked = await db_async(
                lambda: list(
                    Ride.objects.filter(
                        ride_id__startswith="bench-book-e", status=RideStatus.ASSIGNED
                    )
                )
            )()
            # Only the arrivals' texts wait: the bookings' own are not measured.
            await db_async(_forget_the_bookings_notices)()
            delays[woken] = await _event_delays(booked, woken)
    finally:
        settings.NOTIFY_ENABLED = True
        await db_async(bench_booking._stage)(driver_ids, seed=0)

    def against(a: list[float], b: list[float]) -> str:
        on, off = statistics.median(a), statistics.median(b)
        return (
            f"p50 {on:.2f} / {off:.2f} ms, {on / off:.2f}x ({on - off:+.2f} ms); "
            f"p99 {_pct(a, 99):.2f} / {_pct(b, 99):.2f} ms"
        )

    def delay(values: list[float]) -> str:
        return f"p50 {_pct(values, 50):.1f} ms, p99 {_pct(values, 99):.1f} ms ({len(values)} texts)"

    return [
        Result(
            f"booking, notifications on / off, interleaved, {RIDES // 4 * ROUNDS} each: "
            "two rows owed",
            against(lat[True, True], lat[True, False]),
            "",
            None,
            "passenger and caregiver texted driver_assigned (rows made by the worker)",
        ),
        Result(
            "  the same, no rows owed (none wanting the topic)",
            against(lat[False, True], lat[False, False]),
            "",
            None,
        ),
        Result(
            "  outbox on: two rows owed / none (a family's choices against none)",
            against(lat[True, True], lat[False, True]),
            "",
            None,
        ),
        Result(
            f"event to SMS at the gateway, {RATE} events/s, woken by the commit (make run)",
            delay(delays[True]),
            "",
            None,
            "two texts per event (passenger, caregiver), sent one after another, each marked sent",
        ),
        Result(
            f"  the same, polling every {settings.NOTIFY_POLL_S:g} s (manage.py notify)",
            delay(delays[False]),
            "",
            None,
        ),
    ]
