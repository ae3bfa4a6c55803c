"""Matching: who gets a ride, and that nobody gets two."""

from __future__ import annotations

import random
import time

import pytest
from django.db import IntegrityError, transaction
from django.test import override_settings

from dispatch import drivers, errors, matching, offers, rides, trips, watch
from dispatch.geo import GridIndex, Point, haversine_km, naive_nearest
from dispatch.locations import location_store
from dispatch.models import DriverState, DriverStatus, Ride, RideEvent, RideStatus
from people.models import VehicleType

JHB = (-26.2041, 28.0473)
CAPE_TOWN = (-33.9249, 18.4241)


def book(passenger, ride_id="r1", at=JHB, **extra):
    return rides.ride_request(
        ride_id=ride_id,
        passenger=passenger,
        booked_by=extra.pop("booked_by", passenger),
        pickup_latitude=at[0],
        pickup_longitude=at[1],
        pickup_address="Pickup",
        dropoff_latitude=at[0] + 0.05,
        dropoff_longitude=at[1] + 0.05,
        dropoff_address="Dropoff",
        **extra,
    )


def test_haversine_knows_johannesburg_to_pretoria():
    """Johannesburg to Pretoria is about 54 km as the crow flies."""
    assert 50 < haversine_km(-26.2041, 28.0473, -25.7479, 28.2293) < 58


def test_grid_search_yields_the_same_drivers_in_the_same_order_as_a_full_scan():
    """The outward grid search agrees with scanning every driver."""
    rng = random.Random(7)
    grid, points = GridIndex(), {}
    for key in range(5000):
        p = Point(JHB[0] + rng.uniform(-0.3, 0.3), JHB[1] + rng.uniform(-0.3, 0.3), 0)
        grid.put(key, p)
        points[key] = p
    for _ in range(25):
        lat, lng = JHB[0] + rng.uniform(-0.35, 0.35), JHB[1] + rng.uniform(-0.35, 0.35)
        fast = [key for key, _, _ in grid.nearest(lat, lng, 10)]
        slow = [key for key, _ in naive_nearest(points, lat, lng, 10)]
        assert fast == slow


def test_grid_moves_and_removes_points():
    """A driver who moved is found where they are now, and a removed one not at all."""
    grid = GridIndex()
    grid.put(1, Point(*JHB, 0))
    grid.put(1, Point(*CAPE_TOWN, 0))
    assert [k for k, _, _ in grid.nearest(*JHB, 10)] == []
    assert [k for k, _, _ in grid.nearest(*CAPE_TOWN, 10)] == [1]
    grid.remove(1)
    assert list(grid.nearest(*CAPE_TOWN, 10)) == []


@pytest.mark.django_db
def test_nearest_available_driver_wins(passenger, make_driver):
    """Of two available drivers, the nearer one is assigned."""
    far = make_driver(JHB[0] + 0.05, JHB[1])  # ~5.5 km
    near = make_driver(JHB[0] + 0.01, JHB[1])  # ~1.1 km
    result = matching.ride_match(ride=book(passenger))
    assert result.driver_id == near.pk
    ride = Ride.objects.get(ride_id="r1")
    assert ride.status == RideStatus.ASSIGNED and ride.driver_id == near.pk
    assert DriverState.objects.get(driver=near).status == DriverStatus.ON_TRIP
    assert DriverState.objects.get(driver=far).status == DriverStatus.AVAILABLE


@pytest.mark.django_db
def test_radius_is_respected(passenger, make_driver):
    """A driver 11 km away is not matched; the ride waits for a dispatcher."""
    make_driver(JHB[0] + 0.1, JHB[1])  # ~11.1 km
    result = matching.ride_match(ride=book(passenger))
    assert result.driver_id is None
    ride = Ride.objects.get(ride_id="r1")
    assert ride.status == RideStatus.SEARCHING
    assert ride.no_driver_found_at is not None
    assert ride.events.filter(kind="no_drivers").exists()


@pytest.mark.django_db
@override_settings(MATCH_RADIUS_KM=15)
def test_radius_comes_from_settings(passenger, make_driver):
    """MATCH_RADIUS_KM widens the search."""
    driver = make_driver(JHB[0] + 0.1, JHB[1])
    assert matching.ride_match(ride=book(passenger)).driver_id == driver.pk


@pytest.mark.django_db
def test_offline_unverified_and_stale_drivers_are_not_matched(passenger, make_driver):
    """Only available, verified drivers who report recently are candidates."""
    offline = make_driver(JHB[0] + 0.001, JHB[1])
    drivers.driver_set_status(driver=offline, status="offline")
    make_driver(JHB[0] + 0.002, JHB[1], verified=False)
    stale = make_driver(JHB[0] + 0.003, JHB[1])
    point = location_store().get(stale.pk)
    location_store().put(stale.pk, Point(point.lat, point.lng, time.time() - 31))
    fresh = make_driver(JHB[0] + 0.04, JHB[1])
    assert matching.ride_match(ride=book(passenger)).driver_id == fresh.pk


