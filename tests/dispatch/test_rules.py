"""
The rules that used to have several homes, each pinned where the copies
disagreed (issue 16): role order, what an ended ride shows, distance as
position, manual assignment and offers against the matching rules, the
needs card, snapshot and group, caregiver notifications on the ride socket,
the admin's positions, and silent demo drivers.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.utils import timezone

from dispatch import access, booking, matching, offers, rides, trips
from dispatch.consumers import RideConsumer
from dispatch.errors import DispatchError, NeedsConfirmation, NotAllowed
from dispatch.geo import Point
from dispatch.locations import location_store
from dispatch.models import DriverState, Ride, RideOffer
from people.models import VehicleType
from tests.conftest import JHB, db, receive_until, token_for

CAPE_TOWN = (-33.9249, 18.4241)


def book(passenger, ride_id="r1", at=JHB, **extra) -> Ride:
    return rides.ride_request(
        ride_id=ride_id,
        passenger=passenger,
        booked_by=extra.pop("booked_by", passenger),
        pickup_latitude=at[0],
        pickup_longitude=at[1],
        dropoff_latitude=at[0] + 0.05,
        dropoff_longitude=at[1] + 0.05,
        **extra,
    )


@pytest.fixture
def dispatching_caregiver(make_user, make_link, passenger):
    """A dispatcher who is also the passenger's caregiver, without the location permission."""
    user = make_user("caregiver", is_staff=True)
    user.groups.add(Group.objects.get_or_create(name="Dispatchers")[0])
    make_link(passenger, user, can_view_location=False)
    return user


@pytest.mark.django_db
def test_a_personal_relation_comes_before_the_staff_role_on_rest_and_sockets(
    passenger, make_driver, dispatching_caregiver
):
    """A dispatcher who is a caregiver without the location permission sees no position."""
    make_driver(*JHB)
    ride = matching.ride_match(ride=book(passenger)).ride
    viewer = access.viewer_of(dispatching_caregiver, ride)
    assert viewer.role == access.CAREGIVER and not viewer.sees_position(ride.status)
    client = Client(headers={"Authorization": f"Bearer {token_for(dispatching_caregiver)}"})
    body = client.get(f"/api/rides/{ride.ride_id}/").json()
    assert body["role"] == "caregiver"
    assert body["driver"]["latitude"] is None and body["driver"]["longitude"] is None


@pytest.mark.django_db(transaction=True)
async def test_the_same_viewer_sees_no_position_on_the_ride_socket(
    ws, passenger, make_driver, dispatching_caregiver
):
    await db(make_driver, *JHB)
    await db(lambda: matching.ride_match(ride=book(passenger)))
    comm = await ws("/ws/ride/r1/", token=await db(token_for, dispatching_caregiver))
    snapshot, _ = await receive_until(comm, "ride_status")
    assert snapshot["driver"]["latitude"] is None


@pytest.mark.django_db(transaction=True)
async def test_an_ended_rides_snapshot_has_no_driver_position(ws, passenger, make_driver):
    """get_status after the trip: the driver, but not where they are now."""
    driver = await db(make_driver, *JHB)

    def ride_and_finish():
        ride = matching.ride_match(ride=book(passenger)).ride
        for step in (trips.ride_driver_arrived, trips.ride_start, trips.ride_complete):
            step(ride=ride, driver=driver)

    await db(ride_and_finish)
    comm = await ws("/ws/ride/r1/", token=await db(token_for, passenger))
    await receive_until(comm, "ride_status")
    await comm.send_json_to({"type": "get_status"})
    snapshot, _ = await receive_until(comm, "ride_status")
    assert snapshot["status"] == "completed" and snapshot["driver"]["id"] == driver.pk
    assert snapshot["driver"]["latitude"] is None and snapshot["driver"]["phone"] is None


@pytest.mark.django_db(transaction=True)
async def test_distance_and_eta_go_with_the_position(
    ws, passenger, make_user, make_link, make_driver
):
    """A caregiver without can_view_location gets driver_assigned without distance or ETA."""
    caregiver = await db(make_user, "caregiver")
    await db(make_link, passenger, caregiver, can_view_location=False)
    follower = await ws("/ws/caregiver/", token=await db(token_for, caregiver))
    await receive_until(follower, "connection_established")
    own = await ws("/ws/ride/r1/", token=await db(token_for, passenger))
    await receive_until(own, "connection_established")
    await db(make_driver, JHB[0] + 0.01, JHB[1])
    await own.send_json_to({"type": "find_driver", **_trip()})
    told, _ = await receive_until(own, "driver_assigned")
    assert told["distance_km"] is not None and told["eta_minutes"] is not None
    news, _ = await receive_until(follower, "ride_status")
    while news.get("event") != "assigned":
        news, _ = await receive_until(follower, "ride_status")
    assert news["driver"]["latitude"] is None


def _trip():
    return {
        "pickup_latitude": JHB[0],
        "pickup_longitude": JHB[1],
        "dropoff_latitude": JHB[0] + 0.03,
        "dropoff_longitude": JHB[1] + 0.03,
    }


