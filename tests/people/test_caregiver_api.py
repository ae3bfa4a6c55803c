"""Caregiver links over REST, under /api/caregivers/."""

from __future__ import annotations

import pytest
from django.test import Client

from people.models import (
    AuditEvent,
    CaregiverLink,
    DriverProfile,
    LinkStatus,
    PassengerProfile,
    User,
    UserType,
)
from tests.conftest import token_for

pytestmark = pytest.mark.django_db

SARAH = "27821234567"
EMILY = "27821234569"
LINK_KEYS = {
    "id",
    "role",
    "passenger",
    "caregiver",
    "relationship_type",
    "can_book_rides",
    "can_view_location",
    "can_receive_notifications",
    "notes",
    "status",
    "created_at",
    "responded_at",
}


class Api:
    """A JSON client signed in as one user."""

    def __init__(self, user=None) -> None:
        headers = {"Authorization": f"Bearer {token_for(user)}"} if user else {}
        self.client = Client(headers=headers)

    def get(self, path: str):
        return self.client.get(f"/api/caregivers/{path}")

    def post(self, path: str, body: dict | None = None):
        return self.client.post(
            f"/api/caregivers/{path}", body or {}, content_type="application/json"
        )

    def patch(self, path: str, body: dict):
        return self.client.patch(f"/api/caregivers/{path}", body, content_type="application/json")

    def delete(self, path: str):
        return self.client.delete(f"/api/caregivers/{path}")


@pytest.fixture
def person(db):
    """A user of this phone and type, with the profile their type has."""

    def make(phone, user_type=UserType.PASSENGER, first_name="Test", last_name="Person"):
        user = User.objects.create_user(
            phone, first_name=first_name, last_name=last_name, user_type=user_type
        )
        if user_type == UserType.PASSENGER:
            PassengerProfile.objects.create(user=user)
        elif user_type == UserType.DRIVER:
            DriverProfile.objects.create(user=user)
        return user

    return make


@pytest.fixture
def sarah(person):
    return person(SARAH, first_name="Sarah", last_name="Johnson")


@pytest.fixture
def emily(person):
    return person(EMILY, UserType.CAREGIVER, first_name="Emily", last_name="Davis")


@pytest.fixture
def invited(sarah, emily) -> dict:
    response = Api(sarah).post("", {"caregiver_phone": "082 123 4569"})
    assert response.status_code == 201, response.json()
    return response.json()


def test_invite_creates_an_invited_link_seen_from_both_sides(sarah, emily):
    """The passenger invites by phone; both list the link, each from their side."""
    response = Api(sarah).post(
        "",
        {
            "caregiver_phone": "+27 82 123 4569",
            "relationship_type": "professional",
            "can_view_location": False,
            "notes": "Weekday nurse",
        },
    )
    assert response.status_code == 201
    link = response.json()
    assert set(link) == LINK_KEYS
    assert link["role"] == "passenger" and link["status"] == "invited"
    assert link["passenger"] == {"id": sarah.pk, "name": "Sarah Johnson", "phone": "+" + SARAH}
    # Until Emily answers, Sarah sees the number she invited, not who has it.
    assert link["caregiver"] == {"id": None, "name": "+27 82 123 4569", "phone": "+" + EMILY}
    assert link["relationship_type"] == "professional"
    assert (link["can_book_rides"], link["can_view_location"]) == (True, False)
    assert link["can_receive_notifications"] is True
    assert link["notes"] == "Weekday nurse" and link["responded_at"] is None
    assert AuditEvent.objects.filter(action="link.invited", subject_id=str(link["id"])).exists()

    [mine] = Api(sarah).get("").json()["items"]
    [theirs] = Api(emily).get("").json()["items"]
    assert mine["id"] == theirs["id"] == link["id"]
    assert (mine["role"], theirs["role"]) == ("passenger", "caregiver")
    assert theirs["caregiver"]["id"] == emily.pk
    Api(emily).post(f"{link['id']}/accept/")
    [answered] = Api(sarah).get("").json()["items"]
    assert answered["caregiver"] == {"id": emily.pk, "name": "Emily Davis", "phone": "+" + EMILY}


def test_list_holds_links_as_passenger_and_as_caregiver(sarah, emily, person):
    """Someone who is both cared for and caring sees both links, newest first."""
    mother = person("27821110000", first_name="Grace")
    Api(sarah).post("", {"caregiver_phone": EMILY})
    Api(mother).post("", {"caregiver_phone": SARAH})
    body = Api(sarah).get("").json()
    assert body["count"] == 2
    assert [(x["role"], x["passenger"]["id"]) for x in body["items"]] == [
        ("caregiver", mother.pk),
        ("passenger", sarah.pk),
    ]


