"""What every WebSocket consumer of the project shares."""

from __future__ import annotations

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
