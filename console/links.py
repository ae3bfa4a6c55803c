"""
The console's Caregiver links page: find links by passenger or caregiver,
invite, change a link's permissions, accept an invitation for a caregiver
who consented by phone, revoke. Who may do each is people.access's call;
every change goes through people.caregivers, which audits it and tells the
apps at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.http import HttpResponse
from django.shortcuts import get_object_or_404, render
from django.template.loader import render_to_string
from django.views.decorators.http import require_GET, require_POST

from console.forms import (
    AcceptForCaregiverForm,
    LinkCreateForm,
    LinkPermissionsForm,
    LinkSearchForm,
)
from console.views import HtmxHttpRequest, _common, flash_and_redirect, links_view
from people import access, caregivers, labels
from people.models import CaregiverLink, User
from people.selectors import LINKS_SHOWN, links_matching

TEMPLATE = "console/links.html"


@dataclass
class LinkRow:
    link: CaregiverLink
    status_label: str
    tone: str
    # What it allows, in words; None once it has ended (no chips then).
    allows: list[str] | None
    may_edit: bool
    may_accept: bool
    may_revoke: bool


def link_row(link: CaregiverLink, user: User) -> LinkRow:
    allowed = access.granted(link)
    return LinkRow(
        link=link,
        status_label=labels.link_status_label(link.status),
        tone=labels.link_status_tone(link.status),
        allows=None if allowed is None else labels.permission_words(allowed),
        may_edit=access.may_edit_permissions(user, link),
        may_accept=access.may_accept_for_caregiver(user, link),
        may_revoke=access.is_live(link) and access.may_revoke_link(user, link),
    )


def _list_context(request: HtmxHttpRequest, search: LinkSearchForm) -> dict[str, Any]:
    data = search.cleaned_data if search.is_valid() else {}
    links = list(
        links_matching(
            passenger=data.get("passenger", ""),
            caregiver=data.get("caregiver", ""),
            include_ended=data.get("ended", False),
        )[: LINKS_SHOWN + 1]
    )
    return {
        "rows": [link_row(link, request.user) for link in links[:LINKS_SHOWN]],
        "more": len(links) > LINKS_SHOWN,
        "searching": any(data.get(key) for key in ("passenger", "caregiver")),
        "search": search,
        **_common(request),
    }


@require_GET
@links_view
def links(request: HtmxHttpRequest) -> HttpResponse:
    ctx = _list_context(request, LinkSearchForm(request.GET))
    if request.htmx and request.htmx.target == "link-list":
        return render(request, f"{TEMPLATE}#link-list", ctx)
    return render(request, TEMPLATE, {**ctx, "link_form": LinkCreateForm()})


def _created_response(request: HtmxHttpRequest, form, *, error: str = "", notice: str = ""):
    if not request.htmx:
        return flash_and_redirect(request, "console:links", error=error, notice=notice)
    ctx = {
        # The search box's terms come with the form (hx-include): the list
        # stays what the box says it is.
        **_list_context(request, LinkSearchForm(request.POST)),
        "link_form": form,
        "link_error": error,
        "link_notice": notice,
        "oob": True,
    }
    html = render_to_string(f"{TEMPLATE}#link-form", ctx, request=request)
    html += render_to_string(f"{TEMPLATE}#link-list", ctx, request=request)
    return HttpResponse(html)


@require_POST
@links_view
def link_create(request: HtmxHttpRequest) -> HttpResponse:
    form = LinkCreateForm(request.POST)
    if not form.is_valid():
        if not request.htmx:
            errors = "; ".join(e for errs in form.errors.values() for e in errs)
            return _created_response(request, form, error=errors)
        return _created_response(request, form)
    data = form.cleaned_data
    try:
        link = caregivers.caregiver_link_invite(
            passenger=data["passenger_phone"],
            caregiver_phone=data["caregiver_phone"],
            actor=request.user,
            relationship_type=data["relationship_type"],
            can_book_rides=data["can_book_rides"],
            can_view_location=data["can_view_location"],
            can_receive_notifications=data["can_receive_notifications"],
            notes=data["notes"],
        )
    except caregivers.LinkError as exc:
        return _created_response(request, form, error=str(exc))
    return _created_response(
        request,
        LinkCreateForm(),
        notice=f"{link.caregiver_label} is invited to care for {link.passenger}.",
    )


def _link(link_pk: int) -> CaregiverLink:
    return get_object_or_404(
        CaregiverLink.objects.select_related("passenger", "caregiver", "invited_by"), pk=link_pk
    )


def _row_response(
    request: HtmxHttpRequest, link: CaregiverLink, *, error: str = "", notice: str = "", **extra
) -> HttpResponse:
    if not request.htmx:
        return flash_and_redirect(request, "console:links", error=error, notice=notice)
    link.refresh_from_db()
    ctx = {
        "row": link_row(link, request.user),
        "row_error": error,
        "row_notice": notice,
        **extra,
        **_common(request),
    }
    return render(request, f"{TEMPLATE}#link-row", ctx)


@require_POST
@links_view
def link_permissions(request: HtmxHttpRequest, link_pk: int) -> HttpResponse:
    link = _link(link_pk)
    form = LinkPermissionsForm(request.POST)
    if not form.is_valid():  # three check boxes: only a forged form fails
        return _row_response(request, link, error="Those permissions could not be read.")
    if not access.may_edit_permissions(request.user, link):
        return _row_response(request, link, error="This link's permissions cannot be changed.")
    try:
        caregivers.caregiver_link_update(
            link=link, actor=request.user, expected=form.shown(), **form.changes()
        )
    except caregivers.LinkError as exc:
        return _row_response(request, link, error=str(exc))
    return _row_response(
        request, link, notice=f"Saved what {link.caregiver_label} may do for {link.passenger}."
    )


@require_POST
@links_view
def link_accept(request: HtmxHttpRequest, link_pk: int) -> HttpResponse:
    link = _link(link_pk)
    form = AcceptForCaregiverForm(request.POST)
    if not form.is_valid():
        return _row_response(request, link, error=form.errors["consent"][0], consent_open=True)
    try:
        caregivers.caregiver_link_accept(
            link=link, actor=request.user, consent=form.cleaned_data["consent"]
        )
    except caregivers.LinkError as exc:
        return _row_response(request, link, error=str(exc), consent_open=True)
    return _row_response(
        request,
        link,
        notice=f"Accepted for {link.caregiver_label}: they now care for {link.passenger}.",
    )


@require_POST
@links_view
def link_revoke(request: HtmxHttpRequest, link_pk: int) -> HttpResponse:
    link = _link(link_pk)
    try:
        caregivers.caregiver_link_revoke(link=link, actor=request.user)
    except caregivers.LinkError as exc:
        return _row_response(request, link, error=str(exc))
    return _row_response(
        request, link, notice=f"{link.caregiver_label} no longer cares for {link.passenger}."
    )