def test_accept_makes_the_link_active(sarah, emily, invited):
    """The caregiver accepts; the link is active and answered."""
    response = Api(emily).post(f"{invited['id']}/accept/")
    assert response.status_code == 200
    link = response.json()
    assert link["status"] == "active" and link["responded_at"] is not None
    assert link["role"] == "caregiver"
    assert CaregiverLink.objects.get(pk=invited["id"]).status == LinkStatus.ACTIVE


def test_decline_closes_the_invitation(emily, invited):
    """The caregiver declines; accepting afterwards is an invalid_state."""
    response = Api(emily).post(f"{invited['id']}/decline/")
    assert response.status_code == 200 and response.json()["status"] == "declined"
    again = Api(emily).post(f"{invited['id']}/accept/")
    assert again.status_code == 409 and again.json()["code"] == "invalid_state"


def test_only_the_caregiver_answers_an_invitation(sarah, invited):
    """The passenger cannot accept on the caregiver's behalf."""
    response = Api(sarah).post(f"{invited['id']}/accept/")
    assert response.status_code == 403 and response.json()["code"] == "forbidden"
    assert CaregiverLink.objects.get(pk=invited["id"]).status == LinkStatus.INVITED


@pytest.mark.parametrize(
    "phone, status, code",
    [
        (SARAH, 400, "self_link"),
        ("banana", 400, "invalid_phone"),
    ],
)
def test_invite_refusals_are_clear(sarah, emily, phone, status, code):
    """Oneself and unreadable numbers each have their code."""
    response = Api(sarah).post("", {"caregiver_phone": phone})
    assert response.status_code == status
    body = response.json()
    assert body["code"] == code and body["message"]
    assert set(body["fields"]) == {"caregiver_phone"}
    assert not CaregiverLink.objects.exists()


def test_inviting_twice_is_a_duplicate_until_the_link_ends(sarah, emily, invited):
    """A second live link is refused; once revoked, a new invitation works."""
    again = Api(sarah).post("", {"caregiver_phone": EMILY})
    assert again.status_code == 409 and again.json()["code"] == "duplicate_link"
    assert Api(sarah).delete(f"{invited['id']}/").status_code == 200
    assert Api(sarah).post("", {"caregiver_phone": EMILY}).status_code == 201


def test_an_invitation_never_tells_whether_a_number_uses_care_connect(sarah, emily, person):
    """
    A caregiver's number, a driver's (who may not care for anyone) and a
    number nobody has yet get the same answer, shape for shape.
    """
    driver = person("27821112222", UserType.DRIVER)
    answers = [
        Api(sarah).post("", {"caregiver_phone": phone}).json()
        for phone in (EMILY, "27821112222", "27829990000")
    ]
    assert {a["status"] for a in answers} == {"invited"}
    assert [a["caregiver"]["id"] for a in answers] == [None, None, None]
    assert [set(a) for a in answers] == [LINK_KEYS] * 3
    assert Api(driver).get("").json()["count"] == 0  # the driver is never asked


def test_a_withdrawn_invitation_still_shows_only_the_number(sarah, emily):
    """Withdrawing an unanswered invitation does not name whose number it was."""
    link = Api(sarah).post("", {"caregiver_phone": EMILY}).json()
    revoked = Api(sarah).delete(f"{link['id']}/").json()
    assert revoked["status"] == "revoked"
    assert revoked["caregiver"] == {"id": None, "name": "+27 82 123 4569", "phone": "+" + EMILY}
    assert "Emily" not in str(Api(sarah).get(f"{link['id']}/").json())


def test_accepting_ones_own_invitation_is_refused_alike_for_any_number(sarah, emily):
    """The passenger's own accept is 403 whether or not the number has an account."""
    answers = []
    for phone in (EMILY, "27829990000"):
        link = Api(sarah).post("", {"caregiver_phone": phone}).json()
        response = Api(sarah).post(f"{link['id']}/accept/")
        answers.append((response.status_code, response.json()))
    assert answers[0] == answers[1]
    assert answers[0][0] == 403 and answers[0][1]["code"] == "forbidden"


def test_a_number_invited_before_it_signs_up_gets_the_invitation(sarah):
    """The invitation waits for the number; registering takes it up."""
    from people import tokens
    from people.signin import user_register

    link = Api(sarah).post("", {"caregiver_phone": "27829990000"}).json()
    newcomer = user_register(
        registration_token=tokens.registration_token_make(phone_number="27829990000"),
        first_name="Nomsa",
        last_name="Dube",
        user_type=UserType.CAREGIVER,
    )
    [theirs] = Api(newcomer).get("").json()["items"]
    assert theirs["id"] == link["id"] and theirs["role"] == "caregiver"
    assert Api(newcomer).post(f"{link['id']}/accept/").json()["status"] == "active"


