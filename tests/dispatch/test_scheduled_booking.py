"""
Booking ahead over the ride socket and REST: who may book for whom, the
horizon and the past, return legs and will-call 'ready', and that a ride
held for tomorrow does not stop a ride now.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from dispatch import matching, watch
from dispatch.models import Ride, RideSeries, RideStatus
from dispatch.scheduling import Place, return_leg
from people.models import AuditEvent
from tests.conftest import JHB, db, find_driver, notifications, receive_until, token_for

pytestmark = pytest.mark.django_db(transaction=True)


def tomorrow_at(hour: int, minute: int = 0):
    day = timezone.localdate() + timedelta(days=1)
    return timezone.make_aware(timezone.datetime(day.year, day.month, day.day, hour, minute))


@pytest.fixture
def emily(make_user, make_link, passenger):
    caregiver = make_user("caregiver", first_name="Emily", last_name="Davis")
    make_link(passenger, caregiver, can_book_rides=True)
    return caregiver


def rest(user) -> Client:
    return Client(headers={"Authorization": f"Bearer {token_for(user)}"})


def dropped_off(ride_id: str) -> None:
    """The outbound trip behind its rider, as a will-call return's `ready` needs."""
    Ride.objects.filter(ride_id=ride_id).update(status=RideStatus.COMPLETED)


def ahead(**extra) -> dict:
    body = {
        "pickup": {"latitude": JHB[0], "longitude": JHB[1], "address": "12 Main Rd"},
        "dropoff": {"latitude": JHB[0] + 0.03, "longitude": JHB[1] + 0.03, "address": "Clinic"},
        "pickup_at": tomorrow_at(7, 30).isoformat(),
    }
    body.update(extra)
    return body


# --- the ride socket -----------------------------------------------------------------


async def test_a_caregiver_books_ahead_for_their_passenger_on_the_ride_socket(ws, passenger, emily):
    follower = await ws("/ws/passenger/", token=await db(token_for, passenger))
    await follower.receive_json_from()
    comm = await ws("/ws/ride/dialysis-1/", token=await db(token_for, emily))
    await comm.receive_json_from()
    await comm.send_json_to(
        find_driver(passenger_id=passenger.pk, pickup_at=tomorrow_at(7, 30).isoformat(),
                    return_will_call=True, needs_walker=True, companions=1)
    )  # fmt: skip
    booked, _ = await receive_until(comm, "ride_scheduled")
    assert booked["status"] == "scheduled" and booked["version"] == 1
    assert booked["booked_ahead"]["pickup_at"] == tomorrow_at(7, 30).isoformat()
    assert booked["booked_ahead"]["booked_needs"]["companions"] == 1
    assert booked["return_ride_ids"] == ["dialysis-1-ret"]
    heard, _ = await receive_until(follower, "ride_scheduled")
    assert heard["ride_id"] in ("dialysis-1", "dialysis-1-ret")
    ride = await db(Ride.objects.get, ride_id="dialysis-1")
    assert (ride.passenger_id, ride.booked_by_id, ride.status) == (
        passenger.pk,
        emily.pk,
        RideStatus.SCHEDULED,
    )


async def test_cancel_ride_on_the_outbound_socket_tells_the_passenger_of_both_legs(
    ws, passenger, emily
):
    comm = await ws("/ws/ride/clinic-7/", token=await db(token_for, emily))
    await comm.receive_json_from()
    await comm.send_json_to(
        find_driver(passenger_id=passenger.pk, pickup_at=tomorrow_at(7, 30).isoformat(),
                    return_at=tomorrow_at(12).isoformat())
    )  # fmt: skip
    await receive_until(comm, "ride_scheduled")
    follower = await ws("/ws/passenger/", token=await db(token_for, passenger))
    await follower.receive_json_from()
    await comm.send_json_to({"type": "cancel_ride", "reason": "unwell"})
    answer, _ = await receive_until(comm, "ride_cancelled")
    assert answer["ride_id"] == "clinic-7"
    heard = set()
    while heard != {"clinic-7", "clinic-7-ret"}:
        message, _ = await receive_until(follower, "ride_cancelled")
        heard.add(message["ride_id"])
    back = await db(Ride.objects.get, ride_id="clinic-7-ret")
    assert (back.status, back.cancelled_by) == (RideStatus.CANCELLED, "caregiver")


