"""
The dispatcher console: one board page whose regions htmx swaps in place.

Views check who asks (people.access), read through console.board and change
things only through dispatch's and people's services. Errors a dispatcher
can act on (a driver taken meanwhile, a ride that changed) come back as a
message in the page, never as a server error. The board's regions follow a
change through the console socket, on every console, the acting one
included; an action's response is the ride panel alone.
"""

from __future__ import annotations

from base64 import b32encode
from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlencode

import django_otp
import segno
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect
from django_htmx.middleware import HtmxDetails

from console import live_map, regions
from console.forms import (
    CANCEL_REASONS,
    MAX_KEY,
    AssignForm,
    CancelForm,
    ConsoleLoginForm,
    SecondFactorForm,
)
from dispatch import alarms, matching, rides
from dispatch.errors import DispatchError, NeedsConfirmation
from dispatch.models import FINAL_STATUSES, PENDING_STATUSES, Ride, RideStatus
from people import staff_signin
from people.access import (
    is_dispatcher,
    is_support,
    passed_second_factor,
    second_factor_required,
)

TEMPLATE = "console/board.html"


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def console_view(check: Callable[[Any], bool], refusal: str):
    """
    Sign-in required (htmx requests are sent to the login page as a whole
    page, not swapped into a panel); signed-in users who fail `check` get
    403; staff who have not entered their authenticator code yet are sent
    to enter it.
    """

    def decorator(view):
        @wraps(view)
        def wrapped(request: HtmxHttpRequest, *args, **kwargs) -> HttpResponse:
            if not request.user.is_authenticated:
                if request.htmx:
                    login = reverse(settings.LOGIN_URL)
                    return HttpResponseClientRedirect(f"{login}?next={reverse('console:board')}")
                return redirect_to_login(request.get_full_path())
            if not check(request.user):
                raise PermissionDenied(refusal)
            if not passed_second_factor(request.user, request.session):
                if request.htmx:
                    return HttpResponseClientRedirect(_second_factor_url(reverse("console:board")))
                return redirect(_second_factor_url(request.get_full_path()))
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


dispatcher_view = console_view(
    is_dispatcher, "The live board is for dispatchers (the Dispatchers group)."
)
links_view = console_view(
    is_support, "Caregiver links are managed by dispatchers and support staff."
)


# --- sign-in ----------------------------------------------------------------


class ConsoleLoginView(auth_views.LoginView):
    template_name = "registration/login.html"
    authentication_form = ConsoleLoginForm

    def get_context_data(self, **kwargs):
        # The admin's theme colours, so the page matches the unfold admin.
        theme = admin.site.each_context(self.request)
        return super().get_context_data(
            title="Sign in",
            site_title="Care Connect dispatch",
            colors=theme.get("colors"),
            border_radius=theme.get("border_radius"),
            **kwargs,
        )

    def get_default_redirect_url(self) -> str:
        return _landing(self.request.user)

    def get_success_url(self) -> str:
        url = super().get_success_url()
        if passed_second_factor(self.request.user, self.request.session):
            return url
        return _second_factor_url(url)


login = ConsoleLoginView.as_view()
logout = auth_views.LogoutView.as_view()


def _landing(user) -> str:
    # Support staff who are not dispatchers start where they may work.
    if not is_dispatcher(user) and is_support(user):
        return reverse("console:links")
    return reverse("console:board")


def _second_factor_url(next_url: str) -> str:
    return f"{reverse('console:two_factor')}?{urlencode({'next': next_url})}"


@require_http_methods(["GET", "POST"])
def two_factor(request: HtmxHttpRequest) -> HttpResponse:
    """
    The second step of a staff sign-in, for the console and the admin alike:
    the code from the authenticator app, or, before there is one, its
    enrolment by QR code (the first right code confirms it).
    """
    user = request.user
    if not user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    next_url = _next_url(request)
    if not second_factor_required(user):
        if not user.is_staff:
            raise PermissionDenied("The console and the admin are for staff accounts.")
        return redirect(next_url)
    if passed_second_factor(user, request.session):
        return redirect(next_url)

    device = staff_signin.totp_device_of(user)
    enrolling = device is None
    if enrolling:
        device = staff_signin.totp_device_enrolling(
            user=user, device_id=request.session.get(ENROLLING_KEY)
        )
        request.session[ENROLLING_KEY] = device.pk
    form = SecondFactorForm(request.POST or None)
    if form.is_valid():
        try:
            device = staff_signin.totp_check(device=device, code=form.cleaned_data["code"])
        except staff_signin.SecondFactorError as exc:
            form.add_error("code", str(exc))
        else:
            # A new privilege for this session: a new session key with it.
            request.session.cycle_key()
            django_otp.login(request, device)
            return redirect(next_url)
    theme = admin.site.each_context(request)
    return render(
        request,
        "registration/two_factor.html",
        {
            "form": form,
            "next": next_url,
            "enrolling": enrolling,
            "title": "Set up your authenticator" if enrolling else "Enter your code",
            "site_title": "Care Connect",
            "colors": theme.get("colors"),
            "border_radius": theme.get("border_radius"),
            **(_enrolment(device) if enrolling else {}),
        },
    )