def test_only_passengers_invite_caregivers(emily, sarah):
    """A caregiver account has no caregivers of its own."""
    response = Api(emily).post("", {"caregiver_phone": SARAH})
    assert response.status_code == 403 and response.json()["code"] == "forbidden"
    assert not CaregiverLink.objects.exists()


def test_invite_validates_its_body(sarah, emily):
    """Unknown relationship types and unknown fields are invalid_request."""
    response = Api(sarah).post("", {"caregiver_phone": EMILY, "relationship_type": "boss"})
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"
    assert "relationship_type" in response.json()["fields"]
    response = Api(sarah).post("", {"caregiver_phone": EMILY, "is_admin": True})
    assert response.status_code == 400 and "is_admin" in response.json()["fields"]
    response = Api(sarah).post("", {})
    assert response.status_code == 400 and "caregiver_phone" in response.json()["fields"]


def test_passenger_changes_permissions(sarah, emily, invited):
    """PATCH changes only what is sent, and is audited with before and after."""
    Api(emily).post(f"{invited['id']}/accept/")
    response = Api(sarah).patch(
        f"{invited['id']}/", {"can_view_location": False, "relationship_type": "friend"}
    )
    assert response.status_code == 200
    link = response.json()
    assert link["can_view_location"] is False and link["relationship_type"] == "friend"
    assert link["can_book_rides"] is True and link["status"] == "active"
    audit = AuditEvent.objects.get(action="link.updated")
    assert audit.payload["before"]["can_view_location"] is True
    assert audit.payload["after"]["can_view_location"] is False


def test_caregiver_cannot_change_their_own_permissions(emily, invited):
    """Permissions are the passenger's to give."""
    response = Api(emily).patch(f"{invited['id']}/", {"can_book_rides": True})
    assert response.status_code == 403 and response.json()["code"] == "forbidden"


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, None),
        ({"can_book_rides": None}, "can_book_rides"),
        ({"relationship_type": "boss"}, "relationship_type"),
        ({"status": "active"}, "status"),
    ],
)
def test_patch_refuses_empty_null_and_unknown(sarah, invited, body, field):
    """Nothing to change, null, a bad value or a read-only field is invalid_request."""
    response = Api(sarah).patch(f"{invited['id']}/", body)
    assert response.status_code == 400 and response.json()["code"] == "invalid_request"
    if field:
        assert field in response.json()["fields"]
    assert CaregiverLink.objects.get(pk=invited["id"]).status == LinkStatus.INVITED


def test_revoke_ends_the_link_for_either_side(sarah, emily, invited):
    """DELETE revokes; revoking again is an invalid_state."""
    Api(emily).post(f"{invited['id']}/accept/")
    response = Api(emily).delete(f"{invited['id']}/")
    assert response.status_code == 200 and response.json()["status"] == "revoked"
    again = Api(sarah).delete(f"{invited['id']}/")
    assert again.status_code == 409 and again.json()["code"] == "invalid_state"
    assert AuditEvent.objects.filter(action="link.revoked").count() == 1


@pytest.mark.parametrize(
    "method, path",
    [
        ("get", "{id}/"),
        ("patch", "{id}/"),
        ("delete", "{id}/"),
        ("post", "{id}/accept/"),
        ("post", "{id}/decline/"),
    ],
)
def test_a_link_of_other_people_is_not_found(person, invited, method, path):
    """A stranger gets 404 for a real link, as for one that does not exist."""
    stranger = Api(person("27821119999"))
    for link_id in (invited["id"], invited["id"] + 1000):
        url = path.format(id=link_id)
        args = (url, {"notes": "x"}) if method == "patch" else (url,)
        response = getattr(stranger, method)(*args)
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"
    assert CaregiverLink.objects.get(pk=invited["id"]).status == LinkStatus.INVITED


def test_without_a_token_nothing_is_answered(invited):
    """Every endpoint needs an access token."""
    anonymous = Api()
    assert anonymous.get("").status_code == 401
    response = anonymous.post("", {"caregiver_phone": EMILY})
    assert response.status_code == 401
    assert response.json()["code"] == "authentication_required"


def test_list_narrows_by_status(sarah, emily, invited):
    """?status= keeps only links in that state; an unknown state is invalid."""

    def ids(api, query):
        return [x["id"] for x in api.get(query).json()["items"]]

    assert ids(Api(sarah), "?status=invited") == [invited["id"]]
    assert ids(Api(sarah), "?status=active") == []
    Api(emily).post(f"{invited['id']}/accept/")
    assert ids(Api(emily), "?status=active") == [invited["id"]]
    response = Api(sarah).get("?status=lost")
    assert response.status_code == 400 and "status" in response.json()["fields"]
