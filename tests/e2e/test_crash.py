"""
A worker killed (-9) mid-ride, then started again: the passenger's and the
driver's apps reconnect, get the ride as it stands, and finish the trip. On
the embedded default (SQLite, in-memory layer); the same with PostgreSQL
and Redis under the cluster runner in tests/cluster/test_worker_restart.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal

import pytest
import websockets

from tests.server import running_server, wait_for_port

pytestmark = pytest.mark.server

SARAH, MICHAEL = "27821234567", "27821234568"
CAPE_TOWN = (-33.9249, 18.4241)


async def next_of(ws, wanted: str, timeout: float = 10) -> dict:
    async with asyncio.timeout(timeout):
        while True:
            message = json.loads(await ws.recv())
            if message["type"] == wanted:
                return message


async def test_a_ride_survives_a_killed_worker(tmp_path):
    with running_server(tmp_path) as server:
        sarah = await asyncio.to_thread(server.token_for, SARAH)
        michael = await asyncio.to_thread(server.token_for, MICHAEL)
        ride = f"{server.ws}/ws/ride/crash-1/?token={sarah}"
        driver = f"{server.ws}/ws/driver/?token={michael}"
        async with websockets.connect(driver) as drv, websockets.connect(ride) as pax:
            await next_of(drv, "connection_established")
            await drv.send(json.dumps({"type": "set_status", "status": "available"}))
            await next_of(drv, "status_updated")
            await drv.send(
                json.dumps(
                    {"type": "location_update", "latitude": CAPE_TOWN[0], "longitude": CAPE_TOWN[1]}
                )
            )
            await next_of(pax, "connection_established")
            await pax.send(
                json.dumps(
                    {
                        "type": "find_driver",
                        "pickup_latitude": CAPE_TOWN[0] + 0.001,
                        "pickup_longitude": CAPE_TOWN[1],
                        "dropoff_latitude": CAPE_TOWN[0] + 0.03,
                        "dropoff_longitude": CAPE_TOWN[1],
                    }
                )
            )
            assigned = await next_of(pax, "driver_assigned")
            await next_of(drv, "ride_assigned")
            os.kill(server.process.pid, signal.SIGKILL)
            server.process.wait()

        server.start()
        wait_for_port(server.port, server.process)
        async with websockets.connect(driver) as drv, websockets.connect(ride) as pax:
            greeting = await next_of(drv, "ride_assigned")
            assert greeting["ride_id"] == "crash-1"
            snapshot = await next_of(pax, "ride_status")
            assert snapshot["status"] == "assigned"
            assert snapshot["version"] == assigned["version"]
            assert snapshot["driver"]["id"] == assigned["driver_id"]
            for step, status in (
                ("arrived", "driver_arrived"),
                ("start_trip", "in_progress"),
                ("complete_trip", "completed"),
            ):
                await drv.send(json.dumps({"type": step}))
                assert (await next_of(pax, "ride_status"))["status"] == status
