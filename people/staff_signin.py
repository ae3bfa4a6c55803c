"""
How staff sign in to the console and the admin: a password, then a code
from an authenticator app (TOTP, django-otp's otp_totp) that they enrol by
QR code at their first sign-in.

Who needs the code and who may reset whose authenticator is decided in
people.access; this module makes the changes, each with its audit row. The
console's two-factor page calls it.
"""

from __future__ import annotations

import math

from django.db import transaction
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from people import access, signals
from people.audit import audit_event_record
from people.models import User
from project.common.errors import ServiceError

# --- the authenticator -----------------------------------------------------------


class SecondFactorError(ServiceError):
    code = "second_factor_refused"
    status = 400


class ResetRefused(SecondFactorError):
    code = "forbidden"
    status = 403


def totp_device_of(user: User) -> TOTPDevice | None:
    """The user's enrolled (confirmed) authenticator, if any."""
    return TOTPDevice.objects.filter(user=user, confirmed=True).first()


def totp_device_enrolling(*, user: User) -> TOTPDevice:
    """
    The authenticator being enrolled: unconfirmed until its first code is
    right. The same one comes back until then, so reloading the page shows
    the same QR code.
    """
    device = TOTPDevice.objects.filter(user=user, confirmed=False).first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=False)
    return device


def totp_check(*, device: TOTPDevice, code: str) -> TOTPDevice:
    """
    Check a code from the user's authenticator; the first right code
    confirms (enrols) it. Wrong codes are throttled by django-otp (1, 2,
    4... seconds). Raises SecondFactorError; a wrong code's count is kept.
    """
    code = "".join(str(code).split())
    error: SecondFactorError | None = None
    with transaction.atomic():
        device = TOTPDevice.objects.select_for_update().get(pk=device.pk)
        allowed, info = device.verify_is_allowed()
        if not allowed:
            locked_until = (info or {}).get("locked_until")
            wait = 1
            if locked_until is not None:
                wait = max(1, math.ceil((locked_until - timezone.now()).total_seconds()))
            error = SecondFactorError(
                f"Too many wrong codes. Wait {wait} s, then enter the code your app shows.",
                retry_after=wait,
            )
        elif not device.verify_token(code):
            error = SecondFactorError(
                "That code is not right. Enter the 6-digit code your app shows now."
            )
        elif not device.confirmed:
            device.confirmed = True
            device.save(update_fields=["confirmed"])
            audit_event_record(actor=device.user, action="staff_2fa.enrolled", subject=device.user)
    if error is not None:
        raise error
    return device


def totp_reset(*, staff_member: User, actor: User | None) -> int:
    """
    Remove a staff member's authenticator: their open consoles close now,
    and their sessions, verified with a device that no longer exists, send
    them to enrol a new one. `actor` None is the server's own shell
    (manage.py staff_2fa_reset). Returns how many devices went.
    """
    if actor is not None and not access.may_reset_second_factor(actor, staff_member):
        raise ResetRefused(
            f"You may not reset the authenticator of {staff_member}: Support reset "
            "colleagues' (not their own), and only a superuser resets a superuser's."
        )
    with transaction.atomic():
        removed, _ = TOTPDevice.objects.filter(user=staff_member).delete()
        audit_event_record(
            actor=actor,
            action="staff_2fa.reset",
            subject=staff_member,
            payload={"devices_removed": removed},
        )
        signals.access_ended.send(sender=TOTPDevice, user_id=staff_member.pk)
    return removed
