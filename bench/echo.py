"""A bare `websockets` echo server: the floor the consumer's ping is compared with."""

from __future__ import annotations

import asyncio
import sys

import websockets


async def echo(ws) -> None:
    async for message in ws:
        await ws.send(message)


async def main(port: int) -> None:
    async with websockets.serve(echo, "127.0.0.1", port, compression=None, ping_interval=None):
        print("READY", flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
