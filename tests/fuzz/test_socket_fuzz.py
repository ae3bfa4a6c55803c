"""
Every socket under generated hostile frames, in process (the real ASGI
stack, WebsocketCommunicator), on SQLite and on PostgreSQL: each frame is
refused with a typed error (never `internal_error`), the socket stays open
and still answers `ping`, nothing is written, and nothing is logged at
ERROR (tests/conftest.py's `_no_error_logged`).
"""

from __future__ import annotations

import json
import threading
from collections import Counter

import pytest
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.db import connections
from hypothesis import given

from console import consumers
from dispatch.broadcast import CONSOLE_GROUP
from dispatch.consumers import DriverConsumer, FollowerConsumer, RideConsumer
from project.asgi import application
from tests.fuzz.conftest import BATCH, DATABASES, SENT, batches, database_state, fuzz, on_database
from tests.fuzz.strategies import Frame, socket_frames

pytestmark = pytest.mark.django_db(transaction=True)

# What a refused message may answer: never internal_error.
REFUSED = {
    "invalid_json",
    "invalid_request",
    "unknown_type",
    "message_too_large",
    "message_too_deep",
    "not_found",
    "forbidden",
    "invalid_state",
    "conflict",
}
# Frames per socket, on each database.
QUOTAS = {"ride": 1500, "driver": 1500, "passenger": 400, "caregiver": 400, "console": 400}


async def open_socket(path: str, headers: list) -> WebsocketCommunicator:
    comm = WebsocketCommunicator(application, path, headers=headers)
    connected, code = await comm.connect()
    assert connected, f"{path} refused with {code}"
    return comm


async def skip_greeting(comm) -> None:
    """
    All an app socket sends on connect (its greeting, snapshots): what comes
    before the pong of a first ping, which it reads only once connect is
    done. (A quiet spell is no sign of the end: a slow database read or a
    garbage collection in the middle of connect outlasts one.)
    """
    await comm.send_json_to({"type": "ping"})
    while (await comm.receive_json_from(timeout=10))["type"] != "pong":
        pass


async def skip_quiet(comm) -> None:
    """Whatever the console sends on connect (it answers no ping): until it is quiet."""
    while not await comm.receive_nothing(timeout=0.3):
        await comm.receive_output()


async def exchange(comm, frame: Frame) -> dict:
    await comm.send_to(text_data=frame.text, bytes_data=frame.data)
    output = await comm.receive_output(timeout=10)
    assert output["type"] == "websocket.send", f"the socket closed on {frame}: {output}"
    return json.loads(output["text"])


async def pings(comm) -> None:
    """The very next message after a ping is its pong: nothing else was pending."""
    await comm.send_json_to({"type": "ping"})
    assert (await comm.receive_json_from(timeout=10))["type"] == "pong"


def fuzz_socket(runner, comm, frames, quota: int, key: tuple[str, str]) -> Counter:
    """Send `quota` generated frames; each must be refused with a typed error."""
    codes: Counter[str] = Counter()

    @fuzz(quota // BATCH)
    @given(batch=batches(frames))
    def some(batch: list[Frame]) -> None:
        for frame in batch:
            reply = runner.run(exchange(comm, frame))
            SENT[key] += 1
            assert reply["type"] == "error", (frame, reply)
            assert reply["code"] in REFUSED, (frame, reply)
            codes[reply["code"]] += 1

    some()
    assert SENT[key] >= quota, f"only {SENT[key]} of {quota} frames were sent"
    return codes


SOCKETS = [
    ("ride", "/ws/ride/fz-ride/", "passenger", RideConsumer),
    ("driver", "/ws/driver/", "driver", DriverConsumer),
    ("passenger", "/ws/passenger/", "passenger", FollowerConsumer),
    ("caregiver", "/ws/caregiver/", "caregiver", FollowerConsumer),
]


@pytest.mark.parametrize("database", DATABASES)
@pytest.mark.parametrize(("name", "path", "who", "consumer"), SOCKETS, ids=[s[0] for s in SOCKETS])
def test_every_fuzzed_frame_is_refused_and_writes_nothing(
    world, runner, database, name, path, who, consumer
):
    on_database(database)
    before = database_state()
    comm = runner.run(
        open_socket(path, [(b"authorization", f"Bearer {world.tokens[who]}".encode())])
    )
    runner.run(skip_greeting(comm))
    frames = socket_frames(name, sorted(consumer.handlers), [world.others_ride_id, "fz-none"])
    codes = fuzz_socket(runner, comm, frames, QUOTAS[name], (name, database))
    runner.run(pings(comm))
    runner.run(comm.disconnect())
    assert database_state() == before
    # Every kind of refusal was met, not only the cheapest.
    wanted = {"invalid_json", "invalid_request", "unknown_type", "message_too_large"}
    wanted |= {"message_too_deep"}
    assert wanted <= set(codes), codes


@pytest.mark.parametrize("database", DATABASES)
def test_the_console_ignores_fuzzed_frames_and_keeps_serving(world, runner, database):
    """The console only listens: hostile frames change nothing, and the board still renders."""
    on_database(database)
    before = database_state()
    comm = runner.run(open_socket("/ws/console/", [(b"cookie", world.console_cookie)]))
    runner.run(skip_quiet(comm))
    key = ("console", database)
    frames = socket_frames("console", ["ping"])

    @fuzz(QUOTAS["console"] // BATCH)
    @given(batch=batches(frames))
    def some(batch: list[Frame]) -> None:
        for frame in batch:
            runner.run(comm.send_to(text_data=frame.text, bytes_data=frame.data))
            SENT[key] += 1

    some()
    assert SENT[key] >= QUOTAS["console"]

    async def still_renders():
        await get_channel_layer().group_send(CONSOLE_GROUP, {"type": "console.links"})
        html = await comm.receive_from(timeout=10)
        assert 'id="pending-rides"' in html

    runner.run(still_renders())
    runner.run(comm.disconnect())
    close_render_connections()
    assert database_state() == before


def close_render_connections() -> None:
    """The console renders on threads of its own: close their connections, so the test
    database can be dropped."""
    size = consumers._RENDER_POOL._max_workers
    barrier = threading.Barrier(size)

    def close() -> None:
        barrier.wait(10)
        connections.close_all()

    for done in [consumers._RENDER_POOL.submit(close) for _ in range(size)]:
        done.result()
