"""
Clients that leave mid-reply, for tests against real server processes
(tests/e2e/test_protocol.py, tests/cluster/test_fuzz.py): REST clients that
reset the connection while a large answer is being written, or right after
the request; socket clients that drop the TCP connection (no close frame)
in the middle of a burst of replies, or in the middle of the handshake.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct

import websockets

ROUNDS = 10


def reset_after(port: int, request: bytes, read: int) -> None:
    """Send `request`, read `read` bytes of the answer (0: none), then reset the connection."""
    with socket.create_connection(("127.0.0.1", port), 5) as conn:
        conn.sendall(request)
        if read:
            conn.recv(read)
        # SO_LINGER 0: close sends RST, as a phone losing its network does.
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def http_get(path: str, token: str | None = None) -> bytes:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}\r\n".encode()


def http_send(method: str, path: str, body: dict, token: str | None = None) -> bytes:
    data = json.dumps(body).encode()
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    return head.encode() + data


async def leave_mid_burst(url: str, messages: list[dict], wait_for_first: bool) -> None:
    """Send a burst of requests and drop the TCP connection while replies flow."""
    sock = await websockets.connect(url, max_size=None)
    await sock.recv()
    for message in messages:
        await sock.send(json.dumps(message))
    if wait_for_first:
        await sock.recv()
    sock.transport.abort()


async def leave_mid_handshake(port: int, path: str) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    await writer.drain()
    writer.transport.abort()


async def still_answers(server, token: str) -> None:
    async with websockets.connect(f"{server.ws}/ws/passenger/?token={token}") as sock:
        await sock.recv()
        await sock.send(json.dumps({"type": "ping"}))
        async with asyncio.timeout(10):
            while json.loads(await sock.recv())["type"] != "pong":
                pass


async def clients_leave(server, sarah: str, michael: str) -> None:
    """Every kind of leaving, ROUNDS times, as Sarah (a passenger) and Michael (a driver)."""
    requests_ = [
        http_get("/api/openapi.json"),
        http_get("/api/docs"),
        http_get("/api/rides/?page_size=100", sarah),
        http_get("/api/auth/profile/", sarah),
        http_get("/healthz"),
        http_get("/console/login/"),
        http_send("POST", "/api/auth/refresh/", {"refresh": "not-a-token"}),
        http_send("PATCH", "/api/auth/profile/", {"notes": "Ring twice"}, sarah),
        http_send("POST", "/api/rides/leave-0/cancel/", {"reason": "x"}, sarah),
    ]
    for round_ in range(ROUNDS):
        for request in requests_:
            await asyncio.to_thread(reset_after, server.port, request, round_ % 3 * 512)

    pings = [{"type": "ping"}] * 50
    statuses = [{"type": "get_status"}] * 30
    oversized = [{"type": "ping", "pad": "x" * 70_000}] * 5
    ride = f"{server.ws}/ws/ride/leave-1/?token={sarah}"
    driver = f"{server.ws}/ws/driver/?token={michael}"
    places = [
        {"type": "location_update", "latitude": -26.2 + i / 1000, "longitude": 28.04}
        for i in range(40)
    ]
    for round_ in range(ROUNDS):
        first = bool(round_ % 2)
        await asyncio.gather(
            leave_mid_burst(ride, pings + statuses + oversized, first),
            leave_mid_burst(driver, places + pings, first),
            leave_mid_burst(f"{server.ws}/ws/caregiver/?token={sarah}", pings, first),
            leave_mid_handshake(server.port, "/ws/passenger/"),
        )
    await asyncio.sleep(1)
    await still_answers(server, sarah)
