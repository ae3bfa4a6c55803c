"""
ASGI entry point: HTTP through Django, WebSockets through Channels.
"""

import asyncio
import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402

from project.routing import websocket_application  # noqa: E402

CLOSE_GOING_AWAY = 1001


def _daphne_protocol(send):
    """Daphne's `send` is partial(Server.handle_reply, protocol)."""
    protocol = (getattr(send, "args", None) or (None,))[0]
    return protocol if hasattr(protocol, "sendCloseFrame") else None


class CloseSocketsOnShutdown:
    """
    Daphne drops open sockets on SIGTERM without a close frame (the apps see
    1006) and cancels their consumers mid-flight. This sends each socket 1001
    "going away" first, so the apps reconnect through the balancer to another
    worker, and lets each consumer run its disconnect (group_discard) before
    the process ends, waiting at most `grace_s`. Outside Daphne it only
    passes messages through.
    """

    def __init__(self, app, grace_s: float) -> None:
        self.app = app
        self.grace_s = grace_s
        # consumer task -> [send, closed]
        self.sockets: dict[asyncio.Future, list] = {}
        self.stopping = False
        self._hooked = False
        self.hook()

    def hook(self) -> None:
        """
        Run `drain` when Daphne's reactor shuts down. Only where Daphne has
        installed the reactor already: importing it anywhere else would
        install Twisted's default one. Registered before Daphne's own
        trigger (which cancels every consumer), so it runs first.
        """
        reactor = sys.modules.get("twisted.internet.reactor")
        if self._hooked or reactor is None:
            return
        from twisted.internet.defer import Deferred

        self._hooked = True
        reactor.addSystemEventTrigger(
            "before", "shutdown", lambda: Deferred.fromFuture(asyncio.ensure_future(self.drain()))
        )

    async def _going_away(self, state: list) -> None:
        if not state[1]:
            state[1] = True
            try:
                protocol = _daphne_protocol(state[0])
                if protocol is not None:
                    # Autobahn lets applications close only with 1000 or
                    # 3000-4999; 1001 is the server's own word to send.
                    protocol.sendCloseFrame(code=CLOSE_GOING_AWAY, reasonUtf8=b"server restarting")
                else:
                    await state[0]({"type": "websocket.close", "code": CLOSE_GOING_AWAY})
            except Exception:  # noqa: BLE001 - the socket is gone already
                pass

    async def drain(self) -> None:
        """Close every socket with 1001 and wait for the consumers to finish."""
        self.stopping = True
        consumers = list(self.sockets)
        await asyncio.gather(*(self._going_away(self.sockets[c]) for c in consumers))
        if consumers:
            await asyncio.wait(consumers, timeout=self.grace_s)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket":
            return await self.app(scope, receive, send)
        self.hook()
        state = [send, False]

        async def tracked_receive():
            message = await receive()
            if message["type"] == "websocket.disconnect":
                state[1] = True
            return message

        async def tracked_send(message):
            if message["type"] == "websocket.close":
                state[1] = True
            await send(message)

        inner = asyncio.ensure_future(self.app(scope, tracked_receive, tracked_send))
        self.sockets[inner] = state
        try:
            # Shielded: Daphne cancels every application at shutdown, which
            # would cut the consumer off before its close and disconnect.
            return await asyncio.shield(inner)
        except asyncio.CancelledError:
            if inner.done() or not self.stopping:
                inner.cancel()
                raise
            asyncio.current_task().uncancel()
            await self._going_away(state)
            try:
                await asyncio.wait_for(asyncio.shield(inner), self.grace_s)
            except (TimeoutError, asyncio.CancelledError):
                inner.cancel()
            raise
        finally:
            self.sockets.pop(inner, None)


application = CloseSocketsOnShutdown(
    ProtocolTypeRouter({"http": django_asgi_app, "websocket": websocket_application}),
    grace_s=float(os.environ.get("SHUTDOWN_GRACE_S", "5")),
)
