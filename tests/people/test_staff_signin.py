"""
Staff sign-in's rules and services: whose session has passed the second
factor, who may reset whose authenticator, the STAFF_2FA switch.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from django.contrib.sessions.backends.db import SessionStore
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

from people import staff_signin
from people.access import may_reset_second_factor, passed_second_factor
from people.models import AuditEvent, PhoneOTPDevice, User

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]


def staff(phone: str, *groups: str, superuser: bool = False) -> User:
    user = User.objects.create_user(
        phone, first_name=phone[-4:], is_staff=True, is_superuser=superuser
    )
    for name in groups:
        user.groups.add(Group.objects.get_or_create(name=name)[0])
    return user


def session_with(device) -> SessionStore:
    session = SessionStore()
    if device is not None:
        session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    return session


# --- passed_second_factor ------------------------------------------------------------


def test_only_the_users_own_confirmed_authenticator_passes():
    dana, sam = staff("27800000101", "Dispatchers"), staff("27800000102", "Dispatchers")
    own = TOTPDevice.objects.create(user=dana, confirmed=True)
    assert passed_second_factor(dana, session_with(own))
    assert not passed_second_factor(dana, session_with(None))
    others = TOTPDevice.objects.create(user=sam, confirmed=True)
    assert not passed_second_factor(dana, session_with(others))
    pending = TOTPDevice.objects.create(user=dana, confirmed=False)
    assert not passed_second_factor(dana, session_with(pending))
    # An SMS-code device is a django-otp device too, but not a second factor.
    sms = PhoneOTPDevice.objects.create(phone_number=dana.phone_number, user=dana)
    assert not passed_second_factor(dana, session_with(sms))
    session = session_with(own)
    own.delete()
    assert not passed_second_factor(dana, session)


def test_app_users_need_no_second_factor():
    passenger = User.objects.create_user("27821230000", user_type="passenger")
    assert passed_second_factor(passenger, session_with(None))


def test_staff_2fa_off_counts_only_while_debug_is_on(settings):
    dana = staff("27800000101", "Dispatchers")
    settings.STAFF_2FA = False
    settings.DEBUG = True
    assert passed_second_factor(dana, session_with(None))
    settings.DEBUG = False
    assert not passed_second_factor(dana, session_with(None))


def _import_settings(**env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "STAFF_2FA")}
    return subprocess.run(
        [sys.executable, "-c", "import project.settings"],
        cwd=ROOT,
        env={**clean, "SECRET_KEY": "x" * 50, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_server_refuses_to_start_with_staff_2fa_off_and_debug_off():
    refused = _import_settings(DEBUG="0", STAFF_2FA="0")
    assert refused.returncode != 0
    assert "ImproperlyConfigured" in refused.stderr and "STAFF_2FA=0" in refused.stderr
    assert _import_settings(DEBUG="0").returncode == 0
    assert _import_settings(DEBUG="1", STAFF_2FA="0").returncode == 0


# --- who may reset whose authenticator -------------------------------------------------


def test_support_reset_colleagues_but_not_themselves_nor_superusers():
    suki, sue = staff("27800000201", "Support"), staff("27800000202", "Support")
    dana = staff("27800000203", "Dispatchers")
    boss = staff("27800000204", superuser=True)
    assert may_reset_second_factor(suki, dana)
    assert may_reset_second_factor(suki, sue)
    assert not may_reset_second_factor(suki, suki)
    assert not may_reset_second_factor(suki, boss)
    # Dispatchers run the board; resetting colleagues is Support's.
    assert not may_reset_second_factor(dana, sue)


def test_superusers_reset_anyones_but_their_own():
    boss, other_boss = staff("27800000301", superuser=True), staff("27800000302", superuser=True)
    dana = staff("27800000303", "Dispatchers")
    assert may_reset_second_factor(boss, dana)
    assert may_reset_second_factor(boss, other_boss)
    assert not may_reset_second_factor(boss, boss)
    app_user = User.objects.create_user("27821230000", user_type="passenger")
    assert not may_reset_second_factor(boss, app_user)


def test_a_reset_removes_the_authenticator_and_is_audited():
    suki, dana = staff("27800000201", "Support"), staff("27800000203", "Dispatchers")
    TOTPDevice.objects.create(user=dana, confirmed=True)
    assert staff_signin.totp_reset(staff_member=dana, actor=suki) == 1
    assert not TOTPDevice.objects.filter(user=dana).exists()
    row = AuditEvent.objects.get(action="staff_2fa.reset")
    assert (row.actor, row.subject_type, row.subject_id) == (suki, "user", str(dana.pk))
    assert row.payload == {"devices_removed": 1}


def test_a_refused_reset_changes_nothing():
    suki, boss = staff("27800000201", "Support"), staff("27800000204", superuser=True)
    TOTPDevice.objects.create(user=boss, confirmed=True)
    with pytest.raises(staff_signin.ResetRefused):
        staff_signin.totp_reset(staff_member=boss, actor=suki)
    assert TOTPDevice.objects.filter(user=boss).exists()
    assert not AuditEvent.objects.filter(action="staff_2fa.reset").exists()


def test_the_server_shell_resets_a_lone_superusers_authenticator():
    from io import StringIO

    from django.core.management import CommandError, call_command

    boss = staff("27800000301", superuser=True)
    TOTPDevice.objects.create(user=boss, confirmed=True)
    out = StringIO()
    call_command("staff_2fa_reset", "080 000 0301", stdout=out)
    assert "1 authenticator(s) removed" in out.getvalue()
    assert not TOTPDevice.objects.filter(user=boss).exists()
    assert AuditEvent.objects.get(action="staff_2fa.reset").actor is None
    with pytest.raises(CommandError, match="No staff account"):
        call_command("staff_2fa_reset", "27821230000")
