"""
Two real worker processes sharing PostgreSQL and Redis, as behind nginx: a
passenger on one worker and a driver on the other see each other's news.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
from contextlib import contextmanager

import pytest
import websockets
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections

from deploy.cluster import ROOT, database_url, start_worker, stop_all, wait_healthy
from dispatch.broadcast import CONSOLE_GROUP
from tests.conftest import token_for

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.server,
    pytest.mark.django_db(transaction=True),
]

JHB = (-26.2041, 28.0473)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def two_workers(tmp_path, **extra_env: str):
    """Workers A and B on the test database (test_test) and the test Redis."""
    env = {
        **__import__("os").environ,
        "DATABASE_URL": database_url(settings.DATABASES["default"]),
        "REDIS_URL": settings.REDIS_URL,
        # The test database is renamed (test_...): keep this process's prefix.
        "CHANNEL_PREFIX": settings.CHANNEL_PREFIX,
        "LOCATION_STORE": "redis",
        "DEBUG": "1",
        "PYTHONUNBUFFERED": "1",
        "SHUTDOWN_GRACE_S": "3",
        **extra_env,
    }
    ports = [free_port(), free_port()]
    procs = [start_worker(port, env, tmp_path / f"worker-{port}.log") for port in ports]
    try:
        for port, proc in zip(ports, procs, strict=True):
            if wait_healthy(port, timeout_s=60) is None:
                log = (tmp_path / f"worker-{port}.log").read_text(errors="replace")
                pytest.fail(f"worker :{port} (rc {proc.poll()}) never became healthy:\n{log}")
        yield {"ports": ports, "procs": procs, "env": env}
    finally:
        stop_all(procs, 15)


@pytest.fixture
def workers(tmp_path):
    with two_workers(tmp_path) as started:
        yield started


async def recv_type(sock, wanted: str, timeout: float = 10.0) -> dict:
    """The next message of type `wanted`, skipping others."""
    async with asyncio.timeout(timeout):
        while True:
            message = json.loads(await sock.recv())
            if message.get("type") == wanted:
                return message


def bearer(user) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_for(user)}"}


async def test_passenger_and_driver_on_different_workers(
    workers, make_user, make_driver, dispatcher
):
    """
    A passenger on worker A is matched with a driver on worker B, sees B's
    positions, hears a dispatcher's reassignment, and is told 1001 when A
    shuts down.
    """
    a, b = workers["ports"]
    passenger = await sync_to_async(make_user)("passenger")
    driver = await sync_to_async(make_driver)(JHB[0] + 0.01, JHB[1])
    spare = await sync_to_async(make_driver)(JHB[0] + 0.05, JHB[1])
    p_headers = await sync_to_async(bearer)(passenger)
    d_headers = await sync_to_async(bearer)(driver)

    # The dispatcher's board listens to console.board (from any worker).
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    board = await layer.new_channel()
    await layer.group_add(CONSOLE_GROUP, board)

    async with (
        websockets.connect(f"ws://127.0.0.1:{b}/ws/driver/", additional_headers=d_headers) as drv,
        websockets.connect(
            f"ws://127.0.0.1:{a}/ws/ride/xw-1/", additional_headers=p_headers
        ) as pax,
    ):
        await recv_type(drv, "connection_established")
        await recv_type(pax, "connection_established")
        await drv.send(
            json.dumps({"type": "location_update", "latitude": JHB[0] + 0.01, "longitude": JHB[1]})
        )

        await pax.send(
            json.dumps(
                {
                    "type": "find_driver",
                    "pickup_latitude": JHB[0],
                    "pickup_longitude": JHB[1],
                    "dropoff_latitude": JHB[0] + 0.05,
                    "dropoff_longitude": JHB[1] + 0.05,
                }
            )
        )
        assigned = await recv_type(pax, "driver_assigned")
        assert assigned["driver_id"] == driver.pk
        told = await recv_type(drv, "ride_assigned")
        assert told["ride_id"] == "xw-1"

        # Positions from B reach the passenger on A, and the board.
        await drv.send(
            json.dumps(
                {"type": "location_update", "latitude": -26.2, "longitude": 28.05, "heading": 90}
            )
        )
        where = await recv_type(pax, "driver_location")
        assert (where["driver_id"], where["latitude"]) == (driver.pk, -26.2)
        # The board hears of the ride from worker A...
        async with asyncio.timeout(10):
            while True:
                event = await layer.receive(board)
                if event["type"] == "console.ride" and event["ride_id"] == "xw-1":
                    break
        # ...and reads positions from the shared store, whichever worker
        # the driver reports to.
        from dispatch.locations import RedisLocationStore

        store = RedisLocationStore(settings.REDIS_URL)
        async with asyncio.timeout(10):
            while True:
                seen = await asyncio.to_thread(store.get, driver.pk)
                if seen is not None and seen.lat == -26.2 and seen.heading == 90:
                    break
                await asyncio.sleep(0.05)

        # A dispatcher reassigns from another process with B's settings.
        code = (
            "from dispatch.models import Ride; from dispatch.matching import ride_assign; "
            "from people.models import User; "
            f"ride_assign(ride=Ride.objects.get(ride_id='xw-1'), driver_id={spare.pk}, "
            f"actor=User.objects.get(pk={dispatcher.pk}), role='dispatcher', confirmed=True)"
        )
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "manage.py", "shell", "-c", code],
            cwd=ROOT,
            env=workers["env"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        reassigned = await recv_type(pax, "driver_assigned")
        assert reassigned["driver_id"] == spare.pk
        released = await recv_type(drv, "ride_cancelled")
        assert released["ride_id"] == "xw-1"

        # Worker A stops: its socket hears 1001 and may reconnect to B, and
        # the consumer left its groups before the process ended.
        import redis

        client = redis.Redis.from_url(settings.REDIS_URL)
        prefix = settings.CHANNEL_PREFIX

        def members() -> int:
            """Who is in the ride's group, as each layer keeps it in Redis."""
            if settings.CHANNEL_LAYER_BACKEND == "pubsub":
                # One subscription per worker with a member in the group.
                return client.pubsub_numsub(f"{prefix}__group__ride.xw-1")[0][1]
            return client.zcard(f"{prefix}:group:ride.xw-1")

        assert members() == 1
        workers["procs"][0].send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            await pax.wait_closed()
        assert pax.close_code == 1001
        await asyncio.to_thread(workers["procs"][0].wait, 15)
        assert members() == 0
        assert drv.close_code is None

    await layer.group_discard(CONSOLE_GROUP, board)
    # The sync_to_async thread's connection would keep the test database busy.
    await sync_to_async(connections.close_all)()