def _next_url(request: HttpRequest) -> str:
    """Where the sign-in was going, if it is on this site; else the user's landing page."""
    next_url = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return next_url
    return _landing(request.user)


# The session's authenticator being enrolled (its own secret).
ENROLLING_KEY = "care_connect_totp_enrolling"


def _enrolment(device) -> dict[str, str]:
    """
    The new authenticator's QR code, drawn as an image in the page (no
    script, no third party), and its secret in groups of four, to type in.
    """
    secret = b32encode(device.bin_key).decode()
    return {
        "qr_code": segno.make(device.config_url, error="m").svg_data_uri(scale=5, border=2),
        "secret": " ".join(secret[i : i + 4] for i in range(0, len(secret), 4)),
    }


# --- rendering helpers --------------------------------------------------------


def whole_number(value: str) -> int | None:
    """
    A form's whole number up to MAX_KEY, or None: isdigit alone also takes
    '²', which int refuses, and int refuses thousands of digits.
    """
    if not (value.isascii() and value.isdigit()) or len(value) > len(str(MAX_KEY)):
        return None
    number = int(value)
    return number if number <= MAX_KEY else None


def _common(request: HttpRequest) -> dict[str, Any]:
    return {
        "can_manage_links": is_support(request.user),
        "can_use_board": is_dispatcher(request.user),
        "cancel_reasons": CANCEL_REASONS,
    }


def _page(request: HtmxHttpRequest, **extra: Any) -> HttpResponse:
    ctx = regions.board_context()
    ctx["map_data"] = live_map.map_snapshot(drivers=ctx["drivers"])
    ctx["map_config"] = {"tile_url": settings.MAP_TILE_URL, "ws_path": "/ws/console/"}
    ctx["search_query"] = request.GET.get("q", "")[:100]
    ctx.update(_common(request))
    ctx.update(extra)
    return render(request, TEMPLATE, ctx)


def _panel_context(ride: Ride, **extra: Any) -> dict[str, Any]:
    is_final = ride.status in FINAL_STATUSES
    candidates = []
    if ride.status in (*PENDING_STATUSES, RideStatus.ASSIGNED, RideStatus.DRIVER_ARRIVED):
        candidates = matching.assign_candidates(ride)
    return {
        "panel_ride": ride,
        "candidates": candidates,
        "is_final": is_final,
        "cancel_reasons": CANCEL_REASONS,
        # The ride home a cancel would take with it; the panel offers to keep it.
        "returns_going": [] if is_final else list(rides.returns_going_with(ride)),
        **extra,
    }


# --- the board ----------------------------------------------------------------


@require_GET
@dispatcher_view
def board(request: HtmxHttpRequest) -> HttpResponse:
    return _page(request)


@require_GET
@dispatcher_view
def region(request: HtmxHttpRequest, name: str) -> HttpResponse:
    """One region of the board, for htmx; a browser gets the whole board."""
    if name not in regions.REGIONS:
        raise Http404("No such region.")
    if not request.htmx:
        return redirect("console:board")
    ctx = {**regions.board_context((name,)), **_common(request)}
    return render(request, regions.region_template(name), ctx)


# --- one ride: assign, reassign, cancel -------------------------------------------


@require_GET
@dispatcher_view
def ride_panel(request: HtmxHttpRequest, ride_pk: int) -> HttpResponse:
    ride = regions.ride_for_panel(ride_pk)
    if ride is None:
        raise Http404("No such ride.")
    ctx = _panel_context(ride)
    # `seen`: the version the page showed; a refresh after a live change or
    # a reconnect says when the ride moved on meanwhile.
    seen = whole_number(request.GET.get("seen", ""))
    if seen is not None and ride.version > seen:
        ctx["panel_info"] = (
            "This ride changed on another console or in an app; this is how it stands now."
        )
    if request.htmx:
        return render(request, f"{TEMPLATE}#ride-panel", ctx)
    return _page(request, **ctx)


