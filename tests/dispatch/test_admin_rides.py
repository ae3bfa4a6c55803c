"""The rides admin: a ride's times, each to the second in the local zone."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.contrib.admin.utils import label_for_field

from dispatch.admin.rides import RideAdmin
from dispatch.models import Ride
from tests.dispatch.test_rides_api import book

pytestmark = pytest.mark.django_db


def test_a_rides_times_show_in_the_local_zone_under_their_labels(passenger, settings):
    """Support reads a ride's times in local time, each under its label."""
    settings.TIME_ZONE = "Africa/Johannesburg"
    ride = book(passenger, "adm-times", match=False)
    Ride.objects.filter(pk=ride.pk).update(created_at=datetime(2026, 3, 2, 7, 30, 5, tzinfo=UTC))
    ride.refresh_from_db()
    labels = {
        "created": "Booked at",
        "assigned": "Driver assigned at",
        "arrived": "Driver arrived at",
        "started": "Trip started at",
        "ended": "Ended at",
    }
    for column, label in labels.items():
        assert label_for_field(column, Ride, RideAdmin) == label
    assert RideAdmin.created.admin_order_field == "created_at"
    assert RideAdmin.created(None, ride) == "2026-03-02 09:30:05 +02:00"
    assert RideAdmin.assigned(None, ride) == "—"
