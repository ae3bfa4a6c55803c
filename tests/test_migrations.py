"""The squashed migrations take over databases migrated before the squash."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.recorder import MigrationRecorder

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


def test_a_database_migrated_before_the_squash_has_nothing_to_apply():
    """A deployment that ran every old migration is up to date, and nothing runs twice."""
    recorded = MigrationRecorder.Migration.objects
    recorded.filter(app__in=["people", "dispatch"]).delete()
    for app, name in BEFORE_THE_SQUASH:
        recorded.create(app=app, name=name)

    assert _plan() == []


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
