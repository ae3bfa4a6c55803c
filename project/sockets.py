"""What every WebSocket consumer of the project shares."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable

try:
    from autobahn.exception import Disconnected
except ImportError:  # not served by Daphne

    class Disconnected(Exception):  # type: ignore[no-redef]
        pass


class QuietWhenClientLeft:
    """
    A consumer mixin: a message for a client that has just closed its socket
    is dropped. Daphne's protocol raises `Disconnected` on such a send, which
    used to end the handler with a logged traceback; the consumer hears
    `websocket.disconnect` next and cleans up as usual.
    """

    async def send(self, *args, **kwargs):
        try:
            await super().send(*args, **kwargs)
        except Disconnected:
            pass


def per_event_loop[T](factory: Callable[[], T]) -> Callable[[], T]:
    """A getter of one `factory()` per running event loop (a worker has one)."""
    instances: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def get() -> T:
        loop = asyncio.get_running_loop()
        if loop not in instances:
            instances[loop] = factory()
        return instances[loop]

    return get
