"""
Redis goes away and comes back (a Redis this test starts and stops): the
worker says so on /healthz, sockets get a typed error instead of an HTTP
500 or a silent hang, and everything works again when Redis returns, with
no restart.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
import urllib.request

import pytest
import websockets

from tests.server import free_port, running_server

pytestmark = [pytest.mark.redis, pytest.mark.server]


class Redis:
    """A redis-server of this test's own, on a free port."""

    def __init__(self, home) -> None:
        self.port, self.home = free_port(), home

    def start(self) -> None:
        subprocess.run(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--daemonize", "yes"]
            + ["--save", "", "--appendonly", "no", "--dir", str(self.home)],
            check=True,
        )
        deadline = time.monotonic() + 10
        while subprocess.run(
            ["redis-cli", "-p", str(self.port), "ping"], capture_output=True
        ).returncode:
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.1)

    def stop(self) -> None:
        subprocess.run(
            ["redis-cli", "-p", str(self.port), "shutdown", "nosave"], capture_output=True
        )


def health(server) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"{server.http}/healthz", timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


async def opened(server, path: str) -> list[dict]:
    """Open a socket and read what it says until it closes or goes quiet."""
    heard = []
    async with websockets.connect(f"{server.ws}{path}", open_timeout=10) as ws:
        try:
            async with asyncio.timeout(3):
                async for raw in ws:
                    heard.append(json.loads(raw))
        except (TimeoutError, websockets.ConnectionClosed):
            pass
        heard.append({"closed": ws.close_code})
    return heard


@pytest.fixture
def redis_and_server(tmp_path):
    if not shutil.which("redis-server"):
        pytest.fail("redis-server is not installed (apt-get install -y redis-server)")
    redis = Redis(tmp_path)
    redis.start()
    try:
        url = f"redis://127.0.0.1:{redis.port}/0"
        with running_server(
            tmp_path, logs_errors=True, REDIS_URL=url, LOCATION_STORE="redis"
        ) as server:
            yield redis, server
    finally:
        redis.stop()


async def test_an_outage_is_told_and_the_worker_recovers_by_itself(redis_and_server):
    redis, server = redis_and_server
    token = await asyncio.to_thread(server.token_for, "27821234567")
    path = f"/ws/ride/out-1/?token={token}"
    assert (await asyncio.to_thread(health, server))[0] == 200

    async with websockets.connect(f"{server.ws}{path}") as held:
        assert json.loads(await held.recv())["type"] == "connection_established"
        await asyncio.to_thread(redis.stop)

        status, body = await asyncio.to_thread(health, server)
        assert status == 503 and "channel_layer" in body["reason"]
        # A new socket: told, closed with 4503 "try again in a moment", no HTTP 500.
        heard = await opened(server, path)
        assert heard[0]["code"] == "service_unavailable" and heard[-1] == {"closed": 4503}
        # The open one: a typed error for what needs Redis, and it lives on.
        await held.send(
            json.dumps(
                {
                    "type": "find_driver",
                    "pickup_latitude": -26.2,
                    "pickup_longitude": 28.04,
                    "dropoff_latitude": -26.1,
                    "dropoff_longitude": 28.0,
                }
            )
        )
        answer = json.loads(await asyncio.wait_for(held.recv(), 15))
        assert answer["type"] == "error" and answer["code"] == "service_unavailable"
        await held.send(json.dumps({"type": "ping"}))
        assert json.loads(await asyncio.wait_for(held.recv(), 5))["type"] == "pong"

        await asyncio.to_thread(redis.start)
        deadline = time.monotonic() + 20
        while (await asyncio.to_thread(health, server))[0] != 200:
            assert time.monotonic() < deadline, "the worker did not recover"
            await asyncio.sleep(0.5)
        # The same socket books now, and hears its news again.
        await held.send(
            json.dumps(
                {
                    "type": "find_driver",
                    "pickup_latitude": -26.2041,
                    "pickup_longitude": 28.0473,
                    "dropoff_latitude": -26.1,
                    "dropoff_longitude": 28.0,
                }
            )
        )
        kinds = []
        async with asyncio.timeout(15):
            while "driver_assigned" not in kinds:
                kinds.append(json.loads(await held.recv())["type"])
        assert kinds[:2] == ["searching", "driver_assigned"]
    # No fault of the app's own: no HTTP 500 path ("Exception inside
    # application"). channels-redis logs the lost connection itself.
    assert "Exception inside application" not in server.log()
