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


def unread_bytes(protocol) -> int:
    """
    Bytes written to a Daphne protocol's TCP connection that the kernel has
    not taken yet (its client is not reading them); 0 where that cannot be
    known (a transport of another kind).

    Relies on: Twisted's `FileDescriptor` buffering writes in `dataBuffer`
    (from `offset`) and `_tempDataLen`.
    """
    transport = getattr(protocol, "transport", None)
    try:
        return len(transport.dataBuffer) - transport.offset + transport._tempDataLen
    except AttributeError:
        return 0


def is_closing(protocol) -> bool:
    """
    Whether a Daphne protocol is closing or closed.

    Relies on: autobahn's `WebSocketProtocol.state` and its `STATE_CLOSING`,
    `STATE_CLOSED`.
    """
    state = getattr(protocol, "state", None)
    return state is not None and state in (protocol.STATE_CLOSING, protocol.STATE_CLOSED)


def gate_messages(admit) -> bool:
    """
    Make every message that arrives on a Daphne WebSocket first pass
    `admit(protocol)`; one it refuses is dropped before Daphne queues it
    for the consumer. Returns whether the gate is installed.

    Relies on: `daphne.ws_protocol.WebSocketProtocol.onMessage` being where
    Daphne hands each message to its application's queue. Call it only
    where Daphne runs (project.serve): importing Daphne's protocol imports
    Twisted's reactor.
    """
    from daphne.ws_protocol import WebSocketProtocol

    if getattr(WebSocketProtocol.onMessage, "gated", False):
        return True
    received = WebSocketProtocol.onMessage

    def onMessage(self, payload, isBinary):  # noqa: N802 - autobahn's name
        if admit(self):
            received(self, payload, isBinary)

    onMessage.gated = True
    WebSocketProtocol.onMessage = onMessage
    return True


def gate_replies(check) -> bool:
    """
    Make every message an application sends through Daphne first pass
    `check(protocol, message)`, which returns the message to send (the same
    or another) or None to send nothing. Returns whether it is installed.

    Relies on: `daphne.server.Server.handle_reply(protocol, message)` being
    what every application's `send` calls (create_application hands out
    `partial(self.handle_reply, protocol)`). Call it where Daphne runs
    (project.serve), before it serves.
    """
    from daphne.server import Server

    if getattr(Server.handle_reply, "gated", False):
        return True
    reply = Server.handle_reply

    async def handle_reply(self, protocol, message):
        message = check(protocol, message)
        if message is not None:
            await reply(self, protocol, message)

    handle_reply.gated = True
    Server.handle_reply = handle_reply
    return True


def send_text(protocol, text: str) -> None:
    """Send a text frame on a Daphne protocol, beside its application."""
    protocol.sendMessage(text.encode(), False)


def close(protocol, code: int) -> None:
    """Start the closing handshake on a Daphne protocol with `code`."""
    protocol.sendClose(code=code)


def pause_reading(protocol, seconds: float | None) -> None:
    """
    Stop reading from a protocol's connection, for `seconds` or (None) for
    good: what its client sends waits in the kernel, and then in its own
    buffers, costing this worker nothing.

    Relies on: Twisted's TCP transport being a push producer
    (`pauseProducing`, `resumeProducing`), run on the asyncio loop.
    """
    transport = getattr(protocol, "transport", None)
    if transport is None:
        return
    transport.pauseProducing()
    if seconds is not None:
        asyncio.get_event_loop().call_later(seconds, _resume, transport)


def ignore_input(protocol) -> None:
    """
    From now on, read what a protocol's client sends and throw it away
    unparsed, the rest of the last read included (a flood's read holds
    thousands of frames, and autobahn copies what is left of it at every
    frame). Reading on (rather than pausing) lets the connection end with a
    FIN once the closing handshake times out: closed with unread data, the
    kernel would send a reset, and the client could lose the close frame
    and its code before reading them.

    Relies on: Twisted handing each read to `protocol.dataReceived`;
    autobahn's `processData` parsing frames out of `protocol.data` and
    stopping when it is empty.
    """
    protocol.data = b""
    protocol.dataReceived = _ignore
    transport = getattr(protocol, "transport", None)
    if transport is not None:
        _resume(transport)


def _ignore(data: bytes) -> None:
    pass


def _resume(transport) -> None:
    if transport.connected and not transport.disconnecting:
        transport.resumeProducing()


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


def reads_body(run) -> bool:
    """
    Whether the django-ninja operation behind `run` (what a NinjaAPI
    decorator with mode="view" wraps) takes a body; True when that cannot
    be told, so nothing is refused on a guess.

    Relies on: `run` being the bound Operation.run, and Operation.models
    holding one model per parameter source, each with
    __ninja_param_source__ ("body", "form", "file" for a body; checked by
    the upgrade test).
    """
    models = getattr(getattr(run, "__self__", None), "models", None)
    if models is None:
        return True
    return any(
        getattr(model, "__ninja_param_source__", "body") in ("body", "form", "file")
        for model in models
    )
