"""
How much one socket may cost the others (docs/protocol.md, "Limits"):

- a message-rate budget: WS_MESSAGE_RATE messages a second, with bursts of
  up to WS_MESSAGE_BURST. Past it the socket is slowed: the worker stops
  reading from it until the budget has room again, the messages it had
  already read are dropped, and it is told once (`rate_limited`, with
  `retry_after`). A socket whose messages go another WS_MESSAGE_BURST past
  the budget is closed with 4429, and what it sends on is thrown away
  unparsed. The budget is spent
  as each frame arrives (`admit_frame`, called by Daphne's protocol through
  project.common.adapters.gate_messages), before the message is queued for
  the consumer, decoded, parsed, or costs any database or channel-layer
  work: a consumer only sees the messages its budget let through. (Checked
  in the consumer, a flood of pings had queued 400 MB of messages in
  seconds, faster than any consumer could refuse them.);
- open sockets: at most WS_MAX_SOCKETS_PER_IP from one client address and
  WS_MAX_SOCKETS_PER_USER of one user, counted in the shared cache
  (project.common.limits), so across every worker. One more is told
  `too_many_sockets` and closed with 4429;
- unread replies: a client that stops reading while the server has more
  than WS_SEND_BUFFER_BYTES waiting for it is closed with 4408 instead of
  the buffer growing (`bound_reply`, called by Daphne through
  project.common.adapters.gate_replies).

The per-socket state is one float (the budget's next due time, the generic
cell rate algorithm), set on a socket's first message, and one slot on the
consumer: 5,000 idle sockets a worker must stay within their memory target
(docs/benchmarks.md). Both Daphne hooks are set once, on its classes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time

import redis.exceptions
from channels.exceptions import StopConsumer
from django.conf import settings

from project.common import adapters
from project.common.clients import limit_key
from project.common.db import db_async
from project.common.errors import ServiceError
from project.common.limits import (
    HOLDER_LEASE_S,
    Ceiling,
    holders_renew,
    holds_release,
    holds_take,
)

log = logging.getLogger(__name__)

# Daphne lets applications close only with 1000 or 3000-4999.
CLOSE_TOO_MANY = 4429
CLOSE_NOT_READING = 4408

_CLOSING = math.inf
# The budget's clock (a name of its own, so tests can move it).
clock = time.monotonic


def ceilings() -> tuple[Ceiling, Ceiling]:
    """The open-socket ceilings (per client address, per user)."""
    # A socket lives at most WEBSOCKET_TIMEOUT_S, so no count it is part of
    # expires while it is open.
    ttl = settings.WEBSOCKET_TIMEOUT_S + 60
    return (
        Ceiling("ws.ip", settings.WS_MAX_SOCKETS_PER_IP, ttl),
        Ceiling("ws.user", settings.WS_MAX_SOCKETS_PER_USER, ttl),
    )


_renewer: asyncio.Task | None = None


async def _listed_as_holder() -> None:
    """
    This worker is listed among the holders of open-socket counts before
    its first socket is counted, and stays listed while it runs (one task
    a worker, renewing its lease; project.common.limits).
    """
    global _renewer
    loop = asyncio.get_running_loop()
    if _renewer is not None and not _renewer.done() and _renewer.get_loop() is loop:
        return
    _renewer = loop.create_task(_renew())
    await db_async(holders_renew)()


async def _renew() -> None:
    while True:
        await asyncio.sleep(HOLDER_LEASE_S / 3)
        try:
            await db_async(holders_renew)()
        except redis.exceptions.RedisError as exc:
            log.warning("open-socket counts: lease not renewed, Redis failed (%s)", exc)


def _claims(scope) -> list[tuple[Ceiling, str]]:
    per_ip, per_user = ceilings()
    claims = []
    client = scope.get("client")
    if client:
        # ProxyHeaders has put the client behind TRUSTED_PROXIES here.
        claims.append((per_ip, limit_key(client[0])))
    user = scope.get("user")
    if user is not None and user.is_authenticated:
        claims.append((per_user, str(user.pk)))
    return claims


class SocketLimits:
    """
    A consumer mixin (first among its bases): the open-socket ceilings on
    connect, and their release on disconnect.
    """

    # Whether this socket was counted under the ceilings (unset: refused).
    __slots__ = ("_counted",)

    async def websocket_connect(self, message):
        await _listed_as_holder()
        # On the database threads, which the connect path uses anyway.
        refused = await db_async(holds_take)(_claims(self.scope))
        if refused is not None:
            whose = "from one address" if refused.name == "ws.ip" else "of one user"
            await self.accept()
            await self.send(
                text_data=_error(
                    "too_many_sockets",
                    f"Too many open sockets: at most {refused.limit} {whose}. Close one first.",
                    limit=refused.limit,
                )
            )
            await self.close(code=CLOSE_TOO_MANY)
            return
        self._counted = True
        try:
            await super().websocket_connect(message)
        except Exception:
            # Set-up failed (Redis, the database): the consumer ends with no
            # disconnect to come, so its hold goes back now, or the app's
            # reconnects would use up the ceiling for a day.
            await self._release()
            raise

    async def websocket_disconnect(self, message):
        if not getattr(self, "_counted", False):
            # Refused by a ceiling: nothing was counted or set up.
            raise StopConsumer()
        await self._release()
        await super().websocket_disconnect(message)

    async def _release(self) -> None:
        self._counted = False
        try:
            await db_async(holds_release)(_claims(self.scope))
        except redis.exceptions.RedisError as exc:
            # Not a reason to fail the disconnect: the counts expire.
            log.warning("open-socket counts not released: Redis failed (%s)", exc)


ADMIT, SLOW, CLOSE = 0, 1, 2


def spend(due: float, now: float, rate: float, burst: int) -> tuple[float, int]:
    """
    One message against the budget: the budget's new due time and ADMIT,
    SLOW (over the budget) or CLOSE (another burst past it). Every message
    spends, refused ones too; the budget refills at `rate`.
    """
    due = max(due, now) + 1 / rate
    # Messages ahead of the sustained rate, this one included.
    ahead = (due - now) * rate
    if ahead <= burst:
        return due, ADMIT
    return due, SLOW if ahead <= 2 * burst else CLOSE


def admit_frame(protocol) -> bool:
    """
    Whether a message that has just arrived on a Daphne protocol goes on to
    its consumer (adapters.gate_messages calls it for each one).
    """
    due = getattr(protocol, "cc_budget_due", 0.0)
    if due == _CLOSING:
        return False
    rate, burst = settings.WS_MESSAGE_RATE, settings.WS_MESSAGE_BURST
    now = clock()
    due, verdict = spend(due, now, rate, burst)
    if verdict == ADMIT:
        protocol.cc_budget_due = due
        return True
    if verdict == SLOW:
        protocol.cc_budget_due = due
        # How far past its burst the budget is; the first over is within one message.
        over = (due - now) - burst / rate
        if over <= 1 / rate:
            # The first over: say so once, and stop reading until the next
            # message has room (one refill past the burst, or it is dropped
            # and told again).
            wait = over + 1 / rate
            adapters.send_text(
                protocol,
                _error(
                    "rate_limited",
                    f"Too many messages: {rate:g} a second at most. Messages are "
                    f"dropped for the next {math.ceil(wait)} s; keep sending and the "
                    "socket closes.",
                    retry_after=math.ceil(wait),
                ),
            )
            adapters.pause_reading(protocol, wait)
        return False
    protocol.cc_budget_due = _CLOSING
    log.warning("socket closed: over its message budget")
    adapters.close(protocol, CLOSE_TOO_MANY)
    adapters.ignore_input(protocol)
    return False


def bound_reply(protocol, message: dict) -> dict | None:
    """
    What goes out for `message` on a Daphne protocol
    (adapters.gate_replies calls it for each): a frame for a client that
    has left more than WS_SEND_BUFFER_BYTES unread becomes a close with
    4408 (its client may never read that either; Daphne then drops the
    connection when the closing handshake times out); a frame for a socket
    already closing goes nowhere.
    """
    if message["type"] != "websocket.send":
        return message
    if adapters.is_closing(protocol):
        # Nothing more reaches the client, and autobahn raises on a closed
        # protocol.
        return None
    unread = adapters.unread_bytes(protocol)
    if unread > settings.WS_SEND_BUFFER_BYTES:
        log.warning("socket closed: its client left %d bytes unread", unread)
        return {"type": "websocket.close", "code": CLOSE_NOT_READING}
    return message


def _error(code: str, message: str, **extra) -> str:
    """The sockets' error envelope, as text."""
    return json.dumps({"type": "error", **ServiceError(message, code=code, **extra).body()})
