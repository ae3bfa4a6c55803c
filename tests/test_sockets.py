"""What every consumer shares (project.common.sockets, project.common.adapters)."""

from __future__ import annotations

import pytest
from autobahn.exception import Disconnected

from console.consumers import ConsoleConsumer
from dispatch.consumers import DriverConsumer, RideConsumer


@pytest.mark.parametrize("consumer_class", [RideConsumer, DriverConsumer, ConsoleConsumer])
async def test_a_message_for_a_client_that_just_left_is_dropped(consumer_class):
    """Daphne raises Disconnected on such a send; the handler must not crash on it."""
    consumer = consumer_class()
    sent = []

    async def gone(message):
        sent.append(message)
        raise Disconnected("Attempt to send on a closed protocol")

    consumer.base_send = gone
    await consumer.send(text_data='{"type": "pong"}')
    assert sent == [{"type": "websocket.send", "text": '{"type": "pong"}'}]


@pytest.mark.parametrize("path", ["/ws/ride/has.a.dot/", "/ws/rides/r1/", "/ws/"])
async def test_a_socket_at_no_known_path_is_told_so_and_closed(ws, path):
    """Not a server error: a typed not_found naming the paths that exist, then 4404."""
    comm = await ws(path)
    error = await comm.receive_json_from()
    assert error["type"] == "error" and error["code"] == "not_found"
    assert path in error["message"] and "/ws/ride/<ride_id>/" in error["message"]
    assert await comm.receive_output() == {"type": "websocket.close", "code": 4404}


async def test_other_send_errors_still_surface():
    consumer = RideConsumer()

    async def broken(message):
        raise ValueError("not accepted yet")

    consumer.base_send = broken
    with pytest.raises(ValueError):
        await consumer.send(text_data="{}")
