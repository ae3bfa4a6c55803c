"""
Sign-in: SMS codes, registration and API sessions. One atomic function per
change, each with its AuditEvent row; the REST views and the admin call
these.
"""

from __future__ import annotations

import logging
import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from people import staff_signin, tokens
from people.access import second_factor_required
from people.audit import audit_event_record
from people.caregivers import caregiver_invitations_claim
from people.models import (
    DriverProfile,
    PassengerProfile,
    PhoneOTPDevice,
    User,
    UserType,
)
from people.phones import textable_phone
from people.sessions import TokenPair, session_issue
from people.sms import SMSDeliveryError, sms_busy, sms_ceiling_claim, sms_send
from project.common.clients import limit_key
from project.common.errors import ServiceError, Throttled
from project.common.limits import Cap, Claim, caps_take, wait_in_words

logger = logging.getLogger(__name__)


# =============================================================================
# Sign-in: SMS codes and API sessions
#
# A phone proves itself with a code (otp_send, otp_verify). A known phone gets
# an ApiSession and its tokens; an unknown one gets a registration token for
# user_register. As NIST SP 800-63B asks of an SMS code: it works once, for
# OTP_VALID_MINUTES (5), and for OTP_MAX_ATTEMPTS (5) tries. The fifth wrong
# try kills the code and a new one must be sent, under the caps below. The
# phone itself never locks: a stranger's guessing must not shut an elderly
# passenger out until support answers the phone. What bounds guessing is
# the caps on sending: at most OTP_MAX_PER_PHONE_DAY codes, so at most
# 5 x 10 = 50 guesses at a million codes per phone a day.
#
# Every code is an SMS we pay for, so sending is capped (otp_send_claims):
# one code per OTP_RESEND_COOLDOWN_S for a phone, and OTP_MAX_PER_PHONE_HOUR
# and _DAY; OTP_MAX_PHONES_PER_CLIENT_HOUR different phones for one client
# address; and the SMS_MAX_PER_MINUTE ceiling on every text (people.sms).
# A code whose SMS the gateway refused still counts: a gateway that timed
# out may have sent it.
#
# Asking again while a code waits (a text can be minutes late) texts the
# same code again, good for another OTP_VALID_MINUTES: whichever text comes
# first works. Its tries go on counting, so asking again buys no guesses.
#
# When the gateway refuses an SMS, the code it carried is withdrawn: nobody
# can have received it, and withdrawing it lifts the resend cooldown so the
# person can ask again at once. (If a timed-out gateway delivers it late, the
# code simply does not work and they ask again.) A code an earlier text
# carried stays, for the time that text gave it.
# =============================================================================


class SignInError(ServiceError):
    """A sign-in step refused; ``code`` is the API's machine-readable code."""

    code = "sign_in_failed"


class OtpCooldown(Throttled, SignInError):
    code = "otp_cooldown"


class OtpLimit(Throttled, SignInError):
    """The phone has had its codes for the hour or the day."""

    code = "otp_limit"


class ClientLimit(Throttled, SignInError):
    """This client address has asked for codes for too many phones."""

    code = "client_limit"


class InvalidCode(SignInError):
    code = "invalid_code"


class AccountDisabled(SignInError):
    code = "account_disabled"
    status = 403


class SecondFactorNeeded(SignInError):
    """A staff account's app sign-in without (or with a wrong) authenticator code."""

    code = "second_factor_required"


class InvalidRegistrationToken(SignInError):
    code = "invalid_registration_token"


class AlreadyRegistered(SignInError):
    code = "already_registered"
    status = 409


@dataclass(frozen=True)
class OtpSent:
    phone_number: str
    expires_in_minutes: int


@dataclass(frozen=True)
class VerifyResult:
    """A known phone gets ``user`` and ``tokens``; an unknown one gets
    ``registration_token``."""

    phone_number: str
    user: User | None = None
    tokens: TokenPair | None = None
    registration_token: str | None = None


