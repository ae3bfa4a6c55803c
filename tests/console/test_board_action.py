"""
What the board puts in front of a dispatcher: what needs action now, who
holds an offer and for how long, which driver each feed entry is about,
and what an assignment beyond the match radius would mean.
"""

from __future__ import annotations

import re
import time
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from dispatch import matching, rides, trips
from dispatch.geo import Point
from dispatch.locations import location_store
from dispatch.models import Ride, RideStatus
from dispatch.scheduling import Place, ride_book_ahead
from tests.console.test_board import BOARD, CAPE_TOWN, book

pytestmark = pytest.mark.django_db

# About 40 km from Cape Town's centre: beyond the 10 km match radius.
STELLENBOSCH = (-33.9321, 18.8602)


def test_the_board_has_no_links_column_and_points_to_the_links_page(
    console, passenger, make_user, make_link
):
    """Caregiver links, revoked ones too, are not on the board; the nav leads to their page."""
    make_link(passenger, make_user("caregiver", first_name="Revoked", last_name="Carer"))
    html = console.get(BOARD).content.decode()
    assert 'id="links"' not in html and 'id="link-form"' not in html
    assert "Revoked Carer" not in html
    assert f'href="{reverse("console:links")}"' in html


def test_needs_action_now_is_the_first_column(console, passenger):
    """The board's first column is what needs action now: waiting rides, then rides in trouble."""
    html = console.get(BOARD).content.decode()
    assert html.index('class="col col-action"') < html.index('class="col col-map"')
    column = html[html.index('class="col col-action"') : html.index('class="col col-map"')]
    assert "Needs action now" in column
    assert column.index('id="pending-rides"') < column.index('id="trouble"')
    side = html[html.index('class="col col-side"') :]
    assert 'id="drivers"' in side and "Drivers by status" in side


def test_a_driver_waiting_at_the_pickup_puts_the_ride_in_trouble(
    htmx, make_driver, passenger, settings
):
    """A driver waiting at the pickup puts the ride in trouble, flagged past the wait."""
    settings.NO_SHOW_WAIT_MIN = 5
    driver = make_driver(*CAPE_TOWN, first_name="Ann", last_name="Lee")
    ride = book(passenger)
    html = htmx.get("/console/regions/trouble/").content.decode()
    assert f'id="trouble-{ride.pk}"' not in html
    trips.ride_driver_arrived(ride=ride, driver=driver)
    Ride.objects.filter(pk=ride.pk).update(arrived_at=timezone.now() - timedelta(minutes=6))
    html = htmx.get("/console/regions/trouble/").content.decode()
    card = html[html.index(f'id="trouble-{ride.pk}"') :]
    assert "Ann Lee" in card and "Sarah Johnson" in card
    flag = re.search(r'<span class="pill pill-warn"[^>]*>Possible no-show', card)
    assert flag and "hidden" not in flag.group(0)


def test_feed_entries_name_the_driver_of_assignments_and_reassignments(
    htmx, make_driver, passenger, dispatcher
):
    """The feed says which driver a ride went to, and from whom it was moved."""
    first = make_driver(*CAPE_TOWN, first_name="Ann", last_name="Lee")
    ride = book(passenger)
    assert ride.driver_id == first.pk
    second = make_driver(*CAPE_TOWN, first_name="Bo", last_name="Khumalo")
    matching.ride_assign(ride=ride, driver_id=second.pk, actor=dispatcher, role="dispatcher")
    events = htmx.get("/console/regions/events/").content.decode()
    items = re.findall(r'<li class="feed-item.*?</li>', events, re.S)
    reassigned = next(i for i in items if "Driver reassigned" in i)
    assert "to <strong>Bo Khumalo</strong> (was Ann Lee)" in reassigned
    assigned = next(i for i in items if "Driver assigned" in i)
    assert "to <strong>Ann Lee</strong>" in assigned


