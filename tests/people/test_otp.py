"""Sign-in codes: issue, expiry, single use, and five tries a code."""

from __future__ import annotations

import logging
import re
from datetime import timedelta

import pytest

from people import signin
from people.models import AuditEvent, PhoneOTPDevice
from people.phones import InvalidPhoneNumber
from people.sms import SMSDeliveryError
from people.tokens import registration_token_phone, user_for_access_token
from tests.people.conftest import PHONE, pending_code, wrong_code

pytestmark = pytest.mark.django_db


def device() -> PhoneOTPDevice:
    return PhoneOTPDevice.objects.get(phone_number=PHONE)


def fail_once() -> signin.InvalidCode:
    """One wrong code."""
    with pytest.raises(signin.InvalidCode) as info:
        signin.otp_verify(phone_number=PHONE, code=wrong_code())
    return info.value


# --- issuing -----------------------------------------------------------------


def test_a_code_is_six_digits_valid_for_five_minutes(clock):
    """otp_send stores a 6-digit code that expires OTP_VALID_MINUTES later."""
    sent = signin.otp_send(phone_number="+27 82 123 4567")
    assert sent == signin.OtpSent(phone_number=PHONE, expires_in_minutes=5)
    assert re.fullmatch(r"\d{6}", pending_code())
    assert device().valid_until == clock.now + timedelta(minutes=5)


def test_a_code_starting_with_zeros_keeps_all_six_digits(monkeypatch, caplog):
    """A code drawn as 42 is sent as 000042, and 000042 is what signs in."""
    monkeypatch.setattr(signin.secrets, "randbelow", lambda n: 42)
    with caplog.at_level(logging.INFO, logger="people.sms"):
        signin.otp_send(phone_number=PHONE)
    assert "000042" in caplog.text
    result = signin.otp_verify(phone_number=PHONE, code="000042")
    assert registration_token_phone(result.registration_token) == PHONE


def test_bad_phone_number_is_refused_before_anything_is_stored():
    """An unreadable number raises InvalidPhoneNumber and creates no device."""
    with pytest.raises(InvalidPhoneNumber):
        signin.otp_send(phone_number="not a phone")
    assert not PhoneOTPDevice.objects.exists()


def test_a_second_code_within_the_cooldown_is_refused(clock):
    """Within OTP_RESEND_COOLDOWN_S of a code, another is refused with retry_after."""
    signin.otp_send(phone_number=PHONE)
    first = pending_code()
    clock.advance(seconds=29)
    with pytest.raises(signin.OtpCooldown) as info:
        signin.otp_send(phone_number=PHONE)
    assert info.value.extra == {"retry_after": 1}
    assert pending_code() == first

    clock.advance(seconds=1)
    signin.otp_send(phone_number=PHONE)
    assert device().valid_until == clock.now + timedelta(minutes=5)


def test_cooldown_can_be_switched_off(settings):
    """OTP_RESEND_COOLDOWN_S = 0 lets codes be sent back to back."""
    settings.OTP_RESEND_COOLDOWN_S = 0
    signin.otp_send(phone_number=PHONE)
    signin.otp_send(phone_number=PHONE)


def test_an_undelivered_code_is_withdrawn(settings):
    """When the gateway fails, the code is withdrawn and a resend is allowed at once."""
    settings.SMS_BACKEND = "smsportal"  # no credentials: the gateway fails
    with pytest.raises(SMSDeliveryError):
        signin.otp_send(phone_number=PHONE)
    assert device().token is None
    failed = AuditEvent.objects.get(action="otp.send_failed")
    assert "SMS_PORTAL_USERNAME" in failed.payload["error"]

    settings.SMS_BACKEND = "console"
    signin.otp_send(phone_number=PHONE)
    assert device().token is not None


