"""The signed-in person's own profile at /api/auth/profile/."""

from __future__ import annotations

import pytest
from django.test import Client

from people.models import AuditEvent, DriverProfile, PassengerProfile, User, UserType
from tests.conftest import token_for

pytestmark = pytest.mark.django_db

URL = "/api/auth/profile/"
NEEDS = {
    "needs_wheelchair": False,
    "needs_walker": False,
    "needs_assistance_boarding": False,
    "has_service_animal": False,
    "notes": "",
}


def make(phone: str, user_type: str) -> User:
    user = User.objects.create_user(
        phone, first_name="Thandi", last_name="Mokoena", user_type=user_type
    )
    if user_type == UserType.PASSENGER:
        PassengerProfile.objects.create(user=user)
    elif user_type == UserType.DRIVER:
        DriverProfile.objects.create(
            user=user, vehicle_registration="CA 123-456", licence_number="L1"
        )
    return user


@pytest.fixture
def passenger(db) -> User:
    return make("27821234567", UserType.PASSENGER)


@pytest.fixture
def driver(db) -> User:
    return make("27821234568", UserType.DRIVER)


@pytest.fixture
def caregiver(db) -> User:
    return make("27821234569", UserType.CAREGIVER)


def client(user: User) -> Client:
    return Client(headers={"Authorization": f"Bearer {token_for(user)}"})


def patch(user: User, body: dict):
    return client(user).patch(URL, body, content_type="application/json")


def test_passenger_sees_their_needs(passenger):
    """A passenger's profile carries the needs block and no driver profile."""
    response = client(passenger).get(URL)
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == passenger.pk and body["phone_number"] == "27821234567"
    assert body["full_name"] == "Thandi Mokoena" and body["user_type"] == "passenger"
    assert body["needs"] == NEEDS
    assert "driver_profile" not in body


def test_driver_sees_their_driver_profile(driver):
    """A driver's profile carries the driver profile and no needs."""
    body = client(driver).get(URL).json()
    assert body["driver_profile"]["vehicle_registration"] == "CA 123-456"
    assert body["driver_profile"]["is_verified"] is False
    assert "needs" not in body


def test_caregiver_has_neither_block(caregiver):
    body = client(caregiver).get(URL).json()
    assert body["user_type"] == "caregiver"
    assert "needs" not in body and "driver_profile" not in body


def test_passenger_edits_name_and_needs(passenger):
    """Only the fields sent change; the change is audited without the notes text."""
    response = patch(
        passenger,
        {"first_name": "  Thandeka ", "needs_wheelchair": True, "notes": "Uses a cane"},
    )
    assert response.status_code == 200
    body = response.json()
    assert body["first_name"] == "Thandeka" and body["last_name"] == "Mokoena"
    assert body["needs"] == {**NEEDS, "needs_wheelchair": True, "notes": "Uses a cane"}
    profile = PassengerProfile.objects.get(user=passenger)
    assert profile.needs_wheelchair and profile.notes == "Uses a cane"
    audit = AuditEvent.objects.get(action="profile.updated")
    assert audit.actor_id == passenger.pk and audit.subject_id == str(passenger.pk)
    assert audit.payload == {
        "changed": ["first_name", "needs_wheelchair", "notes"],
        "needs_wheelchair": True,
    }
    assert "Uses a cane" not in str(audit.payload)


def test_an_unchanged_profile_writes_no_audit_row(passenger):
    """Sending the values already held changes nothing and logs nothing."""
    assert patch(passenger, {"first_name": "Thandi", "needs_walker": False}).status_code == 200
    assert not AuditEvent.objects.filter(action="profile.updated").exists()


@pytest.mark.parametrize("who", ["caregiver", "driver"])
def test_only_passengers_edit_needs(request, who):
    """Needs belong to passengers; others get invalid_request naming the field."""
    user = request.getfixturevalue(who)
    response = patch(user, {"needs_wheelchair": True})
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"
    assert set(response.json()["fields"]) == {"needs_wheelchair"}
    assert not PassengerProfile.objects.filter(user=user).exists()


def test_driver_edits_name_but_not_vehicle(driver):
    """A driver may change their name; vehicle details are read-only."""
    response = patch(driver, {"vehicle_registration": "FAKE 1"})
    assert response.status_code == 400 and "vehicle_registration" in response.json()["fields"]
    response = patch(driver, {"last_name": "Dlamini"})
    assert response.status_code == 200
    assert response.json()["last_name"] == "Dlamini"
    assert response.json()["driver_profile"]["vehicle_registration"] == "CA 123-456"


@pytest.mark.parametrize(
    "body, field",
    [
        ({"first_name": "   "}, "first_name"),
        ({"first_name": None}, "first_name"),
        ({"needs_walker": "often"}, "needs_walker"),
        ({"notes": "x" * 1001}, "notes"),
        ({"phone_number": "27820000000"}, "phone_number"),
    ],
)
def test_patch_refuses_bad_values(passenger, body, field):
    """Blank names, null, non-booleans, overlong notes and read-only fields are refused."""
    response = patch(passenger, body)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"
    assert field in response.json()["fields"]
    passenger.refresh_from_db()
    assert passenger.first_name == "Thandi" and passenger.phone_number == "27821234567"


def test_profile_needs_a_token():
    response = Client().get(URL)
    assert response.status_code == 401
    assert response.json()["code"] == "authentication_required"