def test_a_driver_assigned_message_loses_distance_and_eta_without_the_position():
    message = {
        "type": "driver_assigned",
        "status": "assigned",
        "driver": {"id": 1, "latitude": -26.2, "longitude": 28.0},
        "distance_km": 0.4,
        "eta_minutes": 1,
    }
    cut = access.shown_to(access.Viewer(access.CAREGIVER, None), message, "assigned")
    assert cut["distance_km"] is None and cut["eta_minutes"] is None
    assert cut["driver"]["latitude"] is None
    assert access.shown_to(access.Viewer(access.PASSENGER), message, "assigned") == message


@pytest.mark.django_db
def test_a_dispatcher_cannot_assign_an_unverified_driver_or_a_car_without_wheelchair_access(
    passenger, make_user, make_driver, dispatcher
):
    """The hard rules hold for dispatchers too, with the reason in words."""
    unverified = make_driver(*JHB, verified=False)
    ride = book(passenger)
    # Online before support withdrew the verification, say.
    DriverState.objects.filter(driver=unverified).update(status="available")
    with pytest.raises(NotAllowed, match="not verified"):
        matching.ride_assign(ride=ride, driver_id=unverified.pk, actor=dispatcher, confirmed=True)
    sedan = make_driver(*JHB)
    wheelchair = book(make_user("passenger"), "wc", needs_wheelchair=True)
    with pytest.raises(NotAllowed, match="cannot carry a wheelchair"):
        matching.ride_assign(ride=wheelchair, driver_id=sedan.pk, actor=dispatcher, confirmed=True)
    assert Ride.objects.get(pk=wheelchair.pk).driver_id is None


@pytest.mark.django_db
def test_a_far_or_silent_driver_is_assigned_only_after_confirmation(
    passenger, make_driver, dispatcher, settings
):
    """Beyond the radius: the warning names distance and ETA, and confirm assigns."""
    far = make_driver(*CAPE_TOWN)
    ride = book(passenger)
    with pytest.raises(NeedsConfirmation) as asked:
        matching.ride_assign(ride=ride, driver_id=far.pk, actor=dispatcher)
    assert "beyond the 10 km match radius" in str(asked.value)
    assert asked.value.extra["distance_km"] > 1000 and asked.value.extra["eta_minutes"] > 1000
    assert Ride.objects.get(pk=ride.pk).driver_id is None
    silent = make_driver(JHB[0] + 0.001, JHB[1])
    location_store().put(silent.pk, Point(JHB[0] + 0.001, JHB[1], time.time() - 3600))
    with pytest.raises(NeedsConfirmation, match="not reported a position lately"):
        matching.ride_assign(ride=ride, driver_id=silent.pk, actor=dispatcher)
    matching.ride_assign(ride=ride, driver_id=silent.pk, actor=dispatcher, confirmed=True)
    assert Ride.objects.get(pk=ride.pk).driver_id == silent.pk


@pytest.mark.django_db
def test_accepting_an_offer_checks_the_hard_rules_again(passenger, make_driver, settings):
    """A driver unverified after the offer cannot accept it."""
    settings.DISPATCH_MODE = "offer"
    driver = make_driver(*JHB)
    ride = book(passenger)
    matching.ride_match(ride=ride)
    driver.driver_profile.is_verified = False
    driver.driver_profile.save()
    with pytest.raises(NotAllowed):
        offers.ride_offer_accept(ride=Ride.objects.get(pk=ride.pk), driver=driver)
    assert Ride.objects.get(pk=ride.pk).driver_id is None


def test_a_driver_refused_an_offer_is_told_in_their_own_words(passenger, make_driver, settings):
    """
    A driver who went offline after the offer, then taps accept, reads why
    in words meant for them ("You are offline..."), not the console's
    "That driver is no longer available".
    """
    settings.DISPATCH_MODE = "offer"
    driver = make_driver(*JHB)
    ride = book(passenger)
    matching.ride_match(ride=ride)
    DriverState.objects.filter(driver=driver).update(status="offline")
    with pytest.raises(DispatchError) as refused:
        offers.ride_offer_accept(ride=Ride.objects.get(pk=ride.pk), driver=driver)
    assert refused.value.code == "driver_unavailable"
    assert str(refused.value).startswith("You are offline")
    assert Ride.objects.get(pk=ride.pk).driver_id is None


@pytest.mark.django_db
def test_declining_an_expired_offer_is_refused_like_accepting_it(passenger, make_driver, settings):
    settings.DISPATCH_MODE = "offer"
    driver = make_driver(*JHB)
    ride = book(passenger)
    matching.ride_match(ride=ride)
    RideOffer.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    for answer in (offers.ride_offer_accept, offers.ride_offer_decline):
        with pytest.raises(DispatchError, match="expired|no open offer"):
            answer(ride=Ride.objects.get(pk=ride.pk), driver=driver)
    assert RideOffer.objects.get().status == "expired"


