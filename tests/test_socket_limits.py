"""
What one socket may cost the others (project.common.socket_limits): the
message budget, the open-socket ceilings, in process on the real ASGI stack.
The unread-reply bound needs Daphne, so it is tested against the real
server (tests/e2e/test_floods.py) and two workers (tests/cluster).
"""

from __future__ import annotations

import json

import pytest
from channels.testing import WebsocketCommunicator

from dispatch.models import Ride
from project.asgi import application
from project.common import socket_limits
from project.common.socket_limits import CLOSE_TOO_MANY
from tests.conftest import db, find_driver, receive_until, token_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def budget(settings):
    """A budget of 5 messages that, in a test's time, never refills."""
    settings.WS_MESSAGE_RATE = 0.001
    settings.WS_MESSAGE_BURST = 5
    return settings


def from_address(address: str):
    """The ASGI app as a client at `address` reaches it (Daphne sets scope["client"])."""

    async def app(scope, receive, send):
        return await application(dict(scope, client=[address, 40000]), receive, send)

    return app


async def opened(path, *, token=None, address="198.51.100.7", headers=()):
    hdrs = list(headers)
    if token:
        hdrs.append((b"authorization", f"Bearer {token}".encode()))
    comm = WebsocketCommunicator(from_address(address), path, headers=hdrs)
    connected, _ = await comm.connect()
    assert connected
    return comm


async def outputs_until_close(comm, limit=200):
    """Everything the socket is sent, up to and including its close."""
    seen = []
    for _ in range(limit):
        out = await comm.receive_output(timeout=3)
        seen.append(out)
        if out["type"] == "websocket.close":
            return seen
    raise AssertionError(f"never closed: {seen[-3:]}")


@pytest.mark.parametrize("path", ["/ws/ride/flood-1/", "/ws/driver/"])
async def test_a_flooding_socket_is_slowed_then_closed_and_others_are_still_answered(
    budget, make_user, make_driver, path
):
    """
    Five messages are answered; the sixth is told `rate_limited` and dropped,
    the next four dropped silently, and the eleventh closes the socket with
    4429. Another user's socket, opened before and after, answers pings.
    """
    user = await db(make_driver) if "driver" in path else await db(make_user, "passenger")
    other = await db(make_user, "passenger")
    bystander = await opened("/ws/ride/calm-1/", token=await db(token_for, other))
    flooder = await opened(path, token=await db(token_for, user))
    if "driver" in path:
        await flooder.receive_json_from()  # connection_established
    for _ in range(20):
        await flooder.send_json_to({"type": "ping"})
    seen = await outputs_until_close(flooder)
    texts = [out.get("text", "") for out in seen]
    kinds = [json.loads(t)["type"] if t else None for t in texts]
    if "ride" in path:
        assert kinds[0] == "connection_established"
        kinds, seen = kinds[1:], seen[1:]
    assert kinds[:5] == ["pong"] * 5
    refusal = json.loads(seen[5]["text"])
    assert refusal["code"] == "rate_limited" and refusal["retry_after"] > 0
    assert seen[6:] == [{"type": "websocket.close", "code": CLOSE_TOO_MANY}]

    await bystander.send_json_to({"type": "ping"})
    await receive_until(bystander, "pong")
    await bystander.disconnect()
    await flooder.disconnect()


async def test_messages_over_the_budget_are_dropped_unread(budget, passenger):
    """Over budget, a booking is not parsed, not answered and writes nothing."""
    comm = await opened("/ws/ride/flood-2/", token=await db(token_for, passenger))
    await comm.receive_json_from()  # connection_established
    for _ in range(5):
        await comm.send_json_to({"type": "ping"})
        assert (await comm.receive_json_from())["type"] == "pong"
    await comm.send_to(text_data="not json")
    assert (await comm.receive_json_from())["code"] == "rate_limited"
    await comm.send_json_to(find_driver())
    await comm.send_to(text_data="{{{")
    assert await comm.receive_nothing(timeout=0.3)
    assert not await Ride.objects.filter(ride_id="flood-2").aexists()
    await comm.disconnect()


