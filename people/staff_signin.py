"""
How staff sign in to the console and the admin: a password, refused for a
while after too many wrong ones (per account and per client address), then
a code from an authenticator app (TOTP, django-otp's otp_totp) that they
enrol by QR code at their first sign-in.

Who needs the code and who may reset whose authenticator is decided in
people.access; this module makes the changes, each with its audit row. The
login form (console.forms.ConsoleLoginForm, the admin's too) and the
console's two-factor page call it.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from people import access, sessions, signals
from people.audit import audit_event_record
from people.models import User
from project.common.clients import limit_key
from project.common.errors import ServiceError

# --- wrong passwords -------------------------------------------------------------
#
# Counted in Django's cache, which is per process unless CACHES names a
# shared one: with several workers and the default local-memory cache each
# worker counts on its own. A lock is set when a count reaches its cap and
# lasts STAFF_LOGIN_LOCKOUT_S; failures older than that are forgotten.

ACCOUNT = "account"
ADDRESS = "address"


@dataclass(frozen=True, slots=True)
class LoginLock:
    """Sign-in refused for `kind` (ACCOUNT or ADDRESS) until `until`."""

    kind: str
    until: datetime

    @property
    def message(self) -> str:
        who = "this phone number" if self.kind == ACCOUNT else "your network address"
        minutes = max(1, math.ceil((self.until - timezone.now()).total_seconds() / 60))
        at = timezone.localtime(self.until).strftime("%H:%M")
        wait = "1 minute" if minutes == 1 else f"{minutes} minutes"
        return (
            f"Too many failed sign-ins for {who}. Try again at {at} (in {wait}), "
            "or ask a colleague in Support if you have forgotten your password."
        )


def _client(address: str | None) -> str | None:
    """The address as the caps count it: an IPv6 client by its /64, as for sign-in codes."""
    return limit_key(address) if address else None


def staff_login_lock(*, phone: str, address: str | None) -> LoginLock | None:
    """The lock that refuses this sign-in before the password is checked, if any."""
    for kind, ident in ((ACCOUNT, phone), (ADDRESS, _client(address))):
        if ident:
            until = cache.get(_key(kind, ident, "locked"))
            if until is not None and until > timezone.now().timestamp():
                return LoginLock(kind, datetime.fromtimestamp(until, tz=UTC))
    return None


def staff_login_failed(*, phone: str, address: str | None) -> LoginLock | None:
    """
    Count a wrong password against the phone number (whether or not an
    account has it, so a lock says nothing about who exists) and the
    address. Returns the lock this failure set, with its audit row written.
    """
    lock = None
    caps = (
        (ACCOUNT, phone, settings.STAFF_LOGIN_MAX_FAILURES),
        (ADDRESS, _client(address), settings.STAFF_LOGIN_MAX_FAILURES_PER_IP),
    )
    for kind, ident, cap in caps:
        if ident and cap > 0 and _count(kind, ident) >= cap:
            lock = _lock(kind, ident, cap, phone=phone, address=address) or lock
    return lock


def staff_login_succeeded(*, phone: str) -> None:
    """The right password clears the account's count (not the address's)."""
    cache.delete(_key(ACCOUNT, phone, "failures"))


def _key(kind: str, ident: str, what: str) -> str:
    # Hashed: any text typed as a phone number makes a valid cache key.
    digest = hashlib.sha256(ident.encode()).hexdigest()[:32]
    return f"staff-login:{kind}:{digest}:{what}"


def _count(kind: str, ident: str) -> int:
    key = _key(kind, ident, "failures")
    cache.add(key, 0, settings.STAFF_LOGIN_LOCKOUT_S)
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, settings.STAFF_LOGIN_LOCKOUT_S)
        return 1


def _lock(kind: str, ident: str, cap: int, *, phone: str, address: str | None) -> LoginLock:
    until = timezone.now() + timedelta(seconds=settings.STAFF_LOGIN_LOCKOUT_S)
    cache.set(_key(kind, ident, "locked"), until.timestamp(), settings.STAFF_LOGIN_LOCKOUT_S)
    cache.delete(_key(kind, ident, "failures"))
    if kind == ACCOUNT:
        subject = User.objects.filter(phone_number=phone).first() or ("phone", phone[:64])
    else:
        subject = ("address", ident[:64])
    audit_event_record(
        actor=None,
        action="staff_login.locked",
        subject=subject,
        payload={
            "locked": kind,
            "failures": cap,
            "until": until.isoformat(),
            "address": address or "",
        },
    )
    return LoginLock(kind, until)


# --- the authenticator -----------------------------------------------------------


class SecondFactorError(ServiceError):
    code = "second_factor_refused"


class ResetRefused(SecondFactorError):
    code = "forbidden"
    status = 403


def totp_device_of(user: User) -> TOTPDevice | None:
    """The user's enrolled (confirmed) authenticator, if any."""
    return TOTPDevice.objects.filter(user=user, confirmed=True).first()


def totp_device_enrolling(*, user: User, device_id: int | None = None) -> TOTPDevice:
    """
    The authenticator being enrolled in one sign-in (`device_id`, which the
    caller keeps in its session): unconfirmed until its first code is right.
    The same one comes back to that sign-in, so reloading the page shows the
    same QR code; another sign-in gets a secret of its own, so one who saw a
    QR code with the password alone cannot use what the staff member later
    enrols.
    """
    device = None
    if device_id is not None:
        device = TOTPDevice.objects.filter(pk=device_id, user=user, confirmed=False).first()
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
            # Secrets other sign-ins were shown enrol nothing now.
            TOTPDevice.objects.filter(user=device.user, confirmed=False).delete()
            audit_event_record(actor=device.user, action="staff_2fa.enrolled", subject=device.user)
    if error is not None:
        raise error
    return device


def totp_reset(*, staff_member: User, actor: User | None) -> int:
    """
    Remove a staff member's authenticator: their open consoles close now,
    and their sessions, verified with a device that no longer exists, send
    them to enrol a new one. Their app sessions end (people.sessions): each
    was opened with the authenticator, and the phone that held it may be
    the one lost. `actor` None is the server's own shell
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
        sessions.sessions_end_all(
            user_id=staff_member.pk, actor=actor, reason="second_factor_reset"
        )
        signals.access_ended.send(sender=TOTPDevice, user_id=staff_member.pk)
    return removed
