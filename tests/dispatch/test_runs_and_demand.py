"""
Runs and rides on demand side by side, and offers that must close: a run's
ride is not given back into on-demand matching, a run's driver carrying a
rider is not matched on demand, and an offer is not talked over or left
open by the ride's ending.
"""

from __future__ import annotations

import pytest

from dispatch import booking, matching, rides, trips
from dispatch.errors import IllegalTransition
from dispatch.models import DriverState, Ride, RideStatus
from tests.conftest import JHB, booking_keywords
from tests.dispatch.test_plan_services import book, plan_tomorrow, shift_for


def _john_with_a_run(passenger, make_driver, settings, *, online: bool):
    """John on shift tomorrow, Sarah's trip on his run; online near it, or offline."""
    from dispatch import drivers

    settings.PLAN_EXPLORATION = 0
    john = make_driver(first_name="John")
    shift_for(john)
    booked = book(passenger, 8, 0)
    plan_tomorrow()
    if online:
        drivers.driver_place(driver=john, latitude=JHB[0] + 0.001, longitude=JHB[1])
    drivers.driver_set_status(driver=john, status="available" if online else "offline")
    return john, Ride.objects.select_related("run__driver").get(pk=booked.pk)


@pytest.mark.django_db
def test_a_run_ride_given_back_does_not_claim_an_on_demand_driver_for_good(
    passenger, make_driver, settings
):
    """
    A run's driver cannot give back (cancel_ride) a ride their run has
    reached: matched on demand, it would claim a driver whom no end of a
    run's ride frees. The ride stays with the run's driver.
    """
    settings.PLAN_EXPLORATION = 0
    john = make_driver(first_name="John")
    shift_for(john)
    booked = book(passenger, 8, 0)
    plan_tomorrow()
    ride = Ride.objects.select_related("run__driver").get(pk=booked.pk)
    assert ride.run is not None and ride.run.driver == john
    trips.ride_run_reached(ride=ride)
    ride.refresh_from_db()
    helper = make_driver(ride.pickup_latitude + 0.001, ride.pickup_longitude, first_name="Help")

    with pytest.raises(IllegalTransition):
        matching.ride_driver_cancel(ride=ride, driver=john, reason="flat_tyre")
    ride.refresh_from_db()
    assert (ride.status, ride.driver_id) == (RideStatus.ASSIGNED, john.pk)
    assert DriverState.objects.get(driver=helper).status == "available"


@pytest.mark.django_db
def test_offer_mode_a_second_driver_online_does_not_tell_no_drivers_over_an_open_offer(
    passenger, make_driver, settings
):
    """
    Offer mode: a ride found nobody (no_drivers); driver A comes online near
    it and is offered it. Driver B coming online near it leaves the open
    offer be: the ride is not matched again, and nobody is told no_drivers.
    """
    from dispatch.models import RideEvent, RideOffer
    from tests.dispatch.test_matching import book as request_ride

    settings.DISPATCH_MODE = "offer"
    ride = request_ride(passenger)
    matching.ride_match(ride=ride, fresh=True)
    ride.refresh_from_db()
    assert ride.no_driver_found_at is not None
    a = make_driver(JHB[0] + 0.001, JHB[1])
    matching.match_waiting_near(driver_id=a.pk)
    assert RideOffer.objects.get(ride=ride, status="offered").driver_id == a.pk
    b = make_driver(JHB[0] + 0.002, JHB[1])
    matching.match_waiting_near(driver_id=b.pk)
    assert RideOffer.objects.get(ride=ride, status="offered").driver_id == a.pk
    kinds = list(
        RideEvent.objects.filter(ride=ride).order_by("version").values_list("kind", flat=True)
    )
    assert kinds[-1] == "offered", kinds


@pytest.mark.django_db
def test_a_run_driver_with_a_rider_held_is_not_matched_on_demand(
    path, passenger, make_user, make_driver, settings
):
    """
    Online before the run reaches a rider, or going online while carrying
    one: either way the run's driver is not given a ride on demand, and is
    available again once the run's rider is dropped off.
    """
    from dispatch import booking, drivers
    from dispatch.errors import DispatchError
    from tests.conftest import booking_keywords

    john, ride = _john_with_a_run(passenger, make_driver, settings, online=True)
    trips.ride_run_reached(ride=ride)
    assert DriverState.objects.get(driver=john).status == "on_trip"
    with pytest.raises(DispatchError):
        drivers.driver_set_status(driver=john, status="available")
    result = booking.ride_book(**booking_keywords(make_user("passenger"), "od-1"))
    assert result.driver_id != john.pk
    for step in (trips.ride_driver_arrived, trips.ride_start, trips.ride_complete):
        step(ride=Ride.objects.with_people().get(pk=ride.pk), driver=john)
    assert DriverState.objects.get(driver=john).status == "available"


@pytest.mark.django_db
def test_offer_mode_marking_unfulfilled_withdraws_the_open_offer(
    passenger, make_driver, settings, dispatcher
):
    """
    Offer mode: a dispatcher gives up on a ride (unfulfilled) while it is
    offered to a driver. Unlike cancel, the offer stays open: the driver's
    app still shows the request and they cannot be offered another ride
    until it times out.
    """
    from dispatch.models import RideOffer
    from tests.dispatch.test_matching import book as request_ride

    settings.DISPATCH_MODE = "offer"
    a = make_driver(JHB[0] + 0.001, JHB[1])
    ride = request_ride(passenger)
    assert matching.ride_match(ride=ride, fresh=True).offered
    ride.refresh_from_db()
    rides.ride_mark_unfulfilled(ride=ride, actor=dispatcher, reason="no one")
    assert not RideOffer.objects.filter(driver=a, status="offered").exists()