def test_asking_again_texts_the_same_code_so_a_late_text_still_works(clock):
    """
    A passenger whose text is slow asks again; the first text then arrives
    and its code signs her in. The code's five minutes start again, and its
    tries go on counting from where they were.
    """
    signin.otp_send(phone_number=PHONE)
    first = pending_code()
    fail_once()
    clock.advance(seconds=40)
    signin.otp_send(phone_number=PHONE)
    assert pending_code() == first
    assert device().valid_until == clock.now + timedelta(minutes=5)
    assert fail_once().extra["tries_left"] == 3

    clock.advance(minutes=4, seconds=50)
    result = signin.otp_verify(phone_number=PHONE, code=first)
    assert registration_token_phone(result.registration_token) == PHONE


def test_a_failed_resend_leaves_the_code_already_texted_working(settings, clock):
    """
    The gateway refusing the second text withdraws nothing that the first
    delivered: its code still works, until its own five minutes are up.
    """
    signin.otp_send(phone_number=PHONE)
    first = pending_code()
    clock.advance(seconds=40)
    settings.SMS_BACKEND = "smsportal"  # no credentials: the gateway fails
    with pytest.raises(SMSDeliveryError):
        signin.otp_send(phone_number=PHONE)
    assert pending_code() == first
    assert device().valid_until == clock.now + timedelta(minutes=5, seconds=-40)
    result = signin.otp_verify(phone_number=PHONE, code=first)
    assert registration_token_phone(result.registration_token) == PHONE


# --- verifying ---------------------------------------------------------------


def test_correct_code_signs_in_a_registered_phone(make_account):
    """A registered phone gets its user and a working token pair."""
    user = make_account()
    signin.otp_send(phone_number=PHONE)
    result = signin.otp_verify(phone_number="082 123 4567", code=pending_code())
    assert result.user == user
    assert result.registration_token is None
    assert user_for_access_token(result.tokens.access) == user
    assert device().user == user


def test_correct_code_for_an_unknown_phone_gives_a_registration_token():
    """An unknown phone proves itself and gets a registration token, no session."""
    signin.otp_send(phone_number=PHONE)
    result = signin.otp_verify(phone_number=PHONE, code=pending_code())
    assert result.user is None and result.tokens is None
    assert registration_token_phone(result.registration_token) == PHONE


def test_spaces_typed_into_a_code_are_ignored():
    """ "123 456" is read as "123456"."""
    signin.otp_send(phone_number=PHONE)
    code = pending_code()
    signin.otp_verify(phone_number=PHONE, code=f" {code[:3]} {code[3:]} ")


def test_a_code_works_only_once():
    """A used code is cleared: the second use is a wrong code."""
    signin.otp_send(phone_number=PHONE)
    code = pending_code()
    signin.otp_verify(phone_number=PHONE, code=code)
    with pytest.raises(signin.InvalidCode):
        signin.otp_verify(phone_number=PHONE, code=code)


def test_a_code_expires_after_five_minutes(clock):
    """A code typed five minutes after sending is refused."""
    signin.otp_send(phone_number=PHONE)
    code = pending_code()
    clock.advance(minutes=5)
    with pytest.raises(signin.InvalidCode):
        signin.otp_verify(phone_number=PHONE, code=code)


def test_a_code_still_works_just_before_expiry(clock):
    """Four minutes fifty-nine seconds after sending, the code still works."""
    signin.otp_send(phone_number=PHONE)
    clock.advance(minutes=4, seconds=59)
    signin.otp_verify(phone_number=PHONE, code=pending_code())


def test_verifying_without_any_code_sent_fails():
    """A phone that was never sent a code cannot verify."""
    with pytest.raises(signin.InvalidCode):
        signin.otp_verify(phone_number=PHONE, code="123456")


def test_a_switched_off_account_cannot_sign_in(make_account):
    """A correct code for an inactive user raises AccountDisabled."""
    make_account(is_active=False)
    signin.otp_send(phone_number=PHONE)
    with pytest.raises(signin.AccountDisabled):
        signin.otp_verify(phone_number=PHONE, code=pending_code())