async def test_a_socket_within_its_budget_is_never_refused(settings, monkeypatch, passenger):
    """A whole burst, then messages at the rate for as long as they come, are all answered."""
    settings.WS_MESSAGE_RATE = 2
    settings.WS_MESSAGE_BURST = 5
    now = [1000.0]
    monkeypatch.setattr(socket_limits, "clock", lambda: now[0])
    comm = await opened("/ws/ride/calm-2/", token=await db(token_for, passenger))
    await comm.receive_json_from()
    for _ in range(5):
        await comm.send_json_to({"type": "ping"})
        assert (await comm.receive_json_from())["type"] == "pong"
    for _ in range(50):
        now[0] += 0.5
        await comm.send_json_to({"type": "ping"})
        assert (await comm.receive_json_from())["type"] == "pong"
    # Without the time passing, the next one is over.
    await comm.send_json_to({"type": "ping"})
    assert (await comm.receive_json_from())["code"] == "rate_limited"
    # A slowed socket that waits as it was told is served again.
    now[0] += 1.0
    await comm.send_json_to({"type": "ping"})
    assert (await comm.receive_json_from())["type"] == "pong"
    await comm.disconnect()


async def refused_with(comm) -> tuple[str, int]:
    seen = await outputs_until_close(comm, limit=5)
    error = json.loads(seen[-2]["text"])
    return error["code"], seen[-1]["code"]


async def test_a_user_has_at_most_so_many_open_sockets(settings, make_user):
    """The third socket of a user is told too_many_sockets (4429); closing one makes room."""
    settings.WS_MAX_SOCKETS_PER_USER = 2
    user = await db(make_user, "passenger")
    token = await db(token_for, user)
    first = await opened("/ws/passenger/", token=token)
    second = await opened("/ws/ride/mine-1/", token=token, address="203.0.113.9")
    third = await opened("/ws/ride/mine-2/", token=token, address="203.0.113.10")
    assert await refused_with(third) == ("too_many_sockets", CLOSE_TOO_MANY)
    # Someone else is not affected.
    other = await opened("/ws/passenger/", token=await db(token_for, await db(make_user)))
    await first.disconnect()
    again = await opened("/ws/passenger/", token=token)
    await again.send_json_to({"type": "ping"})
    await receive_until(again, "pong")
    for comm in (second, third, other, again):
        await comm.disconnect()


async def test_an_address_has_at_most_so_many_open_sockets(settings):
    """Anonymous sockets from one address count together; another address is apart."""
    settings.WS_MAX_SOCKETS_PER_IP = 2
    socks = [await opened(f"/ws/ride/ip-{i}/", address="198.51.100.20") for i in range(3)]
    assert await refused_with(socks[2]) == ("too_many_sockets", CLOSE_TOO_MANY)
    elsewhere = await opened("/ws/ride/ip-9/", address="198.51.100.21")
    await elsewhere.send_json_to({"type": "ping"})
    await receive_until(elsewhere, "pong")
    for comm in (*socks, elsewhere):
        await comm.disconnect()


async def test_behind_a_trusted_proxy_the_forwarded_client_is_counted(settings):
    """Through nginx every socket comes from the proxy; each client counts by its own address."""
    settings.WS_MAX_SOCKETS_PER_IP = 1
    settings.TRUSTED_PROXIES = ["127.0.0.1"]

    def via_proxy(client):
        return [(b"x-forwarded-for", client.encode())]

    first = await opened("/ws/ride/px-1/", address="127.0.0.1", headers=via_proxy("41.0.0.7"))
    second = await opened("/ws/ride/px-2/", address="127.0.0.1", headers=via_proxy("41.0.0.8"))
    for comm in (first, second):
        assert (await comm.receive_json_from())["type"] == "connection_established"
    again = await opened("/ws/ride/px-3/", address="127.0.0.1", headers=via_proxy("41.0.0.7"))
    assert await refused_with(again) == ("too_many_sockets", CLOSE_TOO_MANY)
    for comm in (first, second, again):
        await comm.disconnect()