def test_an_offer_shows_who_holds_it_and_the_seconds_left(htmx, make_driver, passenger, settings):
    """In offer mode the waiting card names the offer's driver and counts its seconds down."""
    settings.DISPATCH_MODE = "offer"
    settings.OFFER_TIMEOUT_S = 15
    make_driver(*CAPE_TOWN, first_name="Ann", last_name="Lee")
    ride = book(passenger)
    html = htmx.get("/console/regions/pending-rides/").content.decode()
    card = html[html.index(f'id="pending-{ride.pk}"') :]
    offer = re.search(r'<p class="offer"[^>]*>(.*?)</p>', card, re.S).group(1)
    assert "Offered to <strong>Ann Lee</strong>" in offer
    seconds = int(re.search(r"data-countdown=\"[^\"]+\">(\d+) s<", offer).group(1))
    assert 13 <= seconds <= 15
    events = htmx.get("/console/regions/events/").content.decode()
    assert "Offered to a driver" in events and "to <strong>Ann Lee</strong>" in events
    panel = htmx.get(f"/console/rides/{ride.pk}/").content.decode()
    assert "Offered to <strong>Ann Lee</strong>" in panel


def test_assigning_beyond_the_radius_asks_first_with_distance_and_eta(htmx, make_driver, passenger):
    """An out-of-radius assignment asks first, showing the distance and ETA, and assigns nothing."""
    ride = book(passenger)
    far = make_driver(*STELLENBOSCH, first_name="Far", last_name="Away")
    response = htmx.post(
        f"/console/rides/{ride.pk}/assign/", {"driver_id": far.pk, "version": ride.version}
    )
    html = response.content.decode()
    distance = re.search(r"data-confirm-distance>([^<]+)<", html).group(1)
    eta = re.search(r"data-confirm-eta>([^<]+)<", html).group(1)
    assert distance.startswith("40.") and distance.endswith(" km")
    assert re.fullmatch(r"about \d+ min", eta) and eta != "about 999 min"
    ride.refresh_from_db()
    assert ride.driver_id is None
    confirmed = htmx.post(
        f"/console/rides/{ride.pk}/assign/",
        {"driver_id": far.pk, "version": ride.version, "confirm": "1"},
    )
    assert "is now assigned" in confirmed.content.decode()


def test_a_far_driver_for_a_ride_that_changed_meanwhile_is_not_asked_about(
    htmx, make_driver, passenger
):
    """
    A ride cancelled since the panel showed it is reported as changed; the
    dispatcher is not asked to "Assign anyway" a far driver to it.
    """
    ride = book(passenger)
    far = make_driver(*STELLENBOSCH, first_name="Far", last_name="Away")
    seen = ride.version
    rides.ride_cancel(ride=ride, actor=passenger, cancelled_by="passenger", reason="Not needed")
    response = htmx.post(
        f"/console/rides/{ride.pk}/assign/", {"driver_id": far.pk, "version": seen}
    )
    html = response.content.decode()
    assert "changed while you were looking" in html and "now cancelled" in html
    assert "data-confirm-assign" not in html and "Assign anyway" not in html
    ride.refresh_from_db()
    assert ride.status == RideStatus.CANCELLED and ride.driver_id is None


def test_a_driver_taken_by_the_same_ride_meanwhile_is_reported_as_the_ride_changing(
    htmx, make_driver, passenger, dispatcher
):
    """
    Two dispatchers pick the same driver: the second hears that the ride
    changed (it is assigned now), not that the driver is no longer available.
    """
    ride = book(passenger)
    driver = make_driver(*CAPE_TOWN, first_name="Ann", last_name="Lee")
    seen = ride.version
    matching.ride_assign(ride=ride, driver_id=driver.pk, actor=dispatcher, role="dispatcher")
    response = htmx.post(
        f"/console/rides/{ride.pk}/assign/", {"driver_id": driver.pk, "version": seen}
    )
    html = response.content.decode()
    assert "changed while you were looking" in html and "now driver assigned" in html
    assert "no longer available" not in html


def test_cards_and_driver_rows_carry_what_the_search_matches(htmx, make_driver, passenger):
    """Cards and driver rows hold the ride id, names and phone digits the board's search matches."""
    ride = book(passenger)
    driver = make_driver(*CAPE_TOWN, first_name="Ann", last_name="Lee")
    pending = htmx.get("/console/regions/pending-rides/").content.decode()
    terms = re.search(rf'id="pending-{ride.pk}"[^>]*data-search="([^"]+)"', pending).group(1)
    assert ride.ride_id in terms and "Sarah Johnson" in terms and passenger.phone_number in terms
    drivers = htmx.get("/console/regions/drivers/").content.decode()
    row = re.search(rf'id="driver-row-{driver.pk}"[^>]*data-search="([^"]+)"', drivers).group(1)
    assert "Ann Lee" in row and driver.phone_number in row


