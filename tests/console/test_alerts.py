"""
The board's alert lane: open alarms with their Acknowledge button, drivers
waiting at the door, rides waiting for a driver too long; the banner and
the lane's script; acknowledging (dispatchers only, audited).
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.template.loader import render_to_string
from django.test import Client
from django.utils import timezone

from console import regions
from dispatch import alarms
from dispatch.errors import NotAllowed
from dispatch.geo import Point
from dispatch.locations import location_store
from dispatch.models import Alarm, AlarmKind, Ride
from dispatch.scheduling import Place, ride_book_ahead, ride_ready
from people.models import AuditEvent
from tests.conftest import JHB, staff_login
from tests.dispatch.test_plan_services import day, plan_tomorrow  # noqa: F401 (a fixture)
from tests.dispatch.test_rides_api import book

pytestmark = pytest.mark.django_db


def lane(html: str) -> str:
    return re.search(r'<section id="alerts".*?</section>', html, re.S).group(0)


@pytest.fixture
def sos(passenger, make_driver):
    make_driver(-26.2041, 28.0473)
    ride = book(passenger, "alarm-1")
    return alarms.alarm_sos(ride=ride, passenger=passenger)


def test_an_open_alarm_is_on_the_board_with_its_acknowledge_button(console, sos):
    """An unacknowledged alarm stays on the board's alert lane with its acknowledge button."""
    html = lane(console.get("/console/").content.decode())
    assert f'data-alert-key="alarm-{sos.pk}"' in html
    assert "SOS from the passenger" in html and "alarm-1" in html
    assert f'hx-post="/console/alarms/{sos.pk}/acknowledge/"' in html
    assert "Nothing needs attention." in html and 'alerts-empty" hidden' in html


def test_rides_waiting_past_the_threshold_show_and_younger_ones_wait_hidden(
    console, passenger, make_user, settings
):
    """Only rides waiting past ALERT_WAITING_MIN raise an alert; younger ones wait hidden."""
    settings.ALERT_WAITING_MIN = 5
    old = book(passenger, "old-1", match=False)
    Ride.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(minutes=6))
    young = book(make_user("passenger"), "young-1", match=False)
    html = lane(console.get("/console/").content.decode())
    shown = re.search(rf'<li[^>]*data-alert-key="waiting-{old.pk}"[^>]*>', html).group(0)
    hidden = re.search(rf'<li[^>]*data-alert-key="waiting-{young.pk}"[^>]*>', html).group(0)
    assert " hidden" not in shown
    assert " hidden" in hidden and "data-show-after=" in hidden
    assert '<span class="count count-attention" data-count="alerts">1</span>' in html


def test_the_board_includes_the_banner_and_the_lane_script_under_the_csp(console):
    """The board carries the connection-lost banner and its alert script under the CSP nonce."""
    response = console.get("/console/")
    html = response.content.decode()
    assert '<div id="live-banner" class="live-banner" role="alert" hidden>' in html
    nonce = re.search(r"'nonce-([^']+)'", response["Content-Security-Policy"]).group(1)
    assert re.search(rf'<script src="[^"]*console/alerts\.js" defer nonce="{nonce}">', html)
    assert "Nothing needs attention." in lane(html)


def test_a_dispatcher_acknowledges_an_alarm_audited_and_off_the_board(htmx, dispatcher, sos):
    """Acknowledging an alarm is audited and logged on the ride once, and takes it off the board."""
    response = htmx.post(f"/console/alarms/{sos.pk}/acknowledge/")
    assert response.status_code == 200
    assert f'data-alert-key="alarm-{sos.pk}"' not in response.content.decode()
    sos.refresh_from_db()
    assert sos.acknowledged_by_id == dispatcher.pk and sos.acknowledged_at is not None
    audit = AuditEvent.objects.get(action="alarm.acknowledged")
    assert audit.actor_id == dispatcher.pk and audit.subject_id == str(sos.pk)
    event = sos.ride.events.order_by("version").last()
    assert event.kind == "alarm_acknowledged" and event.actor_id == dispatcher.pk
    again = htmx.post(f"/console/alarms/{sos.pk}/acknowledge/")
    assert "acknowledged already" in again.content.decode()
    assert AuditEvent.objects.filter(action="alarm.acknowledged").count() == 1


