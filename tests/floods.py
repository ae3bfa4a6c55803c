"""
Floods against real workers (Daphne), shared by the embedded server's tests
(tests/e2e/test_floods.py) and the two-worker ones (tests/cluster). Each
waits for events, never for a length of time.
"""

from __future__ import annotations

import asyncio
import json
import socket
import urllib.request

import websockets

from project.common.socket_limits import CLOSE_TOO_MANY


async def next_of(ws, wanted: str, timeout: float = 30) -> dict:
    async with asyncio.timeout(timeout):
        while True:
            message = json.loads(await ws.recv())
            if message["type"] == wanted:
                return message


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def answered(ws_url: str, http_url: str, token: str) -> None:
    """A user's ping is answered on a socket, and their profile over REST."""
    async with websockets.connect(
        f"{ws_url}/ws/passenger/", additional_headers=bearer(token)
    ) as ws:
        await ws.send(json.dumps({"type": "ping"}))
        await next_of(ws, "pong")

    def profile() -> int:
        request = urllib.request.Request(f"{http_url}/api/auth/profile/", headers=bearer(token))
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status

    assert await asyncio.to_thread(profile) == 200


async def flood_until_closed(url: str, message: dict, headers=None) -> tuple[int, dict, int]:
    """
    Send `message` in a tight loop, reading what comes back, until the
    server closes the socket: (close code, the first error, messages sent).
    """
    sent = 0
    first_error: dict = {}
    async with websockets.connect(url, additional_headers=headers or {}) as ws:

        async def read() -> None:
            try:
                async for raw in ws:
                    reply = json.loads(raw)
                    if reply["type"] == "error" and not first_error:
                        first_error.update(reply)
            except websockets.ConnectionClosed:
                pass

        reader = asyncio.create_task(read())
        text = json.dumps(message)
        try:
            async with asyncio.timeout(120):
                while True:
                    await ws.send(text)
                    sent += 1
                    if sent % 100 == 0:
                        # Let the reader run: sends need not wait for it.
                        await asyncio.sleep(0)
        except websockets.ConnectionClosed:
            pass
        await asyncio.wait_for(reader, 30)
        return ws.close_code, first_error, sent


async def flood_while_others_are_answered(
    flood_url: str, message: dict, others: list[tuple[str, str, str]], headers=None
) -> None:
    """
    A socket flooding `message` is told `rate_limited` and closed with 4429,
    while every (ws_url, http_url, token) in `others` is answered, during
    the flood and after it.
    """
    flood = asyncio.create_task(flood_until_closed(flood_url, message, headers))
    await asyncio.gather(*(answered(*other) for other in others))
    code, error, sent = await flood
    assert code == CLOSE_TOO_MANY, (code, error, sent)
    assert error.get("code") == "rate_limited" and error["retry_after"] > 0
    await asyncio.gather(*(answered(*other) for other in others))


async def never_reads(url: str, seen_closed, messages: int = 200_000) -> tuple[int | None, int]:
    """
    A client that sends and never reads, until `seen_closed()` (the server
    says it closed the socket for it); then what it finds when it reads at
    last: (close code or None when the connection was dropped, replies).
    Its receive buffer is small, so the server's replies back up fast.
    """
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    host, port = url.split("/")[2].split(":")
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    ws = await websockets.connect(url, sock=sock, max_queue=1, ping_interval=None, compression=None)
    # Each is answered by an `unknown_type` error of some 250 bytes.
    text = json.dumps({"type": "x" * 40})
    try:
        for i in range(messages):
            await ws.send(text)
            if i % 1000 == 0 and await asyncio.to_thread(seen_closed):
                break
    except websockets.ConnectionClosed:
        pass
    async with asyncio.timeout(120):
        while not await asyncio.to_thread(seen_closed):
            await asyncio.sleep(0.2)
    replies = 0
    try:
        async with asyncio.timeout(60):
            async for _ in ws:
                replies += 1
    except websockets.ConnectionClosed:
        pass
    return ws.close_code if ws.close_code != 1006 else None, replies


async def opened_when_room(url: str, headers=None):
    """A socket opened once the server has released a closed one (it does so after the close)."""
    for _ in range(100):
        ws = await websockets.connect(url, additional_headers=headers or {})
        first = json.loads(await ws.recv())
        if first.get("code") != "too_many_sockets":
            return ws
        await ws.close()
        await asyncio.sleep(0.1)
    raise AssertionError("the closed socket was never released")