def otp_send(*, phone_number: str, client: str = "") -> OtpSent:
    """
    Issue a fresh code for the phone and send it by SMS. ``client`` is the
    asker's address (project.common.clients.client_ip); without one only
    the phone's caps and the SMS ceiling apply.

    Raises InvalidPhoneNumber (also for a number that may not be texted),
    OtpCooldown, OtpLimit, ClientLimit, SmsBusy, or SMSDeliveryError (after
    withdrawing the undelivered code).
    """
    phone = textable_phone(phone_number)
    minutes = settings.OTP_VALID_MINUTES
    with transaction.atomic():
        device = _otp_device_for_update(phone)
        now = timezone.now()
        wait = _otp_cooldown_left(device, now)
        if wait:
            raise OtpCooldown(
                f"A code was sent moments ago. You can ask for a new one in {wait_in_words(wait)}.",
                retry_after=wait,
            )
        refusal = caps_take(otp_send_claims(phone=phone, client=client))
        if refusal is not None:
            raise _otp_refused(refusal.cap.name, refusal.retry_after)
        # Asking again while a code waits texts that code again: the first
        # text may only be late, and must still work when it comes.
        resent_until = device.valid_until if device.code_waiting() else None
        if resent_until is None:
            device.token = _otp_new_code()
            device.failed_attempts = 0
        code = device.token
        device.valid_until = now + timedelta(minutes=minutes)
        device.save(update_fields=["token", "valid_until", "failed_attempts"])
        audit_event_record(
            actor=device.user,
            action="otp.sent",
            subject=device,
            payload={
                "phone_number": phone,
                "expires_in_minutes": minutes,
                "resent": resent_until is not None,
            },
        )
    try:
        sms_send(
            phone_number=phone,
            message=(
                f"{code} is your Care Connect code. It expires in {minutes} "
                "minutes. Never share it with anyone."
            ),
        )
    except SMSDeliveryError as exc:
        _otp_withdraw_undelivered(
            device=device, code=code, error=str(exc), resent_until=resent_until
        )
        raise
    return OtpSent(phone_number=phone, expires_in_minutes=minutes)


def otp_verify(
    *, phone_number: str, code: str, user_agent: str = "", authenticator_code: str = ""
) -> VerifyResult:
    """
    Check a code. A registered phone is signed in; an unknown phone gets a
    registration token. A staff account also needs `authenticator_code`
    (its second factor), checked once the SMS code is: a code texted to a
    dispatcher's phone (a swapped SIM) signs no one in with staff powers.

    Raises InvalidPhoneNumber, InvalidCode, SecondFactorNeeded or
    AccountDisabled. A wrong try is recorded (and the code killed after the
    last) before the raise.
    """
    phone = textable_phone(phone_number)
    code = "".join(str(code).split())
    error: SignInError | None = None
    result: VerifyResult | None = None
    with transaction.atomic():
        device = _otp_device_for_update(phone, create=False)
        if device is None or not device.code_waiting():
            error = _otp_none_waiting(sent=device is not None)
        elif not device.verify_token(code):
            error = _otp_record_wrong_try(device)
        if error is None:
            error = _staff_second_factor(phone, authenticator_code)
        if error is None:
            result = _otp_accept(device=device, phone=phone, user_agent=user_agent)
            if result is None:
                error = AccountDisabled(
                    "This account is switched off. Please call Care Connect support."
                )
    if error is not None:
        raise error
    assert result is not None
    return result


