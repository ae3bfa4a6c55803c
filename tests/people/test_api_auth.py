"""The sign-in endpoints under /api/auth/."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from people import sessions, staff_signin
from people.models import (
    ApiSession,
    AuditEvent,
    DriverProfile,
    PassengerProfile,
    PhoneOTPDevice,
    User,
    UserType,
)
from tests.people.conftest import PHONE, pending_code, wrong_code

pytestmark = pytest.mark.django_db

USER_KEYS = {
    "id",
    "phone_number",
    "first_name",
    "last_name",
    "full_name",
    "user_type",
    "is_staff",
    "language",
}


@pytest.fixture
def api() -> Client:
    return Client(headers={"User-Agent": "CareConnect/1.0 (test)"})


def post(api: Client, path: str, body: dict | None = None, **extra):
    return api.post(f"/api/auth/{path}", body or {}, content_type="application/json", **extra)


def sign_in(api: Client, phone: str = PHONE) -> dict:
    assert post(api, "send-otp/", {"phone_number": phone}).status_code == 200
    response = post(api, "verify-otp/", {"phone_number": phone, "code": pending_code(phone)})
    assert response.status_code == 200, response.json()
    return response.json()


def bearer(access: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {access}"}


# --- send-otp -------------------------------------------------------------------


def test_a_staff_account_signs_in_with_its_authenticator_code_too(api, make_account):
    """verify-otp refuses a staff account's SMS code alone; with the authenticator's it signs in."""
    from django_otp.oath import TOTP
    from django_otp.plugins.otp_totp.models import TOTPDevice

    staff = make_account(is_staff=True)
    device = TOTPDevice.objects.create(user=staff, name="app", confirmed=True)
    post(api, "send-otp/", {"phone_number": PHONE})
    refused = post(api, "verify-otp/", {"phone_number": PHONE, "code": pending_code()})
    assert refused.status_code == 400 and refused.json()["code"] == "second_factor_required"
    assert set(refused.json()["fields"]) == {"authenticator_code"}
    post(api, "send-otp/", {"phone_number": PHONE})
    both = {"code": pending_code(), "authenticator_code": f"{TOTP(device.bin_key).token():06d}"}
    signed_in = post(api, "verify-otp/", {"phone_number": PHONE, **both})
    assert signed_in.status_code == 200 and signed_in.json()["user"]["id"] == staff.pk


def test_an_authenticator_reset_signs_the_staff_members_apps_out(api, make_account):
    """
    Support reset a dispatcher's authenticator (a lost phone): the app
    session that phone opened with it ends too, so it keeps no staff powers.
    """
    from django_otp.oath import TOTP
    from django_otp.plugins.otp_totp.models import TOTPDevice

    dispatcher = make_account(is_staff=True)
    support = make_account("27821230000", is_staff=True, is_superuser=True)
    device = TOTPDevice.objects.create(user=dispatcher, name="app", confirmed=True)
    post(api, "send-otp/", {"phone_number": PHONE})
    both = {"code": pending_code(), "authenticator_code": f"{TOTP(device.bin_key).token():06d}"}
    tokens = post(api, "verify-otp/", {"phone_number": PHONE, **both}).json()["tokens"]
    assert api.get("/api/auth/profile/", **bearer(tokens["access"])).status_code == 200

    staff_signin.totp_reset(staff_member=dispatcher, actor=support)

    assert api.get("/api/auth/profile/", **bearer(tokens["access"])).status_code == 401
    assert post(api, "refresh/", {"refresh": tokens["refresh"]}).status_code == 401
    assert ApiSession.objects.get(user=dispatcher).revoked_at is not None


def test_an_account_made_staff_signs_in_to_the_apps_again(api, make_account):
    """
    A caregiver made a dispatcher had an app session from an SMS code alone;
    it ends, so staff powers in the apps always come with the authenticator.
    """
    user = make_account(user_type=UserType.CAREGIVER)
    tokens = sign_in(api)["tokens"]

    user.is_staff = True
    user.save()
    user.groups.add(Group.objects.get_or_create(name="Dispatchers")[0])

    assert api.get("/api/auth/profile/", **bearer(tokens["access"])).status_code == 401
    assert post(api, "refresh/", {"refresh": tokens["refresh"]}).status_code == 401
    assert AuditEvent.objects.filter(
        action="session.revoked", payload={"reason": "made_staff"}
    ).exists()


def test_send_otp_answers_without_the_code(api):
    """The reply names the phone and the expiry, never the code."""
    response = post(api, "send-otp/", {"phone_number": "082 123 4567"})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"message", "phone_number", "expires_in_minutes"}
    assert body["phone_number"] == PHONE
    assert body["expires_in_minutes"] == 5
    assert "+27 82 123 4567" in body["message"]
    assert pending_code() not in response.content.decode()


@pytest.mark.parametrize("phone", ["banana", "123", ""])
def test_send_otp_refuses_a_bad_phone_number(api, phone):
    """An unreadable number is a 400 invalid_request naming phone_number."""
    response = post(api, "send-otp/", {"phone_number": phone})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_request"
    assert set(body["fields"]) == {"phone_number"}


@pytest.mark.parametrize(
    "phone", ["+1 900 555 0123", "+44 909 876 5432", "+882 1234 5678", "+27 99 123 4567"]
)
def test_send_otp_texts_no_premium_foreign_or_invalid_number(api, settings, sms_portal, phone):
    """Numbers that are not South African mobiles get a 400 naming the field, and no SMS."""
    settings.SMS_BACKEND = "smsportal"
    response = post(api, "send-otp/", {"phone_number": phone})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_request"
    assert "not a mobile number" in body["fields"]["phone_number"]
    assert sms_portal.requests == []
    assert not PhoneOTPDevice.objects.exists()


def test_verify_otp_refuses_a_number_that_cannot_be_texted(api):
    """verify-otp answers a premium number as send-otp does."""
    response = post(api, "verify-otp/", {"phone_number": "+1 900 555 0123", "code": "123456"})
    assert response.status_code == 400
    assert set(response.json()["fields"]) == {"phone_number"}


def test_send_otp_without_a_phone_number_is_invalid(api):
    """A missing phone_number is a validation error naming it."""
    response = post(api, "send-otp/", {})
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"
    assert "phone_number" in response.json()["fields"]


def test_send_otp_too_soon_is_a_429_with_retry_after(api, clock):
    """A second code within the cooldown gets otp_cooldown and retry_after."""
    post(api, "send-otp/", {"phone_number": PHONE})
    clock.advance(seconds=10)
    response = post(api, "send-otp/", {"phone_number": PHONE})
    assert response.status_code == 429
    assert response.json()["code"] == "otp_cooldown"
    assert response.json()["retry_after"] == 20
    assert response["Retry-After"] == "20"


def test_send_otp_after_a_code_died_of_wrong_tries_sends_a_new_one(api, clock):
    """A phone whose code had five wrong tries is not locked: it gets a new code."""
    post(api, "send-otp/", {"phone_number": PHONE})
    for _ in range(5):
        post(api, "verify-otp/", {"phone_number": PHONE, "code": wrong_code()})
    clock.advance(seconds=30)
    response = post(api, "send-otp/", {"phone_number": PHONE})
    assert response.status_code == 200
    assert PhoneOTPDevice.objects.get().token is not None


@pytest.mark.logs_errors
def test_send_otp_gateway_failure_is_a_502(api, settings, sms_portal):
    """When SMS Portal refuses, the app hears sms_failed and no code is left valid."""
    settings.SMS_BACKEND = "smsportal"
    sms_portal.legacy_reply = (
        b"<api_result><call_result><result>False</result>"
        b"<error>Insufficient credits</error></call_result></api_result>"
    )
    response = post(api, "send-otp/", {"phone_number": PHONE})
    assert response.status_code == 502
    body = response.json()
    assert body["code"] == "sms_failed"
    assert "could not be sent" in body["message"]
    assert PhoneOTPDevice.objects.get().token is None


@pytest.mark.logs_errors
def test_send_otp_with_a_gateway_reply_in_an_unreadable_encoding_is_a_502(
    api, settings, sms_portal
):
    """
    A reply whose XML declaration names an encoding the parser cannot read
    (a proxy's error page in Shift JIS) is a failed SMS: sms_failed, and
    the undelivered code withdrawn, not a server error.
    """
    settings.SMS_BACKEND = "smsportal"
    sms_portal.legacy_reply = b'<?xml version="1.0" encoding="shift_jis"?><html>Error</html>'
    response = post(api, "send-otp/", {"phone_number": PHONE})
    assert response.status_code == 502
    assert response.json()["code"] == "sms_failed"
    assert PhoneOTPDevice.objects.get().token is None


# --- verify-otp ------------------------------------------------------------------


def test_verify_otp_signs_in_a_registered_passenger(api, make_account):
    """A registered phone gets its user and a token pair."""
    user = make_account()
    body = sign_in(api)
    assert set(body) == {"user", "tokens"}
    assert body["user"] == {
        "id": user.pk,
        "phone_number": PHONE,
        "first_name": "Thandi",
        "last_name": "Mokoena",
        "full_name": "Thandi Mokoena",
        "user_type": "passenger",
        "is_staff": False,
        "language": "en",
    }
    assert set(body["tokens"]) == {"access", "refresh"}
    session = ApiSession.objects.get()
    assert session.user_agent == "CareConnect/1.0 (test)"


def test_verify_otp_shows_a_drivers_profile(api, make_account):
    """A driver's user JSON carries driver_profile."""
    make_account(user_type="driver")
    body = sign_in(api)
    assert set(body["user"]) == USER_KEYS | {"driver_profile"}
    assert body["user"]["driver_profile"] == {
        "vehicle_type": "sedan",
        "vehicle_registration": "CA 123-456",
        "licence_number": "L1",
        "rating": 5.0,
        "is_verified": False,
    }


def test_verify_otp_for_an_unknown_phone_gives_a_registration_token(api):
    """An unknown phone is verified and asked to register; no tokens yet."""
    body = sign_in(api)
    assert set(body) == {"verified", "registration_token"}
    assert body["verified"] is True
    assert not ApiSession.objects.exists()


def test_verify_otp_wrong_code_says_how_many_tries_are_left(api):
    """A wrong code is a 400 invalid_code with the tries left for that code."""
    post(api, "send-otp/", {"phone_number": PHONE})
    response = post(api, "verify-otp/", {"phone_number": PHONE, "code": wrong_code()})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_code"
    assert body["tries_left"] == 4
    assert body["new_code_needed"] is False
    assert "4 tries left" in body["message"]


def test_verify_otp_right_after_a_wrong_code_is_checked(api):
    """There is no back-off: the right code straight after a wrong one signs in."""
    post(api, "send-otp/", {"phone_number": PHONE})
    post(api, "verify-otp/", {"phone_number": PHONE, "code": wrong_code()})
    response = post(api, "verify-otp/", {"phone_number": PHONE, "code": pending_code()})
    assert response.status_code == 200


def test_five_wrong_codes_kill_the_code_not_the_phone(api, clock, make_account):
    """After five wrong tries the code is dead (400, new_code_needed); a new code signs in."""
    make_account()
    post(api, "send-otp/", {"phone_number": PHONE})
    code = pending_code()
    statuses = [
        post(api, "verify-otp/", {"phone_number": PHONE, "code": wrong_code()}).status_code
        for _ in range(5)
    ]
    assert statuses == [400] * 5
    response = post(api, "verify-otp/", {"phone_number": PHONE, "code": code})
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_code"
    assert response.json()["new_code_needed"] is True
    assert not ApiSession.objects.exists()
    clock.advance(seconds=30)
    assert set(sign_in(api)) == {"user", "tokens"}


def test_verify_otp_with_a_bad_phone_is_invalid_request(api):
    """An unreadable phone number is a 400 invalid_request naming phone_number."""
    response = post(api, "verify-otp/", {"phone_number": "nope", "code": "123456"})
    assert response.status_code == 400
    assert set(response.json()["fields"]) == {"phone_number"}


# --- register --------------------------------------------------------------------


def register(api: Client, user_type: str = "passenger", **overrides):
    token = sign_in(api)["registration_token"]
    body = {
        "registration_token": token,
        "first_name": " Sipho ",
        "last_name": "Dlamini",
        "user_type": user_type,
        **overrides,
    }
    return post(api, "register/", body)


def test_register_creates_a_passenger_and_signs_them_in(api):
    """Registering a passenger creates the user, a PassengerProfile and a session."""
    response = register(api)
    assert response.status_code == 201
    body = response.json()
    assert set(body["user"]) == USER_KEYS
    assert body["user"]["full_name"] == "Sipho Dlamini"
    user = User.objects.get(phone_number=PHONE)
    assert user.user_type == "passenger"
    assert PassengerProfile.objects.filter(user=user).exists()
    assert not DriverProfile.objects.exists()
    assert PhoneOTPDevice.objects.get().user == user
    # The tokens work.
    assert post(api, "logout/", **bearer(body["tokens"]["access"])).status_code == 204


def test_register_a_driver_starts_unverified(api):
    """A new driver gets an unverified DriverProfile, shown in the reply."""
    response = register(api, user_type="driver")
    assert response.status_code == 201
    assert response.json()["user"]["driver_profile"]["is_verified"] is False
    assert DriverProfile.objects.get().is_verified is False
    assert not PassengerProfile.objects.exists()


def test_register_a_caregiver_has_no_profile(api):
    """A caregiver is a plain user."""
    assert register(api, user_type="caregiver").status_code == 201
    assert not DriverProfile.objects.exists()
    assert not PassengerProfile.objects.exists()


def test_register_refuses_an_unknown_user_type(api):
    """user_type must be passenger, driver or caregiver."""
    response = register(api, user_type="dispatcher")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"
    assert "user_type" in response.json()["fields"]
    assert not User.objects.exists()


def test_register_refuses_blank_names(api):
    """Names must have some text after trimming."""
    response = register(api, first_name="   ")
    assert response.status_code == 400
    assert "first_name" in response.json()["fields"]


@pytest.mark.parametrize("token", ["", "forged", "eyJwaG9uZSI6IjI3ODIxMjM0NTY3In0:abc:def"])
def test_register_refuses_a_bad_registration_token(api, token):
    """Without a genuine registration token no account or token is made."""
    response = post(
        api,
        "register/",
        {
            "registration_token": token,
            "first_name": "A",
            "last_name": "B",
            "user_type": "passenger",
        },
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_registration_token"
    assert not User.objects.exists() and not ApiSession.objects.exists()


def test_register_twice_is_a_409(api):
    """A registration token cannot make a second account for the phone."""
    token = sign_in(api)["registration_token"]
    body = {
        "registration_token": token,
        "first_name": "A",
        "last_name": "B",
        "user_type": "passenger",
    }
    assert post(api, "register/", body).status_code == 201
    response = post(api, "register/", body)
    assert response.status_code == 409
    assert response.json()["code"] == "already_registered"
    assert User.objects.count() == 1


# --- refresh and logout --------------------------------------------------------------


def test_refresh_returns_a_rotated_pair(api, make_account):
    """The refresh endpoint swaps a refresh token for a new pair."""
    make_account()
    tokens = sign_in(api)["tokens"]
    response = post(api, "refresh/", {"refresh": tokens["refresh"]})
    assert response.status_code == 200
    fresh = response.json()["tokens"]
    assert set(fresh) == {"access", "refresh"}
    assert fresh["refresh"] != tokens["refresh"]
    assert post(api, "refresh/", {"refresh": fresh["refresh"]}).status_code == 200


def test_refresh_with_a_bad_token_is_a_401(api):
    """A refresh token that names no live session is invalid_refresh_token."""
    response = post(api, "refresh/", {"refresh": "12.nothing"})
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_refresh_token"


def test_logout_ends_the_session(api, make_account):
    """After logout neither the access nor the refresh token works."""
    make_account()
    tokens = sign_in(api)["tokens"]
    assert post(api, "logout/", **bearer(tokens["access"])).status_code == 204
    assert ApiSession.objects.get().revoked_at is not None

    again = post(api, "logout/", **bearer(tokens["access"]))
    assert again.status_code == 401
    assert again.json()["code"] == "authentication_required"
    assert post(api, "refresh/", {"refresh": tokens["refresh"]}).status_code == 401


def test_logout_needs_an_access_token(api, make_account):
    """Without a bearer token, or with a refresh token instead, logout is a 401."""
    make_account()
    tokens = sign_in(api)["tokens"]
    assert post(api, "logout/").status_code == 401
    assert post(api, "logout/", **bearer(tokens["refresh"])).status_code == 401
    assert ApiSession.objects.get().revoked_at is None


def test_logout_ends_only_this_apps_session(api, make_account):
    """Signing out on one phone leaves the user's other sessions alone."""
    user = make_account()
    first = sign_in(api)["tokens"]
    other = sessions.session_issue(user=user)
    assert post(api, "logout/", **bearer(first["access"])).status_code == 204
    assert ApiSession.objects.get(pk=other.session.pk).revoked_at is None


# --- the whole journey through a real gateway -------------------------------------


def test_sign_up_through_sms_portal_rest(api, settings, sms_portal):
    """A new passenger signs up with the code SMS Portal carried, then signs out."""
    settings.SMS_BACKEND = "smsportal-rest"
    assert post(api, "send-otp/", {"phone_number": "+27 82 123 4567"}).status_code == 200
    bulk = sms_portal.requests[-1]
    [message] = bulk.json["Messages"]
    assert message["Destination"] == PHONE
    code = re.search(r"\b(\d{6})\b", message["Content"]).group(1)

    verified = post(api, "verify-otp/", {"phone_number": PHONE, "code": code})
    assert verified.status_code == 200
    registered = post(
        api,
        "register/",
        {
            "registration_token": verified.json()["registration_token"],
            "first_name": "Nomsa",
            "last_name": "Khumalo",
            "user_type": "passenger",
        },
    )
    assert registered.status_code == 201
    access = registered.json()["tokens"]["access"]
    assert post(api, "logout/", **bearer(access)).status_code == 204


@pytest.mark.logs_errors
def test_send_otp_with_a_malformed_gateway_sign_in_reply_is_a_502(api, settings, sms_portal):
    """
    SMS Portal's REST sign-in answering JSON nested past any parser's depth
    is a failed SMS: sms_failed, and the undelivered code withdrawn.
    """
    settings.SMS_BACKEND = "smsportal-rest"
    sms_portal.auth_raw = b"[" * 30_000 + b"]" * 30_000
    response = post(api, "send-otp/", {"phone_number": PHONE})
    assert response.status_code == 502
    assert response.json()["code"] == "sms_failed"
    assert PhoneOTPDevice.objects.get().token is None
