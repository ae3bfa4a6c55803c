"""
Daphne against Uvicorn, for a graceful close on shutdown (issue #16).

    BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/cc_bench_servers \\
    BENCH_REDIS_URL=redis://127.0.0.1:6379/11 BENCH_BASE_PORT=8900 \\
        python -m bench.servers [--variants daphne uvicorn-sansio ...] [--idle 5000]

Uvicorn is not a dependency: install it (and wsproto) into the venv for the
run. One run measures every server variant (VARIANTS) the same way, each
measurement on a fresh worker on a vacuumed database and an empty Redis
(bench.env; the core channel layer, as bench.scenarios.idle_sockets, or
--layer pubsub):

  ping  ping round trip through the consumer (20 ride sockets, 200 pings/s
        open loop for 10 s, after a warm-up run), then the same against a bare
        `websockets` echo server (bench/echo.py): the ratio is the target's.
  cpu   500 signed-in driver sockets, each sending a location_update a second
        for 20 s: the worker's CPU (user + sys of all its threads, from
        /proc/PID/stat) per 1,000 reports, net of what the same sockets cost
        idle and of the ping barrier that tells when the worker has handled
        every report. The window ends after the position writer's last
        batch (LOCATION_PERSIST_INTERVAL_S), so a report's database write is
        in its cost.
  idle  5,000 idle signed-in driver sockets: the worker's RSS after minus
        before (as bench.scenarios.idle_sockets: 5 s after the last connect),
        per socket; then SIGTERM with all of them open: the close codes the
        clients see, when each client's connection has ended (close frame
        and TCP close, from the SIGTERM), how long the worker takes to exit,
        and how many of the sockets' group memberships are left in Redis
        (consumers that never finished their disconnect).

Driver sockets live in a client process of their own (this module,
`python -m bench.servers clients`, driven by JSON lines on stdin/stdout),
so that 5,000 sockets do not share an event loop with the ping
measurement, which runs in this process like bench.scenarios.ping_ratio.

The `uvicorn-1001` variant is Uvicorn started from Python
(`python -m bench.servers serve`) through its public API only: a
`uvicorn.Server` whose shutdown first closes every socket with 1001 through
the ASGI interface (GoingAway), then lets Uvicorn's own shutdown run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import weakref
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version

from bench import env

BASE_PORT = int(os.environ.get("BENCH_BASE_PORT", "8900"))
ECHO_PORT = BASE_PORT + 50
# Closing sockets on SIGTERM: what the project's hook waits (project/asgi.py).
GRACE_S = int(os.environ.get("SHUTDOWN_GRACE_S", "5"))
# The same channel layer as the idle-socket row of `python -m bench` unless
# --layer says otherwise (pub/sub is the project's default).
LAYER_ENV = {"CHANNEL_LAYER_BACKEND": "core"}
CLOSE_GOING_AWAY = 1001

# Uvicorn as we would run it, for the command line and for uvicorn.Config:
# the same limits as Daphne's where Uvicorn has them. Explicit loop and HTTP
# parser, so that the figures do not depend on whether uvloop or httptools
# happen to be installed. Per-message deflate off: Daphne does not offer it,
# and a client that negotiates it costs a zlib context pair per socket.
# Uvicorn has nothing like Daphne's --websocket_timeout (86,400 s).
UVICORN_SETTINGS: dict[str, object] = {
    "proxy_headers": True,
    "ws_max_size": 65536,  # WS_MAX_MESSAGE_BYTES; Daphne's autobahn allows 1 MiB
    "ws_per_message_deflate": False,
    "ws_ping_interval": 20.0,  # Daphne's --ping-interval default
    "ws_ping_timeout": 20.0,
    "timeout_graceful_shutdown": GRACE_S,
    "lifespan": "off",
    "loop": "asyncio",
    "http": "h11",
    "access_log": False,
    "log_level": "warning",
}


def uvicorn_flags(settings: dict[str, object]) -> list[str]:
    """UVICORN_SETTINGS as `uvicorn` command-line options."""
    flags: list[str] = []
    for key, value in settings.items():
        name = key.replace("_", "-")
        if key in ("proxy_headers", "access_log"):
            flags.append(f"--{name}" if value else f"--no-{name}")
        else:
            flags += [f"--{name}", str(value).lower() if isinstance(value, bool) else str(value)]
    return flags


def daphne_command(port: int) -> list[str]:
    from deploy.cluster import worker_command

    return worker_command(port)


def uvicorn_command(ws: str) -> Callable[[int], list[str]]:
    def command(port: int) -> list[str]:
        return [
            sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port),
            "--ws", ws, *uvicorn_flags(UVICORN_SETTINGS), "project.asgi:application",
        ]  # fmt: skip

    return command


def going_away_command(port: int) -> list[str]:
    return [sys.executable, "-m", "bench.servers", "serve", "--port", str(port)]


@dataclass(frozen=True)
class Variant:
    name: str
    about: str
    command: Callable[[int], list[str]]


VARIANTS = {
    v.name: v
    for v in (
        Variant("daphne", "deploy.cluster.worker_command", daphne_command),
        Variant("uvicorn-sansio", "--ws websockets-sansio", uvicorn_command("websockets-sansio")),
        Variant("uvicorn-wsproto", "--ws wsproto", uvicorn_command("wsproto")),
        Variant("uvicorn-1001", "websockets-sansio, 1001 on SIGTERM", going_away_command),
    )
}


# --- the worker under test ------------------------------------------------------------


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads) so far."""
    with open(f"/proc/{pid}/stat") as f:
        # The command name, in parentheses, may hold spaces: count after it.
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Worker:
    """One worker of a variant on BASE_PORT, in its own session, its output to a log."""

    def __init__(self, variant: Variant, tag: str) -> None:
        from deploy.cluster import worker_env

        self.port = BASE_PORT
        env.LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.log_path = env.LOG_DIR / f"servers-{variant.name}-{tag}.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                variant.command(self.port),
                env=worker_env(env.base_env(**LAYER_ENV)),
                cwd=env.ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    async def healthy(self) -> None:
        from deploy.cluster import wait_healthy

        if await asyncio.to_thread(wait_healthy, self.port, 60) is None:
            self.stop()
            raise RuntimeError(f"worker did not come up:\n{self.log_path.read_text()[-3000:]}")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss_mb(self) -> float:
        return env.rss_mb(self.pid)

    def cpu_s(self) -> float:
        return cpu_s(self.pid)

    async def terminate(self, timeout_s: float = 60) -> tuple[float, int | None]:
        """SIGTERM; (seconds until the process exited, its return code)."""
        started = time.time()
        self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(self.proc.wait, timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return float("inf"), None
        return time.time() - started, self.proc.returncode

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log_problems(self) -> list[str]:
        """Tracebacks, errors and Uvicorn's forced cancels in the worker's log."""
        marks = ("Traceback", "ERROR", "Error", "Exception inside application", "Cancel ")
        text = self.log_path.read_text(errors="replace")
        return [line[:160] for line in text.splitlines() if any(m in line for m in marks)]


def group_memberships() -> int:
    """
    Channels in groups, over every group of the core channel layer in Redis
    (0 on pub/sub, whose groups are subscriptions of the worker's connection).
    """
    import redis

    r = redis.Redis.from_url(env.BENCH_REDIS_URL)
    keys = list(r.scan_iter(match="asgi:group:*", count=1000))
    pipe = r.pipeline(transaction=False)
    for key in keys:
        pipe.zcard(key)
    return sum(pipe.execute())


# --- the client process: driver sockets -------------------------------------------------


class DriverSocket:
    """One signed-in driver app: reads everything, answers barriers, notes its close."""

    def __init__(self, ws, lat: float, lng: float) -> None:
        self.ws = ws
        self.lat, self.lng = lat, lng
        self.pong: asyncio.Future | None = None
        self.closed_at: float | None = None
        self.close_code: int | None = None
        self.close_reason = ""
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        import websockets

        try:
            async for raw in self.ws:
                if self.pong is not None and json.loads(raw).get("type") == "pong":
                    self.pong.set_result(time.perf_counter())
                    self.pong = None
        except websockets.ConnectionClosed:
            pass
        # Wall-clock time, so the parent can age it from its SIGTERM.
        self.closed_at = time.time()
        # None if no close frame came: the client reports 1006.
        self.close_code = self.ws.close_code if self.ws.close_code is not None else 1006
        self.close_reason = self.ws.close_reason or ""
        if self.pong is not None and not self.pong.done():
            self.pong.set_exception(ConnectionError(f"closed {self.close_code}"))


class DriverClients:
    """The client process's side: what each command on stdin does."""

    def __init__(self) -> None:
        self.sockets: list[DriverSocket] = []

    async def connect(self, port: int, drivers: list[list], at_once: int = 64) -> dict:
        """Open a socket per driver [pk, token, lat, lng], 64 handshakes at a time."""
        import websockets

        sem = asyncio.Semaphore(at_once)
        failures: list[str] = []

        async def one(pk: int, token: str, lat: float, lng: float) -> DriverSocket | None:
            async with sem:
                for attempt in range(3):
                    try:
                        ws = await websockets.connect(
                            f"ws://127.0.0.1:{port}/ws/driver/",
                            additional_headers={"Authorization": f"Bearer {token}"},
                            open_timeout=120,
                            ping_interval=None,
                            compression=None,
                            max_queue=None,
                        )
                        hello = json.loads(await asyncio.wait_for(ws.recv(), 60))
                        if hello.get("type") != "connection_established":
                            raise RuntimeError(f"driver {pk}: {hello}")
                        return DriverSocket(ws, lat, lng)
                    except Exception as exc:  # noqa: BLE001 - counted
                        if attempt == 2:
                            failures.append(repr(exc)[:200])
                        await asyncio.sleep(1 + attempt)
            return None

        started = time.perf_counter()
        opened = await asyncio.gather(*(one(*d) for d in drivers))
        self.sockets += [s for s in opened if s is not None]
        return {
            "connected": sum(s is not None for s in opened),
            "seconds": time.perf_counter() - started,
            "failures": len(failures),
            "errors": failures[:3],
        }

    async def barrier(self, timeout_s: float = 120) -> dict:
        """
        A ping on every socket, then wait for every pong. A consumer handles
        its socket's messages in order, so after its pong every report sent
        before has been handled.
        """
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        waits = []
        for s in self.sockets:
            if s.closed_at is None:
                s.pong = loop.create_future()
                waits.append(s.pong)
                await s.ws.send('{"type": "ping"}')
        done = await asyncio.wait_for(asyncio.gather(*waits, return_exceptions=True), timeout_s)
        return {
            "seconds": time.perf_counter() - started,
            "failed": sum(isinstance(d, BaseException) for d in done),
        }

    async def stream(self, rate_per_socket: float, seconds: float) -> dict:
        """
        Every socket sends location_update at `rate_per_socket`, the sockets
        spread evenly over the period; a fixed schedule whatever the worker
        does (the sends only go into the kernel's buffer).
        """
        period = 1 / rate_per_socket
        start = time.perf_counter() + 0.1
        end = start + seconds
        n = len(self.sockets)
        sent = 0
        late_max = 0.0

        async def one(i: int, s: DriverSocket) -> None:
            nonlocal sent, late_max
            due = start + i * period / n
            seq = 0
            while due < end and s.closed_at is None:
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                late_max = max(late_max, -delay)
                seq += 1
                report = {
                    "type": "location_update",
                    # Moving a little, as a driver does.
                    "latitude": round(s.lat + (seq % 100) * 1e-5, 6),
                    "longitude": round(s.lng, 6),
                    "heading": 90.0,
                    "speed": 12.5,
                }
                await s.ws.send(json.dumps(report))
                sent += 1
                due += period

        await asyncio.gather(*(one(i, s) for i, s in enumerate(self.sockets)))
        return {"sent": sent, "seconds": time.perf_counter() - start, "late_max_s": late_max}

    async def closes(self, wait_s: float) -> dict:
        """Wait until the server has closed every socket (or wait_s): codes and times."""
        deadline = time.perf_counter() + wait_s
        while time.perf_counter() < deadline and any(s.closed_at is None for s in self.sockets):
            await asyncio.sleep(0.05)
        closed = [s for s in self.sockets if s.closed_at is not None]
        return {
            "codes": dict(Counter(str(s.close_code) for s in closed)),
            "reasons": sorted({s.close_reason for s in closed})[:5],
            "times": sorted(s.closed_at for s in closed),
            "open": len(self.sockets) - len(closed),
        }

    async def quit(self) -> dict:
        await asyncio.gather(
            *(asyncio.wait_for(s.ws.close(), 5) for s in self.sockets), return_exceptions=True
        )
        for s in self.sockets:
            s.reader.cancel()
        return {}


async def client_main() -> None:
    """`python -m bench.servers clients`: one JSON command a line in, one answer a line out."""
    env.raise_fd_limit()
    clients = DriverClients()
    while True:
        line = await asyncio.to_thread(sys.stdin.readline)
        if not line:
            await clients.quit()
            return
        command = json.loads(line)
        op = command.pop("op")
        try:
            answer = await getattr(clients, op)(**command)
        except Exception as exc:  # noqa: BLE001 - reported to the parent
            answer = {"error": repr(exc)}
        print(json.dumps(answer), flush=True)
        if op == "quit":
            return


class ClientProcess:
    """The parent's side of the client process."""

    async def start(self, tag: str) -> None:
        self.log = open(env.LOG_DIR / f"servers-clients-{tag}.log", "wb")  # noqa: SIM115
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.servers", "clients",
            cwd=env.ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
            limit=2**24,  # the close times of 5,000 sockets come in one line
        )  # fmt: skip

    async def call(self, op: str, timeout_s: float = 600, **args) -> dict:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write((json.dumps({"op": op, **args}) + "\n").encode())
        await self.proc.stdin.drain()
        answer = json.loads(await asyncio.wait_for(self.proc.stdout.readline(), timeout_s))
        if "error" in answer:
            raise RuntimeError(f"clients {op}: {answer['error']}")
        return answer

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await self.call("quit", timeout_s=30)
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        await self.proc.wait()
        self.log.close()


