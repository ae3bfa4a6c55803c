"""
The fuzz tier's real-socket share: two real workers (PostgreSQL, Redis),
every socket and every REST operation sent generated hostile input over
real TCP, across both workers. Every frame and call is refused with a typed
error, nothing is written, every socket still answers `ping`, a page of another origin opens no
socket (with a token or the console cookie), clients that drop the
connection mid-reply are let go quietly, and neither worker's log holds an
ERROR line or a traceback. The in-process tier
(tests/fuzz/) carries most of the messages; this proves the same through
Daphne, Redis and two processes.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import pytest
import requests
import websockets
from hypothesis import given

from deploy.cluster import wait_healthy
from tests.cluster.test_two_workers import two_workers
from tests.e2e.leaving import http_get, http_send, leave_mid_burst, reset_after
from tests.fuzz.conftest import (  # noqa: F401
    BATCH,
    SENT,
    World,
    batches,
    database_state,
    fuzz,
    runner,
    world,
)
from tests.fuzz.rest_strategies import Call, calls
from tests.fuzz.strategies import Frame, socket_frames
from tests.fuzz.test_socket_fuzz import REFUSED, SOCKETS

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.server,
    pytest.mark.django_db(transaction=True),
]

SOCKET_QUOTA = 800
REST_QUOTA = 400


def worker_errors(tmp_path) -> list[str]:
    return [
        f"{log.name}: {line}"
        for log in sorted(tmp_path.glob("worker-*.log"))
        for line in log.read_text(errors="replace").splitlines()
        if " ERROR " in line or line.startswith("Traceback")
    ]


async def open_all(world: World, ports: list[int]) -> dict:
    """Every app socket, alternating between the workers, greetings read."""
    opened = {}
    for i, (name, path, who, consumer) in enumerate(SOCKETS):
        url = f"ws://127.0.0.1:{ports[i % 2]}{path}"
        sock = await websockets.connect(
            url,
            additional_headers={"Authorization": f"Bearer {world.tokens[who]}"},
            max_size=None,
        )
        opened[name] = (sock, consumer)
        await quiet(sock)
    return opened


async def quiet(sock, wait: float = 0.5) -> None:
    try:
        async with asyncio.timeout(wait):
            while True:
                await sock.recv()
    except TimeoutError:
        pass


async def exchange(sock, frame: Frame) -> dict:
    await sock.send(frame.text if frame.text is not None else frame.data)
    async with asyncio.timeout(15):
        return json.loads(await sock.recv())


async def pong(sock) -> None:
    """The very next message after a ping is its pong."""
    await sock.send(json.dumps({"type": "ping"}))
    async with asyncio.timeout(15):
        assert json.loads(await sock.recv())["type"] == "pong"


@pytest.fixture
def workers(tmp_path):
    """Two workers with no message budget: this fuzzes parsing (floods: test_floods_*)."""
    with two_workers(tmp_path, WS_MESSAGE_RATE="1000000", WS_MESSAGE_BURST="1000000") as started:
        yield started


def test_two_workers_refuse_every_fuzzed_frame_and_call(workers, world, runner, tmp_path):
    ports = workers["ports"]
    before = database_state()
    opened = runner.run(open_all(world, ports))
    names = sorted(opened)
    codes: Counter[str] = Counter()
    strategies = {
        name: socket_frames(name, sorted(consumer.handlers), [world.others_ride_id, "fz-none"])
        for name, (_, consumer) in opened.items()
    }
    per_socket = SOCKET_QUOTA // len(names) // BATCH

    def fuzz_one(sock, frames) -> None:
        @fuzz(per_socket)
        @given(batch=batches(frames))
        def some(batch: list[Frame]) -> None:
            for frame in batch:
                reply = runner.run(exchange(sock, frame))
                SENT[("two_workers", "postgresql")] += 1
                assert reply["type"] == "error" and reply["code"] in REFUSED, (frame, reply)
                codes[reply["code"]] += 1

        some()

    for name in names:
        fuzz_one(opened[name][0], strategies[name])

    session = requests.Session()

    @fuzz(REST_QUOTA // BATCH)
    @given(batch=batches(calls((("ride_id", (world.others_ride_id,)),))))
    def rest(batch: list[Call]) -> None:
        for i, call in enumerate(batch):
            headers = {"Content-Type": call.content_type} if call.content_type else {}
            if call.token in world.tokens:
                headers["Authorization"] = f"Bearer {world.tokens[call.token]}"
            url = f"http://127.0.0.1:{ports[i % 2]}{call.path}"
            response = session.request(
                call.endpoint.method,
                url + (f"?{call.query}" if call.query else ""),
                data=call.body,
                headers=headers,
                timeout=15,
            )
            SENT[("two_workers", "postgresql")] += 1
            assert response.status_code < 500, (call, response.status_code, response.text[:300])
            if call.endpoint.writes:
                assert response.status_code >= 400, (call, response.status_code)

    rest()

    for sock, _ in opened.values():
        runner.run(pong(sock))
        runner.run(sock.close())
    assert SENT[("two_workers", "postgresql")] >= per_socket * BATCH * len(names) + REST_QUOTA
    assert database_state() == before
    assert {"invalid_json", "invalid_request", "message_too_deep", "message_too_large"} <= set(
        codes
    ), codes
    for i, path in enumerate(
        [
            "/ws/ride/fz-ride/",
            "/ws/driver/",
            "/ws/passenger/",
            "/ws/caregiver/",
            "/ws/console/",
            "/ws/nowhere/",
        ]
    ):
        assert runner.run(foreign_handshake(ports[i % 2], path, world)) == 403, path
    # Clients that leave mid-reply, on both workers.
    for port in ports:
        for path, who in (("/ws/ride/fz-ride/", "passenger"), ("/ws/driver/", "driver")):
            url = f"ws://127.0.0.1:{port}{path}?token={world.tokens[who]}"
            for first in (False, True):
                runner.run(leave_mid_burst(url, [{"type": "ping"}] * 50, first))
        for _ in range(10):
            reset_after(port, http_get("/api/openapi.json"), 0)
            reset_after(port, http_send("PATCH", "/api/auth/profile/", {"notes": "x"}), 0)
    assert wait_healthy(ports[0], 10) and wait_healthy(ports[1], 10)
    assert worker_errors(tmp_path) == []


async def foreign_handshake(port: int, path: str, world: World) -> int:
    """A page of another origin, with a token and the console cookie: the HTTP status."""
    try:
        sock = await websockets.connect(
            f"ws://127.0.0.1:{port}{path}",
            origin="https://evil.example",
            additional_headers={
                "Authorization": f"Bearer {world.tokens['passenger']}",
                "Cookie": world.console_cookie.decode(),
            },
        )
    except websockets.InvalidStatus as refused:
        return refused.response.status_code
    await sock.close()
    return 101
