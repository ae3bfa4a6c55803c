"""
How long sign-in leaves personal data behind. Ended API sessions (an app
install's user agent and times) and the SMS-code devices of phones that
no account holds serve nobody once RETENTION_DAYS have passed, and POPIA
asks that what is not needed is not kept. `manage.py housekeeping` runs
these daily with dispatch's own rule (dispatch.retention).

What is deleted here is not audited row by row: an audit row naming each
phone would keep what the purge is for removing. The command reports counts.
"""

from __future__ import annotations

from datetime import datetime

from django.db.models import F, Q

from people.models import ApiSession, PhoneOTPDevice


def api_sessions_purge(*, before: datetime) -> int:
    """
    Delete API sessions that expired or were revoked before `before`, and
    with them the push tokens an expired one registered; returns how many
    sessions went.
    """
    _, deleted = ApiSession.objects.filter(
        Q(expires_at__lt=before) | Q(revoked_at__lt=before)
    ).delete()
    return deleted.get(ApiSession._meta.label, 0)


def otp_devices_purge(*, before: datetime) -> int:
    """
    Delete the SMS-code devices of phones no account holds (never
    registered, or an account support moved to another number) that have
    asked for no code since `before` (their last code expired before it). A
    registered user's device stays with the account.
    """
    unheld = Q(user__isnull=True) | ~Q(user__phone_number=F("phone_number"))
    deleted, _ = PhoneOTPDevice.objects.filter(unheld, valid_until__lt=before).delete()
    return deleted