def driver_rows(cast: env.Cast, n: int) -> list[list]:
    return [[d.pk, d.token, d.lat, d.lng] for d in cast.drivers[:n]]


# --- the measurements -----------------------------------------------------------------


async def measure_ping(variant: Variant, rate: float, seconds: float, sockets: int) -> dict:
    """As bench.scenarios.ping_ratio: the consumer (warm-up run first), then the echo server."""
    import websockets

    from bench.clients import open_many
    from bench.loadgen import Recorder, open_loop

    worker = Worker(variant, "ping")
    try:
        await worker.healthy()
        app = await open_many(
            [(f"ws://127.0.0.1:{worker.port}/ws/ride/ping-{i}/", None) for i in range(sockets)]
        )
        bare = [
            await websockets.connect(
                f"ws://127.0.0.1:{ECHO_PORT}/", compression=None, ping_interval=None
            )
            for _ in range(sockets)
        ]
        n = int(rate * seconds)

        async def run(send_one: Callable[[int], Awaitable[None]]) -> Recorder:
            rec = Recorder("ping")
            locks = [asyncio.Lock() for _ in range(sockets)]

            async def fire(i: int, due: float) -> None:
                # One ping in flight per socket, as an app does.
                async with locks[i % sockets]:
                    try:
                        await send_one(i % sockets)
                        rec.ok(due)
                    except Exception as exc:  # noqa: BLE001 - counted
                        rec.fail(repr(exc))

            await open_loop(rate, n, fire)
            return rec

        async def through_consumer(i: int) -> None:
            await app[i].send({"type": "ping"})
            await app[i].wait({"pong"}, 10)

        async def through_echo(i: int) -> None:
            await bare[i].send('{"type": "ping"}')
            await bare[i].recv()

        await run(through_consumer)  # warm-up
        consumer = await run(through_consumer)
        echo = await run(through_echo)
        for s in app:
            await s.close()
        for ws in bare:
            await ws.close()
    finally:
        worker.stop()
    c, e = consumer.hist, echo.hist
    return {
        "ping_p50": c.percentile_ms(50),
        "ping_p99": c.percentile_ms(99),
        "echo_p50": e.percentile_ms(50),
        "echo_p99": e.percentile_ms(99),
        "ratio_p50": c.percentile_ms(50) / e.percentile_ms(50),
        "ratio_p99": c.percentile_ms(99) / e.percentile_ms(99),
        "ping_failures": len(consumer.errors),
        "ping_detail": f"consumer {c.summary()}; echo {e.summary()}",
    }


