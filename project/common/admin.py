"""
Admin pieces shared by people/ and dispatch/: the admin site, and the
mixins of records support staff read (changes go through services: the
console, the apps, admin actions).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.http import HttpResponseRedirect, JsonResponse
from django.shortcuts import resolve_url
from django.urls import reverse
from django.utils.csp import CSP
from django.utils.module_loading import import_string
from django.views.decorators.csp import csp_override
from unfold.decorators import display
from unfold.sites import UnfoldAdminSite
from unfold.utils import display_for_label

from project.common.inbound import UnstorableText, inbound_check


class NoAddOrDelete:
    """Rows are created and ended by services, never typed in or deleted."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyPages(NoAddOrDelete):
    """
    Rows changed only by the list's actions (which call services): each
    row's page is for reading and shows no Save buttons.
    """

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request)


class ReadOnly(NoAddOrDelete):
    """A record to read: its history is not edited by hand."""

    def has_change_permission(self, request, obj=None):
        return False


class HiddenFromFilters:
    """
    A list's address takes a filter on any of the model's own fields
    (`?token__startswith=8`), shown or not. Fields its pages hide from this
    user (`hidden_fields`) are refused there too, or the list's answers
    would tell them a digit or a degree at a time.
    """

    hidden_from_filters: tuple[str, ...] = ()

    def hidden_fields(self, request) -> tuple[str, ...]:
        return self.hidden_from_filters

    def lookup_allowed(self, lookup, value, request):
        if lookup.split("__", 1)[0] in self.hidden_fields(request):
            return False
        return super().lookup_allowed(lookup, value, request)


# --- pills ----------------------------------------------------------------------

# The console's tones (dispatch.labels, and the people admin's few) as
# unfold's label colours; muted is unfold's grey.
UNFOLD_COLOURS: dict[str, str | None] = {
    "ok": "success",
    "info": "info",
    "trip": "primary",
    "warn": "warning",
    "danger": "danger",
    "muted": None,
}


class Pill(tuple):
    """
    (key, text), as unfold's label columns read a display method's answer,
    that also renders itself as the pill where a change page shows the same
    method as a read-only field (unfold prints a tuple's repr there).
    """

    def __new__(cls, key: Any, text: str, colour: str | None):
        pill = super().__new__(cls, (key, text))
        pill.colour = colour
        return pill

    def __html__(self) -> str:
        return display_for_label(self, "-", {self[0]: self.colour})

    def __str__(self) -> str:
        return str(self[1])


def pill(
    *, description: str, table: dict[Any, tuple[str, str]], ordering: str | None = None
) -> Callable:
    """
    unfold's `@display(label=...)` for a method that answers a key of
    `table` (key -> (words, console tone)), or (key, other words): the pill
    reads the same in the list and on the change page.
    """
    colours = {key: UNFOLD_COLOURS.get(tone) for key, (_words, tone) in table.items()}

    def decorator(method: Callable) -> Callable:
        @wraps(method)
        def answer(self, obj):
            key = method(self, obj)
            key, text = key if isinstance(key, tuple) else (key, table[key][0])
            return Pill(key, text, colours.get(key))

        return display(description=description, ordering=ordering, label=colours)(answer)

    return decorator


# --- the sidebar's permission callbacks (settings.UNFOLD["SIDEBAR"]) ------------------


def _holding(*perms: str) -> Callable[[Any], bool]:
    """A callback that lets in a user holding every one of `perms`."""

    def holds(request) -> bool:
        return request.user.has_perms(perms)

    return holds


may_answer_calls = _holding("dispatch.view_ride", "people.view_user")
may_view_rides = _holding("dispatch.view_ride")
may_view_people = _holding("people.view_user")
may_view_links = _holding("people.view_caregiverlink")
may_view_drivers = _holding("people.view_driverprofile")
may_view_driver_states = _holding("dispatch.view_driverstate")
may_view_sign_in = _holding("people.view_apisession")
may_view_audit = _holding("people.view_auditevent")


def is_superuser(request) -> bool:
    return request.user.is_superuser


