"""
Wrong staff passwords are capped per account and per client address, on
the console's sign-in page and the admin's alike.
"""

from __future__ import annotations

import re
import time

import pytest
from django.test import Client
from django.urls import reverse

from people.models import AuditEvent

pytestmark = pytest.mark.django_db

LOGIN = reverse("console:login")
PASSWORD = "pw-for-tests-only"


@pytest.fixture(autouse=True)
def _caps(settings):
    settings.STAFF_LOGIN_MAX_FAILURES = 3
    settings.STAFF_LOGIN_MAX_FAILURES_PER_IP = 5
    settings.STAFF_LOGIN_LOCKOUT_S = 600


def attempt(phone: str, password: str, address: str = "10.0.0.1", url: str = LOGIN):
    return Client(REMOTE_ADDR=address).post(url, {"username": phone, "password": password})


def test_an_account_locks_after_its_wrong_passwords_from_anywhere(dispatcher, staff_groups):
    """Wrong passwords for one account, from anywhere, any spelling, lock it, saying until when."""
    local = "0" + dispatcher.phone_number[2:]
    for n, address in enumerate(("10.0.0.1", "10.0.0.2", "10.0.0.3")):
        # Any spelling of the number counts against the one account.
        page = attempt(local if n % 2 else dispatcher.display_phone, "wrong", address)
        assert page.status_code == 200
    assert "Too many failed sign-ins" in page.content.decode()
    # Now even the right password waits, and the page says until when.
    page = attempt(dispatcher.phone_number, PASSWORD, "10.0.0.9")
    text = page.content.decode()
    assert page.status_code == 200 and "for this phone number" in text
    assert re.search(r"Try again at \d\d:\d\d \(in 10 minutes\)", text)
    row = AuditEvent.objects.get(action="staff_login.locked")
    assert (row.subject_type, row.subject_id) == ("user", str(dispatcher.pk))
    assert row.payload["locked"] == "account" and row.payload["failures"] == 3
    # Another account is not affected.
    assert attempt("27800000999", "wrong", "10.0.0.9").status_code == 200


def test_the_right_password_clears_the_accounts_count(dispatcher, staff_groups):
    """A right password clears the account's failed count, so occasional typos never lock it."""
    for _ in range(2):
        attempt(dispatcher.phone_number, "wrong")
    assert attempt(dispatcher.phone_number, PASSWORD, "10.0.0.2").status_code == 302
    for _ in range(2):
        attempt(dispatcher.phone_number, "wrong", "10.0.0.3")
    assert attempt(dispatcher.phone_number, PASSWORD, "10.0.0.4").status_code == 302


def test_an_address_locks_after_wrong_passwords_for_many_accounts(dispatcher, staff_groups):
    """One address guessing many accounts is locked and audited; elsewhere the account signs in."""
    for n in range(5):
        attempt(f"2780000{n:04d}", "wrong", "10.0.0.66")
    page = attempt(dispatcher.phone_number, PASSWORD, "10.0.0.66")
    assert page.status_code == 200 and "for your network address" in page.content.decode()
    row = AuditEvent.objects.get(action="staff_login.locked")
    assert (row.subject_type, row.subject_id) == ("address", "10.0.0.66")
    # From elsewhere the same account signs in.
    assert attempt(dispatcher.phone_number, PASSWORD, "10.0.0.67").status_code == 302


def test_one_ipv6_subscriber_is_one_address_for_the_cap(dispatcher, staff_groups):
    """An IPv6 client counts by its /64, as for sign-in codes: new addresses do not reset it."""
    for n in range(5):
        attempt(f"2780000{n:04d}", "wrong", f"2001:db8:1:2::{n + 1:x}")
    page = attempt(dispatcher.phone_number, PASSWORD, "2001:db8:1:2::99")
    assert page.status_code == 200 and "for your network address" in page.content.decode()
    assert attempt(dispatcher.phone_number, PASSWORD, "2001:db8:1:3::1").status_code == 302


def test_a_lock_ends_after_its_time(dispatcher, staff_groups, settings):
    """A sign-in lock ends after STAFF_LOGIN_LOCKOUT_S."""
    settings.STAFF_LOGIN_LOCKOUT_S = 1
    for _ in range(3):
        attempt(dispatcher.phone_number, "wrong")
    assert attempt(dispatcher.phone_number, PASSWORD).status_code == 200
    time.sleep(1.1)
    assert attempt(dispatcher.phone_number, PASSWORD).status_code == 302


def test_numbers_nobody_has_lock_too_and_say_nothing_of_who_exists(db):
    """Unknown numbers lock like real ones: the page reveals nothing of who has an account."""
    for _ in range(3):
        page = attempt("27800000999", "wrong")
    assert "Too many failed sign-ins for this phone number" in page.content.decode()
    row = AuditEvent.objects.get(action="staff_login.locked")
    assert (row.subject_type, row.subject_id) == ("phone", "27800000999")


def test_the_admin_sign_in_counts_the_same_wrong_passwords(dispatcher, staff_groups):
    """Wrong passwords on the console and the admin sign-in count toward the same lock."""
    for url in (LOGIN, "/admin/login/", LOGIN):
        attempt(dispatcher.phone_number, "wrong", url=url)
    page = attempt(dispatcher.phone_number, PASSWORD, url="/admin/login/")
    assert page.status_code == 200 and "Too many failed sign-ins" in page.content.decode()
