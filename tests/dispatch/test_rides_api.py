"""
Rides over REST, under /api/rides/, and the REST API's schema and docs at
/api/openapi.json and /api/docs.
"""

from __future__ import annotations

import re

import pytest
from django.contrib.staticfiles import finders
from django.test import Client

from dispatch import matching, rides, trips
from dispatch.models import Ride
from people.models import LinkStatus
from tests.conftest import token_for

pytestmark = pytest.mark.django_db

JHB = (-26.2041, 28.0473)


def client(user=None) -> Client:
    headers = {"Authorization": f"Bearer {token_for(user)}"} if user else {}
    return Client(headers=headers)


def book(passenger, ride_id: str, *, booked_by=None, match: bool = True, **extra) -> Ride:
    ride = rides.ride_request(
        ride_id=ride_id,
        passenger=passenger,
        booked_by=booked_by or passenger,
        pickup_latitude=JHB[0],
        pickup_longitude=JHB[1],
        pickup_address="12 Main Rd",
        dropoff_latitude=JHB[0] + 0.03,
        dropoff_longitude=JHB[1] + 0.03,
        dropoff_address="Clinic",
        **extra,
    )
    if match:
        matching.ride_match(ride=ride)
    ride.refresh_from_db()
    return ride


def complete(ride: Ride) -> Ride:
    driver = ride.driver
    for step in (trips.ride_driver_arrived, trips.ride_start, trips.ride_complete):
        ride = step(ride=Ride.objects.get(pk=ride.pk), driver=driver)
    return Ride.objects.get(pk=ride.pk)


def listed(user, **query) -> dict:
    response = client(user).get("/api/rides/", query)
    assert response.status_code == 200, response.json()
    return response.json()


def ride_detail(user, ride_id: str):
    return client(user).get(f"/api/rides/{ride_id}/")


@pytest.fixture
def needy(passenger):
    profile = passenger.passenger_profile
    profile.needs_walker = True
    profile.notes = "Hard of hearing"
    profile.save()
    return passenger


# --- the list -----------------------------------------------------------------


def test_passenger_lists_their_rides_newest_first(passenger, make_driver):
    """Each ride once, newest first, with the passenger's role."""
    driver = make_driver(*JHB)
    complete(book(passenger, "old"))
    rides.ride_cancel(
        ride=book(passenger, "middle", match=False), actor=passenger, cancelled_by="passenger"
    )
    book(passenger, "new")
    page = listed(passenger)
    assert page["count"] == 3
    assert [r["ride_id"] for r in page["items"]] == ["new", "middle", "old"]
    newest = page["items"][0]
    assert newest["role"] == "passenger" and newest["status"] == "assigned"
    assert newest["driver"]["id"] == driver.pk
    assert newest["pickup"] == {"latitude": JHB[0], "longitude": JHB[1], "address": "12 Main Rd"}
    assert newest["dropoff"]["address"] == "Clinic"
    assert newest["passenger"]["phone"] == "+" + passenger.phone_number


def test_list_is_paginated_by_page_number(passenger, make_user):
    """?page and ?page_size split the list; count stays the total."""
    other = make_user("passenger")
    for n in range(5):
        ride = book(passenger, f"r{n}", match=False)
        rides.ride_cancel(ride=ride, actor=passenger, cancelled_by="passenger")
    book(other, "not-mine", match=False)
    first = listed(passenger, page_size=2)
    assert first["count"] == 5
    assert [r["ride_id"] for r in first["items"]] == ["r4", "r3"]
    last = listed(passenger, page=3, page_size=2)
    assert [r["ride_id"] for r in last["items"]] == ["r0"]
    assert listed(passenger, page=4, page_size=2)["items"] == []
    for page in (0, "9" * 30):
        response = client(passenger).get("/api/rides/", {"page": page})
        assert response.status_code == 400 and response.json()["code"] == "invalid_request"


