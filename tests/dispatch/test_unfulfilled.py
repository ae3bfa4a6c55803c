"""
A ride a dispatcher closes as unfulfilled from the console: the passenger's
and caregivers' apps hear it with the dispatcher's reason, and REST and the
admin show the reason.
"""

from __future__ import annotations

import pytest
from django.test import Client

from tests.conftest import db, receive_until, staff_login, token_for
from tests.dispatch.test_caregivers import book_as, open_follower

pytestmark = pytest.mark.django_db(transaction=True)

REASON = "No wheelchair van free today"


def _close_on_console(dispatcher, ride_id: str) -> int:
    from dispatch.models import Ride

    ride = Ride.objects.get(ride_id=ride_id)
    response = staff_login(Client(), dispatcher).post(
        f"/console/rides/{ride.pk}/unfulfilled/",
        {"reason": REASON, "version": ride.version},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200 and b"closed as unfulfilled" in response.content
    return ride.pk


async def test_closed_as_unfulfilled_reaches_passenger_and_caregivers_with_the_reason(
    ws, passenger, make_user, make_link, dispatcher
):
    """The ride socket, the passenger's socket and a caregiver's hear `unfulfilled` and why."""
    caregiver = await db(make_user, "caregiver", first_name="Emily", last_name="Davis")
    await db(make_link, passenger, caregiver)
    follower, _ = await open_follower(ws, caregiver)
    own, _ = await open_follower(ws, passenger, "passenger")
    booking = await book_as(ws, passenger, "unf-1")
    await receive_until(booking, "no_drivers")  # nobody drives nearby
    await db(_close_on_console, dispatcher, "unf-1")

    for comm in (booking, own, follower):
        told, _ = await receive_until(comm, "ride_status")
        while told["status"] != "unfulfilled":
            told, _ = await receive_until(comm, "ride_status")
        assert told["ride_id"] == "unf-1"
        assert told["cancel_reason"] == REASON and told["cancelled_by"] == "dispatcher"
    assert told["event"] == "unfulfilled"  # the caregiver's names the event


async def test_rest_shows_the_reason_of_an_unfulfilled_ride(ws, passenger, dispatcher):
    """GET /api/rides/<ride_id>/ gives the dispatcher's reason in cancel_reason."""
    booking = await book_as(ws, passenger, "unf-2")
    await receive_until(booking, "no_drivers")
    await db(_close_on_console, dispatcher, "unf-2")
    token = await db(token_for, passenger)
    response = await db(
        lambda: Client().get("/api/rides/unf-2/", headers={"Authorization": f"Bearer {token}"})
    )
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "unfulfilled" and body["cancel_reason"] == REASON
