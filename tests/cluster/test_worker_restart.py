"""
`make run-cluster` isolates faults: when one worker stops mid-ride, the
runner starts it again while the other keeps serving; the passenger it
closed with 1001 reconnects to the other worker, gets the ride's snapshot,
and the trip finishes.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys

import pytest
import websockets
from asgiref.sync import sync_to_async
from django.conf import settings

from deploy.cluster import ROOT, database_url, wait_healthy
from tests.cluster.test_two_workers import JHB, bearer, free_port, recv_type

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.server,
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def runner(tmp_path):
    """The cluster runner with two workers, as `make run-cluster` starts it."""
    first = next(p for p in iter(free_port, None) if _free(p + 1))
    env = {
        **os.environ,
        "DATABASE_URL": database_url(settings.DATABASES["default"]),
        "REDIS_URL": settings.REDIS_URL,
        # The test database is renamed (test_...): keep this process's prefix.
        "CHANNEL_PREFIX": settings.CHANNEL_PREFIX,
        "DEBUG": "1",
        "SHUTDOWN_GRACE_S": "2",
        "PYTHONUNBUFFERED": "1",
    }
    log = (tmp_path / "runner.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "deploy.cluster", "--workers", "2", "--port", str(first)]
        + ["--no-setup"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        for port in (first, first + 1):
            health = wait_healthy(port, 60)
            assert health is not None, (tmp_path / "runner.log").read_text()[-3000:]
        yield proc, (first, first + 1), tmp_path / "runner.log"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def worker_pid(log_path, port: int) -> int:
    pids = re.findall(rf"worker \d+ pid (\d+) on [^:]+:{port}\b", log_path.read_text())
    return int(pids[-1])


@pytest.mark.parametrize(
    "how, close_code",
    [(signal.SIGTERM, 1001), (signal.SIGKILL, 1006)],
    ids=["stopped", "killed"],
)
async def test_a_stopped_worker_restarts_and_its_passenger_finishes_on_the_other(
    runner, make_user, make_driver, how, close_code
):
    """Stopped (told 1001) or killed -9 (no close frame: 1006), the ride goes on."""
    proc, (a, b), log_path = runner
    passenger = await sync_to_async(make_user)("passenger")
    driver = await sync_to_async(make_driver)(JHB[0] + 0.001, JHB[1])
    p_headers = await sync_to_async(bearer)(passenger)
    d_headers = await sync_to_async(bearer)(driver)
    trip = {
        "type": "find_driver",
        "pickup_latitude": JHB[0],
        "pickup_longitude": JHB[1],
        "dropoff_latitude": JHB[0] + 0.03,
        "dropoff_longitude": JHB[1] + 0.03,
    }
    async with websockets.connect(
        f"ws://127.0.0.1:{b}/ws/driver/", additional_headers=d_headers
    ) as drv:
        await recv_type(drv, "connection_established")
        async with websockets.connect(
            f"ws://127.0.0.1:{a}/ws/ride/rs-1/", additional_headers=p_headers
        ) as pax:
            await recv_type(pax, "connection_established")
            await pax.send(json.dumps(trip))
            assigned = await recv_type(pax, "driver_assigned")
            await recv_type(drv, "ride_assigned")
            old_pid = worker_pid(log_path, a)
            os.kill(old_pid, how)  # worker A goes mid-ride
            async with asyncio.timeout(15):
                await pax.wait_closed()
            assert pax.close_code == close_code
        # The other worker keeps serving: the passenger reconnects there.
        async with websockets.connect(
            f"ws://127.0.0.1:{b}/ws/ride/rs-1/", additional_headers=p_headers
        ) as pax:
            await recv_type(pax, "connection_established")
            snapshot = await recv_type(pax, "ride_status")
            assert snapshot["status"] == "assigned"
            assert snapshot["version"] == assigned["version"]
            assert snapshot["driver"]["id"] == driver.pk
            for step, status in (
                ("arrived", "driver_arrived"),
                ("start_trip", "in_progress"),
                ("complete_trip", "completed"),
            ):
                await drv.send(json.dumps({"type": step}))
                news = await recv_type(pax, "ride_status")
                assert news["status"] == status
    # And worker A is back, on its port, as a new process.
    assert wait_healthy(a, 30) is not None
    assert worker_pid(log_path, a) != old_pid
    assert proc.poll() is None
    assert "starting it again" in log_path.read_text()