def test_only_dispatchers_acknowledge(support, sos, passenger):
    """Support staff are refused (403), as is the service for anyone but a dispatcher."""
    client = staff_login(Client(), support)
    assert client.post(f"/console/alarms/{sos.pk}/acknowledge/").status_code == 403
    with pytest.raises(NotAllowed):
        alarms.alarm_acknowledge(alarm_pk=sos.pk, actor=passenger)
    assert Alarm.objects.get(pk=sos.pk).is_open
    assert not AuditEvent.objects.filter(action="alarm.acknowledged").exists()


def test_an_acknowledged_kind_may_be_raised_again(sos, passenger):
    """One open alarm per ride and kind; once acknowledged, a new sos is a new alarm."""
    assert alarms.alarm_sos(ride=sos.ride, passenger=passenger).pk == sos.pk
    Alarm.objects.filter(pk=sos.pk).update(acknowledged_at=timezone.now())
    fresh = alarms.alarm_sos(ride=sos.ride, passenger=passenger)
    assert fresh.pk != sos.pk and fresh.kind == AlarmKind.SOS


def test_a_run_running_late_is_in_the_lane(day, settings):  # noqa: F811 (the fixture)
    """dispatch.planning.day decides lateness; the lane lists the run and by how much."""
    settings.PLAN_EXPLORATION = 1
    plan_tomorrow()
    run = Ride.objects.get(pk=day["rides"][0].pk).run
    first = run.stops.order_by("sequence").first()
    now = first.window_end - timedelta(minutes=5)
    location_store().put(run.driver_id, Point(JHB[0] + 0.3, JHB[1], now.timestamp()))
    lane_now = regions.alert_lane(now=now)
    [(late_run, forecast)] = lane_now["late_runs"]
    assert late_run == run and forecast.minutes_late > 10
    html = render_to_string("console/alerts.html#alerts", {"alerts": lane_now})
    assert "Running late" in html and f"{forecast.minutes_late} min late" in html
    assert lane_now["due"] == 1


def test_a_will_call_return_said_ready_days_after_booking_waits_from_its_ready(
    console, passenger, make_user, settings
):
    """
    Sarah's ride home was booked last week and left will-call; she says she
    is ready now and no driver is free. The board says she has waited from
    now, not since the booking, and the alert waits ALERT_WAITING_MIN like
    any new request's; a rider booked now, waiting longer, stays first.
    """
    settings.ALERT_WAITING_MIN = 5
    outbound = ride_book_ahead(
        passenger=passenger,
        booked_by=passenger,
        pickup=Place(JHB[0], JHB[1], "Home"),
        dropoff=Place(JHB[0] + 0.03, JHB[1] + 0.03, "Clinic"),
        pickup_at=timezone.now() + timedelta(days=1),
        return_will_call=True,
    )
    back = outbound.returns.get()
    last_week = timezone.now() - timedelta(days=6)
    Ride.objects.filter(pk=outbound.pk).update(status="completed", created_at=last_week)
    # Booked last week for today's clinic visit.
    Ride.objects.filter(pk=back.pk).update(created_at=last_week, service_date=timezone.localdate())
    early = book(make_user("passenger"), "early-1", match=False)
    Ride.objects.filter(pk=early.pk).update(created_at=timezone.now() - timedelta(minutes=2))
    ride_ready(ride=Ride.objects.get(pk=back.pk), actor=passenger)
    assert Ride.objects.get(pk=back.pk).status == "searching"

    html = console.get("/console/").content.decode()
    card = re.search(rf'<li[^>]*id="pending-{back.pk}".*?</li>', html, re.S).group(0)
    assert "waiting <time" in card and "day" not in re.search(r"data-since>([^<]*)<", card)[1]
    pending = re.findall(r'id="pending-(\d+)"', html)
    assert pending.index(str(early.pk)) < pending.index(str(back.pk))
    alert = re.search(rf'<li[^>]*data-alert-key="waiting-{back.pk}"[^>]*>', lane(html)).group(0)
    assert " hidden" in alert
