"""people.retention: what sign-in leaves behind is deleted after RETENTION_DAYS."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from people.models import ApiSession, DeviceToken, PhoneOTPDevice
from people.retention import api_sessions_purge, otp_devices_purge

pytestmark = pytest.mark.django_db

DAYS = 90


def ago(days: float):
    return timezone.now() - timedelta(days=days)


def session(user, *, expires, revoked=None, key="") -> ApiSession:
    return ApiSession.objects.create(
        user=user,
        refresh_hash=f"h-{key}",
        created_at=expires - timedelta(days=30),
        last_used_at=expires - timedelta(days=30),
        expires_at=expires,
        revoked_at=revoked,
    )


def test_sessions_that_ended_long_ago_are_deleted_and_live_ones_kept(make_user):
    """Expired or revoked before the cut-off: gone; anything later: kept."""
    user = make_user()
    long_expired = session(user, expires=ago(DAYS + 1), key="a")
    long_revoked = session(user, expires=ago(-20), revoked=ago(DAYS + 5), key="b")
    recently_expired = session(user, expires=ago(DAYS - 1), key="c")
    recently_revoked = session(user, expires=ago(-20), revoked=ago(3), key="d")
    live = session(user, expires=ago(-20), key="e")

    assert api_sessions_purge(before=ago(DAYS)) == 2

    kept = set(ApiSession.objects.values_list("pk", flat=True))
    assert kept == {recently_expired.pk, recently_revoked.pk, live.pk}
    assert long_expired.pk not in kept and long_revoked.pk not in kept


def test_an_expired_sessions_push_token_goes_with_it(make_user):
    """The session's push token is deleted with it, and the count is of sessions."""
    user = make_user()
    expired = session(user, expires=ago(DAYS + 1), key="a")
    DeviceToken.objects.create(user=user, session=expired, token="fcm-a", platform="android")

    assert api_sessions_purge(before=ago(DAYS)) == 1
    assert not DeviceToken.objects.exists()


def device(phone, *, last_code, user=None) -> PhoneOTPDevice:
    return PhoneOTPDevice.objects.create(
        name="SMS", phone_number=phone, user=user, valid_until=last_code
    )


def test_code_devices_of_phones_that_never_registered_go_after_the_retention(make_user):
    """An unregistered phone quiet for longer than the retention loses its device."""
    forgotten = device("27820000001", last_code=ago(DAYS + 1))
    recent_code = device("27820000002", last_code=ago(1))
    registered = make_user(phone="27820000004")
    account_device = device("27820000004", last_code=ago(DAYS * 3), user=registered)

    assert otp_devices_purge(before=ago(DAYS)) == 1

    kept = set(PhoneOTPDevice.objects.values_list("pk", flat=True))
    assert kept == {recent_code.pk, account_device.pk}
    assert forgotten.pk not in kept


def test_the_code_device_of_a_number_its_account_moved_away_from_goes_too(make_user):
    """
    Support moved the account to another number: its old number's device,
    still naming it, is a phone no account holds and goes like one.
    """
    moved = make_user(phone="27820000005")
    old_number = device("27820000005", last_code=ago(DAYS + 1), user=moved)
    moved.phone_number = "27820000006"
    moved.save()

    assert otp_devices_purge(before=ago(DAYS)) == 1
    assert not PhoneOTPDevice.objects.filter(pk=old_number.pk).exists()
