"""
The no-show escalation: the driver at the door, the passenger told at once,
their caregivers NO_SHOW_CAREGIVERS_AFTER_MIN later, the console shown it;
and no no-show before the wait and the escalation.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.utils import timezone

from console.regions import alert_lane
from dispatch import broadcast, scheduling, trips, watch
from dispatch.errors import NoShowTooEarly
from dispatch.models import Ride, RideStatus
from tests.dispatch.test_rides_api import JHB, book

pytestmark = pytest.mark.django_db


# Who hears what, in memory whatever layer the run is configured with (the
# layers themselves are tested in tests/test_channel_prefix.py and tests/cluster).
IN_MEMORY = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


class Ear:
    """A channel in some groups: what the broadcast sent them."""

    def __init__(self, *groups: str) -> None:
        self.layer = get_channel_layer()
        self.channel = async_to_sync(self.layer.new_channel)()
        for group in groups:
            async_to_sync(self.layer.group_add)(group, self.channel)

    def heard(self) -> list[dict]:
        async def drain():
            out = []
            while True:
                try:
                    out.append(await asyncio.wait_for(self.layer.receive(self.channel), 0.05))
                except TimeoutError:
                    return out

        return async_to_sync(drain)()


@pytest.fixture
def at_the_door(
    passenger, make_driver, make_user, make_link, django_capture_on_commit_callbacks, settings
):
    """Sarah's driver has just arrived; Emily is told of everything, Tom is not."""
    settings.CHANNEL_LAYERS = IN_MEMORY
    make_driver(*JHB)
    emily, tom = make_user("caregiver"), make_user("caregiver")
    make_link(passenger, emily, can_receive_notifications=True)
    make_link(passenger, tom, can_receive_notifications=False, can_view_location=False)
    ride = book(passenger, "door-1")
    ears = {
        "passenger": Ear(broadcast.passenger_group(passenger.pk)),
        "emily": Ear(broadcast.caregiver_group(emily.pk)),
        "tom": Ear(broadcast.caregiver_group(tom.pk)),
        "console": Ear(broadcast.CONSOLE_GROUP),
    }
    with django_capture_on_commit_callbacks(execute=True):
        trips.ride_driver_arrived(ride=ride, driver=ride.driver)
    ride.refresh_from_db()
    return ride, ears, emily


def kinds(ride: Ride) -> list[str]:
    return list(ride.events.order_by("version").values_list("kind", flat=True))


def test_the_passenger_is_told_on_arrival_and_the_caregivers_after_n_minutes(
    at_the_door, settings, django_capture_on_commit_callbacks
):
    """The order: arrival, passenger told; nothing more before N minutes; then the caregivers."""
    ride, ears, emily = at_the_door
    settings.NO_SHOW_CAREGIVERS_AFTER_MIN = 2
    assert kinds(ride)[-2:] == ["driver_arrived", "waiting_passenger_told"]
    told = [
        m["message"] for m in ears["passenger"].heard() if m["kind"] == "waiting_passenger_told"
    ]
    assert told and told[0]["type"] == "driver_waiting" and told[0]["stage"] == "passenger"
    assert [m["kind"] for m in ears["emily"].heard()] == ["driver_arrived"]

    assert watch.waiting_escalate(now=timezone.now() + timedelta(minutes=1)) == 0
    assert kinds(ride)[-1] == "waiting_passenger_told"
    with django_capture_on_commit_callbacks(execute=True):
        assert watch.waiting_escalate(now=timezone.now() + timedelta(minutes=2, seconds=1)) == 1
    ride.refresh_from_db()
    assert kinds(ride)[-1] == "waiting_caregivers_told"
    assert ride.events.get(kind="waiting_caregivers_told").payload["caregiver_ids"] == [emily.pk]
    [heard] = ears["emily"].heard()
    assert heard["message"]["type"] == "driver_waiting"
    assert heard["message"]["stage"] == "caregivers"
    assert heard["message"]["message"] == "The driver is waiting at the door."
    assert heard["message"]["event"] == "waiting_caregivers_told"
    assert ears["tom"].heard() == []
    console = [m["kind"] for m in ears["console"].heard()]
    assert "waiting_passenger_told" in console and "waiting_caregivers_told" in console
    # Once only, however often it is swept.
    assert watch.waiting_escalate(now=timezone.now() + timedelta(minutes=5)) == 0


def test_no_show_is_refused_before_the_wait_saying_how_long_is_left(at_the_door, settings):
    ride, _, _ = at_the_door
    settings.NO_SHOW_WAIT_MIN = 5
    settings.NO_SHOW_CAREGIVERS_AFTER_MIN = 2
    with pytest.raises(NoShowTooEarly) as refused:
        trips.ride_no_show(ride=ride, driver=ride.driver)
    assert refused.value.code == "invalid_state" and refused.value.status == 409
    assert 290 <= refused.value.extra["seconds_left"] <= 300
    assert "before recording a no-show" in str(refused.value)
    assert Ride.objects.get(pk=ride.pk).status == RideStatus.DRIVER_ARRIVED


def test_no_show_waits_for_the_escalation_too(at_the_door, settings):
    """Past the wait but with the caregivers not yet told: refused; once told, recorded."""
    ride, _, _ = at_the_door
    settings.NO_SHOW_WAIT_MIN = 0
    settings.NO_SHOW_CAREGIVERS_AFTER_MIN = 0
    with pytest.raises(NoShowTooEarly, match="caregivers are being told"):
        trips.ride_no_show(ride=ride, driver=ride.driver)
    watch.waiting_escalate()
    ride.refresh_from_db()
    trips.ride_no_show(ride=ride, driver=ride.driver)
    assert kinds(ride)[-3:] == ["waiting_passenger_told", "waiting_caregivers_told", "no_show"]


def test_a_no_show_ends_the_days_return_too(at_the_door, settings):
    """
    Sarah never came out: no driver is sent to the clinic for her ride
    home; it ends with the outbound trip, and says why.
    """
    ride, _, _ = at_the_door
    back = scheduling.return_leg_book(
        outbound=ride, return_at=None, will_call=True, role="passenger"
    )
    settings.NO_SHOW_WAIT_MIN = 0
    settings.NO_SHOW_CAREGIVERS_AFTER_MIN = 0
    watch.waiting_escalate()
    ride.refresh_from_db()
    trips.ride_no_show(ride=ride, driver=ride.driver)
    back.refresh_from_db()
    assert (back.status, back.cancelled_by) == (RideStatus.CANCELLED, "system")
    assert "No-show" in back.cancel_reason


def test_a_caregiver_told_after_the_wait_still_holds_the_no_show_back(at_the_door, settings):
    """N above the wait: the no-show waits for N."""
    ride, _, _ = at_the_door
    settings.NO_SHOW_WAIT_MIN = 1
    settings.NO_SHOW_CAREGIVERS_AFTER_MIN = 4
    Ride.objects.filter(pk=ride.pk).update(arrived_at=timezone.now() - timedelta(minutes=2))
    ride.refresh_from_db()
    with pytest.raises(NoShowTooEarly) as refused:
        trips.ride_no_show(ride=ride, driver=ride.driver)
    assert 110 <= refused.value.extra["seconds_left"] <= 120


def test_the_console_alert_lane_shows_the_driver_waiting_at_the_door(at_the_door, settings):
    """The board's alert lane shows a driver waiting at the door."""
    ride, _, _ = at_the_door
    settings.NO_SHOW_CAREGIVERS_AFTER_MIN = 0
    assert alert_lane()["at_door"] == []
    watch.waiting_escalate()
    assert [r.pk for r in alert_lane()["at_door"]] == [ride.pk]
