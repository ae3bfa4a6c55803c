"""
What every JSON WebSocket of the project shares: the error envelope, the
size cap and the input rules (project.common.inbound), `ping`, per-type
handlers, and group membership. A bad message gets {"type": "error", ...}
and the socket stays open.
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from collections.abc import Callable
from typing import Any, ClassVar

import redis.exceptions
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.utils import timezone
from pydantic import ValidationError

from project.common.adapters import QuietWhenClientLeft, SkipConnectionSweep
from project.common.errors import ServiceError
from project.common.inbound import inbound_parse
from project.common.socket_limits import SocketLimits

log = logging.getLogger(__name__)

# Redis (the channel layer, the live positions) cannot be reached: these
# are what redis-py raises then.
UNREACHABLE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
# Daphne lets applications close only with 1000 or 3000-4999.
CLOSE_TRY_AGAIN_LATER = 4503
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404


def error(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """The error envelope of every socket."""
    return {"type": "error", "code": code, "message": message, **extra}


UNAVAILABLE = error(
    "service_unavailable", "The service is briefly unavailable. Try again in a moment."
)


class UnreachableGuard:
    """
    ASGI middleware for the sockets: while Redis cannot be reached, a socket
    that cannot even be set up (Channels subscribes its channel first) is
    accepted, told `service_unavailable` and closed with 4503 ("try again
    in a moment"), instead of an HTTP 500 the app cannot tell from any other
    fault.
    """

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        accepted = False

        async def sending(message):
            nonlocal accepted
            accepted = accepted or message["type"] == "websocket.accept"
            await send(message)

        try:
            return await self.application(scope, receive, sending)
        except UNREACHABLE as exc:
            log.warning("socket at %s closed: Redis is unreachable (%s)", scope["path"], exc)
            if not accepted:
                await send({"type": "websocket.accept"})
            await send({"type": "websocket.send", "text": json.dumps(UNAVAILABLE)})
            await send({"type": "websocket.close", "code": CLOSE_TRY_AGAIN_LATER})


def invalid_fields(exc: ValidationError) -> ServiceError:
    fields: dict[str, str] = {}
    for problem in exc.errors():
        name = ".".join(str(p) for p in problem["loc"]) or "message"
        fields.setdefault(name, problem["msg"])
    return ServiceError("Invalid fields: " + ", ".join(sorted(fields)) + ".", fields=fields)


class JsonSocket(
    SocketLimits, QuietWhenClientLeft, SkipConnectionSweep, AsyncJsonWebsocketConsumer
):
    """
    A socket that speaks JSON objects with a string `type`. `handlers` maps
    each type to a method name; a handler raises ServiceError (or a pydantic
    ValidationError) to refuse, and the client gets the error envelope.
    """

    handlers: ClassVar[dict[str, str]] = {"ping": "on_ping"}

    async def websocket_connect(self, message):
        self.groups_joined: set[str] = set()
        await super().websocket_connect(message)

    @property
    def user(self):
        return self.scope["user"]

    async def join(self, group: str) -> None:
        if group not in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
            # Only once it worked: a join that failed (Redis away) is retried.
            self.groups_joined.add(group)

    async def leave(self, group: str) -> None:
        if group in self.groups_joined:
            self.groups_joined.discard(group)
            await self.channel_layer.group_discard(group, self.channel_name)

    async def disconnect(self, code):
        for group in list(getattr(self, "groups_joined", ())):
            await self.channel_layer.group_discard(group, self.channel_name)
        self.groups_joined = set()

    async def send_error(self, code: str, message: str, **extra: Any) -> None:
        await self.send_json(error(code, message, **extra))

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        raw = text_data if text_data is not None else bytes_data
        size = len(raw.encode() if isinstance(raw, str) else raw or b"")
        if size > settings.WS_MAX_MESSAGE_BYTES:
            await self.send_error(
                "message_too_large",
                f"Messages are limited to {settings.WS_MAX_MESSAGE_BYTES} bytes; "
                f"this one has {size}.",
            )
            return
        try:
            # Not JSON, text no database can store, or nesting past the
            # limit: refused here, before any handler or validation sees it.
            content = inbound_parse(raw)
        except ServiceError as exc:
            await self.send_error(exc.code, str(exc), **exc.extra)
            return
        await self.receive_json(content)

    async def receive_json(self, content, **kwargs):
        if not isinstance(content, dict) or not isinstance(content.get("type"), str):
            await self.send_error(
                "invalid_request",
                "Send a JSON object with a string 'type'.",
                fields={"type": "a string"},
            )
            return
        kind = content["type"]
        handler = self.handlers.get(kind)
        if handler is None:
            await self.send_error(
                "unknown_type",
                f"Unknown message type '{kind[:40]}'.",
                supported=sorted(self.handlers),
            )
            return
        try:
            await getattr(self, handler)(content)
        except ValidationError as exc:
            refused = invalid_fields(exc)
            await self.send_error(refused.code, str(refused), **refused.extra)
        except ServiceError as exc:
            await self.send_error(exc.code, str(exc), **exc.extra)
        except UNREACHABLE as exc:
            log.warning("%s: Redis is unreachable (%s)", kind[:40], exc)
            await self.send_json(UNAVAILABLE)
        except Exception:
            log.exception("%s failed on %s", type(self).__name__, kind[:40])
            await self.send_error("internal_error", "Something went wrong; try again.")

    async def on_ping(self, content):
        await self.send_json({"type": "pong", "timestamp": timezone.now().isoformat()})

    def require_user(self):
        if not self.user.is_authenticated:
            raise ServiceError("Sign in to do this.", code="authentication_required", status=401)
        return self.user


def per_event_loop[T](factory: Callable[[], T]) -> Callable[[], T]:
    """A getter of one `factory()` per running event loop (a worker has one)."""
    instances: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def get() -> T:
        loop = asyncio.get_running_loop()
        if loop not in instances:
            instances[loop] = factory()
        return instances[loop]

    return get
