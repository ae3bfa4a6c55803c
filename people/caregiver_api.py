"""
Caregiver links over REST, under /api/caregivers/. The rules (consent,
permissions, audit, telling open sockets) live in people.caregivers; these
views only find the caller's link and translate errors.

A link id the caller is not part of answers 404, exactly like one that does
not exist, so ids reveal nothing about other people.
"""

# No `from __future__ import annotations`: ninja reads the list view's
# query parameters through @paginate's wrapper, which cannot resolve names.

from collections.abc import Callable
from functools import partial

from django.db.models import Q
from django.http import HttpRequest
from ninja import Router, Status
from ninja.pagination import PageNumberPagination, paginate

from people import caregivers
from people.caregiver_schemas import LinkInviteIn, LinkOut, LinkState, LinkUpdateIn, link_out
from people.models import CaregiverLink, User
from people.rest_schemas import ErrorOut, changes_sent
from people.tokens import AccessTokenAuth
from project.common.errors import ApiError

caregiver_router = Router(auth=AccessTokenAuth(), tags=["caregivers"])

ERRORS = {400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 409: ErrorOut}


def _links_of(user: User):
    return CaregiverLink.objects.select_related("passenger", "caregiver").filter(
        Q(passenger=user) | Q(caregiver=user)
    )


def _link_or_404(user: User, link_id: int) -> CaregiverLink:
    link = _links_of(user).filter(pk=link_id).first()
    if link is None:
        raise ApiError(404, "not_found", "No such caregiver link.")
    return link


def _link_change(request: HttpRequest, link_id: int, change: Callable[..., CaregiverLink]):
    """The caller's link after `change` (a people.caregivers service) made by them."""
    user = request.auth
    link = change(link=_link_or_404(user, link_id), actor=user)
    return link_out(link, user)


@caregiver_router.get(
    "/",
    response={200: list[LinkOut], 401: ErrorOut},
    summary="My caregiver links, as passenger and as caregiver",
)
@paginate(PageNumberPagination, page_size=50, max_page_size=100)
def link_list(request: HttpRequest, status: LinkState | None = None):
    """
    Every link of the caller, newest first; `?status=active` narrows it. The
    body is {"items": [...], "count"}, as every list of the API
    (?page=1&page_size=50, at most 100).
    """
    user = request.auth
    links = _links_of(user).order_by("-created_at", "-pk")
    if status is not None:
        links = links.filter(status=status)
    return [link_out(link, user) for link in links]


@caregiver_router.post(
    "/",
    response={201: LinkOut, **ERRORS},
    summary="Invite a caregiver by phone",
)
def link_invite(request: HttpRequest, body: LinkInviteIn):
    """
    The caller is the passenger. The link stays `invited` until the
    caregiver accepts; until then it grants nothing.
    """
    user = request.auth
    link = caregivers.caregiver_link_invite(passenger=user, actor=user, **body.model_dump())
    return Status(201, link_out(link, user))


@caregiver_router.get(
    "/{int:link_id}/", response={200: LinkOut, 401: ErrorOut, 404: ErrorOut}, summary="One link"
)
def link_detail(request: HttpRequest, link_id: int):
    return link_out(_link_or_404(request.auth, link_id), request.auth)


@caregiver_router.post(
    "/{int:link_id}/accept/",
    response={200: LinkOut, **ERRORS},
    summary="Accept an invitation (caregiver)",
)
def link_accept(request: HttpRequest, link_id: int):
    return _link_change(request, link_id, caregivers.caregiver_link_accept)


@caregiver_router.post(
    "/{int:link_id}/decline/",
    response={200: LinkOut, **ERRORS},
    summary="Decline an invitation (caregiver)",
)
def link_decline(request: HttpRequest, link_id: int):
    return _link_change(request, link_id, caregivers.caregiver_link_decline)


@caregiver_router.patch(
    "/{int:link_id}/",
    response={200: LinkOut, **ERRORS},
    summary="Change permissions, relationship or notes (passenger)",
)
def link_update(request: HttpRequest, link_id: int, body: LinkUpdateIn):
    """Only the fields sent change. Open sockets apply new permissions at once."""
    changes = changes_sent(body)
    return _link_change(request, link_id, partial(caregivers.caregiver_link_update, **changes))


@caregiver_router.delete(
    "/{int:link_id}/",
    response={200: LinkOut, **ERRORS},
    summary="Revoke a link (passenger or caregiver)",
)
def link_revoke(request: HttpRequest, link_id: int):
    """The caregiver loses every permission at once; the link stays on record."""
    return _link_change(request, link_id, caregivers.caregiver_link_revoke)