@pytest.mark.django_db
def test_demo_drivers_are_exempt_from_staleness(passenger, make_driver):
    """Seeded demo drivers stand still and are matched however old their fix."""
    demo = make_driver(JHB[0] + 0.01, JHB[1], demo=True)
    point = location_store().get(demo.pk)
    location_store().put(demo.pk, Point(point.lat, point.lng, time.time() - 3600, reported=False))
    assert matching.ride_match(ride=book(passenger)).driver_id == demo.pk


@pytest.mark.django_db
def test_wheelchair_needs_a_wheelchair_accessible_vehicle(passenger, make_driver):
    """A wheelchair ride skips nearer sedans for an accessible vehicle."""
    make_driver(JHB[0] + 0.001, JHB[1])
    van = make_driver(JHB[0] + 0.03, JHB[1], vehicle_type=VehicleType.WHEELCHAIR_ACCESSIBLE)
    result = matching.ride_match(ride=book(passenger, needs_wheelchair=True))
    assert result.driver_id == van.pk


@pytest.mark.django_db
def test_passenger_profile_need_applies_by_default(passenger, make_driver):
    """A passenger whose profile says wheelchair gets an accessible vehicle unasked."""
    passenger.passenger_profile.needs_wheelchair = True
    passenger.passenger_profile.save()
    make_driver(JHB[0] + 0.001, JHB[1])
    assert matching.ride_match(ride=book(passenger)).driver_id is None


@pytest.mark.django_db
def test_a_driver_never_holds_two_rides(make_user, make_driver):
    """The second ride does not get the driver the first one took."""
    driver = make_driver(*JHB)
    first = matching.ride_match(ride=book(make_user(), "a"))
    second = matching.ride_match(ride=book(make_user(), "b"))
    assert first.driver_id == driver.pk
    assert second.driver_id is None
    with pytest.raises(errors.DriverUnavailable):
        matching.ride_assign(ride=Ride.objects.get(ride_id="b"), driver_id=driver.pk)


@pytest.mark.django_db
def test_database_refuses_two_active_rides_for_one_driver(make_user, make_driver):
    """Even written directly, a second held ride for a driver is refused."""
    driver = make_driver(*JHB)
    matching.ride_match(ride=book(make_user(), "a"))
    other = book(make_user(), "b")
    with pytest.raises(IntegrityError), transaction.atomic():
        Ride.objects.filter(pk=other.pk).update(status=RideStatus.ASSIGNED, driver=driver)


@pytest.mark.django_db
def test_a_passenger_has_one_active_ride(passenger):
    """A second booking while one is active is refused, and nothing is written."""
    book(passenger, "a")
    with pytest.raises(errors.RideConflict):
        book(passenger, "b")
    assert not Ride.objects.filter(ride_id="b").exists()


@pytest.mark.django_db
def test_events_carry_increasing_versions(passenger, make_driver):
    """Each event of a ride has the next version; the ride shows the latest."""
    make_driver(*JHB)
    matching.ride_match(ride=book(passenger))
    ride = Ride.objects.get(ride_id="r1")
    versions = list(ride.events.values_list("version", flat=True))
    assert versions == list(range(1, len(versions) + 1))
    assert ride.version == versions[-1]
    assert list(ride.events.values_list("kind", flat=True)) == [
        "requested",
        "searching",
        "assigned",
    ]


@pytest.mark.django_db
def test_cancelled_ride_frees_its_driver(passenger, make_user, make_driver):
    """After a cancellation the driver takes the next ride."""
    driver = make_driver(*JHB)
    matching.ride_match(ride=book(passenger, "a"))
    ride = Ride.objects.get(ride_id="a")
    rides.ride_cancel(ride=ride, actor=passenger, cancelled_by="passenger", reason="changed")
    assert DriverState.objects.get(driver=driver).status == DriverStatus.AVAILABLE
    assert matching.ride_match(ride=book(make_user(), "b")).driver_id == driver.pk


@pytest.mark.django_db
def test_completed_trip_frees_the_driver(passenger, make_driver):
    """arrived, start, complete: the ride ends and the driver is available."""
    driver = make_driver(*JHB)
    matching.ride_match(ride=book(passenger))
    ride = Ride.objects.get(ride_id="r1")
    trips.ride_driver_arrived(ride=ride, driver=driver)
    trips.ride_start(ride=ride, driver=driver)
    trips.ride_complete(ride=ride, driver=driver)
    ride.refresh_from_db()
    assert ride.status == RideStatus.COMPLETED and ride.ended_at
    assert DriverState.objects.get(driver=driver).status == DriverStatus.AVAILABLE


