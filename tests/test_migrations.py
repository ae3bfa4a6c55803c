"""The squashed migrations take over deployed databases; the later ones, their rows."""

from __future__ import annotations

import importlib
from datetime import timedelta

import pytest
from django.apps import apps
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.recorder import MigrationRecorder
from django.utils import timezone

from people.models import ApiSession, DeviceToken

pytestmark = pytest.mark.django_db


def _plan():
    executor = MigrationExecutor(connection)
    return executor.migration_plan(executor.loader.graph.leaf_nodes())


# The migrations before the squash, as deployed databases recorded them.
BEFORE_THE_SQUASH = [
    ("people", "0001_initial"),
    ("dispatch", "0001_initial"),
    ("people", "0002_staff_groups"),
    ("people", "0003_staff_group_reads"),
    ("people", "0004_otp_attempts_per_code"),
    ("people", "0005_session_previous_refresh_hash"),
    ("people", "0006_caregiver_invited_by_phone"),
    ("people", "0007_notifications"),
    ("dispatch", "0002_scheduled_rides_and_plans"),
    ("dispatch", "0003_notifications"),
    ("dispatch", "0004_share_links_and_alarms"),
    ("dispatch", "0005_notification_ride_index_in_the_key"),
    ("dispatch", "0006_notices_owed"),
    ("dispatch", "0007_notice_log_mark"),
]


# The migrations written since the squash.
AFTER_THE_SQUASH = [
    ("people", "0008_device_token_session"),
]


def test_a_database_migrated_before_the_squash_applies_only_what_came_after():
    """
    A deployment that ran every old migration runs none of them twice: only
    those written after the squash are left to apply.
    """
    recorded = MigrationRecorder.Migration.objects
    recorded.filter(app__in=["people", "dispatch"]).delete()
    for app, name in BEFORE_THE_SQUASH:
        recorded.create(app=app, name=name)

    assert [(m.app_label, m.name) for m, _ in _plan()] == AFTER_THE_SQUASH


def test_a_new_database_gets_the_staff_groups_and_the_log_mark():
    """What the old data migrations made on a fresh install, the squash makes too."""
    from django.contrib.auth.models import Group

    from dispatch.models import NoticeLogMark

    names = set(Group.objects.values_list("name", flat=True))
    assert {"Dispatchers", "Support"} <= names
    assert (
        Group.objects.get(name="Support").permissions.filter(codename="view_driverstate").exists()
    )
    assert NoticeLogMark.objects.count() == 1


def test_push_tokens_of_people_signed_out_everywhere_are_forgotten(make_user):
    """
    Tokens registered before sessions held them are kept for people still
    signed in somewhere (their session's end takes them later), and deleted
    for those signed out or revoked everywhere: no phone of theirs is in.
    """
    migration = importlib.import_module("people.migrations.0008_device_token_session")
    now = timezone.now()
    signed_in, revoked, expired = make_user(), make_user(), make_user()
    for n, (user, revoked_at, expires_at) in enumerate(
        [
            (signed_in, None, now + timedelta(days=1)),
            (revoked, now, now + timedelta(days=1)),
            (expired, None, now - timedelta(days=1)),
        ]
    ):
        ApiSession.objects.create(
            user=user, refresh_hash=f"h{n}", expires_at=expires_at, revoked_at=revoked_at
        )
        DeviceToken.objects.create(user=user, token=f"t{n}", platform="android")

    migration.forget_tokens_of_the_signed_out(apps, None)

    assert list(DeviceToken.objects.values_list("user", flat=True)) == [signed_in.pk]
