"""WebSocket routes and the middleware in front of them."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from channels.auth import AuthMiddlewareStack
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.routing import URLRouter
from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.urls import path, re_path

from console.consumers import ConsoleConsumer
from dispatch.consumers import DriverConsumer, FollowerConsumer, RideConsumer
from people.access import passed_second_factor
from people.tokens import access_token_resolve
from project.common.db import db_async
from project.common.sockets import CLOSE_NOT_FOUND, UnreachableGuard, error


def _origin(url: str, default_scheme: str = "") -> tuple[str, str, int] | None:
    """(scheme, host, port) of an origin or a Host header, default ports filled in."""
    parsed = urlsplit(url if "://" in url else f"{default_scheme}://{url}")
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        return None
    try:
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
    except ValueError:
        return None
    return parsed.scheme, parsed.hostname.lower(), port


class SameOrigin:
    """
    Native apps send no Origin header and are let in. A browser's Origin
    must be this site as the browser addressed it (scheme, host and port,
    not the host alone), or one of WS_ALLOWED_ORIGINS / CSRF_TRUSTED_ORIGINS
    (full origins such as https://dispatch.example.org): no foreign page can
    ride on a signed-in user's cookies. Refused handshakes get HTTP 403.
    """

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        headers = dict(scope.get("headers", []))
        origin = headers.get(b"origin")
        if origin is not None and not self.allowed(origin.decode("latin-1"), scope, headers):
            return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)

    @staticmethod
    def allowed(origin: str, scope, headers) -> bool:
        wanted = _origin(origin)
        if wanted is None:
            return False
        scheme = "https" if scope.get("scheme") in ("wss", "https") else "http"
        host = headers.get(b"host", b"").decode("latin-1")
        listed = [*settings.WS_ALLOWED_ORIGINS, *settings.CSRF_TRUSTED_ORIGINS]
        own = _origin(host, scheme) if host else None
        return wanted == own or any(wanted == _origin(o) for o in listed)


class SecondFactorGate:
    """
    Behind the session middleware: a staff session that has signed in with
    its password but not yet with its authenticator code
    (people.access.passed_second_factor) is anonymous to every socket, as
    it is to the console's pages. The console socket then closes it with
    4403; no app socket serves it as staff.
    """

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        user = scope.get("user")
        if user is not None and user.is_authenticated:
            if not await db_async(passed_second_factor)(user, scope["session"]):
                scope = dict(scope, user=AnonymousUser())
        return await self.application(scope, receive, send)


class TokenAuthMiddleware:
    """
    A bearer access token (header `Authorization: Bearer …`, or `?token=` for
    clients that cannot set headers) signs the socket in; without one the
    session cookie (console) decides.

    App sockets with a token skip the cookie, session and auth middleware:
    each would hold a scope copy and a waiting coroutine for the socket's
    whole life, which is memory per socket (docs/benchmarks.md).
    """

    def __init__(self, application):
        self.application = application
        self.with_session = AuthMiddlewareStack(SecondFactorGate(application))

    async def __call__(self, scope, receive, send):
        token = None
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                text = value.decode("latin-1")
                if text.lower().startswith("bearer "):
                    token = text[7:].strip()
        if token is None:
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            token = (query.get("token") or [None])[0]
        if not token:
            return await self.with_session(scope, receive, send)
        resolved = await db_async(access_token_resolve)(token)
        user, session = resolved or (AnonymousUser(), None)
        scope = dict(
            scope,
            user=user,
            # The app session this socket belongs to (its logout closes it).
            api_session_id=session.pk if session else None,
            token_invalid=resolved is None,
        )
        return await self.application(scope, receive, send)


SOCKETS = (
    "/ws/ride/<ride_id>/ (ride_id: 1-64 letters, digits, '-' or '_'), /ws/driver/, "
    "/ws/passenger/, /ws/caregiver/, /ws/console/"
)


class NoSuchSocket(AsyncJsonWebsocketConsumer):
    """
    Any other path: the socket is accepted only to say, with a typed
    `not_found` error, that nothing answers there and which paths do, then
    closed with 4404. Without it Channels raises "No route found", which
    Daphne answers with HTTP 500 and logs as a server error.
    """

    async def connect(self):
        await self.accept()
        await self.send_json(
            error(
                "not_found",
                f"There is no socket at {self.scope['path']}. The sockets are {SOCKETS}.",
            )
        )
        await self.close(code=CLOSE_NOT_FOUND)


websocket_urlpatterns = [
    re_path(r"^ws/ride/(?P<ride_id>[A-Za-z0-9_-]{1,64})/$", RideConsumer.as_asgi()),
    path("ws/driver/", DriverConsumer.as_asgi()),
    path("ws/driver/<int:driver_id>/", DriverConsumer.as_asgi()),
    re_path(r"^ws/(?P<role>caregiver|passenger)/$", FollowerConsumer.as_asgi()),
    path("ws/console/", ConsoleConsumer.as_asgi()),
    re_path(r"", NoSuchSocket.as_asgi()),
]

websocket_application = SameOrigin(
    UnreachableGuard(TokenAuthMiddleware(URLRouter(websocket_urlpatterns)))
)
