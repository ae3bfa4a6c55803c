"""
A driver's shift removed or changed in the admin after the day is
published: the riders it carried are told, the unassigned list says why,
and the drivers' manifests follow; a run under way is not taken away.
"""

from __future__ import annotations

import pytest
from django.test import Client
from django.utils import timezone

from dispatch.models import DriverShift, PlanEvent, Ride, Run
from dispatch.planning import services
from tests.conftest import staff_login
from tests.dispatch.test_plan_services import day, plan_tomorrow  # noqa: F401

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(make_user):
    """Whoever keeps the shifts: an administrator (dispatchers only read them)."""
    user = make_user("", first_name="Ada", last_name="Admin", is_staff=True, is_superuser=True)
    return staff_login(Client(), user)


@pytest.fixture
def published(day, settings):  # noqa: F811
    settings.PLAN_EXPLORATION = 0
    plan = services.plan_publish(plan=plan_tomorrow())
    return {**day, "plan": plan}


def _busy(published):
    """The shift whose run carries riders, and those riders."""
    run = Run.objects.filter(plan=published["plan"], rides__isnull=False).first()
    return run.shift, list(Ride.objects.filter(run=run))


def test_a_removed_shift_sends_its_riders_to_the_unassigned_list_told(
    published, admin_client, django_capture_on_commit_callbacks
):
    """Deleting a published run's shift tells its riders and leaves them listed with why."""
    shift, carried = _busy(published)
    assert carried
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            f"/admin/dispatch/drivershift/{shift.pk}/delete/", {"post": "yes"}
        )
    assert response.status_code == 302
    assert not DriverShift.objects.filter(pk=shift.pk).exists()
    listed = dict(services.unassigned_of(published["plan"]))
    for ride in carried:
        ride.refresh_from_db()
        assert ride.run is None and ride.confirmed_pickup_at is None
        told = ride.events.latest("version")
        assert told.kind == "unplanned" and told.payload["driver_id"] is None
        assert "shift" in listed[ride]
    assert PlanEvent.objects.filter(plan=published["plan"], kind="shift_removed").exists()


def test_the_shift_of_a_run_under_way_is_not_removed(published, admin_client):
    """A run already carrying riders keeps its shift, and the admin says why."""
    shift, carried = _busy(published)
    Ride.objects.filter(pk=carried[0].pk).update(status="in_progress", driver=shift.driver)
    response = admin_client.post(
        f"/admin/dispatch/drivershift/{shift.pk}/delete/", {"post": "yes"}, follow=True
    )
    assert "is under way" in response.content.decode()
    assert DriverShift.objects.filter(pk=shift.pk).exists()
    assert Ride.objects.filter(run__shift=shift).count() == len(carried)
    assert not PlanEvent.objects.filter(kind="shift_removed").exists()


def _form(shift, **changes):
    start, end = timezone.localtime(shift.start_at), timezone.localtime(shift.end_at)
    data = {
        "driver": shift.driver_id,
        "start_at_0": start.date().isoformat(),
        "start_at_1": start.strftime("%H:%M:%S"),
        "end_at_0": end.date().isoformat(),
        "end_at_1": end.strftime("%H:%M:%S"),
        "start_latitude": shift.start_latitude,
        "start_longitude": shift.start_longitude,
        "start_address": shift.start_address,
        "end_latitude": shift.end_latitude,
        "end_longitude": shift.end_longitude,
        "end_address": shift.end_address,
        "seats": shift.seats,
        "wheelchair_spaces": shift.wheelchair_spaces,
    }
    return {**data, **changes}


def test_a_shift_handed_to_another_driver_moves_its_run_and_tells_its_riders(
    published, admin_client, make_driver, django_capture_on_commit_callbacks
):
    """The new driver drives the run (their manifest), and its riders hear who comes."""
    shift, carried = _busy(published)
    before = shift.driver
    other = make_driver(first_name="Nomsa", vehicle_type=before.driver_profile.vehicle_type)
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            f"/admin/dispatch/drivershift/{shift.pk}/change/", _form(shift, driver=other.pk)
        )
    assert response.status_code == 302
    run = Run.objects.get(shift=shift)
    assert run.driver == other
    for ride in carried:
        told = Ride.objects.get(pk=ride.pk).events.latest("version")
        assert told.kind == "planned" and told.payload["driver_id"] == other.pk
    assert PlanEvent.objects.filter(plan=published["plan"], kind="shift_changed").exists()


def test_a_shift_cut_short_of_its_run_is_refused(published, admin_client):
    """Hours that no longer hold the run's stops are refused in words; nothing changes."""
    shift, carried = _busy(published)
    first = Run.objects.get(shift=shift).stops.order_by("sequence").first()
    cut = timezone.localtime(first.service_at)
    response = admin_client.post(
        f"/admin/dispatch/drivershift/{shift.pk}/change/",
        _form(shift, end_at_1=cut.strftime("%H:%M:%S")),
        follow=True,
    )
    assert "no longer fits" in response.content.decode()
    assert DriverShift.objects.get(pk=shift.pk).end_at == shift.end_at
    assert Ride.objects.filter(run__shift=shift).count() == len(carried)