async def measure_cpu(
    variant: Variant, cast: env.Cast, sockets: int, rate: float, seconds: float, idle_s: float
) -> dict:
    """The worker's CPU per 1,000 location reports, net of idle sockets and barriers."""
    await asyncio.to_thread(env.reset_rides)
    from django.conf import settings

    writer_s = settings.LOCATION_PERSIST_INTERVAL_S + 1
    worker = Worker(variant, "cpu")
    clients = ClientProcess()
    try:
        await worker.healthy()
        await clients.start(f"{variant.name}-cpu")
        opened = await clients.call("connect", port=worker.port, drivers=driver_rows(cast, sockets))
        await clients.call("barrier")  # the connects' work is over
        await asyncio.sleep(2)
        # What the open sockets cost doing nothing (Daphne's sweeps, pings).
        c0, t0 = worker.cpu_s(), time.perf_counter()
        await asyncio.sleep(idle_s)
        c1, t1 = worker.cpu_s(), time.perf_counter()
        idle_rate = (c1 - c0) / (t1 - t0)
        # What one barrier (a ping and pong per socket) costs.
        await clients.call("barrier")
        c2, t2 = worker.cpu_s(), time.perf_counter()
        barrier_cpu = max(0.0, (c2 - c1) - idle_rate * (t2 - t1))
        streamed = await clients.call("stream", rate_per_socket=rate, seconds=seconds)
        last = await clients.call("barrier")
        # The position writer's last batch goes to the database up to
        # LOCATION_PERSIST_INTERVAL_S after the last report.
        await asyncio.sleep(writer_s)
        c3, t3 = worker.cpu_s(), time.perf_counter()
    finally:
        await clients.stop()
        worker.stop()
    gross = c3 - c2
    net = gross - barrier_cpu - idle_rate * (t3 - t2)
    per_k = 1000 / max(1, streamed["sent"])
    return {
        "cpu_connected": opened["connected"],
        "cpu_sent": streamed["sent"],
        "cpu_rate": streamed["sent"] / streamed["seconds"],
        "cpu_idle_pct": idle_rate * 100,
        "cpu_per_k_net": net * per_k,
        "cpu_per_k_gross": gross * per_k,
        "cpu_busy_pct": (c3 - c2) / (t3 - t2) * 100,
        "cpu_detail": (
            f"{opened['connected']} sockets ({opened['failures']} failed), "
            f"{streamed['sent']} reports in {streamed['seconds']:.1f} s "
            f"(client late by up to {streamed['late_max_s'] * 1000:.0f} ms); worker CPU "
            f"{gross:.2f} s over {t3 - t2:.1f} s, idle {idle_rate * 100:.1f} % of a core, "
            f"barrier {barrier_cpu:.2f} s, last barrier {last['seconds']:.2f} s"
        ),
    }