@pytest.mark.django_db
def test_the_needs_card_tells_the_driver_what_the_matcher_used(passenger, make_driver):
    """The profile says wheelchair, the booking says no: the driver is not told of one."""
    passenger.passenger_profile.needs_wheelchair = True
    passenger.passenger_profile.needs_walker = True
    passenger.passenger_profile.save()
    sedan = make_driver(*JHB, vehicle_type=VehicleType.SEDAN)
    result = booking.ride_book(
        ride_id="r1", passenger=passenger, booked_by=passenger, needs_wheelchair=False, **_trip()
    )
    assert result.driver_id == sedan.pk
    from dispatch.payloads import needs_card

    card = needs_card(Ride.objects.with_people().get(pk=result.ride.pk))
    assert card["wheelchair"] is False and card["walker"] is True


@pytest.mark.django_db(transaction=True)
async def test_a_change_between_the_access_check_and_the_join_is_not_lost(
    ws, passenger, monkeypatch
):
    """The snapshot is read after the socket joined the ride's group."""
    await db(book, passenger)
    watch = RideConsumer._watch

    async def change_meanwhile(self, viewer):
        ride = await db(Ride.objects.get, ride_id="r1")
        await db(rides.ride_cancel, ride=ride, actor=passenger, cancelled_by="passenger")
        await watch(self, viewer)

    monkeypatch.setattr(RideConsumer, "_watch", change_meanwhile)
    comm = await ws("/ws/ride/r1/", token=await db(token_for, passenger))
    snapshot, _ = await receive_until(comm, "ride_status")
    assert snapshot["status"] == "cancelled" and snapshot["version"] == 3


@pytest.mark.django_db(transaction=True)
async def test_a_caregiver_without_notifications_hears_no_news_on_the_ride_socket(
    ws, passenger, make_user, make_link
):
    """As on the caregiver socket: asked, they get the ride; unasked, nothing."""
    caregiver = await db(make_user, "caregiver")
    await db(make_link, passenger, caregiver, can_receive_notifications=False)
    await db(book, passenger)
    comm = await ws("/ws/ride/r1/", token=await db(token_for, caregiver))
    await receive_until(comm, "ride_status")
    ride = await db(Ride.objects.get, ride_id="r1")
    await db(rides.ride_cancel, ride=ride, actor=passenger, cancelled_by="passenger")
    assert await comm.receive_nothing(timeout=0.5)
    await comm.send_json_to({"type": "get_status"})
    snapshot, _ = await receive_until(comm, "ride_status")
    assert snapshot["status"] == "cancelled"


@pytest.mark.django_db
def test_silent_demo_drivers_are_stale_in_every_store(passenger, make_driver):
    """A demo driver who reported once and then went silent is not matched (memory store)."""
    demo = make_driver(*JHB, demo=True)
    location_store().put(demo.pk, Point(JHB[0], JHB[1], time.time() - 3600, reported=True))
    assert matching.ride_match(ride=book(passenger)).driver_id is None
    # Placed, never reported (as seed_demo places them): never stale.
    location_store().put(demo.pk, Point(JHB[0], JHB[1], time.time() - 3600, reported=False))
    assert matching.ride_match(ride=Ride.objects.get(ride_id="r1")).driver_id == demo.pk


def test_a_cancel_that_pins_no_version_cancels_the_ride_as_it_now_is(passenger, make_driver):
    """
    Sarah taps cancel while her search finds a driver: the ride she read was
    searching, it is assigned by the time the cancel writes. She asked to
    cancel whatever it is now: it is cancelled and the driver freed, not
    refused as "changed meanwhile". A dispatcher's cancel pins the version
    they saw, and is still refused.
    """
    driver = make_driver(*JHB)
    seen = book(passenger, "race-cancel")
    assert seen.status == "searching"
    matching.ride_match(ride=Ride.objects.get(pk=seen.pk))
    assert Ride.objects.get(pk=seen.pk).driver_id == driver.pk
    rides.ride_cancel(ride=seen, actor=passenger, cancelled_by="passenger", reason="better")
    ride = Ride.objects.get(pk=seen.pk)
    assert (ride.status, ride.cancel_reason) == ("cancelled", "better")
    assert DriverState.objects.get(driver=driver).status == "available"

    pinned = book(passenger, "race-pinned")
    matching.ride_match(ride=Ride.objects.get(pk=pinned.pk))
    with pytest.raises(DispatchError, match="changed while you were looking"):
        rides.ride_cancel(
            ride=Ride.objects.get(pk=pinned.pk),
            actor=passenger,
            cancelled_by="dispatcher",
            expected_version=pinned.version,
        )


def test_a_change_that_lost_a_race_says_what_the_ride_is_now_in_words(passenger, make_driver):
    """The one who lost the race reads "it is now driver arrived", not a status code."""
    driver = make_driver(*JHB)
    ride = matching.ride_match(ride=book(passenger, "race-words")).ride
    stale = Ride.objects.get(pk=ride.pk)
    trips.ride_driver_arrived(ride=Ride.objects.get(pk=ride.pk), driver=driver)
    with pytest.raises(DispatchError) as refused:
        rides.transition(stale, "searching", kind="driver_cancelled")
    assert "it is now driver arrived" in str(refused.value)
    assert refused.value.code == "invalid_state"
