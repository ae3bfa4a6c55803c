"""
The REST API for the apps, with its OpenAPI schema at /api/openapi.json and
interactive docs at /api/docs. Each app adds its own router here.

Every error body has the same shape: {"code", "message"} plus "fields" for
invalid input, so the apps can branch on `code`.
"""

from __future__ import annotations

from django.http import HttpRequest
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError

api = NinjaAPI(
    title="Care Connect API",
    version="1.0",
    description="REST endpoints of the Care Connect apps. Rides themselves "
    "run over WebSockets: see docs/protocol.md.",
    docs_url="/docs",
    urls_namespace="api",
)


def _field_name(loc: list) -> str:
    # ninja prefixes locations with the source ("body", "payload"...).
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "payload", "data")]
    return ".".join(parts) or "body"


@api.exception_handler(ValidationError)
def on_validation_error(request: HttpRequest, exc: ValidationError):
    fields: dict[str, str] = {}
    for error in exc.errors:
        fields.setdefault(_field_name(error.get("loc", [])), error.get("msg", "invalid"))
    names = ", ".join(sorted(fields))
    return api.create_response(
        request,
        {"code": "invalid_request", "message": f"Invalid fields: {names}.", "fields": fields},
        status=400,
    )


@api.exception_handler(AuthenticationError)
def on_authentication_error(request: HttpRequest, exc: AuthenticationError):
    return api.create_response(
        request,
        {"code": "authentication_required", "message": "Sign in: send a valid access token."},
        status=401,
    )


class ApiError(HttpError):
    """An error with a machine-readable code, rendered as {"code","message"}."""

    def __init__(self, status: int, code: str, message: str, **extra) -> None:
        super().__init__(status, message)
        self.code = code
        self.extra = extra


@api.exception_handler(ApiError)
def on_api_error(request: HttpRequest, exc: ApiError):
    return api.create_response(
        request,
        {"code": exc.code, "message": str(exc), **exc.extra},
        status=exc.status_code,
    )


def register_routers() -> None:
    """Attach every app's router; called once from urls.py."""
    from people.api import auth_router

    api.add_router("/auth/", auth_router)
