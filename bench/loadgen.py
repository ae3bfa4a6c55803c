"""
Open-loop load: arrivals on a fixed schedule, whatever the server does.

A closed loop (send, wait, send) slows down with the server and hides its
stalls (coordinated omission). Here arrival i is due at start + i / rate and
its latency is measured from that due time, so a stall shows up in every
request that should have been sent during it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from bench.hist import Histogram


async def open_loop(
    rate_per_s: float,
    count: int,
    fire: Callable[[int, float], Awaitable[None]],
    *,
    max_in_flight: int = 100_000,
) -> tuple[float, int]:
    """
    Start `fire(i, due)` for i in range(count) at `rate_per_s`, each as its
    own task, never waiting for earlier ones. Returns (seconds the schedule
    took, how many arrivals were late by more than 10 ms to start). `due` is
    the time.perf_counter() instant the arrival was scheduled for.
    """
    loop = asyncio.get_running_loop()
    start = time.perf_counter() + 0.05
    tasks: set[asyncio.Task] = set()
    late = 0
    for i in range(count):
        due = start + i / rate_per_s
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -0.010:
            late += 1
        while len(tasks) >= max_in_flight:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        task = loop.create_task(fire(i, due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)
    return time.perf_counter() - start, late


class Recorder:
    """A histogram plus the failures of one measured operation."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.hist = Histogram()
        self.errors: list[str] = []
        self.timeouts = 0

    def ok(self, due: float) -> None:
        self.hist.record(time.perf_counter() - due)

    def fail(self, why: str) -> None:
        if len(self.errors) < 20:
            self.errors.append(why)
        self.timeouts += why.startswith("timeout")
