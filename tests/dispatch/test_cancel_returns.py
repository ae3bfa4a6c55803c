"""
Cancelling a ride booked ahead and what becomes of its return legs: the
ride home goes with an outbound trip that never took its rider out, and
stays once it has.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from dispatch import rides, trips
from dispatch.models import Ride, RideStatus
from dispatch.scheduling import Place, ride_book_ahead
from tests.conftest import JHB
from tests.dispatch.test_plan_services import at, plan_tomorrow, shift_for

pytestmark = pytest.mark.django_db


def clinic_day(passenger, *, return_hour: int = 12):
    """Sarah's trip to the clinic tomorrow at eight, and her ride home at noon."""
    return ride_book_ahead(
        passenger=passenger,
        booked_by=passenger,
        pickup=Place(JHB[0] + 0.01, JHB[1], "Home"),
        dropoff=Place(JHB[0] + 0.04, JHB[1] + 0.01, "Clinic"),
        pickup_at=at(8, 0),
        return_at=at(return_hour, 0),
    )


def planned_clinic_day(passenger, make_driver, settings) -> tuple:
    """John's shift, Sarah's clinic day planned onto it: (John, the outbound, its return)."""
    settings.PLAN_EXPLORATION = 0
    john = make_driver(first_name="John")
    shift_for(john)
    outbound = clinic_day(passenger)
    plan_tomorrow()
    return john, outbound, outbound.returns.get()


def aboard(outbound: Ride, driver) -> Ride:
    """The run has fetched the outbound's rider: she is on her way."""
    trips.ride_run_reached(ride=Ride.objects.select_related("run__driver").get(pk=outbound.pk))
    for step in (trips.ride_driver_arrived, trips.ride_start):
        step(ride=trips.drivers_active_ride(driver=driver), driver=driver)
    return Ride.objects.with_people().get(pk=outbound.pk)


def test_an_outbound_cancelled_with_its_rider_aboard_keeps_the_ride_home(
    passenger, make_driver, dispatcher, settings
):
    """
    The van breaks down with Sarah aboard, and the dispatcher cancels the
    trip (a taxi takes her on to the clinic): she is away from home, so her
    noon ride back from the clinic stays booked.
    """
    john, outbound, back = planned_clinic_day(passenger, make_driver, settings)
    ride = aboard(outbound, john)
    assert ride.status == RideStatus.IN_PROGRESS

    rides.ride_cancel(ride=ride, actor=dispatcher, cancelled_by="dispatcher", reason="breakdown")

    back.refresh_from_db()
    assert back.status == RideStatus.SCHEDULED
    assert [e.kind for e in back.events.order_by("version")][-1] != "cancelled"


def test_an_outbound_cancelled_at_the_door_takes_the_ride_home_with_it(
    passenger, make_driver, settings
):
    """At the door Sarah says she is too unwell to go: she stays home, so no return."""
    john, outbound, back = planned_clinic_day(passenger, make_driver, settings)
    trips.ride_run_reached(ride=Ride.objects.select_related("run__driver").get(pk=outbound.pk))
    trips.ride_driver_arrived(ride=trips.drivers_active_ride(driver=john), driver=john)

    rides.ride_cancel(
        ride=Ride.objects.get(pk=outbound.pk),
        actor=passenger,
        cancelled_by="passenger",
        reason="unwell",
    )

    back.refresh_from_db()
    assert (back.status, back.cancel_reason) == (RideStatus.CANCELLED, "unwell")
    assert back.ended_at - Ride.objects.get(pk=outbound.pk).ended_at < timedelta(seconds=5)
