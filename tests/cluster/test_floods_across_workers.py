"""
Floods against two real workers sharing PostgreSQL and Redis: a flooding
socket on one is closed with 4429 while users on both are answered, the
open-socket caps are one count over both workers, and a client that never
reads is closed. The same on the embedded server: tests/e2e/test_floods.py.
"""

from __future__ import annotations

import asyncio
import json
import os

import pytest
import websockets
from asgiref.sync import sync_to_async
from django.conf import settings

from deploy.cluster import database_url, start_worker, stop_all, wait_healthy
from project.common.socket_limits import CLOSE_NOT_READING, CLOSE_TOO_MANY
from tests.cluster.test_two_workers import free_port
from tests.conftest import token_for
from tests.floods import (
    bearer,
    flood_while_others_are_answered,
    never_reads,
    next_of,
    opened_when_room,
)

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.server,
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def two_workers(tmp_path):
    """start(**env): workers A and B on the test database and Redis; their URLs and logs."""
    started: list = []

    def start(**overrides: str) -> dict:
        env = {
            **os.environ,
            "DATABASE_URL": database_url(settings.DATABASES["default"]),
            "REDIS_URL": settings.REDIS_URL,
            "CHANNEL_PREFIX": settings.CHANNEL_PREFIX,
            # The counts of this test alone, in a Redis shared with others.
            "CACHE_KEY_PREFIX": settings.CACHE_KEY_PREFIX,
            "LOCATION_STORE": "redis",
            "DEBUG": "1",
            "PYTHONUNBUFFERED": "1",
            "SHUTDOWN_GRACE_S": "3",
            **overrides,
        }
        ports = [free_port(), free_port()]
        logs = [tmp_path / f"worker-{port}.log" for port in ports]
        procs = [start_worker(port, env, log) for port, log in zip(ports, logs, strict=True)]
        started.extend(procs)
        for port, proc, log in zip(ports, procs, logs, strict=True):
            if wait_healthy(port, timeout_s=60) is None:
                pytest.fail(f"worker :{port} (rc {proc.poll()}) never became healthy:\n"
                            f"{log.read_text(errors='replace')}")  # fmt: skip
        return {
            "ws": [f"ws://127.0.0.1:{port}" for port in ports],
            "http": [f"http://127.0.0.1:{port}" for port in ports],
            "logs": logs,
        }

    yield start
    stop_all(started, 15)


async def test_a_flood_on_one_worker_is_closed_while_users_on_both_are_answered(
    two_workers, make_user, make_driver
):
    """
    An unauthenticated ping flood on A, then a driver's position flood on B:
    each is told rate_limited and closed with 4429, while a passenger on
    each worker is answered (socket and REST) throughout.
    """
    w = await asyncio.to_thread(two_workers)
    riders = [await sync_to_async(make_user)("passenger") for _ in range(2)]
    driver = await sync_to_async(make_driver)(-26.2, 28.05)
    tokens = [await sync_to_async(token_for)(u) for u in riders]
    others = [(w["ws"][i], w["http"][i], tokens[i]) for i in range(2)]
    await flood_while_others_are_answered(f"{w['ws'][0]}/ws/ride/fl-1/", {"type": "ping"}, others)
    position = {"type": "location_update", "latitude": -26.2, "longitude": 28.05}
    await flood_while_others_are_answered(
        f"{w['ws'][1]}/ws/driver/",
        position,
        others,
        headers=bearer(await sync_to_async(token_for)(driver)),
    )
    errors = [
        line for log in w["logs"] for line in log.read_text().splitlines() if " ERROR " in line
    ]
    assert not errors


async def refusal(ws) -> tuple[dict, int]:
    error = await next_of(ws, "error")
    with pytest.raises(websockets.ConnectionClosed):
        await ws.recv()
    return error, ws.close_code


async def test_open_socket_caps_are_counted_over_both_workers(two_workers, make_user):
    """
    A user at a cap of two with a socket on each worker is refused a third
    on either; the address at a cap of three likewise; a socket closed on
    one worker makes room on the other.
    """
    w = await asyncio.to_thread(two_workers, WS_MAX_SOCKETS_PER_USER="2", WS_MAX_SOCKETS_PER_IP="3")
    user = await sync_to_async(make_user)("passenger")
    mine = bearer(await sync_to_async(token_for)(user))
    a, b = w["ws"]
    on_a = await websockets.connect(f"{a}/ws/passenger/", additional_headers=mine)
    on_b = await websockets.connect(f"{b}/ws/passenger/", additional_headers=mine)
    for ws in (on_a, on_b):
        await next_of(ws, "connection_established")
    async with websockets.connect(f"{a}/ws/ride/u-3/", additional_headers=mine) as third:
        error, code = await refusal(third)
        assert (error["code"], error["limit"], code) == ("too_many_sockets", 2, CLOSE_TOO_MANY)
    anonymous = await websockets.connect(f"{b}/ws/ride/anon-1/")
    await next_of(anonymous, "connection_established")
    async with websockets.connect(f"{a}/ws/ride/anon-2/") as fourth:
        error, code = await refusal(fourth)
        assert (error["code"], error["limit"], code) == ("too_many_sockets", 3, CLOSE_TOO_MANY)
    await on_b.close()
    again = await opened_when_room(f"{a}/ws/ride/u-4/", mine)
    await again.send(json.dumps({"type": "ping"}))
    await next_of(again, "pong")
    for ws in (on_a, anonymous, again):
        await ws.close()


async def test_a_client_that_never_reads_is_closed_by_its_worker(two_workers):
    """Past WS_SEND_BUFFER_BYTES unread the socket on B is closed (4408, or dropped)."""
    w = await asyncio.to_thread(
        two_workers,
        WS_SEND_BUFFER_BYTES="65536",
        WS_MESSAGE_RATE="1000000",
        WS_MESSAGE_BURST="1000000",
    )

    def seen_closed() -> bool:
        return "closed: its client left" in w["logs"][1].read_text(errors="replace")

    code, replies = await never_reads(f"{w['ws'][1]}/ws/ride/slow-1/", seen_closed)
    assert code in (CLOSE_NOT_READING, None)
    assert replies < 200_000
