"""
Across two real workers (PostgreSQL, Redis): a stranger on worker B, asking
for a ride booked on worker A again and again, hears nothing of it.
"""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets
from asgiref.sync import sync_to_async

from tests.cluster.test_two_workers import JHB, bearer, recv_type, workers  # noqa: F401

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.server,
    pytest.mark.django_db(transaction=True),
]

RIDE_NEWS = {"searching", "driver_assigned", "no_drivers", "ride_status", "driver_location"}


def trip(**extra) -> str:
    return json.dumps(
        {
            "type": "find_driver",
            "pickup_latitude": JHB[0],
            "pickup_longitude": JHB[1],
            "dropoff_latitude": JHB[0] + 0.03,
            "dropoff_longitude": JHB[1] + 0.03,
            **extra,
        }
    )


async def test_a_stranger_on_the_other_worker_hears_nothing(workers, make_user, make_driver):
    a, b = workers["ports"]
    passenger = await sync_to_async(make_user)("passenger")
    stranger = await sync_to_async(make_user)("passenger")
    driver = await sync_to_async(make_driver)(JHB[0] + 0.001, JHB[1])
    heard: list[dict] = []
    async with (
        websockets.connect(
            f"ws://127.0.0.1:{a}/ws/ride/xr-1/",
            additional_headers=await sync_to_async(bearer)(passenger),
        ) as own,
        websockets.connect(
            f"ws://127.0.0.1:{b}/ws/ride/xr-1/",
            additional_headers=await sync_to_async(bearer)(stranger),
        ) as other,
        websockets.connect(
            f"ws://127.0.0.1:{a}/ws/driver/",
            additional_headers=await sync_to_async(bearer)(driver),
        ) as drv,
    ):
        for sock in (own, other, drv):
            await recv_type(sock, "connection_established")

        async def pester():
            for _ in range(20):
                await other.send(trip(passenger_id=passenger.pk))
                await other.send(json.dumps({"type": "get_status"}))

        await asyncio.gather(own.send(trip()), pester())
        await recv_type(own, "driver_assigned")
        await recv_type(drv, "ride_assigned")
        for step in range(3):
            await drv.send(
                json.dumps(
                    {
                        "type": "location_update",
                        "latitude": JHB[0] + step / 1000,
                        "longitude": JHB[1],
                    }
                )
            )
        await recv_type(own, "driver_location")
        await other.send(json.dumps({"type": "ping"}))
        async with asyncio.timeout(15):
            while True:
                message = json.loads(await other.recv())
                if message["type"] == "pong":
                    break
                heard.append(message)
        try:
            async with asyncio.timeout(1.0):
                while True:
                    heard.append(json.loads(await other.recv()))
        except TimeoutError:
            pass
    assert [m for m in heard if m["type"] in RIDE_NEWS] == []
    assert {m.get("code") for m in heard} <= {"forbidden", "not_found"}
