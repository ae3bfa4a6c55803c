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


def origin_admitted(scope) -> bool:
    """
    Native apps send no Origin header and are let in. A browser's Origin
    must be this site as the browser addressed it (scheme, host and port,
    not the host alone), or one of WS_ALLOWED_ORIGINS / CSRF_TRUSTED_ORIGINS
    (full origins such as https://dispatch.example.org): no foreign page can
    ride on a signed-in user's cookies.
    """
    headers = dict(scope.get("headers", []))
    origin = headers.get(b"origin")
    if origin is None:
        return True
    wanted = _origin(origin.decode("latin-1"))
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


class SocketDoor:
    """
    Who may open a socket, and as whom. A handshake whose origin is not
    admitted (origin_admitted) gets HTTP 403. Then a bearer access token
    (header `Authorization: Bearer …`, or `?token=` for clients that cannot
    set headers) signs the socket in; without one the session cookie
    (console) decides.

    One layer for both, and app sockets with a token skip the cookie,
    session and auth middleware: each ASGI layer's coroutine waits for its
    socket's whole life, holding what its frame names, which is memory per
    socket (docs/benchmarks.md). So this frame names only the scopes; what
    the checks read stays in their helpers.
    """

    def __init__(self, application):
        self.application = application
        self.with_session = AuthMiddlewareStack(SecondFactorGate(application))

    async def __call__(self, scope, receive, send):
        if not origin_admitted(scope):
            return await WebsocketDenier()(scope, receive, send)
        signed_in = await _token_scope(scope)
        if signed_in is None:
            return await self.with_session(scope, receive, send)
        return await self.application(signed_in, receive, send)


def _access_token(scope) -> str | None:
    """The bearer token of the handshake's Authorization header, or of ?token=."""
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            text = value.decode("latin-1")
            if text.lower().startswith("bearer "):
                return text[7:].strip()
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    return (query.get("token") or [None])[0]


async def _token_scope(scope) -> dict | None:
    """
    A copy of the scope with its token's user and app session (anonymous if
    the token is invalid), or None when the handshake carries no token.
    """
    token = _access_token(scope)
    if not token:
        return None
    resolved = await db_async(access_token_resolve)(token)
    user, session = resolved or (AnonymousUser(), None)
    return dict(
        scope,
        user=user,
        # The app session this socket belongs to (its logout closes it).
        api_session_id=session.pk if session else None,
        token_invalid=resolved is None,
    )


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

websocket_application = UnreachableGuard(SocketDoor(URLRouter(websocket_urlpatterns)))
