"""
One flooding client, in a process of its own so that its loop never shares
the measuring side's: `python -m bench.flooder URL MESSAGE_JSON [TOKEN]`.
It sends MESSAGE in a tight loop, as fast as the socket takes it, and when
the server closes the socket it opens a new one at once and goes on, as an
attacker would. On SIGTERM it prints its counts as JSON.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys

import websockets


async def flood(url: str, text: str, token: str, counts: dict[str, int]) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    while True:
        try:
            async with websockets.connect(
                url, additional_headers=headers, ping_interval=None, compression=None
            ) as ws:
                counts["connections"] += 1

                async def drain() -> None:
                    async for _ in ws:
                        counts["received"] += 1

                reader = asyncio.create_task(drain())
                try:
                    while True:
                        await ws.send(text)
                        counts["sent"] += 1
                        if counts["sent"] % 100 == 0:
                            await asyncio.sleep(0)
                finally:
                    reader.cancel()
        except (websockets.ConnectionClosed, OSError) as exc:
            code = getattr(exc, "rcvd", None)
            key = f"closed {code.code}" if code is not None else "dropped"
            counts[key] = counts.get(key, 0) + 1


async def main(url: str, message: str, token: str) -> None:
    counts = {"connections": 0, "sent": 0, "received": 0}
    task = asyncio.create_task(flood(url, message, token, counts))
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("READY", flush=True)
    await stop.wait()
    task.cancel()
    print(json.dumps(counts), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else ""))
