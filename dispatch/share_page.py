"""
/t/<token>/: the family tracking page, public, for whoever holds the link
(dispatch.sharing decides what it shows). It polls /t/<token>/status/ for
the ride as it goes. Every answer is capped per client address
(SHARE_PAGE_MAX_PER_MIN, the shared cache caps), kept out of search engines
(X-Robots-Tag and the page's robots meta) and out of caches and Referer
headers, since the token is in the address.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from dispatch import sharing
from project.common.clients import client_ip, limit_key
from project.common.limits import Cap, Claim, caps_take

TEMPLATE = "share/track.html"


def _refused(request: HttpRequest) -> int | None:
    """Seconds to wait when this client has used up its share of the pages."""
    cap = Cap("share_page", settings.SHARE_PAGE_MAX_PER_MIN, 60)
    refusal = caps_take([Claim(cap=cap, subject=limit_key(client_ip(request)))])
    return refusal.retry_after if refusal else None


def _private(response: HttpResponse) -> HttpResponse:
    response["X-Robots-Tag"] = "noindex, nofollow"
    response["Cache-Control"] = "no-store"
    response["Referrer-Policy"] = "no-referrer"
    return response


@require_GET
def track(request: HttpRequest, token: str) -> HttpResponse:
    wait = _refused(request)
    if wait is not None:
        response = render(request, TEMPLATE, {"state": "limited", "wait": wait}, status=429)
        response["Retry-After"] = str(wait)
        return _private(response)
    link = sharing.share_link_by_token(token)
    if link is None:
        return _private(render(request, TEMPLATE, {"state": "unknown"}, status=404))
    view = sharing.shared_view(link)
    ctx = {
        **view,
        "config": {
            "status_url": reverse("track_status", args=[token]),
            "tile_url": settings.MAP_TILE_URL,
        },
    }
    # An ended or revoked link is a page that says so, not an error.
    return _private(render(request, TEMPLATE, ctx))


@require_GET
def track_status(request: HttpRequest, token: str) -> HttpResponse:
    wait = _refused(request)
    if wait is not None:
        response = JsonResponse({"state": "limited", "retry_after": wait}, status=429)
        response["Retry-After"] = str(wait)
        return _private(response)
    link = sharing.share_link_by_token(token)
    if link is None:
        return _private(JsonResponse({"state": "unknown"}, status=404))
    return _private(JsonResponse(sharing.shared_view(link)))