async def test_cancel_ride_with_keep_return_leaves_the_ride_home(ws, passenger):
    comm = await ws("/ws/ride/clinic-8/", token=await db(token_for, passenger))
    await comm.receive_json_from()
    await comm.send_json_to(
        find_driver(pickup_at=tomorrow_at(7, 30).isoformat(), return_will_call=True)
    )
    await receive_until(comm, "ride_scheduled")
    await comm.send_json_to({"type": "cancel_ride", "reason": "my son drives", "keep_return": True})
    await receive_until(comm, "ride_cancelled")
    back = await db(Ride.objects.get, ride_id="clinic-8-ret")
    assert back.status == RideStatus.SCHEDULED


@pytest.mark.parametrize(
    "times, field",
    [
        (lambda: {"pickup_at": (timezone.now() - timedelta(minutes=5)).isoformat()}, "pickup_at"),
        (lambda: {"pickup_at": (timezone.now() + timedelta(days=40)).isoformat()}, "pickup_at"),
        (lambda: {"pickup_at": "9999-12-31T23:59:59-14:00"}, "pickup_at"),
        (
            lambda: {
                "pickup_at": tomorrow_at(7).isoformat(),
                "return_at": tomorrow_at(12).replace(tzinfo=None).isoformat(),
            },
            "return_at",
        ),
        (
            lambda: {
                "pickup_at": tomorrow_at(7).isoformat(),
                "return_at": (tomorrow_at(12) + timedelta(days=60)).isoformat(),
            },
            "return_at",
        ),
        (
            lambda: {
                "pickup_at": tomorrow_at(7).isoformat(),
                "return_at": (tomorrow_at(12) + timedelta(days=1)).isoformat(),
            },
            "return_at",
        ),
    ],
    ids=[
        "past",
        "beyond-horizon",
        "calendar-end",
        "return-naive",
        "return-beyond",
        "return-next-day",
    ],
)
async def test_a_time_past_or_beyond_the_horizon_is_an_invalid_request(ws, passenger, times, field):
    """Refused times name their field, write nothing and leave the socket open."""
    comm = await ws("/ws/ride/too-soon/", token=await db(token_for, passenger))
    await comm.receive_json_from()
    await comm.send_json_to(find_driver(**times()))
    error = await comm.receive_json_from()
    assert error["code"] == "invalid_request" and field in error["fields"]
    assert not await db(Ride.objects.filter(ride_id__startswith="too-soon").exists)
    await comm.send_json_to({"type": "ping"})
    assert (await comm.receive_json_from())["type"] == "pong"


async def test_a_caregiver_without_the_booking_permission_is_forbidden(
    ws, passenger, make_user, make_link
):
    onlooker = await db(make_user, "caregiver")
    await db(make_link, passenger, onlooker, can_book_rides=False)
    comm = await ws("/ws/ride/nope/", token=await db(token_for, onlooker))
    await comm.receive_json_from()
    await comm.send_json_to(
        find_driver(passenger_id=passenger.pk, pickup_at=tomorrow_at(9).isoformat())
    )
    assert (await comm.receive_json_from())["code"] == "forbidden"


async def test_a_ride_held_for_tomorrow_does_not_stop_a_ride_now(ws, passenger, make_driver):
    await db(make_driver, *JHB)
    token = await db(token_for, passenger)
    later = await ws("/ws/ride/tomorrow/", token=token)
    await later.receive_json_from()
    await later.send_json_to(find_driver(pickup_at=tomorrow_at(10).isoformat()))
    await receive_until(later, "ride_scheduled")
    now = await ws("/ws/ride/now/", token=token)
    await now.receive_json_from()
    await now.send_json_to(find_driver())
    assigned, _ = await receive_until(now, "driver_assigned")
    assert assigned["ride_id"] == "now"


async def test_booking_ahead_again_answers_the_ride_as_it_is(ws, passenger):
    token = await db(token_for, passenger)
    comm = await ws("/ws/ride/twice/", token=token)
    await comm.receive_json_from()
    message = find_driver(pickup_at=tomorrow_at(10).isoformat())
    await comm.send_json_to(message)
    await receive_until(comm, "ride_scheduled")
    await comm.send_json_to(message)
    again, _ = await receive_until(comm, "ride_scheduled")
    assert again["version"] == 1
    assert await db(Ride.objects.filter(passenger=passenger).count) == 1


# --- REST ------------------------------------------------------------------------------