def test_caregiver_lists_rides_of_actively_linked_passengers_only(passenger, make_user, make_link):
    """An active link shows the passenger's rides; invited or revoked links show none."""
    active, invited, revoked = (make_user("caregiver") for _ in range(3))
    make_link(passenger, active, can_view_location=False)
    link = make_link(passenger, invited)
    link.status = LinkStatus.INVITED
    link.save()
    link = make_link(passenger, revoked)
    link.status = LinkStatus.REVOKED
    link.save()
    book(passenger, "sarahs", match=False)
    [item] = listed(active)["items"]
    assert item["ride_id"] == "sarahs" and item["role"] == "caregiver"
    assert listed(invited) == {"items": [], "count": 0}
    assert listed(revoked) == {"items": [], "count": 0}


def test_caregiver_sees_rides_they_booked_for_the_passenger(passenger, make_user, make_link):
    """booked_by names the caregiver; booked_on_behalf is true."""
    caregiver = make_user("caregiver", first_name="Emily", last_name="Davis")
    make_link(passenger, caregiver)
    book(passenger, "for-sarah", booked_by=caregiver, match=False)
    [item] = listed(caregiver)["items"]
    assert item["booked_by"]["name"] == "Emily Davis" and item["booked_on_behalf"] is True
    [same] = listed(passenger)["items"]
    assert same["ride_id"] == "for-sarah" and same["role"] == "passenger"


def test_driver_lists_the_rides_they_drove(passenger, make_driver, make_user):
    """A driver sees rides given to them, including finished ones, and no others."""
    driver = make_driver(*JHB)
    complete(book(passenger, "driven"))
    book(make_user("passenger"), "unmatched", match=False)
    [item] = listed(driver)["items"]
    assert item["ride_id"] == "driven" and item["role"] == "driver"
    assert listed(make_user("passenger"))["count"] == 0


# --- one ride -----------------------------------------------------------------


def test_detail_has_the_events_in_order(passenger, make_driver):
    """Every event with its version, kind, statuses and actor role."""
    make_driver(*JHB)
    ride = complete(book(passenger, "trip"))
    response = ride_detail(passenger, "trip")
    assert response.status_code == 200
    body = response.json()
    assert body["version"] == ride.version
    assert [
        (e["version"], e["kind"], e["from_status"], e["to_status"], e["actor_role"])
        for e in body["events"]
    ] == [
        (1, "requested", None, "requested", "passenger"),
        (2, "searching", "requested", "searching", "passenger"),
        (3, "assigned", "searching", "assigned", "system"),
        (4, "driver_arrived", "assigned", "driver_arrived", "driver"),
        # The no-show escalation's first step goes with the arrival.
        (5, "waiting_passenger_told", "driver_arrived", "driver_arrived", "system"),
        (6, "started", "driver_arrived", "in_progress", "driver"),
        (7, "completed", "in_progress", "completed", "driver"),
    ]
    assert all(e["created_at"] for e in body["events"])


def test_needs_card_only_while_the_ride_is_active(needy, make_driver, make_user, make_link):
    """Passenger, caregiver and driver see the needs card until the ride ends."""
    driver = make_driver(*JHB)
    caregiver = make_user("caregiver")
    make_link(needy, caregiver)
    ride = book(needy, "needs", notes="Gate code 1234")
    for viewer in (needy, caregiver, driver):
        needs = ride_detail(viewer, "needs").json()["needs"]
        assert needs["walker"] is True and needs["notes"] == "Hard of hearing"
        assert needs["ride_notes"] == "Gate code 1234"
    [item] = listed(driver)["items"]
    assert item["needs"]["walker"] is True
    complete(ride)
    for viewer in (needy, caregiver, driver):
        assert ride_detail(viewer, "needs").json()["needs"] is None
    assert listed(driver)["items"][0]["needs"] is None