async def measure_idle_and_sigterm(variant: Variant, cast: env.Cast, n: int) -> dict:
    """RSS with n idle driver sockets, then SIGTERM with all of them open."""
    await asyncio.to_thread(env.reset_rides)
    worker = Worker(variant, "idle")
    clients = ClientProcess()
    try:
        await worker.healthy()
        before = worker.rss_mb()
        await clients.start(f"{variant.name}-idle")
        opened = await clients.call("connect", port=worker.port, drivers=driver_rows(cast, n))
        await asyncio.sleep(5)
        after = worker.rss_mb()
        # Once more after a round of the server's keepalive pings (20 s).
        await asyncio.sleep(20)
        after_25 = worker.rss_mb()
        groups = await asyncio.to_thread(group_memberships)
        sigterm_at = time.time()
        exit_task = asyncio.create_task(worker.terminate())
        closes = await clients.call("closes", wait_s=60)
        exit_s, returncode = await exit_task
        groups_left = await asyncio.to_thread(group_memberships)
    finally:
        await clients.stop()
        worker.stop()
    times = [t - sigterm_at for t in closes["times"]]
    problems = worker.log_problems()
    connected = opened["connected"]
    return {
        "idle_connected": connected,
        "connect_s": opened["seconds"],
        "rss_before": before,
        "rss_after": after,
        "rss_after_25s": after_25,
        "kb_per_socket": (after - before) * 1024 / max(1, connected),
        "close_codes": closes["codes"],
        "close_reasons": closes["reasons"],
        "still_open": closes["open"],
        "closed_p50_s": statistics.median(times) if times else float("nan"),
        "closed_max_s": max(times) if times else float("nan"),
        "exit_s": exit_s,
        "returncode": returncode,
        "groups_before": groups,
        "groups_left": groups_left,
        "log_problems": len(problems),
        "log_sample": problems[:4],
        "idle_detail": f"{opened['failures']} connect failures {opened['errors']}",
    }


