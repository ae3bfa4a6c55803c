"""Client sockets for the measured side of a benchmark, and the fleet process."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import websockets

from bench.env import LOG_DIR, ROOT, Person

JHB_DROPOFF = (-26.10, 28.10)


class AppSocket:
    """One app socket with a reader that hands messages to whoever waits."""

    def __init__(self, ws, person: Person | None = None) -> None:
        self.ws = ws
        self.person = person
        self.waiters: list[tuple[set[str], asyncio.Future]] = []
        self.counts: dict[str, int] = {}
        self.on_message = None
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, url: str, person: Person | None = None, timeout: float = 60) -> AppSocket:
        headers = {"Authorization": f"Bearer {person.token}"} if person else {}
        ws = await websockets.connect(
            url,
            additional_headers=headers,
            open_timeout=timeout,
            ping_interval=None,
            compression=None,
            max_queue=None,
        )
        sock = cls(ws, person)
        await sock.wait({"connection_established"}, timeout)
        return sock

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                received = time.perf_counter()
                message = json.loads(raw)
                kind = message.get("type", "")
                self.counts[kind] = self.counts.get(kind, 0) + 1
                if self.on_message is not None:
                    self.on_message(message, received)
                for entry in list(self.waiters):
                    types, future = entry
                    if kind in types and not future.done():
                        future.set_result((message, received))
                        self.waiters.remove(entry)
                        break
        except websockets.ConnectionClosed:
            pass
        for _, future in self.waiters:
            if not future.done():
                future.set_exception(ConnectionError(f"closed {self.ws.close_code}"))

    async def wait(self, types: set[str], timeout: float = 30) -> tuple[dict, float]:
        future = asyncio.get_running_loop().create_future()
        self.waiters.append((types, future))
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            if not future.done():
                future.cancel()

    async def send(self, message: dict) -> None:
        await self.ws.send(json.dumps(message))

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self.ws.close(), 5)
        except Exception:  # noqa: BLE001 - closing anyway
            pass
        self.reader.cancel()


async def open_many(urls_people: list[tuple[str, Person | None]], at_once: int = 64) -> list:
    sem = asyncio.Semaphore(at_once)

    async def one(url, person):
        async with sem:
            return await AppSocket.open(url, person)

    return await asyncio.gather(*(one(u, p) for u, p in urls_people))


def find_driver(p: Person) -> dict:
    return {
        "type": "find_driver",
        "pickup_latitude": p.lat,
        "pickup_longitude": p.lng,
        "pickup_address": "Bench pickup",
        "dropoff_latitude": JHB_DROPOFF[0],
        "dropoff_longitude": JHB_DROPOFF[1],
        "dropoff_address": "Bench dropoff",
    }


class FleetProcess:
    """bench.fleet in a subprocess: start it, wait for READY, stop, read stats."""

    def __init__(self, tag: str, spec: dict) -> None:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.spec_path = LOG_DIR / f"fleet-{tag}.json"
        self.stats_path = LOG_DIR / f"fleet-{tag}-stats.json"
        self.log_path = LOG_DIR / f"fleet-{tag}.log"
        if self.stats_path.exists():
            self.stats_path.unlink()
        spec = dict(spec, stats_path=str(self.stats_path))
        self.spec_path.write_text(json.dumps(spec))
        self.proc: subprocess.Popen | None = None
        self.connect_s = 0.0
        self.connected = 0

    async def start(self, timeout: float = 600) -> None:
        self.log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.fleet", str(self.spec_path)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        line = await asyncio.wait_for(asyncio.to_thread(self.proc.stdout.readline), timeout)
        if not line.startswith("READY"):
            raise RuntimeError(f"fleet did not start: {line!r} {Path(self.log_path).read_text()}")
        _, connected, seconds = line.split()
        self.connected, self.connect_s = int(connected), float(seconds)

    async def stop(self) -> dict:
        assert self.proc is not None
        self.proc.terminate()
        await asyncio.to_thread(self.proc.wait, 120)
        self.log.close()
        if not self.stats_path.exists():
            raise RuntimeError(f"fleet left no stats: {Path(self.log_path).read_text()[-2000:]}")
        return json.loads(self.stats_path.read_text())


def fleet_drivers(drivers: list[Person], ports: list[int]) -> list[list]:
    return [[d.pk, d.token, d.lat, d.lng, ports[i % len(ports)]] for i, d in enumerate(drivers)]


async def start_consoles(tag: str, n: int, ports: list[int], cookie: str) -> list[FleetProcess]:
    """n real console sockets (ws/console/, signed in), one process each (bench.fleet)."""
    procs = [
        FleetProcess(
            f"{tag}-console{i}",
            {
                "drivers": [],
                "interval": 0,
                "consoles": 1,
                "console_url": f"ws://127.0.0.1:{ports[i % len(ports)]}/ws/console/",
                "console_cookie": cookie,
                "drain_s": 2.0,
            },
        )  # fmt: skip
        for i in range(n)
    ]
    await asyncio.gather(*(p.start() for p in procs))
    return procs


async def stop_consoles(procs: list[FleetProcess]):
    """(histogram of ages, deliveries received, unmatched) over every listener."""
    from bench.hist import Histogram

    hist, received, unmatched = Histogram(), 0, 0
    for stats in await asyncio.gather(*(p.stop() for p in procs)):
        part = Histogram()
        for k, v in stats["console_hist"].items():
            part.counts[int(k)] = v
            part.count += v
        part.max_us = stats["console_hist_max_us"]
        hist.merge(part)
        received += stats["console_received"]
        unmatched += stats["console_unmatched"]
    return hist, received, unmatched


async def settle(port: int, *, quiet_ms: float = 150, limit_s: float = 90) -> float:
    """
    Wait until the worker's database thread has caught up (after a fleet
    connects, every driver's first report persists and looks for waiting
    rides): a get_status round trip, which queues on that thread, must come
    back within `quiet_ms` twice running. Returns the seconds waited.
    """
    started = time.perf_counter()
    good = 0
    sock = None
    try:
        while time.perf_counter() - started < limit_s and good < 2:
            try:
                if sock is None:
                    sock = await AppSocket.open(
                        f"ws://127.0.0.1:{port}/ws/ride/settle-{port}/", timeout=limit_s
                    )
                t = time.perf_counter()
                await sock.send({"type": "get_status"})
                await sock.wait({"error", "ride_status"}, limit_s)
            except Exception:  # noqa: BLE001 - a handshake that timed out: try again
                if sock is not None:
                    await sock.close()
                sock = None
                good = 0
                continue
            good = good + 1 if (time.perf_counter() - t) * 1000 < quiet_ms else 0
            await asyncio.sleep(0.5)
    finally:
        if sock is not None:
            await sock.close()
    return time.perf_counter() - started
