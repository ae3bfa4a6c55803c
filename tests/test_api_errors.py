"""Every API error is JSON with a machine-readable code."""

from __future__ import annotations

import json

import pytest


@pytest.mark.django_db
def test_malformed_json_body_is_invalid_json(client):
    """A body that is not JSON answers 400 invalid_json, not an HTML page."""
    response = client.post("/api/auth/send-otp/", "{oops", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_json"


@pytest.mark.django_db
def test_unknown_api_path_is_json_not_found(client):
    """An unknown /api/ path answers 404 with code not_found."""
    response = client.get("/api/no-such-thing/")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


@pytest.mark.django_db
def test_wrong_shape_names_the_body(client):
    """A JSON array where an object belongs is invalid_request."""
    response = client.post("/api/auth/verify-otp/", "[]", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"


def test_a_refusal_that_says_when_to_come_back_sets_retry_after(rf):
    """A ServiceError with retry_after answers with a Retry-After header too."""
    from project.api import on_service_error
    from project.common.errors import ServiceError

    later = on_service_error(rf.post("/api/x/"), ServiceError("Later.", status=429, retry_after=12))
    assert later.status_code == 429
    assert later["Retry-After"] == "12"
    assert json.loads(later.content)["retry_after"] == 12
    refused = on_service_error(rf.post("/api/x/"), ServiceError("No."))
    assert not refused.has_header("Retry-After")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("put", "/api/auth/profile/", {"GET", "PATCH"}),
        ("get", "/api/auth/send-otp/", {"POST"}),
        ("delete", "/api/rides/r-1/cancel/", {"POST"}),
    ],
)
def test_a_method_the_path_does_not_take_is_json_method_not_allowed(client, method, path, allowed):
    """A wrong method answers 405 method_not_allowed in the error envelope, with Allow."""
    response = getattr(client, method)(path)
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"
    assert set(response["Allow"].replace(" ", "").split(",")) == allowed


@pytest.mark.django_db
def test_fields_sent_to_a_call_that_takes_none_are_refused_not_dropped(passenger, make_user):
    """
    Accepting an invitation takes no body: a field sent with it is 400
    naming the field, and the invitation stays open; a bare call and an
    empty object still work.
    """
    from django.test import Client

    from people.models import CaregiverLink, LinkStatus
    from tests.conftest import token_for

    emily = make_user("caregiver", first_name="Emily")
    link = CaregiverLink.objects.create(
        passenger=passenger, caregiver=emily, invited_phone=emily.phone_number
    )
    app = Client(headers={"Authorization": f"Bearer {token_for(emily)}"})
    path = f"/api/caregivers/{link.pk}/accept/"
    sent = app.post(path, {"can_book_rides": False}, content_type="application/json")
    assert sent.status_code == 400, sent.json()
    assert sent.json()["code"] == "invalid_request"
    assert set(sent.json()["fields"]) == {"can_book_rides"}
    link.refresh_from_db()
    assert link.status == LinkStatus.INVITED
    assert app.post(path, {}, content_type="application/json").status_code == 200
    link.refresh_from_db()
    assert link.status == LinkStatus.ACTIVE
    assert app.post(path).status_code == 409
