"""
The REST API for the apps, with its OpenAPI schema at /api/openapi.json and
interactive docs at /api/docs: the apps' routers, mounted here.

Every error body has the same shape: {"code", "message"} plus "fields" for
invalid input, so the apps can branch on `code`. The services' refusals
(project.common.errors.ServiceError) carry their own code and status; one
that says when to come back (`retry_after`, seconds) also sets Retry-After.

Every operation's input (path, query and JSON body) keeps the rules of
project.common.inbound before ninja parses it: one check, for every router.
"""

from __future__ import annotations

from functools import wraps

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    JsonResponse,
    UnreadablePostError,
)
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError

from dispatch.rest_api import ride_router
from dispatch.series_api import series_router
from people.auth_api import auth_router
from people.caregiver_api import caregiver_router
from people.notice_api import notice_router
from people.profile_api import profile_router
from project.common.adapters import reads_body
from project.common.errors import ServiceError
from project.common.inbound import InvalidJson, inbound_check, inbound_parse

api = NinjaAPI(
    title="Care Connect API",
    version="1.0",
    description="REST endpoints of the Care Connect apps. Rides themselves "
    "run over WebSockets: see docs/protocol.md.",
    docs_url="/docs",
    urls_namespace="api",
)
api.add_router("/auth/", auth_router)
# Its own router beside auth's: ninja mounts both prefixes side by side.
api.add_router("/auth/profile/", profile_router)
api.add_router("/caregivers/", caregiver_router)
api.add_router("/notifications/", notice_router)
api.add_router("/rides/", ride_router)
api.add_router("/series/", series_router)


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


_HTTP_CODES = {
    400: "invalid_request",
    401: "authentication_required",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    429: "throttled",
}


@api.exception_handler(HttpError)
def on_http_error(request: HttpRequest, exc: HttpError):
    message = str(exc)
    code = _HTTP_CODES.get(exc.status_code, "error")
    if message.startswith("Cannot parse request body"):
        code, message = "invalid_json", "The request body is not valid JSON."
    return api.create_response(request, {"code": code, "message": message}, status=exc.status_code)


@api.exception_handler(ServiceError)
def on_service_error(request: HttpRequest, exc: ServiceError):
    response = api.create_response(request, exc.body(), status=exc.status)
    retry_after = exc.extra.get("retry_after")
    if isinstance(retry_after, int) and retry_after >= 0:
        response["Retry-After"] = str(retry_after)
    return response


# nginx's "client closed request": the access log shows why nothing was sent.
CLIENT_CLOSED_REQUEST = 499


def _body(request: HttpRequest) -> bytes | None:
    """
    The request's body; None when the client has already left. Django's
    ASGI handler closes the body when it hears the client disconnect, while
    the view's thread runs on, and reading it then raises ValueError (or
    UnreadablePostError when the read itself fails): a server error in the
    log, for a client that is gone. A body over
    DATA_UPLOAD_MAX_MEMORY_SIZE is refused with 413, not logged as an error.
    """
    try:
        return request.body
    except RequestDataTooBig as exc:
        raise ServiceError(
            f"Request bodies are limited to {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes.",
            code="request_too_large",
            status=413,
        ) from exc
    except (ValueError, UnreadablePostError):
        return None


FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def refuse_unreadable_input(run):
    """
    Around every operation (a ninja view decorator, so before ninja parses
    anything): text no database can store, or a body nested too deep, is
    refused as a ServiceError, and so is a JSON body that does not parse
    (`invalid_json`, as ninja would answer), and fields sent to a call that
    takes no body (ninja would drop them unread).
    """

    @wraps(run)
    def checked(request: HttpRequest, *args, **kwargs):
        try:
            inbound_check(kwargs)
            query = {key: request.GET.getlist(key) for key in request.GET}
            inbound_check({key: v[0] if len(v) == 1 else v for key, v in query.items()})
            raw = _body(request)
            if raw is None:
                return HttpResponse(status=CLIENT_CLOSED_REQUEST, reason="Client Closed Request")
            # Whatever its Content-Type says, ninja reads a body as JSON: a
            # form's too. Only a form that is not JSON (many clients send an
            # empty one with a bare POST) is left to ninja, which ignores it
            # where the operation reads no body and refuses it where it does.
            if raw:
                try:
                    body = inbound_parse(raw, "The request body")
                except InvalidJson:
                    if request.content_type not in FORM_TYPES:
                        raise
                else:
                    if isinstance(body, dict) and body and not reads_body(run):
                        raise ServiceError(
                            "This call takes no fields: " + ", ".join(sorted(body)) + ".",
                            code="invalid_request",
                            fields={key: "Not a field of this call." for key in body},
                        )
        except ServiceError as exc:
            return on_service_error(request, exc)
        return run(request, *args, **kwargs)

    return checked


api.add_decorator(refuse_unreadable_input, mode="view")


def not_found(request: HttpRequest, rest: str = ""):
    """Unknown /api/ paths answer JSON, like the rest of the API."""
    return JsonResponse(
        {"code": "not_found", "message": f"No API endpoint at {request.path}."}, status=404
    )


def _method_not_allowed_as_json(view):
    """
    ninja answers a method its path does not take with a bare text 405,
    past every exception handler; the apps get it in the error envelope.
    """

    @wraps(view)
    def answered(request: HttpRequest, *args, **kwargs):
        response = view(request, *args, **kwargs)
        if not isinstance(response, HttpResponseNotAllowed):
            return response
        allowed = response["Allow"]
        refused = api.create_response(
            request,
            {"code": _HTTP_CODES[405], "message": f"Use {allowed} here, not {request.method}."},
            status=405,
        )
        refused["Allow"] = allowed
        return refused

    return answered


def api_urls():
    """The API's URLs (project.urls mounts them), wrong methods answered as JSON."""
    patterns, app_name, namespace = api.urls
    for pattern in patterns:
        pattern.callback = _method_not_allowed_as_json(pattern.callback)
    return patterns, app_name, namespace
