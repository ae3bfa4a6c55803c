"""
The one place that leans on libraries' internals. Each adapter names what it
relies on; tests/test_adapters.py checks each of those against the installed
versions, so an upgrade that changes one fails there, loudly, rather than
somewhere in production.
"""

from __future__ import annotations

import asyncio
import sys

from channels.consumer import get_handler_name
from django.conf.locale import LANG_INFO

try:
    from autobahn.exception import Disconnected as ClientGone
except ImportError:  # served by something other than Daphne

    class ClientGone(Exception):  # type: ignore[no-redef]
        pass


class SkipConnectionSweep:
    """
    A consumer mixin. Channels (4.2 and later) runs `close_old_connections`
    on the worker's one database thread before every message a consumer
    handles (`AsyncConsumer.dispatch` awaits `aclose_old_connections()`), so
    each GPS report and each group message waited in the same queue as
    bookings. These consumers reach the database only through
    `project.common.db` (channels' DatabaseSyncToAsync), which closes stale
    connections around every call itself, so the per-message sweep is
    skipped: this is `AsyncConsumer.dispatch` without it.

    Relies on: `AsyncConsumer.dispatch` being the handler lookup plus that
    sweep and nothing else (checked by the upgrade test).
    """

    async def dispatch(self, message):
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)


class QuietWhenClientLeft:
    """
    A consumer mixin: a message for a client that has just closed its socket
    is dropped. Daphne's protocol raises autobahn's `Disconnected` on such a
    send, which would end the handler with a logged traceback; the consumer
    hears `websocket.disconnect` next and cleans up as usual.
    """

    async def send(self, *args, **kwargs):
        try:
            await super().send(*args, **kwargs)
        except ClientGone:
            pass


CLOSE_GOING_AWAY = 1001


def close_sockets_on_shutdown(grace_s: float) -> bool:
    """
    On SIGTERM Daphne cancels every consumer and drops the sockets without a
    close frame: the apps see 1006 and the consumers never leave their
    groups. Instead, when Daphne's reactor shuts down: stop listening (the
    balancer sends new sockets elsewhere), close every open socket with 1001
    "going away" so the apps reconnect at once through the balancer, wait up
    to `grace_s` for the consumers' disconnect, and only then let Daphne
    cancel whatever is left.

    Relies on: Twisted's `reactor._eventTriggers` (private) to find Daphne's
    own shutdown trigger, `daphne.server.Server.kill_all_applications`, and
    `Server.connections` / `Server.listeners`. Call it only where Daphne has
    installed its reactor (project.serve does, before Daphne starts):
    importing the reactor anywhere else would install Twisted's default one.
    Returns whether it is installed.
    """
    reactor = sys.modules.get("twisted.internet.reactor")
    if reactor is None:
        return False
    from twisted.internet.defer import Deferred

    async def drain(server) -> None:
        for listener in getattr(server, "listeners", []):
            listener.addCallback(lambda port: port.stopListening())
        sockets = [
            (protocol, details.get("application_instance"))
            for protocol, details in list(server.connections.items())
            if hasattr(protocol, "sendCloseFrame") and protocol.state == protocol.STATE_OPEN
        ]
        for protocol, _ in sockets:
            # Autobahn lets applications close only with 1000 or 3000-4999;
            # 1001 is the server's own word, so it goes to the protocol.
            protocol.sendCloseFrame(code=CLOSE_GOING_AWAY, reasonUtf8=b"server restarting")
        consumers = [app for _, app in sockets if app is not None and not app.done()]
        if consumers:
            await asyncio.wait(consumers, timeout=grace_s)

    def before_shutdown():
        # Daphne's own trigger (registered after this one) cancels every
        # consumer; run it only once the sockets are drained.
        event = reactor._eventTriggers.get("shutdown")
        kill = next(
            (
                c
                for c, _, _ in (event.before if event else [])
                if getattr(c, "__name__", "") == "kill_all_applications"
            ),
            None,
        )
        if kill is None:
            return None
        reactor.removeSystemEventTrigger(("shutdown", ("before", kill, (), {})))
        drained = Deferred.fromFuture(asyncio.ensure_future(drain(kill.__self__)))
        return drained.addBoth(lambda _: kill())

    reactor.addSystemEventTrigger("before", "shutdown", before_shutdown)
    return True


def language_info_add(code: str, *, name: str, name_local: str, bidi: bool = False) -> None:
    """
    A language Django itself has no translations for (isiZulu), made known
    to `get_language_info`, which the admin's language menu calls for every
    entry of settings.LANGUAGES (and raises KeyError on an unknown one).

    Relies on: django.conf.locale.LANG_INFO being the dict get_language_info
    reads (checked by the upgrade test).
    """
    LANG_INFO.setdefault(code, {"bidi": bidi, "code": code, "name": name, "name_local": name_local})
