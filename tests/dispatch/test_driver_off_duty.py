"""
A driver whose account support switches off, or whose role is no longer
driver, drives no more: off duty at once, or once the trip they hold ends,
as a driver no longer verified.
"""

from __future__ import annotations

import pytest

from console import regions
from dispatch import booking, drivers, trips
from dispatch.models import DriverState, Ride, RideStatus
from people.models import UserType
from project.common.errors import ServiceError
from tests.conftest import booking_keywords
from tests.dispatch.test_rides_api import JHB, book

pytestmark = pytest.mark.django_db

ENDINGS = {
    "switched off": {"is_active": False},
    "no longer a driver": {"user_type": UserType.PASSENGER},
}


def _end(driver, ending: str) -> None:
    """What support's Save on the user's page does: the plain model save."""
    for name, value in ENDINGS[ending].items():
        setattr(driver, name, value)
    driver.save()


def _status(driver) -> str:
    return DriverState.objects.get(driver=driver).status


def on_board(driver) -> bool:
    return any(row.driver_id == driver.pk for row in regions.driver_rows())


@pytest.mark.parametrize("ending", ENDINGS)
def test_an_available_driver_who_may_drive_no_more_goes_offline_and_gets_no_ride(
    make_driver, passenger, ending
):
    driver = make_driver(*JHB)
    _end(driver, ending)
    assert _status(driver) == "offline"
    assert not on_board(driver)
    ride = booking.ride_book(**booking_keywords(passenger, f"off-{ending[:2]}"))
    assert ride.driver_id is None


@pytest.mark.parametrize("ending", ENDINGS)
def test_a_driver_who_may_drive_no_more_mid_trip_finishes_it_then_is_offline(
    make_driver, passenger, ending
):
    """As a driver unverified mid-trip: the ride held is theirs to end, then offline."""
    driver = make_driver(*JHB)
    ride = book(passenger, f"mid-{ending[:2]}")
    assert ride.driver_id == driver.pk
    _end(driver, ending)
    assert _status(driver) == "on_trip"
    for step in (trips.ride_driver_arrived, trips.ride_start, trips.ride_complete):
        step(ride=Ride.objects.get(pk=ride.pk), driver=driver)
    assert Ride.objects.get(pk=ride.pk).status == RideStatus.COMPLETED
    assert _status(driver) == "offline"


def test_a_driver_no_longer_a_driver_cannot_go_online_again(make_driver):
    driver = make_driver(*JHB)
    _end(driver, "no longer a driver")
    with pytest.raises(ServiceError):
        drivers.driver_set_status(driver=driver, status="available")
    assert _status(driver) == "offline"


def test_a_driver_switched_on_again_waits_offline(make_driver, passenger):
    """Switched on again, the driver goes online themselves: nobody is matched meanwhile."""
    driver = make_driver(*JHB)
    _end(driver, "switched off")
    driver.is_active = True
    driver.save()
    assert _status(driver) == "offline"
    ride = book(passenger, "back-on")
    assert ride.driver_id is None