# --- Uvicorn with 1001 on SIGTERM, from its public API -----------------------------------


class TrackedSend:
    """
    One socket's `send`, as the consumer gets it: remembers the socket in
    `registry` once accepted, and can close it with any code. After such a
    close the consumer's late sends are dropped (Uvicorn refuses a send after
    `websocket.close`). Slots only and held weakly by the registry: a few
    hundred bytes a socket, gone with the consumer.
    """

    __slots__ = ("__weakref__", "closed_here", "registry", "send")

    def __init__(self, send, registry: weakref.WeakSet) -> None:
        self.send = send
        self.registry = registry
        self.closed_here = False

    async def __call__(self, message) -> None:
        if self.closed_here:
            return
        if message["type"] == "websocket.accept":
            self.registry.add(self)
        elif message["type"] == "websocket.close":
            self.registry.discard(self)
        await self.send(message)

    async def close(self, code: int, reason: str) -> None:
        """As the consumer's own close; the server hands it websocket.disconnect."""
        self.closed_here = True
        self.registry.discard(self)
        with contextlib.suppress(Exception):  # the client may be gone already
            await self.send({"type": "websocket.close", "code": code, "reason": reason})


class GoingAway:
    """
    ASGI middleware: every accepted WebSocket is remembered, so that a
    shutdown can close them all with 1001 the way a consumer closes its own
    socket. Uvicorn takes any valid code from the application (autobahn
    under Daphne refuses 1001, hence project/asgi.py's hook). A plain
    function returning the application's coroutine, so it adds no coroutine
    frame per socket (Uvicorn must then be told the interface is ASGI 3).
    """

    def __init__(self, app) -> None:
        self.app = app
        self.open: weakref.WeakSet[TrackedSend] = weakref.WeakSet()

    def __call__(self, scope, receive, send):
        if scope["type"] == "websocket":
            send = TrackedSend(send, self.open)
        return self.app(scope, receive, send)

    async def close_all(self, code: int, reason: str) -> int:
        sockets = list(self.open)
        await asyncio.gather(*(s.close(code, reason) for s in sockets))
        return len(sockets)