def test_a_staff_account_needs_its_authenticator_as_well_as_the_sms_code(make_account):
    """
    A code texted to a dispatcher's phone alone (a swapped SIM) signs nobody
    in: without the authenticator's code, or with a wrong one, the SMS code
    is spent; with both, the dispatcher is signed in.
    """
    from django_otp.oath import TOTP
    from django_otp.plugins.otp_totp.models import TOTPDevice

    staff = make_account(is_staff=True)
    for authenticator_code in ("", "000000"):
        signin.otp_send(phone_number=PHONE)
        with pytest.raises(signin.SecondFactorNeeded) as refused:
            signin.otp_verify(
                phone_number=PHONE, code=pending_code(), authenticator_code=authenticator_code
            )
        assert refused.value.code == "second_factor_required"
        assert "authenticator_code" in refused.value.extra["fields"]
        assert not PhoneOTPDevice.objects.get(phone_number=PHONE).code_waiting()
    device = TOTPDevice.objects.create(user=staff, name="app", confirmed=True)
    signin.otp_send(phone_number=PHONE)
    with pytest.raises(signin.SecondFactorNeeded):
        signin.otp_verify(phone_number=PHONE, code=pending_code())
    signin.otp_send(phone_number=PHONE)
    code = f"{TOTP(device.bin_key).token():06d}"
    result = signin.otp_verify(phone_number=PHONE, code=pending_code(), authenticator_code=code)
    assert result.user == staff and result.tokens is not None
    signin.otp_send(phone_number=PHONE)
    with pytest.raises(signin.SecondFactorNeeded):
        signin.otp_verify(phone_number=PHONE, code=pending_code(), authenticator_code="999999")


# --- wrong tries ----------------------------------------------------------------


def test_a_wrong_code_says_how_many_tries_are_left():
    """Each wrong try counts down the five tries of the code."""
    signin.otp_send(phone_number=PHONE)
    error = fail_once()
    assert error.extra == {"tries_left": 4, "new_code_needed": False, "locked": False}
    assert "4 tries left for this code" in str(error)
    assert fail_once().extra["tries_left"] == 3


def test_the_next_try_need_not_wait():
    """Right after four wrong tries the right code works: there is no back-off."""
    signin.otp_send(phone_number=PHONE)
    code = pending_code()
    for _ in range(4):
        fail_once()
    assert signin.otp_verify(phone_number=PHONE, code=code).registration_token


def test_the_fifth_wrong_try_kills_the_code():
    """After five wrong tries even the right code fails, and a new one is needed."""
    signin.otp_send(phone_number=PHONE)
    code = pending_code()
    for _ in range(4):
        fail_once()
    last = fail_once()
    assert last.extra == {"tries_left": 0, "new_code_needed": True, "locked": False}
    assert "Ask for a new code" in str(last)
    assert device().token is None
    assert AuditEvent.objects.filter(action="otp.exhausted").count() == 1
    with pytest.raises(signin.InvalidCode) as info:
        signin.otp_verify(phone_number=PHONE, code=code)
    assert info.value.extra["new_code_needed"] is True


def test_a_new_code_gets_five_tries_of_its_own(clock):
    """The wrong tries at one code do not count against the next."""
    signin.otp_send(phone_number=PHONE)
    for _ in range(5):
        fail_once()
    clock.advance(seconds=30)
    signin.otp_send(phone_number=PHONE)
    assert device().failed_attempts == 0
    assert fail_once().extra["tries_left"] == 4


def test_guessing_with_no_code_waiting_counts_nothing():
    """Tries at a dead code neither count nor lock anything."""
    signin.otp_send(phone_number=PHONE)
    for _ in range(5):
        fail_once()
    for _ in range(50):
        error = fail_once()
        assert error.extra["new_code_needed"] is True
    assert device().failed_attempts == 5


def test_a_strangers_guessing_never_locks_the_phone(clock, make_account):
    """Whatever a stranger types, the owner's next code signs them in."""
    owner = make_account()
    for _ in range(3):
        signin.otp_send(phone_number=PHONE)
        for _ in range(20):
            fail_once()
        clock.advance(seconds=30)
    signin.otp_send(phone_number=PHONE)
    assert signin.otp_verify(phone_number=PHONE, code=pending_code()).user == owner


