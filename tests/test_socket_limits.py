"""
What one socket may cost the others (project.common.socket_limits), in
process: the message budget as frames arrive, and the open-socket ceilings
on the real ASGI stack. Daphne's side (frames gated, unread replies bounded)
is tested against the real server (tests/e2e/test_floods.py) and two
workers (tests/cluster/test_floods_across_workers.py).
"""

from __future__ import annotations

import asyncio
import json

import pytest
import redis.exceptions
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.db import OperationalError

from dispatch.consumers.followers import FollowerConsumer
from project.asgi import application
from project.common import socket_limits
from project.common.socket_limits import CLOSE_TOO_MANY
from tests.conftest import db, receive_until, token_for

pytestmark = pytest.mark.django_db(transaction=True)


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


async def outputs_until_close(comm, limit=20):
    """Everything the socket is sent, up to and including its close."""
    seen = []
    for _ in range(limit):
        out = await comm.receive_output(timeout=3)
        seen.append(out)
        if out["type"] == "websocket.close":
            return seen
    raise AssertionError(f"never closed: {seen[-3:]}")


class Connection:
    """What admit_frame does to a Daphne protocol and its TCP transport, recorded."""

    connected, disconnecting = True, False

    def __init__(self) -> None:
        self.transport = self
        self.sent: list[dict] = []
        self.closed_with: int | None = None
        self.reading = True

    def sendMessage(self, payload: bytes, is_binary: bool) -> None:  # noqa: N802
        self.sent.append(json.loads(payload))

    def sendClose(self, code: int) -> None:  # noqa: N802
        self.closed_with = code

    def pauseProducing(self) -> None:  # noqa: N802
        self.reading = False

    def resumeProducing(self) -> None:  # noqa: N802
        self.reading = True

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        raise AssertionError("parsed after the close")


@pytest.fixture
def clock(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(socket_limits, "clock", lambda: now[0])
    return now


async def test_a_flooding_socket_is_slowed_then_closed(settings, clock):
    """
    Five messages pass; the sixth is dropped, the client told rate_limited
    and no longer read from; the rest of what was read is dropped, and the
    eleventh closes the socket with 4429 for good.
    """
    settings.WS_MESSAGE_RATE, settings.WS_MESSAGE_BURST = 2, 5
    conn = Connection()
    admitted = [socket_limits.admit_frame(conn) for _ in range(20)]
    assert admitted == [True] * 5 + [False] * 15
    assert [m["code"] for m in conn.sent] == ["rate_limited"]
    assert conn.sent[0]["retry_after"] == 1
    assert conn.closed_with == CLOSE_TOO_MANY
    # Read on and thrown away unparsed, so the connection ends cleanly.
    assert conn.reading and conn.dataReceived(b"\x81\x04ping") is None and conn.data == b""
    clock[0] += 3600
    assert not socket_limits.admit_frame(conn)


async def test_a_slowed_socket_that_waits_is_read_and_served_again(settings, clock):
    """Reading resumes once the budget has room; a socket within its rate is never refused."""
    settings.WS_MESSAGE_RATE, settings.WS_MESSAGE_BURST = 2, 5
    conn = Connection()
    assert all(socket_limits.admit_frame(conn) for _ in range(5))
    for _ in range(50):
        clock[0] += 0.5
        assert socket_limits.admit_frame(conn)
    assert not socket_limits.admit_frame(conn)
    assert [m["code"] for m in conn.sent] == ["rate_limited"] and not conn.reading
    clock[0] += 1.0
    # The worker's loop resumes reading when the wait is over: when the next
    # message has room, so it is read and not told rate_limited again.
    await asyncio.sleep(0.6)
    assert not conn.reading
    await asyncio.sleep(0.5)
    assert conn.reading
    assert socket_limits.admit_frame(conn)
    assert [m["code"] for m in conn.sent] == ["rate_limited"]
    assert conn.closed_with is None


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


async def test_a_socket_whose_setup_hit_a_redis_blip_gives_its_hold_back(
    settings, make_user, monkeypatch
):
    """
    Redis blips while a socket joins its groups (4503, "try again in a
    moment"): its hold goes back, so the app's reconnect gets in.
    """
    settings.WS_MAX_SOCKETS_PER_USER = 1
    user = await db(make_user, "passenger")
    token = await db(token_for, user)
    layer = get_channel_layer()
    real = layer.group_add
    calls = {"n": 0}

    async def blip(group, channel):
        calls["n"] += 1
        if calls["n"] == 1:
            raise redis.exceptions.ConnectionError("Redis restarting")
        return await real(group, channel)

    monkeypatch.setattr(layer, "group_add", blip)
    first = await opened("/ws/passenger/", token=token)
    seen = await outputs_until_close(first)
    assert seen[-1]["code"] == 4503
    await first.wait()

    again = await opened("/ws/passenger/", token=token)
    out = await again.receive_output(timeout=3)
    text = json.loads(out.get("text", "{}"))
    await again.disconnect()
    assert text.get("code") != "too_many_sockets", "locked out by the leaked hold"
    assert text.get("type") == "connection_established"


async def test_a_socket_whose_setup_raised_gives_its_hold_back(settings, make_user, monkeypatch):
    """Any other failure in connect (a database error on the greeting) gives the hold back too."""
    settings.WS_MAX_SOCKETS_PER_USER = 1
    user = await db(make_user, "passenger")
    token = await db(token_for, user)
    real = FollowerConsumer._refresh
    calls = {"n": 0}

    async def failing(self):
        calls["n"] += 1
        if calls["n"] == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return await real(self)

    monkeypatch.setattr(FollowerConsumer, "_refresh", failing)
    first = await opened("/ws/passenger/", token=token)
    with pytest.raises(OperationalError):
        await first.wait(timeout=2)

    again = await opened("/ws/passenger/", token=token)
    out = await again.receive_output(timeout=3)
    text = json.loads(out.get("text", "{}"))
    await again.disconnect()
    assert text.get("code") != "too_many_sockets", "locked out by the leaked hold"
