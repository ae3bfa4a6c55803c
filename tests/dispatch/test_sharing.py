"""
Family tracking links: who may make one, the token, what /t/<token>/ shows
and for how long, and how the page keeps out of reach of abuse and search.
"""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from dispatch import drivers
from dispatch.models import Ride, ShareLink
from people import caregivers
from people.models import DriverProfile, PassengerProfile, UserType, VehicleType
from tests.conftest import token_for
from tests.dispatch.test_rides_api import JHB, book, complete

pytestmark = pytest.mark.django_db


def api(user) -> Client:
    return Client(headers={"Authorization": f"Bearer {token_for(user)}"})


def share(user, ride_id: str):
    return api(user).post(f"/api/rides/{ride_id}/share-links/")


def token_of(response) -> str:
    body = response.json()
    assert body["url"].endswith(f"/t/{body['token']}/")
    return body["token"]


@pytest.fixture
def trip(passenger, make_driver):
    """Sarah's ride, assigned to a driver near the pickup."""
    make_driver(JHB[0] + 0.002, JHB[1], first_name="Thabo", last_name="Nkosi")
    return book(passenger, "trip-1")


# --- who may share -------------------------------------------------------------


def test_the_passenger_shares_their_ride(trip, passenger):
    """The passenger gets a link; the ride is under way, so it has no end yet."""
    response = share(passenger, "trip-1")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["ride_id"] == "trip-1" and body["expires_at"] is None
    assert ShareLink.objects.filter(ride=trip, created_by=passenger).count() == 1


def test_a_caregiver_who_may_follow_the_position_shares(trip, passenger, make_user, make_link):
    """A caregiver with can_view_location may share; one without it is refused."""
    follower = make_user("caregiver")
    make_link(passenger, follower, can_view_location=True)
    assert share(follower, "trip-1").status_code == 201
    blind = make_user("caregiver")
    make_link(passenger, blind, can_view_location=False)
    response = share(blind, "trip-1")
    assert response.status_code == 403 and response.json()["code"] == "forbidden"


def test_strangers_and_the_driver_may_not_share(trip, make_user):
    """A stranger does not learn the ride exists; its driver may see it but not share it."""
    assert share(make_user("passenger"), "trip-1").status_code == 404
    assert share(trip.driver, "trip-1").status_code == 403
    assert not ShareLink.objects.exists()


def test_a_finished_ride_is_not_shared(trip, passenger):
    complete(trip)
    assert share(passenger, "trip-1").status_code == 409


# --- the token -------------------------------------------------------------------


def test_the_token_is_long_random_and_stored_only_as_its_hash(trip, passenger):
    """43 URL-safe characters (256 bits), different every time; the table holds its SHA-256."""
    first, second = token_of(share(passenger, "trip-1")), token_of(share(passenger, "trip-1"))
    assert first != second
    for token in (first, second):
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", token)
    stored = set(ShareLink.objects.values_list("token_hash", flat=True))
    assert stored == {hashlib.sha256(t.encode()).hexdigest() for t in (first, second)}
    assert not ShareLink.objects.filter(token_hash__in=[first, second]).exists()


def test_a_guessed_token_finds_nothing(trip, passenger):
    share(passenger, "trip-1")
    response = Client().get("/t/not-a-real-token-at-all-0123456789abcdefghijk/")
    assert response.status_code == 404
    assert "There is no such tracking link" in response.content.decode()


# --- the page --------------------------------------------------------------------


def test_the_page_shows_status_driver_and_labels_but_no_phone_address_or_needs(trip, passenger):
    """First name and vehicle, the pickup and drop-off labels; nothing private."""
    PassengerProfile.objects.filter(user=passenger).update(
        needs_wheelchair=True, notes="Uses oxygen at night"
    )
    Ride.objects.filter(pk=trip.pk).update(notes="Ring twice, gate code 4471")
    # A wheelchair user's car is wheelchair accessible: its kind would tell the need.
    DriverProfile.objects.filter(user=trip.driver).update(
        vehicle_type=VehicleType.WHEELCHAIR_ACCESSIBLE
    )
    token = token_of(share(passenger, "trip-1"))
    page = Client().get(f"/t/{token}/")
    status = Client().get(f"/t/{token}/status/").json()
    html = page.content.decode()
    assert page.status_code == 200
    assert "Thabo" in html and "Nkosi" not in html
    assert trip.driver.driver_profile.vehicle_registration in html
    assert "12 Main Rd" in html and "Clinic" in html
    assert status["driver_first_name"] == "Thabo" and status["status"] == "assigned"
    text = html + str(status)
    for private in (
        passenger.phone_number,
        trip.driver.phone_number,
        "Johnson",
        "oxygen",
        "4471",
        "heelchair",
        str(JHB[0]),
        str(JHB[0] + 0.03),
    ):
        assert private not in text, private


def test_the_position_shows_only_while_the_ride_holds_its_driver(trip, passenger):
    """Assigned and on the way: the car's position; once completed, none."""
    token = token_of(share(passenger, "trip-1"))
    drivers.driver_place(driver=trip.driver, latitude=-26.21, longitude=28.05)
    live = Client().get(f"/t/{token}/status/").json()
    assert live["position"] == {"latitude": -26.21, "longitude": 28.05}
    complete(trip)
    done = Client().get(f"/t/{token}/status/").json()
    assert done["state"] == "live" and done["status"] == "completed"
    assert done["position"] is None
    assert 'id="map" class="map" hidden' in Client().get(f"/t/{token}/").content.decode()