def user_register(
    *,
    registration_token: str,
    first_name: str,
    last_name: str,
    user_type: str,
) -> User:
    """
    Create the user for a phone that passed an SMS code. A driver starts with
    an unverified DriverProfile, a passenger with an empty PassengerProfile.

    Raises InvalidRegistrationToken or AlreadyRegistered.
    """
    if user_type not in UserType.values:
        raise ValueError(f"Unknown user type {user_type!r}.")
    phone = tokens.registration_token_phone(registration_token)
    if phone is None:
        raise InvalidRegistrationToken("This sign-up link has expired. Ask for a new SMS code.")
    already = AlreadyRegistered("This phone number already has an account. Sign in instead.")
    try:
        with transaction.atomic():
            if User.objects.filter(phone_number=phone).exists():
                raise already
            user = User.objects.create_user(
                phone,
                first_name=first_name.strip(),
                last_name=last_name.strip(),
                user_type=user_type,
            )
            if user_type == UserType.DRIVER:
                DriverProfile.objects.create(user=user, is_verified=False)
            elif user_type == UserType.PASSENGER:
                PassengerProfile.objects.create(user=user)
            PhoneOTPDevice.objects.filter(phone_number=phone).update(user=user)
            audit_event_record(
                actor=user,
                action="user.registered",
                subject=user,
                payload={"phone_number": phone, "user_type": user_type},
            )
            caregiver_invitations_claim(user=user)
    except IntegrityError as exc:
        # Two registrations for one phone raced; the other one won.
        raise already from exc
    return user


def otp_send_claims(*, phone: str, client: str) -> list[Claim]:
    """What one code costs against the caps (project.common.limits)."""
    hour = Cap(name="otp.phone.hour", limit=settings.OTP_MAX_PER_PHONE_HOUR, window_s=3600)
    day = Cap(name="otp.phone.day", limit=settings.OTP_MAX_PER_PHONE_DAY, window_s=86400, slots=24)
    claims = [Claim(cap=hour, subject=phone), Claim(cap=day, subject=phone)]
    if client:
        phones = Cap(
            name="otp.client.hour",
            limit=settings.OTP_MAX_PHONES_PER_CLIENT_HOUR,
            window_s=3600,
        )
        claims.append(Claim(cap=phones, subject=limit_key(client), member=phone))
    claims.append(sms_ceiling_claim())
    return claims


# --- sign-in helpers ---------------------------------------------------------


def _otp_refused(cap: str, wait: int) -> ServiceError:
    later = wait_in_words(wait)
    if cap == "otp.phone.hour":
        return OtpLimit(
            f"This number has been sent {settings.OTP_MAX_PER_PHONE_HOUR} codes in the last "
            f"hour. You can ask for a new one in {later}.",
            retry_after=wait,
        )
    if cap == "otp.phone.day":
        return OtpLimit(
            f"This number has been sent {settings.OTP_MAX_PER_PHONE_DAY} codes today. "
            f"You can ask for a new one in {later}.",
            retry_after=wait,
        )
    if cap == "otp.client.hour":
        return ClientLimit(
            "Codes have been asked for too many phone numbers from this connection. "
            f"Please try again in {later}.",
            retry_after=wait,
        )
    return sms_busy(wait)


def _otp_device_for_update(phone: str, *, create: bool = True) -> PhoneOTPDevice | None:
    """
    The phone's code device, locked, naming the account that holds the
    number now: support may move an account to another number, and whoever
    registers the old one next owns its codes and their audit rows.
    """
    holder = User.objects.filter(phone_number=phone).first()
    if create:
        PhoneOTPDevice.objects.get_or_create(
            phone_number=phone, defaults={"name": "SMS", "user": holder}
        )
    device = PhoneOTPDevice.objects.select_for_update().filter(phone_number=phone).first()
    if device is not None and device.user_id != (holder.pk if holder else None):
        device.user = holder
        device.save(update_fields=["user"])
    return device


def _otp_new_code() -> str:
    return f"{secrets.randbelow(1_000_000):06d}"


def _otp_cooldown_left(device: PhoneOTPDevice, now: datetime) -> int:
    """Seconds until another code may be sent; 0 when it may be now."""
    cooldown = getattr(settings, "OTP_RESEND_COOLDOWN_S", 30)
    if cooldown <= 0 or device.token is None or device.valid_until <= now:
        return 0
    # The device keeps no send time; a pending code's expiry implies it.
    sent_at = device.valid_until - timedelta(minutes=settings.OTP_VALID_MINUTES)
    left = (sent_at + timedelta(seconds=cooldown) - now).total_seconds()
    return math.ceil(left) if left > 0 else 0