def serve_main(argv: list[str]) -> None:
    """
    `python -m bench.servers serve --port P [--ws IMPL]`: Uvicorn with
    UVICORN_SETTINGS, closing sockets with 1001 on SIGTERM. Public API
    only: uvicorn.Config, uvicorn.Server and its shutdown() coroutine.
    """
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m bench.servers serve")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--ws", default="websockets-sansio")
    args = parser.parse_args(argv)

    from project.asgi import application

    app = GoingAway(application)

    class GoingAwayServer(uvicorn.Server):
        async def shutdown(self, sockets=None) -> None:
            # 1001 to every socket first. Uvicorn's own shutdown then stops
            # listening, closes each connection (whose close frame is sent,
            # so no 1012), and waits up to timeout_graceful_shutdown for the
            # consumers' disconnect, as it does without this.
            await app.close_all(CLOSE_GOING_AWAY, "server restarting")
            await super().shutdown(sockets=sockets)

    config = uvicorn.Config(
        app, host=args.host, port=args.port, ws=args.ws, interface="asgi3", **UVICORN_SETTINGS
    )
    GoingAwayServer(config).run()


# --- the run -------------------------------------------------------------------------


@dataclass
class Row:
    variant: Variant
    figures: dict = field(default_factory=dict)


def versions() -> str:
    found = []
    for name in ("daphne", "twisted", "autobahn", "uvicorn", "wsproto", "websockets", "channels"):
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            found.append(f"{name} -")
    return ", ".join(found)