# --- the admin site -------------------------------------------------------------
#
# Unfold builds its admin on Alpine.js, whose standard build evaluates the
# x-data / x-on attribute expressions with `new Function`. Under the site's
# policy (script-src 'self' + nonce, no 'unsafe-eval') every one of them
# fails and the admin renders behind an overlay nobody can close (checked in
# Chromium: the login button cannot be clicked). Alpine's CSP build does not
# understand unfold's expressions, so the admin's pages, and only they, add
# 'unsafe-eval' to script-src. Inline scripts stay forbidden; the console and
# every other page keep the strict policy.


def admin_csp() -> dict:
    """The site's policy, with 'unsafe-eval' in script-src."""
    policy = {key: list(value) for key, value in settings.SECURE_CSP.items()}
    policy["script-src"] = [*policy.get("script-src", [CSP.SELF]), CSP.UNSAFE_EVAL]
    return policy


# --- the address's text ---------------------------------------------------------------


def _unstorable_parameters(request) -> list[str]:
    """The query's parameters whose name or value no database can store."""
    refused = []
    for name, values in request.GET.lists():
        try:
            inbound_check({name: values})
        except UnstorableText:
            refused.append(name)
    return refused


def storable_query(view: Callable) -> Callable:
    """
    An admin view that never meets a parameter holding text no database can
    store (project.common.inbound): a list's filters (`?phone_number=`, any
    field's) and the account pickers' searches go to the database as they
    are, and PostgreSQL refuses a NUL there with a server error. No record
    holds one, so a picker answers no one; a page is shown again without
    those parameters, saying why. (The search box's form refuses a NUL
    itself.)
    """

    @wraps(view)
    def checked(request, *args, **kwargs):
        refused = _unstorable_parameters(request)
        if not refused:
            return view(request, *args, **kwargs)
        if request.resolver_match and request.resolver_match.url_name == "autocomplete":
            return JsonResponse({"results": [], "pagination": {"more": False}})
        messages.error(
            request,
            "This page's address held a NUL character (\\u0000), which no record "
            "holds: the search or filter holding it was left out.",
        )
        kept = request.GET.copy()
        for name in refused:
            del kept[name]
        query = kept.urlencode()
        return HttpResponseRedirect(f"{request.path}?{query}" if query else request.path)

    return checked


class CareAdminSite(UnfoldAdminSite):
    """
    Unfold's admin site, its pages under the admin's script policy. Staff
    sign in with the console's form (UNFOLD's LOGIN form), and a session
    must also pass settings.STAFF_SESSION_CHECK (the second factor, in
    people.access); one that has not is sent to STAFF_SECOND_FACTOR_URL.
    Both are named in settings because this package imports no app. No
    view meets a query parameter a database cannot store (storable_query).
    """

    def has_permission(self, request):
        session_ok = import_string(settings.STAFF_SESSION_CHECK)
        return super().has_permission(request) and session_ok(request.user, request.session)

    def admin_view(self, view, cacheable=False):
        return csp_override(admin_csp())(super().admin_view(storable_query(view), cacheable))

    def login(self, request, extra_context=None):
        # Not wrapped by admin_view: it must work signed out.
        index = reverse("admin:index", current_app=self.name)
        if REDIRECT_FIELD_NAME not in request.GET and REDIRECT_FIELD_NAME not in request.POST:
            # Unfold's login page has no `next` field: without one in the
            # query, Django's LoginView sends a signed-in user to
            # LOGIN_REDIRECT_URL, the console, instead of the admin.
            request.GET = request.GET.copy()
            request.GET[REDIRECT_FIELD_NAME] = index
        user = request.user
        if (
            request.method == "GET"
            and user.is_active
            and user.is_staff
            and not self.has_permission(request)
        ):
            # Signed in with the password, not yet with the code (that
            # page checks `next` is this site's).
            query = urlencode({"next": request.GET[REDIRECT_FIELD_NAME]})
            return HttpResponseRedirect(f"{resolve_url(settings.STAFF_SECOND_FACTOR_URL)}?{query}")
        return csp_override(admin_csp())(super().login)(request, extra_context)