@pytest.mark.django_db
def test_illegal_transition_names_the_current_state(passenger, make_driver):
    """Completing a ride that has not started fails and says where it is."""
    driver = make_driver(*JHB)
    matching.ride_match(ride=book(passenger))
    ride = Ride.objects.get(ride_id="r1")
    with pytest.raises(errors.IllegalTransition) as info:
        trips.ride_complete(ride=ride, driver=driver)
    assert "assigned" in str(info.value)
    assert info.value.extra["current_status"] == "assigned"
    assert Ride.objects.get(pk=ride.pk).status == RideStatus.ASSIGNED


@pytest.mark.django_db
def test_driver_cancel_rematches_without_that_driver(passenger, make_driver):
    """A driver who gives a ride back is replaced by the next one, automatically."""
    first = make_driver(JHB[0] + 0.001, JHB[1])
    second = make_driver(JHB[0] + 0.02, JHB[1])
    matching.ride_match(ride=book(passenger))
    ride = Ride.objects.get(ride_id="r1")
    assert ride.driver_id == first.pk
    result = matching.ride_driver_cancel(ride=ride, driver=first, reason="flat_tyre")
    assert result.driver_id == second.pk
    assert DriverState.objects.get(driver=first).status == DriverStatus.AVAILABLE
    kinds = list(RideEvent.objects.filter(ride=ride).values_list("kind", flat=True))
    assert kinds[-2:] == ["driver_cancelled", "assigned"]


@pytest.mark.django_db
def test_no_show_only_after_the_wait(passenger, make_driver, settings):
    """A no-show before NO_SHOW_WAIT_MIN at the pickup is refused; after it, recorded."""
    driver = make_driver(*JHB)
    matching.ride_match(ride=book(passenger))
    ride = Ride.objects.get(ride_id="r1")
    trips.ride_driver_arrived(ride=ride, driver=driver)
    with pytest.raises(errors.IllegalTransition):
        trips.ride_no_show(ride=ride, driver=driver)
    settings.NO_SHOW_WAIT_MIN = 0
    settings.NO_SHOW_CAREGIVERS_AFTER_MIN = 0
    watch.waiting_escalate()  # the escalation's last step (tests/dispatch/test_waiting.py)
    ride.refresh_from_db()
    trips.ride_no_show(ride=ride, driver=driver)
    assert Ride.objects.get(pk=ride.pk).status == RideStatus.NO_SHOW
    assert DriverState.objects.get(driver=driver).status == DriverStatus.AVAILABLE


@pytest.mark.django_db
def test_offer_mode_decline_passes_the_ride_on(passenger, make_driver, settings):
    """In offer mode the nearest driver is asked first; a decline asks the next."""
    settings.DISPATCH_MODE = "offer"
    first = make_driver(JHB[0] + 0.001, JHB[1])
    second = make_driver(JHB[0] + 0.02, JHB[1])
    result = matching.ride_match(ride=book(passenger))
    assert result.offered and result.driver_id == first.pk
    ride = Ride.objects.get(ride_id="r1")
    assert ride.status == RideStatus.SEARCHING
    result = offers.ride_offer_decline(ride=ride, driver=first)
    assert result.offered and result.driver_id == second.pk
    offers.ride_offer_accept(ride=ride, driver=second)
    ride.refresh_from_db()
    assert ride.status == RideStatus.ASSIGNED and ride.driver_id == second.pk


@pytest.mark.django_db
def test_offer_timeout_is_swept_and_passed_on(passenger, make_driver, settings):
    """An unanswered offer expires in the sweep and goes to the next driver."""
    from datetime import timedelta

    from django.utils import timezone

    settings.DISPATCH_MODE = "offer"
    first = make_driver(JHB[0] + 0.001, JHB[1])
    second = make_driver(JHB[0] + 0.02, JHB[1])
    matching.ride_match(ride=book(passenger))
    assert offers.ride_offers_expire() == 0
    later = timezone.now() + timedelta(seconds=settings.OFFER_TIMEOUT_S + 1)
    assert offers.ride_offers_expire(now=later) == 1
    ride = Ride.objects.get(ride_id="r1")
    made = list(ride.offers.order_by("created_at").values_list("driver_id", "status"))
    assert made == [(first.pk, "expired"), (second.pk, "offered")]


