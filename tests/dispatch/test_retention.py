"""dispatch.retention and manage.py housekeeping: what is kept, and how long."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.core.management import CommandError, call_command
from django.utils import timezone

from dispatch.locations import location_store
from dispatch.models import DriverState, DriverStatus
from dispatch.retention import positions_purge
from people.models import ApiSession, PhoneOTPDevice

pytestmark = pytest.mark.django_db

JHB = (-26.2041, 28.0473)


def ago(days: float):
    return timezone.now() - timedelta(days=days)


def offline_since(driver, days: float) -> DriverState:
    DriverState.objects.filter(driver=driver).update(
        status=DriverStatus.OFFLINE, location_updated_at=ago(days), last_seen_at=ago(days)
    )
    return DriverState.objects.get(driver=driver)


def test_an_offline_drivers_position_is_forgotten_after_the_retention(make_driver):
    """Offline and unseen for longer than the retention: no position kept, anywhere."""
    driver = make_driver(*JHB)
    offline_since(driver, 91)
    assert location_store().get(driver.pk) is not None

    assert positions_purge(before=ago(90)) == 1

    state = DriverState.objects.get(driver=driver)
    assert (state.latitude, state.longitude, state.heading, state.speed) == (None,) * 4
    assert state.location_updated_at is None
    assert location_store().get(driver.pk) is None


def test_positions_of_drivers_online_or_recently_offline_are_kept(make_driver):
    """Only offline drivers past the retention lose their position."""
    online = make_driver(*JHB)
    DriverState.objects.filter(driver=online).update(location_updated_at=ago(200))
    recently_off = make_driver(*JHB)
    offline_since(recently_off, 10)
    back_lately = make_driver(*JHB)
    offline_since(back_lately, 200)
    DriverState.objects.filter(driver=back_lately).update(last_seen_at=ago(1))

    assert positions_purge(before=ago(90)) == 0
    assert DriverState.objects.filter(latitude__isnull=False).count() == 3


def test_housekeeping_applies_every_rule_with_retention_days(settings, make_driver, make_user):
    """One command runs each app's rule with RETENTION_DAYS, and clears console sessions."""
    settings.RETENTION_DAYS = 30
    driver = make_driver(*JHB)
    offline_since(driver, 31)
    user = make_user()
    ApiSession.objects.create(user=user, refresh_hash="old", expires_at=ago(31))
    ApiSession.objects.create(user=user, refresh_hash="new", expires_at=ago(29))
    PhoneOTPDevice.objects.create(name="SMS", phone_number="27820000009", valid_until=ago(31))
    stale = SessionStore()
    stale.set_expiry(-1)
    stale.save()
    fresh = SessionStore()
    fresh.save()

    out = io.StringIO()
    call_command("housekeeping", stdout=out)

    assert DriverState.objects.get(driver=driver).latitude is None
    assert list(ApiSession.objects.values_list("refresh_hash", flat=True)) == ["new"]
    assert not PhoneOTPDevice.objects.exists()
    assert list(Session.objects.values_list("session_key", flat=True)) == [fresh.session_key]
    assert "kept 30 days" in out.getvalue()
    assert "1 API sessions, 1 SMS-code devices, 1 driver positions" in out.getvalue()


def test_housekeeping_days_option_overrides_the_setting(settings, make_user):
    """--days wins over RETENTION_DAYS; less than a day is refused."""
    settings.RETENTION_DAYS = 90
    user = make_user()
    ApiSession.objects.create(user=user, refresh_hash="h", expires_at=ago(10))
    call_command("housekeeping", "--days", "7", stdout=io.StringIO())
    assert not ApiSession.objects.exists()
    with pytest.raises(CommandError, match="at least 1 day"):
        call_command("housekeeping", "--days", "0", stdout=io.StringIO())


def test_retention_days_defaults_to_ninety():
    """Ninety days unless RETENTION_DAYS says otherwise."""
    from django.conf import settings

    assert settings.RETENTION_DAYS == 90