def test_a_ride_whose_driver_lost_the_signal_is_in_trouble(htmx, make_driver, passenger):
    """A ride whose driver has sent no position lately is under "Rides in trouble"."""
    driver = make_driver(*CAPE_TOWN, first_name="Ann", last_name="Lee")
    ride = book(passenger)
    assert ride.driver_id == driver.pk
    html = htmx.get("/console/regions/trouble/").content.decode()
    assert f'id="trouble-{ride.pk}"' not in html
    old = time.time() - 600
    location_store().put(driver.pk, Point(*CAPE_TOWN, old))
    html = htmx.get("/console/regions/trouble/").content.decode()
    card = html[html.index(f'id="trouble-{ride.pk}"') :]
    assert "Driver out of touch" in card and "Ann Lee" in card


def _clinic_day(passenger):
    """Sarah's trip to the clinic tomorrow at 09:30, and her will-call ride home."""
    return ride_book_ahead(
        passenger=passenger,
        booked_by=passenger,
        pickup=Place(*CAPE_TOWN, "Home"),
        dropoff=Place(CAPE_TOWN[0] + 0.03, CAPE_TOWN[1], "Clinic"),
        pickup_at=timezone.now() + timedelta(days=1),
        return_will_call=True,
    )


def test_a_dispatcher_cancelling_an_outbound_trip_is_told_its_return_goes_too(htmx, passenger):
    """
    Sarah's daughter phones: Sarah is unwell. The dispatcher cancels the
    clinic trip on its panel, and is told that the ride home went with it.
    """
    outbound = _clinic_day(passenger)
    back = outbound.returns.get()
    panel = htmx.get(f"/console/rides/{outbound.pk}/").content.decode()
    assert 'name="keep_return"' in panel and back.ride_id in panel
    html = htmx.post(
        f"/console/rides/{outbound.pk}/cancel/",
        {"version": outbound.version, "reason": "Passenger unwell"},
    ).content.decode()
    assert f"Ride {outbound.ride_id} is cancelled, and its return {back.ride_id} with it." in html
    assert Ride.objects.get(pk=back.pk).status == "cancelled"


def test_a_dispatcher_may_cancel_the_outbound_trip_and_keep_the_ride_home(htmx, passenger):
    """
    Sarah's son will drive her to the clinic but cannot fetch her: the
    dispatcher on the phone cancels the trip there and keeps the ride home.
    """
    outbound = _clinic_day(passenger)
    back = outbound.returns.get()
    html = htmx.post(
        f"/console/rides/{outbound.pk}/cancel/",
        {"version": outbound.version, "reason": "Family drives", "keep_return": "on"},
    ).content.decode()
    assert f"Ride {outbound.ride_id} is cancelled; its return {back.ride_id} stays booked." in html
    assert Ride.objects.get(pk=outbound.pk).status == "cancelled"
    assert Ride.objects.get(pk=back.pk).status == "scheduled"


@pytest.mark.parametrize("keep", [False, True])
def test_closing_an_outbound_trip_as_unfulfilled_treats_the_ride_home_as_the_panel_says(
    htmx, passenger, keep
):
    """
    No van for Sarah's trip there: the dispatcher closes it as unfulfilled.
    The panel said the ride home goes with it unless kept; so it does.
    """
    outbound = _clinic_day(passenger)
    Ride.objects.filter(pk=outbound.pk).update(status=RideStatus.SEARCHING)
    outbound.refresh_from_db()
    back = outbound.returns.get()
    body = {"version": outbound.version, "reason": "No wheelchair van"}
    if keep:
        body["keep_return"] = "on"
    html = htmx.post(f"/console/rides/{outbound.pk}/unfulfilled/", body).content.decode()
    assert Ride.objects.get(pk=outbound.pk).status == "unfulfilled"
    if keep:
        assert Ride.objects.get(pk=back.pk).status == "scheduled"
        assert f"its return {back.ride_id} stays booked" in html
    else:
        ended = Ride.objects.get(pk=back.pk)
        assert (ended.status, ended.cancel_reason) == ("cancelled", "No wheelchair van")
        assert f"and its return {back.ride_id} with it" in html