def table(rows: list[Row], idle_n: int) -> str:
    def fmt_codes(codes: dict) -> str:
        return " ".join(f"{k}x{v}" for k, v in sorted(codes.items(), key=lambda kv: -kv[1]))

    head = (
        "| server | idle RSS before -> after MB | KB/socket | CPU s / 1k reports (net; gross) "
        "| idle CPU % | SIGTERM close codes | all closed by s | exit s (rc) | groups left "
        "| ping p50/p99 ms | echo p50/p99 ms | ratio p50/p99 |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for row in rows:
        f = row.figures
        open_note = f", {f['still_open']} open" if f["still_open"] else ""
        groups = f"{f['groups_left']:,} of {f['groups_before']:,}" if f["groups_before"] else "-"
        lines.append(
            f"| {row.variant.name} "
            f"| {f['rss_before']:.0f} -> {f['rss_after']:.0f} ({f['idle_connected']:,}) "
            f"| {f['kb_per_socket']:.1f} "
            f"| {f['cpu_per_k_net']:.2f}; {f['cpu_per_k_gross']:.2f} "
            f"| {f['cpu_idle_pct']:.1f} "
            f"| {fmt_codes(f['close_codes'])}{open_note} "
            f"| {f['closed_max_s']:.2f} "
            f"| {f['exit_s']:.2f} ({f['returncode']}) "
            f"| {groups} "
            f"| {f['ping_p50']:.2f} / {f['ping_p99']:.2f} "
            f"| {f['echo_p50']:.2f} / {f['echo_p99']:.2f} "
            f"| {f['ratio_p50']:.2f} / {f['ratio_p99']:.2f} |"
        )  # fmt: skip
    verdicts = []
    for row in rows:
        f = row.figures
        rss_ok = f["idle_connected"] >= idle_n and f["rss_after"] <= 300
        ping_ok = f["ratio_p50"] <= 2.0
        verdicts.append(
            f"{row.variant.name}: {idle_n:,} idle sockets <= 300 MB "
            f"{'PASS' if rss_ok else 'MISS'} ({f['rss_after']:.0f} MB; "
            f"{f['rss_after_25s']:.0f} MB 20 s later); ping p50 <= 2x echo "
            f"{'PASS' if ping_ok else 'MISS'} ({f['ratio_p50']:.2f}x)"
        )
    return "\n".join(lines + [""] + verdicts)


async def run(args) -> list[Row]:
    from bench.__main__ import cpu_check, machine

    print(f"servers: {machine()}", flush=True)
    print(f"servers: {versions()}; channel layer {LAYER_ENV['CHANNEL_LAYER_BACKEND']}", flush=True)
    print(f"servers: CPU check {cpu_check():.2f} s; load average {_load()}", flush=True)
    print(f"servers: logs in {env.LOG_DIR}; fresh database and Redis; seeding...", flush=True)
    await asyncio.to_thread(env.recreate_database)
    env.flush_redis()
    cast = await asyncio.to_thread(env.seed, max(args.idle, args.cpu_sockets), 10)
    echo = subprocess.Popen(
        [sys.executable, "-m", "bench.echo", str(ECHO_PORT)],
        cwd=env.ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    rows = []
    try:
        await asyncio.to_thread(echo.stdout.readline)  # READY
        for name in args.variants:
            variant = VARIANTS[name]
            row = Row(variant)
            rows.append(row)
            started = time.perf_counter()
            print(f"servers: {name} ({variant.about})", flush=True)
            row.figures.update(
                await measure_ping(variant, args.ping_rate, args.ping_seconds, args.ping_sockets)
            )
            print(f"  ping  {row.figures['ping_detail']}", flush=True)
            row.figures.update(
                await measure_cpu(
                    variant, cast, args.cpu_sockets, args.report_rate, args.cpu_seconds, 10
                )
            )
            print(f"  cpu   {row.figures['cpu_detail']}", flush=True)
            row.figures.update(await measure_idle_and_sigterm(variant, cast, args.idle))
            f = row.figures
            print(
                f"  idle  {f['idle_connected']} sockets in {f['connect_s']:.0f} s, RSS "
                f"{f['rss_before']:.0f} -> {f['rss_after']:.0f} MB ({f['rss_after_25s']:.0f} "
                f"20 s later) {f['idle_detail']}; SIGTERM: codes {f['close_codes']} "
                f"{f['close_reasons']}, closed p50 {f['closed_p50_s']:.2f} / max "
                f"{f['closed_max_s']:.2f} s, exit {f['exit_s']:.2f} s rc {f['returncode']}, "
                f"groups {f['groups_before']} -> {f['groups_left']}, log problems "
                f"{f['log_problems']} {f['log_sample']}  [{time.perf_counter() - started:.0f} s; "
                f"load {_load()}]",
                flush=True,
            )
    finally:
        echo.terminate()
        echo.wait()
    return rows


def _load() -> str:
    return " ".join(open("/proc/loadavg").read().split()[:3])


def main() -> None:
    if sys.argv[1:2] == ["clients"]:
        asyncio.run(client_main())
        return
    if sys.argv[1:2] == ["serve"]:
        serve_main(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(
        prog="python -m bench.servers", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--layer", choices=["core", "pubsub"], default="core")
    parser.add_argument("--idle", type=int, default=5000, help="idle driver sockets")
    parser.add_argument("--cpu-sockets", type=int, default=500)
    parser.add_argument("--report-rate", type=float, default=1.0, help="reports/s per socket")
    parser.add_argument("--cpu-seconds", type=float, default=20)
    parser.add_argument("--ping-rate", type=float, default=200)
    parser.add_argument("--ping-seconds", type=float, default=10)
    parser.add_argument("--ping-sockets", type=int, default=20)
    args = parser.parse_args()
    LAYER_ENV["CHANNEL_LAYER_BACKEND"] = args.layer
    env.raise_fd_limit()
    env.setup_django()
    started = time.perf_counter()
    rows = asyncio.run(run(args))
    print(f"\n=== servers ({time.perf_counter() - started:.0f} s) ===")
    print(table(rows, args.idle))
    env.LOG_DIR.mkdir(parents=True, exist_ok=True)
    (env.LOG_DIR / "servers-results.json").write_text(
        json.dumps([{"variant": r.variant.name, **r.figures} for r in rows], indent=1, default=str)
    )


if __name__ == "__main__":
    main()