def test_driver_position_only_to_those_allowed_while_active(
    passenger, make_driver, make_user, make_link
):
    """A caregiver without can_view_location gets no driver position; nobody does after."""
    make_driver(*JHB)
    watcher, blind = make_user("caregiver"), make_user("caregiver")
    make_link(passenger, watcher, can_view_location=True)
    make_link(passenger, blind, can_view_location=False)
    ride = book(passenger, "pos")
    for viewer in (passenger, watcher):
        driver = ride_detail(viewer, "pos").json()["driver"]
        assert (driver["latitude"], driver["longitude"]) == JHB
    driver = ride_detail(blind, "pos").json()["driver"]
    assert driver["latitude"] is None and driver["longitude"] is None
    assert driver["name"] and driver["vehicle_registration"]
    [item] = listed(blind)["items"]
    assert item["driver"]["latitude"] is None
    complete(ride)
    for viewer in (passenger, watcher):
        driver = ride_detail(viewer, "pos").json()["driver"]
        assert driver["latitude"] is None and driver["phone"] is None


def test_driver_loses_the_passengers_phone_once_the_ride_ends(passenger, make_driver):
    """Phones are for the trip: a finished ride no longer shows them to the driver."""
    driver = make_driver(*JHB)
    ride = book(passenger, "phones")
    body = ride_detail(driver, "phones").json()
    assert body["passenger"]["phone"] == "+" + passenger.phone_number
    complete(ride)
    body = ride_detail(driver, "phones").json()
    assert body["passenger"]["phone"] is None and body["booked_by"]["phone"] is None
    assert body["passenger"]["name"] == "Sarah Johnson"


def test_unknown_and_foreign_rides_are_not_found(passenger, make_user, make_link):
    """Strangers and ex-caregivers get 404, the same as for no ride at all."""
    book(passenger, "private", match=False)
    stranger = make_user("passenger")
    former = make_user("caregiver")
    link = make_link(passenger, former)
    link.status = LinkStatus.REVOKED
    link.save()
    for viewer, ride_id in ((stranger, "private"), (former, "private"), (passenger, "nope")):
        response = ride_detail(viewer, ride_id)
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"


def test_dispatcher_sees_any_ride_as_staff(passenger, dispatcher, make_driver):
    """Dispatchers open any ride, with positions and phones."""
    make_driver(*JHB)
    book(passenger, "any")
    body = ride_detail(dispatcher, "any").json()
    assert body["role"] == "staff" and body["driver"]["latitude"] == JHB[0]
    assert body["needs"] is not None
    assert listed(dispatcher)["count"] == 0


def test_rides_need_a_token(passenger):
    book(passenger, "t", match=False)
    for path in ("/api/rides/", "/api/rides/t/"):
        response = client().get(path)
        assert response.status_code == 401
        assert response.json()["code"] == "authentication_required"


# --- schema and docs --------------------------------------------------------


def test_openapi_schema_lists_every_router():
    """One schema for the whole REST API, with bearer auth on the app routes."""
    response = Client().get("/api/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    for path in (
        "/api/auth/send-otp/",
        "/api/auth/profile/",
        "/api/caregivers/",
        "/api/caregivers/{link_id}/accept/",
        "/api/rides/",
        "/api/rides/{ride_id}/",
    ):
        assert path in schema["paths"], path
    listing = schema["paths"]["/api/rides/"]["get"]
    assert {p["name"] for p in listing["parameters"]} >= {"page", "page_size"}
    assert listing["security"] == [{"AccessTokenAuth": []}]


def test_docs_page_loads_nothing_from_a_cdn_and_runs_no_inline_script():
    """Swagger UI comes from static files, so the CSP (self + nonce) lets it run."""
    response = Client().get("/api/docs")
    assert response.status_code == 200
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    html = response.content.decode()
    assert "http" not in html
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S)
    assert scripts
    for attrs, _ in scripts:
        assert "src=" in attrs or 'type="application/json"' in attrs, attrs
    for asset in ("ninja/swagger-ui-bundle.js", "ninja/swagger-ui-init.js", "ninja/swagger-ui.css"):
        assert f"/static/{asset}" in html
        # Collected by collectstatic like any app's assets.
        assert finders.find(asset), asset
