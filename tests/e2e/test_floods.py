"""
Floods against the real server on the embedded default (SQLite, in-memory
layer): a flooding socket is closed with 4429 while other users are
answered, a client that never reads is closed, and a user's open sockets
are capped. The same on PostgreSQL and Redis with two workers:
tests/cluster/test_floods_across_workers.py.
"""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets

from project.common.socket_limits import CLOSE_NOT_READING, CLOSE_TOO_MANY
from tests.floods import (
    bearer,
    flood_while_others_are_answered,
    never_reads,
    next_of,
    opened_when_room,
)
from tests.server import running_server

pytestmark = pytest.mark.server

SARAH, MICHAEL, EMILY = "27821234567", "27821234568", "27821234569"


async def test_floods_are_closed_while_other_users_are_answered(tmp_path):
    """
    An unauthenticated socket flooding pings, then a driver flooding
    positions: each is told rate_limited and closed with 4429; Sarah's and
    Emily's pings and REST calls are answered throughout.
    """
    with running_server(tmp_path) as server:
        sarah = await asyncio.to_thread(server.token_for, SARAH)
        emily = await asyncio.to_thread(server.token_for, EMILY)
        michael = await asyncio.to_thread(server.token_for, MICHAEL)
        others = [(server.ws, server.http, sarah), (server.ws, server.http, emily)]
        await flood_while_others_are_answered(
            f"{server.ws}/ws/ride/flood-1/", {"type": "ping"}, others
        )
        position = {"type": "location_update", "latitude": -26.2, "longitude": 28.05}
        await flood_while_others_are_answered(
            f"{server.ws}/ws/driver/", position, others, headers=bearer(michael)
        )


async def test_a_client_that_never_reads_is_closed(tmp_path):
    """Past WS_SEND_BUFFER_BYTES unread the socket is closed (4408, or dropped), not buffered."""
    with running_server(
        tmp_path, WS_SEND_BUFFER_BYTES="65536", WS_MESSAGE_RATE="1000000",
        WS_MESSAGE_BURST="1000000",
    ) as server:  # fmt: skip
        sarah = await asyncio.to_thread(server.token_for, SARAH)

        def seen_closed() -> bool:
            return "closed: its client left" in server.log()

        code, replies = await never_reads(f"{server.ws}/ws/ride/slow-1/", seen_closed)
        assert code in (CLOSE_NOT_READING, None)
        # Fewer came than were asked for: the rest were never buffered.
        assert replies < 200_000
        async with websockets.connect(
            f"{server.ws}/ws/passenger/", additional_headers=bearer(sarah)
        ) as ws:
            await ws.send(json.dumps({"type": "ping"}))
            await next_of(ws, "pong")


async def test_a_users_open_sockets_are_capped(tmp_path):
    """The third socket of a user at a cap of two is told too_many_sockets and closed 4429."""
    with running_server(tmp_path, WS_MAX_SOCKETS_PER_USER="2") as server:
        sarah = await asyncio.to_thread(server.token_for, SARAH)
        url = f"{server.ws}/ws/passenger/"
        async with (
            websockets.connect(url, additional_headers=bearer(sarah)) as first,
            websockets.connect(url, additional_headers=bearer(sarah)),
        ):
            await next_of(first, "connection_established")
            async with websockets.connect(url, additional_headers=bearer(sarah)) as third:
                refusal = await next_of(third, "error")
                assert refusal["code"] == "too_many_sockets" and refusal["limit"] == 2
                with pytest.raises(websockets.ConnectionClosed):
                    await third.recv()
                assert third.close_code == CLOSE_TOO_MANY
        again = await opened_when_room(url, bearer(sarah))
        await again.send(json.dumps({"type": "ping"}))
        await next_of(again, "pong")
        await again.close()
