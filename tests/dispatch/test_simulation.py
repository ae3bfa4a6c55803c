"""The demo simulator: where it refuses to run, its cast, and its driving."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from dispatch.demo import seed_demo, seed_simulation
from dispatch.geo import haversine_km
from dispatch.models import DriverState, DriverStatus
from dispatch.simulation import CITY_KMH, step_towards
from people.models import CaregiverLink, User, VehicleType


@pytest.mark.django_db
def test_simulate_refuses_without_the_demo_data(settings):
    """A database without the demo data may hold real people: nothing is simulated or written."""
    settings.DEBUG = True
    with pytest.raises(CommandError, match="demo data is not in this database"):
        call_command("simulate", "--duration", "1", stdout=io.StringIO())
    assert not User.objects.exists()


@pytest.mark.django_db
def test_simulate_refuses_with_debug_off_even_beside_the_demo_data(settings):
    """With DEBUG off the simulator refuses, demo data or not, unless told --i-know."""
    settings.DEBUG = True
    seed_demo()
    people = User.objects.count()
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DEBUG is off"):
        call_command("simulate", "--duration", "1", stdout=io.StringIO())
    assert User.objects.count() == people


@pytest.mark.django_db
def test_the_simulated_cast_is_made_once(settings):
    """Seeding the cast again changes nothing: 20 offline drivers, passengers, linked caregivers."""
    first = seed_simulation(20)
    again = seed_simulation(20)
    assert [u.pk for u in first.drivers] == [u.pk for u in again.drivers]
    assert len(again.drivers) == 20
    states = DriverState.objects.filter(driver__in=again.drivers)
    assert {s.status for s in states} == {DriverStatus.OFFLINE}
    accessible = [
        u for u in again.drivers
        if u.driver_profile.vehicle_type == VehicleType.WHEELCHAIR_ACCESSIBLE
    ]  # fmt: skip
    assert accessible and all(u.driver_profile.is_verified for u in again.drivers)
    assert any(p.passenger_profile.needs_wheelchair for p in again.passengers)
    for carer, passenger in again.caregivers.items():
        link = CaregiverLink.objects.live().get(caregiver=carer, passenger=passenger)
        assert link.can_book_rides and link.status == "active"
    assert CaregiverLink.objects.count() == len(again.caregivers)


def test_drivers_move_along_straight_legs_at_the_given_speed():
    """A tick moves a driver its speed's distance toward the target, and stops there."""
    here, there = (-26.20, 28.04), (-26.15, 28.10)
    km = CITY_KMH * 2 / 3600  # one 2 s tick at city speed
    moved, arrived = step_towards(here, there, km)
    assert not arrived
    assert haversine_km(*here, *moved) == pytest.approx(km, rel=0.02)
    assert haversine_km(*moved, *there) < haversine_km(*here, *there)
    end, arrived = step_towards(moved, there, 100)
    assert arrived and end == there