def test_the_number_of_tries_comes_from_the_settings(settings):
    """OTP_MAX_ATTEMPTS sets how many wrong tries a code allows."""
    settings.OTP_MAX_ATTEMPTS = 2
    signin.otp_send(phone_number=PHONE)
    assert fail_once().extra["tries_left"] == 1
    assert fail_once().extra["new_code_needed"] is True


# --- what is written down ------------------------------------------------------


def test_each_step_leaves_an_audit_row_without_the_code(clock, make_account):
    """Sending, failing and verifying are audited; no row holds a code or token."""
    make_account()
    signin.otp_send(phone_number=PHONE)
    code = pending_code()
    wrong = wrong_code()
    fail_once()
    result = signin.otp_verify(phone_number=PHONE, code=code)
    actions = list(AuditEvent.objects.order_by("pk").values_list("action", flat=True))
    assert actions == ["otp.sent", "otp.failed", "otp.verified", "session.issued"]
    dumped = repr(list(AuditEvent.objects.values()))
    for secret in (code, wrong, result.tokens.access, result.tokens.refresh):
        assert secret not in dumped


def test_codes_are_logged_only_by_the_console_backend(settings, sms_portal, caplog):
    """With a real gateway the code reaches the SMS but never the log."""
    settings.SMS_BACKEND = "smsportal"
    with caplog.at_level(logging.DEBUG):
        signin.otp_send(phone_number=PHONE)
        code = pending_code()
        signin.otp_verify(phone_number=PHONE, code=code)
    assert code in sms_portal.requests[0].form["data1"]
    assert caplog.records
    assert code not in caplog.text


def test_the_console_backend_logs_the_code(caplog):
    """In development the code is read from the log."""
    with caplog.at_level(logging.INFO, logger="people.sms"):
        signin.otp_send(phone_number=PHONE)
    assert pending_code() in caplog.text


# --- a number that changes hands ------------------------------------------------

NEW_PHONE = "27821234999"


def _sign_in(phone: str = PHONE) -> signin.VerifyResult:
    signin.otp_send(phone_number=phone)
    return signin.otp_verify(phone_number=phone, code=pending_code(phone))


def test_a_number_support_moved_to_another_account_names_its_new_holder(clock, make_account):
    """
    Support moves Thandi to a new number; Sipho later registers her old
    one. The old number's code device, and every sign-in row for it, name
    nobody in between and Sipho after, never Thandi.
    """
    thandi = make_account()
    _sign_in()
    assert device().user == thandi
    thandi.phone_number = NEW_PHONE
    thandi.save()
    first = AuditEvent.objects.order_by("-pk").first().pk

    clock.advance(minutes=1)
    result = _sign_in()
    assert device().user is None
    sipho = signin.user_register(
        registration_token=result.registration_token,
        first_name="Sipho",
        last_name="Dlamini",
        user_type="passenger",
    )
    assert device().user == sipho
    clock.advance(minutes=1)
    signin.otp_send(phone_number=PHONE)
    fail_once()
    signin.otp_verify(phone_number=PHONE, code=pending_code())

    rows = AuditEvent.objects.filter(pk__gt=first, action__startswith="otp.").order_by("pk")
    assert [(r.action, r.actor_id) for r in rows] == [
        ("otp.sent", None),
        ("otp.verified", None),
        ("otp.sent", sipho.pk),
        ("otp.failed", sipho.pk),
        ("otp.verified", sipho.pk),
    ]
    # Thandi's new number is hers from its first code.
    clock.advance(minutes=1)
    _sign_in(NEW_PHONE)
    assert PhoneOTPDevice.objects.get(phone_number=NEW_PHONE).user == thandi


def test_a_code_device_left_naming_an_old_holder_follows_the_number(clock, make_account):
    """A device still naming the account that held its number before names the holder now."""
    thandi = make_account()
    _sign_in()
    thandi.phone_number = NEW_PHONE
    thandi.save()
    sipho = make_account(PHONE, first_name="Sipho")
    assert device().user == thandi
    clock.advance(minutes=1)
    signin.otp_send(phone_number=PHONE)
    assert device().user == sipho
    sent = AuditEvent.objects.filter(action="otp.sent").order_by("-pk").first()
    assert sent.actor == sipho