def test_rest_books_ahead_with_a_return_leg(passenger, emily):
    response = rest(emily).post(
        "/api/rides/",
        ahead(passenger_id=passenger.pk, return_at=tomorrow_at(12).isoformat()),
        content_type="application/json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["ride"]["status"] == "scheduled" and body["ride"]["role"] == "caregiver"
    (back,) = body["returns"]
    assert back["booked_ahead"]["leg"] == "return"
    assert back["pickup"]["address"] == "Clinic"
    assert back["booked_ahead"]["outbound_ride_id"] == body["ride"]["ride_id"]


@pytest.mark.parametrize("ride_id", ["a b", "clinic\n", "x" * 65])
def test_rest_refuses_a_ride_id_the_sockets_could_not_open(passenger, ride_id):
    """The id names its field, and a trailing newline is no exception."""
    response = rest(passenger).post(
        "/api/rides/", ahead(ride_id=ride_id), content_type="application/json"
    )
    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["ride_id"]
    assert not Ride.objects.exists()


@pytest.mark.parametrize(
    "wrong",
    [
        {"passenger": "ME"},  # not passenger_id: it booked for the caregiver themselves
        {"needs_walker": True},  # the ride socket's name, not the nested needs'
        {"needs": {"walker": True, "assistance_boarding": True}},
        {"pickup": {"latitude": JHB[0], "longitude": JHB[1], "adress": "12 Main Rd"}},
    ],
)
def test_rest_booking_refuses_a_field_it_does_not_know(passenger, emily, wrong):
    """A misnamed field is refused by name, not dropped: nothing is booked without it."""
    wrong = {k: passenger.pk if v == "ME" else v for k, v in wrong.items()}
    response = rest(emily).post("/api/rides/", ahead(**wrong), content_type="application/json")
    assert response.status_code == 400, response.json()
    assert response.json()["code"] == "invalid_request"
    assert len(response.json()["fields"]) == 1
    assert not Ride.objects.exists()


def test_rest_cancel_refuses_a_field_it_does_not_know(passenger):
    """A cancel with a misnamed reason is refused, and the ride stays booked."""
    booked = rest(passenger).post("/api/rides/", ahead(), content_type="application/json")
    ride_id = booked.json()["ride"]["ride_id"]
    cancel = {"reson": "Feeling better"}
    response = rest(passenger).post(
        f"/api/rides/{ride_id}/cancel/", cancel, content_type="application/json"
    )
    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["reson"]
    assert Ride.objects.get(ride_id=ride_id).status == RideStatus.SCHEDULED


def test_rest_arrive_by_needs_the_appointment_only(passenger):
    both = ahead(appointment_at=tomorrow_at(9).isoformat())
    response = rest(passenger).post("/api/rides/", both, content_type="application/json")
    assert response.status_code == 400
    assert set(response.json()["fields"]) == {"pickup_at", "appointment_at"}
    by = ahead(pickup_at=None, appointment_at=tomorrow_at(9).isoformat())
    response = rest(passenger).post("/api/rides/", by, content_type="application/json")
    assert response.status_code == 201
    assert response.json()["ride"]["booked_ahead"]["appointment_at"]


def test_a_dispatcher_books_on_the_phone_for_any_passenger(passenger, dispatcher, make_user):
    response = rest(dispatcher).post(
        "/api/rides/",
        ahead(passenger_phone=passenger.phone_number),
        content_type="application/json",
    )
    assert response.status_code == 201
    ride = Ride.objects.get(ride_id=response.json()["ride"]["ride_id"])
    assert ride.passenger == passenger and ride.booked_by == dispatcher
    assert ride.events.get().actor_role == "dispatcher"
    # Another app user may not.
    stranger = make_user("caregiver")
    response = rest(stranger).post(
        "/api/rides/", ahead(passenger_id=passenger.pk), content_type="application/json"
    )
    assert response.status_code == 403


def test_a_booking_naming_two_different_passengers_is_refused(passenger, dispatcher, make_user):
    """
    A passenger_id and a passenger_phone that name two people book for
    neither (it was the id's, silently): nothing is written.
    """
    tom = make_user("passenger", first_name="Tom")
    for named in (
        {"passenger_id": passenger.pk, "passenger_phone": tom.phone_number},
        {"passenger_id": dispatcher.pk, "passenger_phone": tom.phone_number},
    ):
        response = rest(dispatcher).post(
            "/api/rides/", ahead(**named), content_type="application/json"
        )
        assert response.status_code in (403, 404), (named, response.json())
    assert not Ride.objects.exists()
    both = {"passenger_id": passenger.pk, "passenger_phone": "+27 " + passenger.phone_number[2:]}
    response = rest(dispatcher).post("/api/rides/", ahead(**both), content_type="application/json")
    assert response.status_code == 201
    assert Ride.objects.get().passenger == passenger


def test_a_scheduled_ride_is_cancelled_over_rest(passenger):
    booked = rest(passenger).post("/api/rides/", ahead(), content_type="application/json").json()
    ride_id = booked["ride"]["ride_id"]
    response = rest(passenger).post(
        f"/api/rides/{ride_id}/cancel/", {"reason": "hospital"}, content_type="application/json"
    )
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"


def test_cancelling_the_outbound_trip_cancels_its_return(passenger, emily):
    """
    Sarah cancels tomorrow's clinic trip: nobody will be at the clinic, so
    no driver is sent there for her return; both legs end, as she asked.
    """
    booked = book_with_will_call_return(emily, passenger, tomorrow_at(7, 30))
    outbound, back = booked["ride"]["ride_id"], booked["returns"][0]["ride_id"]
    response = rest(passenger).post(
        f"/api/rides/{outbound}/cancel/", {"reason": "unwell"}, content_type="application/json"
    )
    assert response.status_code == 200, response.json()
    ride = Ride.objects.get(ride_id=back)
    assert (ride.status, ride.cancelled_by, ride.cancel_reason) == (
        RideStatus.CANCELLED,
        "passenger",
        "unwell",
    )
    assert [e.kind for e in ride.events.order_by("version")] == ["scheduled", "cancelled"]


def test_keep_return_cancels_the_outbound_trip_alone(passenger, emily):
    """Emily drives her mother there herself: the ride home stays booked."""
    booked = book_with_will_call_return(emily, passenger, tomorrow_at(7, 30))
    outbound, back = booked["ride"]["ride_id"], booked["returns"][0]["ride_id"]
    response = rest(emily).post(
        f"/api/rides/{outbound}/cancel/",
        {"reason": "I take her", "keep_return": True},
        content_type="application/json",
    )
    assert response.status_code == 200, response.json()
    assert Ride.objects.get(ride_id=outbound).status == RideStatus.CANCELLED
    assert Ride.objects.get(ride_id=back).status == RideStatus.SCHEDULED


def book_with_will_call_return(emily, passenger, pickup_at) -> dict:
    """Emily books Sarah's ride ahead at `pickup_at`, with a will-call return (the answer)."""
    return (
        rest(emily)
        .post(
            "/api/rides/",
            ahead(
                passenger_id=passenger.pk, pickup_at=pickup_at.isoformat(), return_will_call=True
            ),
            content_type="application/json",
        )
        .json()
    )


def test_will_call_ready_with_no_run_passing_is_matched_on_demand(passenger, emily, make_driver):
    driver = make_driver(*JHB)
    today = timezone.localtime() + timedelta(hours=1)
    booked = book_with_will_call_return(emily, passenger, today)
    back = booked["returns"][0]["ride_id"]
    dropped_off(booked["ride"]["ride_id"])
    response = rest(emily).post(f"/api/rides/{back}/ready/")
    assert response.status_code == 200, response.json()
    ride = Ride.objects.get(ride_id=back)
    assert (ride.status, ride.driver) == (RideStatus.ASSIGNED, driver)
    assert [e.kind for e in ride.events.order_by("version")] == ["scheduled", "ready", "assigned"]
    # Saying ready again: it is no longer waiting for it.
    assert rest(emily).post(f"/api/rides/{back}/ready/").status_code == 409


def test_ready_on_a_return_of_a_later_day_sends_nobody_now(passenger, make_driver):
    """The rider is not at the clinic until that day: invalid_state, and no driver is sent."""
    make_driver(*JHB)
    next_week = tomorrow_at(7, 30) + timedelta(days=6)
    booked = (
        rest(passenger)
        .post(
            "/api/rides/",
            ahead(pickup_at=next_week.isoformat(), return_will_call=True),
            content_type="application/json",
        )
        .json()
    )
    back = booked["returns"][0]["ride_id"]
    response = rest(passenger).post(f"/api/rides/{back}/ready/")
    assert response.status_code == 409 and response.json()["code"] == "invalid_state"
    ride = Ride.objects.get(ride_id=back)
    assert (ride.status, ride.driver_id) == (RideStatus.SCHEDULED, None)


def _will_call_return_of(passenger, emily, days_ago: int) -> Ride:
    """Emily's booking of Sarah's clinic trip `days_ago` days back, its return never called."""
    booked = book_with_will_call_return(emily, passenger, tomorrow_at(7, 30))
    dropped_off(booked["ride"]["ride_id"])
    back = Ride.objects.get(ride_id=booked["returns"][0]["ride_id"])
    day = timezone.localdate() - timedelta(days=days_ago)
    Ride.objects.filter(pk__in=[back.pk, back.outbound_id]).update(service_date=day)
    return Ride.objects.get(pk=back.pk)


def test_a_return_of_two_days_ago_can_no_longer_be_said_ready(passenger, emily, make_driver):
    """
    A tap on last week's ride home would send a driver to a clinic Sarah
    left long ago: refused, nothing written; yesterday's (kept overnight)
    is still taken.
    """
    make_driver(*JHB)
    old = _will_call_return_of(passenger, emily, days_ago=2)
    response = rest(emily).post(f"/api/rides/{old.ride_id}/ready/")
    assert response.status_code == 409 and response.json()["code"] == "invalid_state"
    assert "book a new ride" in response.json()["message"]
    old.refresh_from_db()
    assert (old.status, old.driver_id, old.version) == (RideStatus.SCHEDULED, None, 1)
    Ride.objects.filter(pk__in=[old.pk, old.outbound_id]).update(
        service_date=timezone.localdate() - timedelta(days=1)
    )
    assert rest(emily).post(f"/api/rides/{old.ride_id}/ready/").status_code == 200


def test_returns_nobody_called_are_closed_after_the_next_day_and_told_to_nobody(passenger, emily):
    """
    A ride home never called (Sarah's son fetched her) stops being listed
    as coming: closed once the next day is over, without a text, push or
    in-app notice days later to alarm the family.
    """
    old = _will_call_return_of(passenger, emily, days_ago=2)
    recent = _will_call_return_of(passenger, emily, days_ago=1)
    notifications().all().delete()
    assert watch.trips_sweep()["returns_closed"] == 1
    old.refresh_from_db()
    assert (old.status, old.cancelled_by, old.cancel_reason) == (
        RideStatus.CANCELLED,
        "system",
        "return_not_called",
    )
    assert Ride.objects.get(pk=recent.pk).status == RideStatus.SCHEDULED
    assert not notifications().filter(ride=old).exists()
    assert watch.trips_sweep()["returns_closed"] == 0


def test_only_the_rider_side_may_say_ready(passenger, make_user, make_link):
    booked = (
        rest(passenger)
        .post("/api/rides/", ahead(return_will_call=True), content_type="application/json")
        .json()
    )
    back = booked["returns"][0]["ride_id"]
    onlooker = make_user("caregiver")
    make_link(passenger, onlooker, can_book_rides=False)
    assert rest(onlooker).post(f"/api/rides/{back}/ready/").status_code == 403


def test_series_over_rest_lists_pauses_and_reports_what_it_did(passenger, emily):
    start = timezone.localdate() + timedelta(days=1)
    body = {
        "weekdays": [0, 2, 4],
        "start_date": start.isoformat(),
        "pickup_time": "07:30",
        "return_time": "12:00",
        "pickup": {"latitude": JHB[0], "longitude": JHB[1], "address": "Home"},
        "dropoff": {"latitude": JHB[0] + 0.03, "longitude": JHB[1] + 0.03, "address": "Dialysis"},
        "passenger_id": passenger.pk,
    }
    created = rest(emily).post("/api/series/", body, content_type="application/json")
    assert created.status_code == 201, created.json()
    series = created.json()["series"]
    assert created.json()["created"] and series["booked_by"]["name"] == "Emily Davis"
    pause = {"start_date": start.isoformat(), "end_date": (start + timedelta(days=6)).isoformat()}
    paused = rest(emily).post(
        f"/api/series/{series['id']}/pause/", pause, content_type="application/json"
    )
    assert paused.status_code == 200 and len(paused.json()["series"]["pauses"]) == 1
    listed = rest(passenger).get("/api/series/").json()
    assert listed["count"] == 1
    edited = rest(passenger).patch(
        f"/api/series/{series['id']}/", {"pickup_time": "08:00"}, content_type="application/json"
    )
    assert edited.status_code == 200, edited.json()
    assert edited.json()["series"]["pickup_time"] == "08:00:00"


def _series_body(**extra) -> dict:
    body = {
        "weekdays": [0, 1, 2, 3, 4, 5, 6],
        "start_date": (timezone.localdate() + timedelta(days=1)).isoformat(),
        "pickup_time": "07:30",
        "pickup": {"latitude": JHB[0], "longitude": JHB[1], "address": "Home"},
        "dropoff": {"latitude": JHB[0] + 0.03, "longitude": JHB[1] + 0.03, "address": "Dialysis"},
    }
    return body | extra


def test_a_series_edit_of_some_needs_keeps_the_others_and_the_wheelchair(passenger):
    """
    Needs sent in part change those parts; a null wheelchair is the
    profile's, as on create, so a wheelchair rider's rides keep their space.
    """
    profile = passenger.passenger_profile
    profile.needs_wheelchair = True
    profile.save()
    created = rest(passenger).post("/api/series/", _series_body(), content_type="application/json")
    assert created.status_code == 201, created.json()
    path = f"/api/series/{created.json()['series']['id']}/"
    for needs in ({"walker": True}, {"wheelchair": None, "companions": 1}):
        response = rest(passenger).patch(path, {"needs": needs}, content_type="application/json")
        assert response.status_code == 200, response.json()
    rides = Ride.objects.filter(series_id=created.json()["series"]["id"])
    assert rides.exists()
    assert {(r.needs_wheelchair, r.needs_walker, r.companions) for r in rides} == {(True, True, 1)}


@pytest.mark.parametrize(
    "body, field",
    [
        ({"weekdays": None}, "weekdays"),
        ({"return_will_call": None}, "return_will_call"),
        ({"notes": None}, "notes"),
        ({"needs": None}, "needs"),
        ({"pickup_time": "07:30+02:00"}, "pickup_time"),
    ],
)
def test_a_series_edit_refuses_null_where_it_is_no_value_and_times_with_offsets(
    passenger, body, field
):
    created = rest(passenger).post("/api/series/", _series_body(), content_type="application/json")
    path = f"/api/series/{created.json()['series']['id']}/"
    before = rest(passenger).get(path).json()
    response = rest(passenger).patch(path, body, content_type="application/json")
    assert response.status_code == 400, response.json()
    assert response.json()["code"] == "invalid_request" and field in response.json()["fields"]
    assert rest(passenger).get(path).json() == before


def test_a_series_edit_with_nothing_to_change_is_refused_and_writes_nothing(passenger):
    """
    An empty PATCH (an app that lost its changes) is invalid_request, as on
    every other PATCH: the series' version, its rides and its audit trail
    stay as they were.
    """
    created = rest(passenger).post("/api/series/", _series_body(), content_type="application/json")
    path = f"/api/series/{created.json()['series']['id']}/"
    before = rest(passenger).get(path).json()
    audited = AuditEvent.objects.filter(subject_type="rideseries")
    assert audited.count() == 1
    response = rest(passenger).patch(path, {}, content_type="application/json")
    assert response.status_code == 400, response.json()
    assert response.json()["code"] == "invalid_request"
    assert rest(passenger).get(path).json() == before
    assert audited.count() == 1


@pytest.mark.parametrize(
    "path, body, field",
    [
        ("/api/series/", _series_body(weekdays=[True]), "weekdays.0"),
        ("/api/series/", _series_body(passenger_id=True), "passenger_id"),
        ("/api/rides/", ahead(needs={"companions": True}), "needs.companions"),
        ("/api/rides/", ahead(passenger_id=True), "passenger_id"),
        ("/api/rides/", ahead(dropoff={"latitude": False, "longitude": 28.0}), "dropoff.latitude"),
        ("/api/rides/", ahead(pickup={"latitude": -26.2, "longitude": True}), "pickup.longitude"),
    ],
)
def test_true_or_false_is_no_number_over_rest(passenger, path, body, field):
    """
    A boolean where a number goes is 400 naming the field, and nothing is
    booked: `weekdays: [true]` is no Tuesday, `passenger_id: true` no account 1.
    """
    response = rest(passenger).post(path, body, content_type="application/json")
    assert response.status_code == 400, response.json()
    assert response.json()["code"] == "invalid_request"
    assert list(response.json()["fields"]) == [field]
    assert not Ride.objects.exists() and not RideSeries.objects.exists()


def test_a_new_series_refuses_a_time_with_an_offset(passenger):
    body = _series_body(pickup_time="07:30+02:00", return_time="12:00")
    response = rest(passenger).post("/api/series/", body, content_type="application/json")
    assert response.status_code == 400 and "pickup_time" in response.json()["fields"]
    assert not Ride.objects.exists()


def test_a_series_takes_at_most_a_years_exception_dates(passenger):
    """Thousands of skipped days are refused, new or edited, and nothing is stored."""
    start = timezone.localdate() + timedelta(days=1)
    many = [(start + timedelta(days=i)).isoformat() for i in range(367)]
    response = rest(passenger).post(
        "/api/series/", _series_body(except_dates=many), content_type="application/json"
    )
    assert response.status_code == 400 and "except_dates" in response.json()["fields"]
    assert not RideSeries.objects.exists() and not Ride.objects.exists()
    made = rest(passenger).post(
        "/api/series/", _series_body(except_dates=many[:366]), content_type="application/json"
    )
    assert made.status_code == 201, made.json()
    series_id = made.json()["series"]["id"]
    edit = rest(passenger).patch(
        f"/api/series/{series_id}/", {"except_dates": many}, content_type="application/json"
    )
    assert edit.status_code == 400 and "except_dates" in edit.json()["fields"]
    assert len(RideSeries.objects.get(pk=series_id).except_dates) == 366


async def test_ready_on_the_ride_socket_starts_a_will_call_return(ws, passenger, make_driver):
    await db(make_driver, *JHB)
    token = await db(token_for, passenger)
    comm = await ws("/ws/ride/clinic/", token=token)
    await comm.receive_json_from()
    soon = (timezone.now() + timedelta(hours=1)).isoformat()
    await comm.send_json_to(find_driver(pickup_at=soon, return_will_call=True))
    await receive_until(comm, "ride_scheduled")
    await db(dropped_off, "clinic")
    back = await ws("/ws/ride/clinic-ret/", token=token)
    await back.receive_json_from()
    await receive_until(back, "ride_status")
    await back.send_json_to({"type": "ready"})
    assigned, before = await receive_until(back, "driver_assigned")
    assert any(m["type"] == "searching" for m in before)
    assert assigned["ride_id"] == "clinic-ret"


async def _unnotified_caregiver_on_a_will_call_return(
    ws, passenger, make_user, make_link, *, can_book_rides: bool
):
    """Sarah books a trip with a will-call return; Emily, not notified, opens its socket."""
    emily = await db(make_user, "caregiver", first_name="Emily")
    await db(
        make_link,
        passenger,
        emily,
        can_book_rides=can_book_rides,
        can_receive_notifications=False,
    )
    sarah = await ws("/ws/ride/clinic/", token=await db(token_for, passenger))
    await sarah.receive_json_from()
    soon = (timezone.now() + timedelta(hours=1)).isoformat()
    await sarah.send_json_to(find_driver(pickup_at=soon, return_will_call=True))
    await receive_until(sarah, "ride_scheduled")
    await db(dropped_off, "clinic")
    back = await ws("/ws/ride/clinic-ret/", token=await db(token_for, emily))
    await back.receive_json_from()
    await receive_until(back, "ride_status")
    return back


@pytest.mark.parametrize("books", [True, False], ids=["may-book", "may-not-book"])
async def test_a_caregiver_without_notifications_who_says_ready_hears_the_answer(
    ws, passenger, make_user, make_link, make_driver, books
):
    """
    Emily may book for Sarah but is not notified: her `ready` is answered
    (searching, then the driver) on the socket she asked on. Without the
    right to book she is refused, and hears nothing of the ride after.
    """
    await db(make_driver, *JHB)
    back = await _unnotified_caregiver_on_a_will_call_return(
        ws, passenger, make_user, make_link, can_book_rides=books
    )
    await back.send_json_to({"type": "ready"})
    if books:
        assigned, before = await receive_until(back, "driver_assigned")
        assert [m["type"] for m in before] == ["searching"]
        assert assigned["ride_id"] == "clinic-ret"
    else:
        refused = await back.receive_json_from()
        assert refused["code"] == "forbidden"
        await back.send_json_to({"type": "ping"})
        assert (await back.receive_json_from())["type"] == "pong"


async def test_a_caregiver_who_said_ready_still_hears_what_follows_after_get_status(
    ws, passenger, make_user, make_link, make_driver
):
    """
    Emily, who may book but is not notified, says ready and nobody is near;
    her app asks get_status: the driver assigned later still reaches her.
    """
    back = await _unnotified_caregiver_on_a_will_call_return(
        ws, passenger, make_user, make_link, can_book_rides=True
    )
    await back.send_json_to({"type": "ready"})
    await receive_until(back, "no_drivers")
    await back.send_json_to({"type": "get_status"})
    await receive_until(back, "ride_status")
    driver = await db(make_driver, *JHB)

    def assign():
        ride = Ride.objects.get(ride_id="clinic-ret")
        matching.ride_assign(ride=ride, driver_id=driver.pk, confirmed=True)

    await db(assign)
    assigned, _ = await receive_until(back, "driver_assigned")
    assert assigned["ride_id"] == "clinic-ret"


def test_a_return_leg_runs_back_and_keeps_its_id_within_the_column():
    """A return runs from the drop-off to the pickup; a later one is -ret2, within 64 chars."""
    home, clinic = Place(-26.1, 28.0, "Home"), Place(-26.2, 28.1, "Clinic")
    first = return_leg("x" * 64, home, clinic, at=None, will_call=True)
    again = return_leg("x" * 64, home, clinic, at=None, will_call=True, earlier=1)

    assert first["pickup_address"] == "Clinic" and first["dropoff_address"] == "Home"
    assert first["ride_id"].endswith("-ret") and len(first["ride_id"]) == 64
    assert again["ride_id"].endswith("-ret2") and len(again["ride_id"]) <= 64
    assert first["leg"] == again["leg"] == "return"


def test_ready_before_the_outbound_trip_ended_sends_nobody(passenger, emily, make_driver):
    """
    The daughter taps ready in the morning, before her mother was taken to
    the clinic: invalid_state, and no driver is sent to an empty clinic;
    once the outbound trip has ended, ready is taken.
    """
    make_driver(*JHB)
    soon = timezone.localtime() + timedelta(hours=1)
    booked = book_with_will_call_return(emily, passenger, soon)
    outbound, back = booked["ride"]["ride_id"], booked["returns"][0]["ride_id"]
    response = rest(emily).post(f"/api/rides/{back}/ready/")
    assert response.status_code == 409 and response.json()["code"] == "invalid_state"
    assert "outbound" in response.json()["message"]
    ride = Ride.objects.get(ride_id=back)
    assert (ride.status, ride.driver_id, ride.run_id) == (RideStatus.SCHEDULED, None, None)
    assert [e.kind for e in ride.events.all()] == ["scheduled"]
    dropped_off(outbound)
    assert rest(emily).post(f"/api/rides/{back}/ready/").status_code == 200


@pytest.mark.parametrize(
    "leg", [{"return_will_call": True}, {"return_at": "later"}], ids=["will-call", "at"]
)
async def test_a_return_asked_of_a_ride_booked_now_is_refused_not_dropped(
    ws, passenger, make_driver, leg
):
    """
    A return leg is booked with a ride ahead only: asked with a ride now, it
    was dropped without a word and the rider left at the clinic. It is
    invalid_request naming the field; nothing is booked, the socket stays.
    """
    await db(make_driver, *JHB)
    if leg.get("return_at") == "later":
        leg = {"return_at": (timezone.now() + timedelta(hours=3)).isoformat()}
    comm = await ws("/ws/ride/now-and-back/", token=await db(token_for, passenger))
    await comm.receive_json_from()
    await comm.send_json_to(find_driver(**leg))
    error = await comm.receive_json_from()
    assert error["code"] == "invalid_request" and next(iter(leg)) in error["fields"]
    assert not await db(Ride.objects.filter(ride_id__startswith="now-and-back").exists)
    await comm.send_json_to({"type": "ping"})
    assert (await comm.receive_json_from())["type"] == "pong"


def test_a_late_evening_return_is_said_ready_after_midnight(passenger, make_driver, monkeypatch):
    """
    Picked up at 23:30 for an evening session and dropped off after
    midnight: her return, of the day before, is still hers to say ready on
    (she was told to say it "on that day", which had passed).
    """
    eleven = timezone.make_aware(
        timezone.datetime.combine(timezone.localdate(), timezone.datetime.min.time())
    ) + timedelta(hours=23)
    monkeypatch.setattr(timezone, "now", lambda: eleven)
    booked = (
        rest(passenger)
        .post(
            "/api/rides/",
            ahead(pickup_at=(eleven + timedelta(minutes=30)).isoformat(), return_will_call=True),
            content_type="application/json",
        )
        .json()
    )
    back = booked["returns"][0]["ride_id"]
    dropped_off(booked["ride"]["ride_id"])
    after_midnight = eleven + timedelta(hours=2)
    monkeypatch.setattr(timezone, "now", lambda: after_midnight)
    make_driver(*JHB)
    response = rest(passenger).post(f"/api/rides/{back}/ready/")
    assert response.status_code == 200, response.json()
    assert Ride.objects.get(ride_id=back).status == RideStatus.ASSIGNED
