"""
A fleet of driver apps in a process of its own, so that the drivers'
traffic does not share an event loop with what is being measured.

    python -m bench.fleet SPEC.json      # prints READY when every driver is in

The spec names the drivers (id, token, position, worker port), how often
they report, how many console map readers to run (they read the live
positions as the console does), and how
many drivers to connect and disconnect per minute (churn). SIGTERM stops the
reports; after a short drain the stats go to spec["stats_path"].
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import sys
import time
from collections import Counter

import websockets

from bench.hist import Histogram

CONNECTS_AT_ONCE = 64
STAMP_UNIT = 1e-10  # degrees of longitude per millisecond of the stamp
STAMP_WRAP_MS = 400_000  # x STAMP_UNIT stays under 5e-5: round(x, 4) finds the base


def stamp(lng: float) -> float:
    """
    The send time, to the millisecond modulo 400 s, hidden in the
    longitude's low digits (under 4e-5 degrees, about 4 m), so a
    listener in another process can tell each report's age from the
    console.location event alone.
    """
    ms = int(time.time() * 1000) % STAMP_WRAP_MS
    return round(lng, 4) + ms * STAMP_UNIT


def stamp_age(lng: float) -> float | None:
    """Seconds since the report with this stamped longitude was sent."""
    ms = round((lng - round(lng, 4)) / STAMP_UNIT)
    if not 0 <= ms < STAMP_WRAP_MS:
        return None
    return ((int(time.time() * 1000) - ms) % STAMP_WRAP_MS) / 1000


class Fleet:
    def __init__(self, spec: dict) -> None:
        self.spec = spec
        self.interval = spec.get("interval", 4.0)
        self.stop = asyncio.Event()
        self.sent = 0
        self.sent_since_listen = 0
        self.received = Counter()
        self.errors: list[str] = []
        self.connect_failures = 0
        self.closed_unexpectedly = 0
        self.close_codes = Counter()
        self.console_hist = Histogram()
        self.console_received = 0
        self.console_unmatched = 0
        self.listening = False
        self.churn_cycles = 0
        self.churn_failures = 0
        self.sockets: list = []

    async def connect(self, driver: list, sem: asyncio.Semaphore):
        pk, token, lat, lng, port = driver
        async with sem:
            for attempt in range(3):
                try:
                    return await websockets.connect(
                        f"ws://127.0.0.1:{port}/ws/driver/",
                        additional_headers={"Authorization": f"Bearer {token}"},
                        open_timeout=120,
                        ping_interval=None,
                        compression=None,
                        max_queue=None,
                    )
                except Exception as exc:  # noqa: BLE001 - counted
                    if attempt == 2:
                        self.connect_failures += 1
                        if len(self.errors) < 20:
                            self.errors.append(f"connect {pk}: {exc!r}")
                    await asyncio.sleep(1 + attempt)
        return None

    async def read(self, ws) -> None:
        try:
            async for raw in ws:
                message = json.loads(raw)
                kind = message.get("type")
                self.received[kind] += 1
                if kind == "error" and len(self.errors) < 20:
                    self.errors.append(raw[:200])
        except websockets.ConnectionClosed:
            pass
        if not self.stop.is_set():
            self.closed_unexpectedly += 1
        if ws.close_code is not None:
            self.close_codes[ws.close_code] += 1

    async def stream(self, ws, driver: list) -> None:
        pk, _, lat, lng, _ = driver
        await asyncio.sleep(random.uniform(0, self.interval))
        seq = 0
        next_at = time.perf_counter()
        while not self.stop.is_set():
            seq += 1
            # The latitude carries a sequence number so each report can be
            # recognised when it comes back through the console group.
            here = round(lat, 4) + (seq % 5000) * 1e-7
            try:
                if self.listening:
                    self.sent_since_listen += 1
                await ws.send(
                    json.dumps(
                        {
                            "type": "location_update",
                            "latitude": here,
                            "longitude": stamp(lng),
                            "heading": 90.0,
                            "speed": 12.5,
                        }
                    )
                )
                self.sent += 1
            except websockets.ConnectionClosed:
                return
            next_at += self.interval
            # A plain sleep, not wait_for(stop.wait()), which made a task and
            # a timeout per report; run() cancels the streams when it stops.
            await asyncio.sleep(max(0, next_at - time.perf_counter()))

    async def consoles(self, n: int) -> list[asyncio.Task]:
        """
        n consoles as a dispatcher's page opens them: ws/console/ signed in
        with a session cookie. Each worker sends "map.positions" once per
        CONSOLE_MAP_BATCH_S with the reports it had meanwhile; the age of
        each is the time since that report was sent (stamped in its
        longitude). A message marked "full" (every known position) would be
        skipped: it is as old as the drivers' last reports.
        """
        if not n:
            return []
        ready = asyncio.Event()

        async def listen():
            async with websockets.connect(
                self.spec["console_url"],
                additional_headers={"Cookie": self.spec["console_cookie"]},
                open_timeout=60,
                ping_interval=None,
                compression=None,
                max_queue=None,
                max_size=None,
            ) as ws:
                ready.set()
                async for raw in ws:
                    if not raw.startswith('{"type": "map.positions"'):
                        continue  # board fragments (HTML) and marker changes
                    message = json.loads(raw)
                    if message["full"]:
                        continue
                    for entry in message["drivers"]:
                        age = stamp_age(entry["lng"])
                        if age is None:
                            self.console_unmatched += 1
                            continue
                        self.console_received += 1
                        self.console_hist.record(age)

        tasks = [asyncio.create_task(listen()) for _ in range(n)]
        await asyncio.wait_for(ready.wait(), 60)
        return tasks

    async def churn(self, drivers: list[list], per_min: float) -> None:
        """Connect, report once, disconnect: per_min cycles a minute."""
        i = 0
        start = time.perf_counter()
        while not self.stop.is_set():
            due = start + i * 60 / per_min
            await asyncio.sleep(max(0, due - time.perf_counter()))
            driver = drivers[i % len(drivers)]
            i += 1
            asyncio.create_task(self.churn_one(driver))

    async def churn_one(self, driver: list) -> None:
        pk, token, lat, lng, port = driver
        try:
            async with websockets.connect(
                f"ws://127.0.0.1:{port}/ws/driver/",
                additional_headers={"Authorization": f"Bearer {token}"},
                open_timeout=30,
                ping_interval=None,
                compression=None,
            ) as ws:
                hello = json.loads(await asyncio.wait_for(ws.recv(), 30))
                if hello.get("type") != "connection_established":
                    raise RuntimeError(hello)
                await ws.send(
                    json.dumps(
                        {"type": "location_update", "latitude": lat, "longitude": stamp(lng)}
                    )
                )
                self.sent += 1
                await ws.send(json.dumps({"type": "ping"}))
                while json.loads(await asyncio.wait_for(ws.recv(), 30)).get("type") != "pong":
                    pass
            self.churn_cycles += 1
        except Exception as exc:  # noqa: BLE001 - counted
            self.churn_failures += 1
            if len(self.errors) < 20:
                self.errors.append(f"churn {pk}: {exc!r}")

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.stop.set)
        sem = asyncio.Semaphore(CONNECTS_AT_ONCE)
        drivers = self.spec["drivers"]
        started = time.perf_counter()
        sockets = await asyncio.gather(*(self.connect(d, sem) for d in drivers))
        connect_s = time.perf_counter() - started
        readers, streams = [], []
        for ws, d in zip(sockets, drivers, strict=True):
            if ws is None:
                continue
            self.sockets.append(ws)
            readers.append(asyncio.create_task(self.read(ws)))
            if self.interval > 0:
                streams.append(asyncio.create_task(self.stream(ws, d)))
        listeners = await self.consoles(self.spec.get("consoles", 0))
        churn = None
        if self.spec.get("churn_per_min"):
            churn = asyncio.create_task(
                self.churn(self.spec["churn_drivers"], self.spec["churn_per_min"])
            )
        print(f"READY {len(self.sockets)} {connect_s:.1f}", flush=True)
        await asyncio.sleep(self.spec.get("listen_after_s", 0))
        self.listening = True
        await self.stop.wait()
        if churn:
            churn.cancel()
        for task in streams:
            task.cancel()
        await asyncio.gather(*streams, return_exceptions=True)
        # Let the last reports come through the group before counting.
        await asyncio.sleep(self.spec.get("drain_s", 3.0))
        for task in listeners:
            task.cancel()
        stats = {
            "connected": len(self.sockets),
            "connect_s": connect_s,
            "connect_failures": self.connect_failures,
            "sent": self.sent,
            "sent_measured": self.sent_since_listen,
            "received": dict(self.received),
            "errors": self.errors,
            "closed_unexpectedly": self.closed_unexpectedly,
            "consoles": self.spec.get("consoles", 0),
            "console_received": self.console_received,
            "console_unmatched": self.console_unmatched,
            "console_hist": {str(k): v for k, v in self.console_hist.counts.items()},
            "console_hist_max_us": self.console_hist.max_us,
            "churn_cycles": self.churn_cycles,
            "churn_failures": self.churn_failures,
        }
        with open(self.spec["stats_path"], "w") as f:
            json.dump(stats, f)
        await asyncio.gather(*(ws.close() for ws in self.sockets), return_exceptions=True)


def main() -> None:
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    from bench.env import raise_fd_limit

    raise_fd_limit()
    asyncio.run(Fleet(spec).run())


if __name__ == "__main__":
    main()