@pytest.mark.django_db
@pytest.mark.parametrize("leaves", ["goes offline", "is unverified"])
def test_an_offer_to_a_driver_who_leaves_goes_on_at_the_next_sweep(
    passenger, make_driver, settings, leaves
):
    """The passenger does not wait out the timeout of an offer its driver can no longer take."""
    settings.DISPATCH_MODE = "offer"
    first = make_driver(JHB[0] + 0.001, JHB[1])
    second = make_driver(JHB[0] + 0.02, JHB[1])
    matching.ride_match(ride=book(passenger))
    if leaves == "goes offline":
        drivers.driver_set_status(driver=first, status=DriverStatus.OFFLINE)
    else:
        drivers.driver_verify(profile=first.driver_profile, actor=None, verified=False)
    assert offers.ride_offers_expire() == 1
    ride = Ride.objects.get(ride_id="r1")
    made = list(ride.offers.order_by("created_at").values_list("driver_id", "status"))
    assert made == [(first.pk, "expired"), (second.pk, "offered")]
    # The second is still there and available: the sweep leaves its offer alone.
    assert offers.ride_offers_expire() == 0


@pytest.mark.django_db
@pytest.mark.parametrize("answer", [offers.ride_offer_accept, offers.ride_offer_decline])
def test_an_answer_to_an_offer_closed_meanwhile_says_where_the_ride_is(
    passenger, make_driver, settings, answer
):
    """
    The passenger cancels between the driver's tap and its answer: as the
    protocol says, invalid_state (409) with the ride's status and version,
    and nothing written.
    """
    settings.DISPATCH_MODE = "offer"
    driver = make_driver(*JHB)
    matching.ride_match(ride=book(passenger))
    ride = offers.offered_ride(driver=driver, ride_id="r1")
    rides.ride_cancel(ride=Ride.objects.get(pk=ride.pk), actor=passenger, cancelled_by="passenger")
    cancelled = Ride.objects.get(pk=ride.pk)
    with pytest.raises(errors.DispatchError) as refused:
        answer(ride=ride, driver=driver)
    assert (refused.value.code, refused.value.status) == ("invalid_state", 409)
    assert refused.value.extra == {"current_status": "cancelled", "version": cancelled.version}
    assert Ride.objects.get(pk=ride.pk).version == cancelled.version


@pytest.mark.django_db
def test_a_late_answer_to_an_offer_says_where_the_ride_is(passenger, make_driver, settings):
    """An accept after the offer expired is invalid_state with the ride's status and version."""
    from datetime import timedelta

    from django.utils import timezone

    settings.DISPATCH_MODE = "offer"
    driver = make_driver(*JHB)
    matching.ride_match(ride=book(passenger))
    later = timezone.now() + timedelta(seconds=settings.OFFER_TIMEOUT_S + 1)
    assert offers.ride_offers_expire(now=later) == 1
    ride = Ride.objects.get(ride_id="r1")
    with pytest.raises(errors.DispatchError) as refused:
        offers.offered_ride(driver=driver, ride_id="r1")
    assert (refused.value.code, refused.value.status) == ("invalid_state", 409)
    assert refused.value.extra == {"current_status": ride.status, "version": ride.version}


@pytest.mark.django_db
def test_a_decline_as_the_ride_changes_still_passes_the_ride_on(passenger, make_driver, settings):
    """
    Another writer moves the ride on just as a driver declines it: the
    decline still counts, and the ride is offered to the next driver, not
    back to them.
    """
    from django.db.models.signals import post_init

    settings.DISPATCH_MODE = "offer"
    first = make_driver(JHB[0] + 0.001, JHB[1])
    second = make_driver(JHB[0] + 0.02, JHB[1])
    matching.ride_match(ride=book(passenger))
    ride = offers.offered_ride(driver=first, ride_id="r1")
    changed: list[int] = []

    def meanwhile(sender, instance, **kwargs):
        if not changed:
            changed.append(instance.pk)
            rides.record(Ride.objects.get(pk=instance.pk), "no_drivers")

    post_init.connect(meanwhile, sender=Ride)
    try:
        result = offers.ride_offer_decline(ride=ride, driver=first)
    finally:
        post_init.disconnect(meanwhile, sender=Ride)
    assert changed
    assert result.offered and result.driver_id == second.pk


@pytest.mark.django_db
def test_offer_mode_with_nobody_left_reports_no_drivers(passenger, make_driver, settings):
    """When the only driver declines, the ride records that nobody was found."""
    settings.DISPATCH_MODE = "offer"
    only = make_driver(*JHB)
    matching.ride_match(ride=book(passenger))
    ride = Ride.objects.get(ride_id="r1")
    result = offers.ride_offer_decline(ride=ride, driver=only)
    assert result.driver_id is None
    assert Ride.objects.get(pk=ride.pk).no_driver_found_at is not None