def _otp_withdraw_undelivered(
    *, device: PhoneOTPDevice, code: str, error: str, resent_until: datetime | None
) -> None:
    """
    The text did not go: its code is withdrawn, unless an earlier text
    carried it (`resent_until`, the code's expiry before), which keeps it
    for the time that text gave it.
    """
    logger.warning("SMS code for device %s not delivered: %s", device.pk, error)
    with transaction.atomic():
        # Only this code: a newer one from a racing request stays.
        undelivered = PhoneOTPDevice.objects.filter(pk=device.pk, token=code)
        if resent_until is None:
            undelivered.update(token=None, valid_until=timezone.now())
        else:
            undelivered.update(valid_until=resent_until)
        audit_event_record(
            actor=device.user,
            action="otp.send_failed",
            subject=device,
            payload={"phone_number": device.phone_number, "error": error[:500]},
        )


def _otp_none_waiting(*, sent: bool) -> InvalidCode:
    message = (
        "That code no longer works: it was used, it expired, or it was typed wrong too often. "
        if sent
        else "No code was sent to this number. "
    )
    # "locked" stays for apps written when a phone could lock; it never does.
    return InvalidCode(
        message + "Ask for a new code.", tries_left=0, new_code_needed=True, locked=False
    )


def _otp_record_wrong_try(device: PhoneOTPDevice) -> InvalidCode:
    device.failed_attempts += 1
    tries_left = max(0, settings.OTP_MAX_ATTEMPTS - device.failed_attempts)
    fields = ["failed_attempts"]
    if tries_left == 0:
        device.token = None
        device.valid_until = timezone.now()
        fields += ["token", "valid_until"]
    device.save(update_fields=fields)
    audit_event_record(
        actor=device.user,
        action="otp.failed" if tries_left else "otp.exhausted",
        subject=device,
        payload={"phone_number": device.phone_number, "failed_attempts": device.failed_attempts},
    )
    if tries_left == 0:
        message = "That code is wrong, and it was the last try for it. Ask for a new code."
    else:
        tries = "1 try" if tries_left == 1 else f"{tries_left} tries"
        message = f"That code is wrong. {tries} left for this code."
    return InvalidCode(
        message, tries_left=tries_left, new_code_needed=tries_left == 0, locked=False
    )


def _staff_second_factor(phone: str, code: str) -> SignInError | None:
    """
    For a staff account, the authenticator's code too (people.access.
    second_factor_required): the SMS code it came with is spent either way,
    so each guess at the authenticator costs a texted code.
    """
    user = User.objects.filter(phone_number=phone).first()
    if user is None or not second_factor_required(user):
        return None
    device = staff_signin.totp_device_of(user)
    if device is None:
        return SecondFactorNeeded(
            "Staff accounts sign in with their authenticator app as well: set it up at the "
            "console's sign-in first, then ask for a new SMS code.",
            fields={"authenticator_code": "no authenticator set up"},
        )
    if not code:
        return SecondFactorNeeded(
            "Staff accounts also send the code from their authenticator app. Ask for a new "
            "SMS code and send both.",
            fields={"authenticator_code": "required for staff"},
        )
    try:
        staff_signin.totp_check(device=device, code=code)
    except staff_signin.SecondFactorError as exc:
        return SecondFactorNeeded(
            f"{exc} Then ask for a new SMS code.", fields={"authenticator_code": "wrong"}
        )
    return None


def _otp_accept(*, device: PhoneOTPDevice, phone: str, user_agent: str) -> VerifyResult | None:
    """After a correct code: sign in, or hand out a registration token.
    None when the phone's account is switched off."""
    user = User.objects.filter(phone_number=phone).first()
    device.failed_attempts = 0
    device.user = user
    device.save()
    audit_event_record(
        actor=user,
        action="otp.verified",
        subject=device,
        payload={"phone_number": phone, "registered": user is not None},
    )
    if user is None:
        return VerifyResult(
            phone_number=phone,
            registration_token=tokens.registration_token_make(phone_number=phone),
        )
    if not user.is_active:
        return None
    return VerifyResult(
        phone_number=phone,
        user=user,
        tokens=session_issue(user=user, user_agent=user_agent),
    )