@pytest.mark.django_db(transaction=True)
def test_a_run_driver_going_on_trip_is_told_to_the_board(
    passenger, make_driver, settings, monkeypatch
):
    """Like every other status change of a driver, the board hears it (console.driver)."""
    from dispatch import broadcast

    sent = []
    monkeypatch.setattr(broadcast, "_deliver", lambda sends: sent.extend(m for _, m in sends))
    john, ride = _john_with_a_run(passenger, make_driver, settings, online=True)
    sent.clear()
    trips.ride_run_reached(ride=ride)
    told = [m for m in sent if m["type"] == "console.driver" and m["driver_id"] == john.pk]
    assert told and told[-1]["kind"] == "on_trip"


@pytest.mark.django_db
def test_a_run_driver_offline_when_reached_cannot_go_available_while_carrying(
    passenger, make_driver, settings
):
    """Offline stays offline when the run reaches a rider; going available is refused until done."""
    from dispatch import drivers
    from dispatch.errors import DispatchError

    john, ride = _john_with_a_run(passenger, make_driver, settings, online=False)
    trips.ride_run_reached(ride=ride)
    assert DriverState.objects.get(driver=john).status == "offline"
    with pytest.raises(DispatchError) as refused:
        drivers.driver_set_status(driver=john, status="available")
    assert refused.value.code == "invalid_state"
    for step in (trips.ride_driver_arrived, trips.ride_start, trips.ride_complete):
        step(ride=Ride.objects.with_people().get(pk=ride.pk), driver=john)
    assert drivers.driver_set_status(driver=john, status="available").status == "available"


def _john_holding_a_ride_now_and_his_runs(passenger, make_user, make_driver, settings):
    """John, online, took a ride booked now; then his run reached Sarah: he holds both."""
    john, run_ride = _john_with_a_run(passenger, make_driver, settings, online=True)
    rider = make_user("passenger", first_name="Lindiwe")
    now = booking.ride_book(**booking_keywords(rider, "now-1", at=(JHB[0] + 0.002, JHB[1])))
    assert now.driver_id == john.pk
    trips.ride_run_reached(ride=run_ride)
    return john, Ride.objects.with_people().get(pk=now.ride.pk)


@pytest.mark.django_db
def test_a_run_driver_giving_back_a_ride_now_still_carries_the_runs_rider(
    passenger, make_user, make_driver, settings
):
    """
    John gives back the ride booked now while his run's rider is his: he is
    not available for rides on demand until that rider is dropped off.
    """
    john, now = _john_holding_a_ride_now_and_his_runs(passenger, make_user, make_driver, settings)
    matching.ride_driver_cancel(ride=now, driver=john, reason="flat_tyre")
    assert DriverState.objects.get(driver=john).status == "on_trip"


@pytest.mark.django_db
def test_a_run_driver_whose_ride_now_is_reassigned_still_carries_the_runs_rider(
    passenger, make_user, make_driver, settings, dispatcher
):
    """A dispatcher moves John's ride booked now to Jane: John still carries his run's rider."""
    john, now = _john_holding_a_ride_now_and_his_runs(passenger, make_user, make_driver, settings)
    jane = make_driver(JHB[0] + 0.003, JHB[1], first_name="Jane")
    matching.ride_assign(ride=now, driver_id=jane.pk, actor=dispatcher, confirmed=True)
    assert Ride.objects.get(pk=now.pk).driver_id == jane.pk
    assert DriverState.objects.get(driver=john).status == "on_trip"


@pytest.mark.django_db(transaction=True)
async def test_an_offer_expiring_as_its_ride_changes_still_leaves_its_driver(
    ws, passenger, make_driver, settings
):
    """
    Another worker writes to the ride just as the sweep expires its offer:
    the driver's app is still told the offer expired, and the ride goes to
    the next driver, not straight back to the one who let it go.
    """
    from datetime import timedelta

    from django.db.models.signals import post_init
    from django.utils import timezone

    from dispatch import offers
    from dispatch.models import RideOffer
    from tests.conftest import db, receive_until
    from tests.dispatch.test_consumers import book_between_two

    settings.DISPATCH_MODE = "offer"
    near, far, near_ws, far_ws, comm = await book_between_two(
        ws, passenger, make_driver, "offer-9", near_km=1, far_km=3
    )
    await receive_until(near_ws, "ride_request")

    changed: list[int] = []

    def meanwhile(sender, instance, **kwargs):
        # The sweep reads the ride: at that moment another writer moves it on.
        if not changed:
            changed.append(instance.pk)
            rides.record(Ride.objects.get(pk=instance.pk), "no_drivers")

    later = timezone.now() + timedelta(seconds=settings.OFFER_TIMEOUT_S + 1)
    post_init.connect(meanwhile, sender=Ride)
    try:
        assert await db(offers.ride_offers_expire, now=later) == 1
    finally:
        post_init.disconnect(meanwhile, sender=Ride)
    assert changed

    expired, _ = await receive_until(near_ws, "ride_cancelled")
    assert expired["ride_id"] == "offer-9" and expired["reason"] == "offer_expired"
    offered, _ = await receive_until(far_ws, "ride_request")
    assert offered["ride_id"] == "offer-9"
    made = await db(
        lambda: list(
            RideOffer.objects.filter(ride__ride_id="offer-9")
            .order_by("created_at")
            .values_list("driver_id", "status")
        )
    )
    assert made == [(near.pk, "expired"), (far.pk, "offered")]