def flash_and_redirect(
    request: HttpRequest, *to: Any, error: str = "", notice: str = "", **to_kwargs: Any
) -> HttpResponse:
    """A request without htmx: the outcome as a flash message, then the page again."""
    if error:
        messages.error(request, error)
    elif notice:
        messages.success(request, notice)
    return redirect(*to, **to_kwargs)


def _after_ride_action(
    request: HtmxHttpRequest, ride_pk: int, *, error: str = "", notice: str = "", **extra: Any
) -> HttpResponse:
    if not request.htmx:
        return flash_and_redirect(
            request, "console:ride", ride_pk=ride_pk, error=error, notice=notice
        )
    ctx = _panel_context(
        regions.ride_for_panel(ride_pk), panel_error=error, panel_notice=notice, **extra
    )
    return render(request, f"{TEMPLATE}#ride-panel", ctx)


@require_POST
@dispatcher_view
def ride_assign(request: HtmxHttpRequest, ride_pk: int) -> HttpResponse:
    ride = get_object_or_404(Ride.objects.select_related("driver"), pk=ride_pk)
    form = AssignForm(request.POST)
    if not form.is_valid():
        return _after_ride_action(request, ride_pk, error="Choose a driver from the list.")
    data = form.cleaned_data
    try:
        matching.ride_assign(
            ride=ride,
            driver_id=data["driver_id"],
            actor=request.user,
            role="dispatcher",
            expected_version=data["version"],
            confirmed=data["confirm"],
        )
    except NeedsConfirmation as exc:
        confirm = {"driver_id": data["driver_id"], "version": data["version"], **exc.extra}
        return _after_ride_action(request, ride_pk, confirm=confirm, confirm_message=str(exc))
    except DispatchError as exc:
        return _after_ride_action(request, ride_pk, error=str(exc))
    ride = Ride.objects.select_related("driver", "passenger").get(pk=ride_pk)
    return _after_ride_action(
        request,
        ride_pk,
        notice=f"{ride.driver} is now assigned to {ride.passenger} ({ride.ride_id}).",
    )


def _end_ride(request: HtmxHttpRequest, ride_pk: int, action: str) -> HttpResponse:
    ride = get_object_or_404(Ride, pk=ride_pk)
    form = CancelForm(request.POST)
    if not form.is_valid():
        return _after_ride_action(request, ride_pk, error="Give a reason (up to 64 characters).")
    reason, seen = form.cleaned_data["reason"], form.cleaned_data["version"]
    keep = form.cleaned_data["keep_return"]
    returns = ", ".join(r.ride_id for r in rides.returns_going_with(ride))
    try:
        if action == "cancel":
            rides.ride_cancel(
                ride=ride,
                actor=request.user,
                cancelled_by="dispatcher",
                reason=reason,
                expected_version=seen,
                keep_return=keep,
            )
            notice = f"Ride {ride.ride_id} is cancelled"
        else:
            rides.ride_mark_unfulfilled(
                ride=ride,
                actor=request.user,
                reason=reason,
                expected_version=seen,
                keep_return=keep,
            )
            notice = f"Ride {ride.ride_id} is closed as unfulfilled"
    except DispatchError as exc:
        return _after_ride_action(request, ride_pk, error=str(exc))
    if returns and keep:
        notice += f"; its return {returns} stays booked."
    elif returns:
        notice += f", and its return {returns} with it."
    else:
        notice += "."
    return _after_ride_action(request, ride_pk, notice=notice)


@require_POST
@dispatcher_view
def ride_cancel(request: HtmxHttpRequest, ride_pk: int) -> HttpResponse:
    return _end_ride(request, ride_pk, "cancel")


@require_POST
@dispatcher_view
def ride_unfulfilled(request: HtmxHttpRequest, ride_pk: int) -> HttpResponse:
    return _end_ride(request, ride_pk, "unfulfilled")


@require_POST
@dispatcher_view
def alarm_acknowledge(request: HtmxHttpRequest, alarm_pk: int) -> HttpResponse:
    """A dispatcher takes an alarm in hand (dispatch.alarms): the alert lane again."""
    error = ""
    try:
        alarms.alarm_acknowledge(alarm_pk=alarm_pk, actor=request.user)
    except DispatchError as exc:
        error = str(exc)
    if not request.htmx:
        return flash_and_redirect(request, "console:board", error=error)
    ctx = {**regions.board_context(("alerts",)), **_common(request), "alerts_error": error}
    return render(request, regions.region_template("alerts"), ctx)
