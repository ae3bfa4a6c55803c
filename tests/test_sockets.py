"""What every consumer shares (project.sockets)."""

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


async def test_other_send_errors_still_surface():
    consumer = RideConsumer()

    async def broken(message):
        raise ValueError("not accepted yet")

    consumer.base_send = broken
    with pytest.raises(ValueError):
        await consumer.send(text_data="{}")