def test_the_link_ends_thirty_minutes_after_the_ride(trip, passenger):
    """Until then it says how the ride ended; after, a clear page, not an error."""
    token = token_of(share(passenger, "trip-1"))
    complete(trip)
    ended = timezone.now() - timedelta(minutes=29)
    Ride.objects.filter(pk=trip.pk).update(ended_at=ended)
    assert Client().get(f"/t/{token}/status/").json()["state"] == "live"
    Ride.objects.filter(pk=trip.pk).update(ended_at=ended - timedelta(minutes=2))
    page = Client().get(f"/t/{token}/")
    assert page.status_code == 200
    assert "This tracking link has ended" in page.content.decode()
    assert "Thabo" not in page.content.decode()
    assert Client().get(f"/t/{token}/status/").json() == {"state": "ended"}


def test_a_revoked_link_ends_at_once(trip, passenger, make_user):
    """DELETE ends it; only someone who may share (or its maker) may revoke."""
    created = share(passenger, "trip-1").json()
    path = f"/api/rides/trip-1/share-links/{created['id']}/"
    assert api(trip.driver).delete(path).status_code == 403
    assert api(passenger).delete(path).status_code == 204
    page = Client().get(f"/t/{created['token']}/")
    assert page.status_code == 200 and "This tracking link has ended" in page.content.decode()
    assert Client().get(f"/t/{created['token']}/status/").json() == {"state": "revoked"}
    assert api(passenger).delete("/api/rides/trip-1/share-links/999999/").status_code == 404


# --- abuse -----------------------------------------------------------------------


def test_the_pages_are_rate_limited_per_client(trip, passenger, settings):
    """Past SHARE_PAGE_MAX_PER_MIN a client waits (429, Retry-After); another client does not."""
    settings.SHARE_PAGE_MAX_PER_MIN = 3
    token = token_of(share(passenger, "trip-1"))
    near = Client(REMOTE_ADDR="203.0.113.7")
    assert [near.get(f"/t/{token}/status/").status_code for _ in range(3)] == [200] * 3
    refused = near.get(f"/t/{token}/")
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
    assert "Try again in" in refused.content.decode()
    assert Client(REMOTE_ADDR="203.0.113.8").get(f"/t/{token}/").status_code == 200


def test_the_pages_are_noindex_and_under_the_csp(trip, passenger):
    """A robots meta and X-Robots-Tag; the CSP with a nonce; no inline script."""
    token = token_of(share(passenger, "trip-1"))
    for path in (f"/t/{token}/", f"/t/{token}/status/", "/t/unknown-token/"):
        response = Client().get(path)
        assert response["X-Robots-Tag"] == "noindex, nofollow"
        assert response["Referrer-Policy"] == "no-referrer"
    page = Client().get(f"/t/{token}/")
    html = page.content.decode()
    assert '<meta name="robots" content="noindex, nofollow">' in html
    csp = page["Content-Security-Policy"]
    nonce = re.search(r"script-src 'self' 'nonce-([^']+)'", csp).group(1)
    scripts = re.findall(r"<script([^>]*)>", html)
    executable = [s for s in scripts if 'type="application/json"' not in s]
    assert len(executable) == 2
    for attrs in executable:
        assert " src=" in attrs and f'nonce="{nonce}"' in attrs


def test_a_caregivers_link_ends_with_their_permission(trip, passenger, make_user, make_link):
    """Emily's link to Sarah loses can_view_location: the page she shared ends with it."""
    emily = make_user("caregiver")
    link = make_link(passenger, emily, can_view_location=True)
    token = token_of(share(emily, "trip-1"))
    assert Client().get(f"/t/{token}/status/").json()["state"] == "live"
    link.can_view_location = False
    link.save()
    assert Client().get(f"/t/{token}/status/").json() == {"state": "revoked"}


def test_a_caregivers_link_ended_with_their_permission_stays_ended(
    trip, passenger, make_user, make_link
):
    """Sarah takes Emily's location away, then gives it back: the page Emily shared stays off."""
    emily = make_user("caregiver")
    link = make_link(passenger, emily, can_view_location=True)
    token = token_of(share(emily, "trip-1"))
    caregivers.caregiver_link_update(link=link, actor=passenger, can_view_location=False)
    assert Client().get(f"/t/{token}/status/").json() == {"state": "revoked"}
    caregivers.caregiver_link_update(link=link, actor=passenger, can_view_location=True)
    assert Client().get(f"/t/{token}/status/").json() == {"state": "revoked"}
    assert share(emily, "trip-1").status_code == 201


def test_a_caregivers_link_ends_with_their_account_and_stays_ended(
    trip, passenger, make_user, make_link
):
    """
    Support switches Emily's account off: the page she shared stops showing
    Sarah's ride at once, and switching her account on again does not bring
    it back (her link grants again; she shares anew).
    """
    emily = make_user("caregiver")
    make_link(passenger, emily, can_view_location=True)
    token = token_of(share(emily, "trip-1"))
    emily.is_active = False
    emily.save()
    assert Client().get(f"/t/{token}/status/").json() == {"state": "revoked"}
    emily.is_active = True
    emily.save()
    assert Client().get(f"/t/{token}/status/").json() == {"state": "revoked"}
    assert share(emily, "trip-1").status_code == 201


def test_a_caregivers_link_ends_when_she_is_made_a_driver_and_stays_ended(
    trip, passenger, make_user, make_link
):
    """
    Support makes Emily's account a driver's, then a caregiver's again: the
    page she shared ended with the first change and stays ended.
    """
    emily = make_user("caregiver")
    make_link(passenger, emily, can_view_location=True)
    token = token_of(share(emily, "trip-1"))
    emily.user_type = UserType.DRIVER
    emily.save()
    assert Client().get(f"/t/{token}/status/").json() == {"state": "revoked"}
    emily.user_type = UserType.CAREGIVER
    emily.save()
    assert Client().get(f"/t/{token}/status/").json() == {"state": "revoked"}
