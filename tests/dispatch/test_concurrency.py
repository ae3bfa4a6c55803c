"""
Claims under contention on PostgreSQL: many requests at once never give one
driver two rides, and every driver who could take a ride gets one. Each test
runs both ways of booking: step by step (ride_request, then ride_match) and
find_driver's one statement (ride_book).

And a run's driver holding several rides: two changes to what they hold at
once (two endings, an ending and the run reaching its next rider) leave
their status right.

And an offer answered (or expired) just as its ride is cancelled or given
another driver: one of the two goes through, the other is refused, and
neither is aborted by a deadlock.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from dispatch import booking, drivers, matching, offers, rides, trips
from dispatch.models import (
    DriverState,
    DriverStatus,
    OfferStatus,
    Ride,
    RideEvent,
    RideOffer,
    RideStatus,
)
from tests.conftest import booking_keywords
from tests.dispatch.test_runs_and_demand import (
    _john_holding_a_ride_now_and_his_runs,
    _john_with_a_run,
)

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

JHB = (-26.2041, 28.0473)
DRIVERS = 50
REQUESTS = 200
# PostgreSQL allows 100 connections here; each thread holds one.
WAVE = 50


def _step_by_step(**trip) -> int | None:
    return matching.ride_match(ride=rides.ride_request(**trip)).driver_id


def _one_statement(**trip) -> int | None:
    return booking.ride_book(**trip).driver_id


BOOKINGS = pytest.mark.parametrize("book", [_step_by_step, _one_statement])


def _fire(passengers, start: int, results: dict, errors: list, book) -> None:
    """One wave: every thread waits at the barrier, then books and matches."""
    barrier = threading.Barrier(len(passengers))

    def run(i: int, passenger) -> None:
        ride_id = f"conc-{start + i}"
        try:
            barrier.wait(timeout=60)
            results[ride_id] = book(
                ride_id=ride_id,
                passenger=passenger,
                booked_by=passenger,
                pickup_latitude=JHB[0],
                pickup_longitude=JHB[1],
                dropoff_latitude=JHB[0] + 0.05,
                dropoff_longitude=JHB[1] + 0.05,
            )
        except Exception as exc:  # noqa: BLE001 - reported by the test
            errors.append(f"{ride_id}: {exc!r}")
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, p)) for i, p in enumerate(passengers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)


@BOOKINGS
def test_two_hundred_simultaneous_requests_take_fifty_drivers_once_each(
    make_user, make_driver, book
):
    """200 requests racing for 50 drivers: 50 assignments, to 50 different drivers."""
    drivers = [
        make_driver(JHB[0] + (i % 10) * 0.001, JHB[1] + (i // 10) * 0.001) for i in range(DRIVERS)
    ]
    passengers = [make_user("passenger") for _ in range(REQUESTS)]
    results: dict[str, int | None] = {}
    errors: list[str] = []
    for start in range(0, REQUESTS, WAVE):
        _fire(passengers[start : start + WAVE], start, results, errors, book)

    assert errors == []
    assert len(results) == REQUESTS
    assigned = [d for d in results.values() if d is not None]
    assert len(assigned) == DRIVERS
    assert set(assigned) == {d.pk for d in drivers}
    rides = Ride.objects.filter(ride_id__startswith="conc-")
    assert rides.filter(status=RideStatus.ASSIGNED).count() == DRIVERS
    per_driver = Counter(rides.exclude(driver=None).values_list("driver_id", flat=True))
    assert max(per_driver.values()) == 1
    assert rides.filter(status=RideStatus.SEARCHING).count() == REQUESTS - DRIVERS
    assert DriverState.objects.filter(status=DriverStatus.ON_TRIP).count() == DRIVERS
    assert RideEvent.objects.filter(kind="assigned").count() == DRIVERS


@BOOKINGS
def test_every_request_is_served_when_drivers_outnumber_them(make_user, make_driver, book):
    """60 simultaneous requests and 70 drivers: every ride gets its own driver."""
    drivers = [
        make_driver(JHB[0] + (i % 10) * 0.001, JHB[1] + (i // 10) * 0.001) for i in range(70)
    ]
    passengers = [make_user("passenger") for _ in range(60)]
    results: dict[str, int | None] = {}
    errors: list[str] = []
    _fire(passengers, 0, results, errors, book)

    assert errors == []
    assigned = [d for d in results.values() if d is not None]
    assert len(assigned) == 60
    assert len(set(assigned)) == 60
    assert set(assigned) <= {d.pk for d in drivers}


# --- a run's driver: what they hold, changed twice at once ----------------------------


def _blocked(pids: list[int]) -> set[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT p FROM unnest(%s::int[]) AS p WHERE cardinality(pg_blocking_pids(p)) > 0",
            [pids],
        )
        return {row[0] for row in cursor.fetchall()}


def _at_once(held: list[Ride], *calls, in_turn: bool = False) -> list[str]:
    """
    Each call on a thread of its own, while this connection holds `held`'s
    rows: a call that writes one of them waits there, after all it read
    before. Once every call has finished or waits for a lock, the rows go
    and the calls end as they may. The errors, if any.
    `in_turn`: each call starts once the one before it waits (or has
    ended), so they queue for a held row in the order given.
    """
    errors: list[str] = []
    pids: dict[int, int] = {}

    def settle() -> None:
        deadline = time.monotonic() + 60
        while True:
            running = [i for i, t in enumerate(threads) if t.is_alive()]
            waiting = {i for i in running if i in pids and pids[i] in _blocked([pids[i]])}
            if set(running) == waiting:
                return
            assert time.monotonic() < deadline, "the calls neither ended nor waited"
            time.sleep(0.01)

    def run(i: int, call) -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                pids[i] = cursor.fetchone()[0]
            call()
        except Exception as exc:  # noqa: BLE001 - reported by the test
            errors.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    with transaction.atomic():
        list(Ride.objects.select_for_update().filter(pk__in=[r.pk for r in held]))
        for t in threads:
            t.start()
            if in_turn:
                settle()
        settle()
    for t in threads:
        t.join(60)
    return errors


def _started(ride: Ride, driver) -> Ride:
    for step in (trips.ride_driver_arrived, trips.ride_start):
        step(ride=Ride.objects.with_people().get(pk=ride.pk), driver=driver)
    return Ride.objects.with_people().get(pk=ride.pk)


def test_a_run_driver_whose_two_rides_end_at_once_is_free_again(
    passenger, make_user, make_driver, settings, dispatcher
):
    """
    John carries his run's rider and a rider booked now. A dispatcher
    cancels the run's ride while John drops the other off: he holds nothing,
    so he is available (and may go offline), not on_trip for good.
    """
    john, now = _john_holding_a_ride_now_and_his_runs(passenger, make_user, make_driver, settings)
    now = _started(now, john)
    run_ride = Ride.objects.with_people().get(passenger=passenger, status=RideStatus.ASSIGNED)

    errors = _at_once(
        [now, run_ride],
        lambda: trips.ride_complete(ride=now, driver=john),
        lambda: rides.ride_cancel(ride=run_ride, actor=dispatcher, cancelled_by="dispatcher"),
    )

    assert errors == []
    assert not Ride.objects.held_by(john.pk).exists()
    assert DriverState.objects.get(driver=john).status == DriverStatus.AVAILABLE
    assert drivers.driver_set_status(driver=john, status="offline").status == "offline"


def test_a_run_reaching_its_rider_while_a_ride_now_ends_keeps_its_driver_on_trip(
    passenger, make_user, make_driver, settings
):
    """
    John drops off a rider booked now while his run reaches its next rider:
    he carries that rider, so he stays on_trip and is not matched on demand.
    """
    john, run_ride = _john_with_a_run(passenger, make_driver, settings, online=True)
    rider = make_user("passenger", first_name="Lindiwe")
    booked = booking.ride_book(**booking_keywords(rider, "now-1", at=(JHB[0] + 0.002, JHB[1])))
    assert booked.driver_id == john.pk
    now = _started(booked.ride, john)

    errors = _at_once(
        [now],
        lambda: trips.ride_complete(ride=now, driver=john),
        lambda: trips.ride_run_reached(ride=run_ride),
    )

    assert errors == []
    assert list(Ride.objects.held_by(john.pk).values_list("pk", flat=True)) == [run_ride.pk]
    assert DriverState.objects.get(driver=john).status == DriverStatus.ON_TRIP


# --- an offer answered (or expired) as its ride is cancelled or assigned ------------


def _answer(kind: str, ride: Ride, driver):
    """The offered driver accepts or declines, or the sweep expires the offer."""
    if kind == "accept":
        return lambda: offers.ride_offer_accept(ride=ride, driver=driver)
    if kind == "decline":
        return lambda: offers.ride_offer_decline(ride=ride, driver=driver)
    later = timezone.now() + timedelta(hours=1)
    return lambda: offers.ride_offers_expire(now=later)


def _ride_moved_on(kind: str, ride: Ride, by, other):
    """The passenger cancels, or a dispatcher puts another driver on the ride."""
    if kind == "passenger_cancels":
        return lambda: rides.ride_cancel(ride=ride, actor=by["passenger"], cancelled_by="passenger")
    return lambda: matching.ride_assign(
        ride=ride, driver_id=other.pk, actor=by["dispatcher"], role="dispatcher", confirmed=True
    )


@pytest.mark.parametrize("writer", ["passenger_cancels", "dispatcher_assigns"])
@pytest.mark.parametrize("answer", ["accept", "decline", "expire"])
def test_an_offer_answered_as_its_ride_moves_on_ends_one_way(
    passenger, make_driver, dispatcher, settings, answer, writer
):
    """
    The passenger cancels (or a dispatcher assigns another driver) just as
    the offered driver accepts or declines, or the sweep expires the offer:
    the cancel (the assignment) goes through, and the answer is refused as
    invalid_state, not a server error for either of them.
    """
    settings.DISPATCH_MODE = "offer"
    offered = make_driver(JHB[0] + 0.001, JHB[1])
    other = make_driver(JHB[0] + 0.02, JHB[1])
    booked = booking.ride_book(**booking_keywords(passenger, "offer-1"))
    assert booked.offered and booked.driver_id == offered.pk

    def fresh() -> Ride:
        return Ride.objects.with_people().get(pk=booked.ride.pk)

    by = {"passenger": passenger, "dispatcher": dispatcher}
    errors = _at_once(
        [booked.ride],
        _ride_moved_on(writer, fresh(), by, other),
        _answer(answer, fresh(), offered),
        in_turn=True,
    )

    # The sweep finds the offer gone and passes over it.
    refused = [] if answer == "expire" else ["IllegalTransition"]
    assert [e.split("(")[0] for e in errors] == refused
    ride = fresh()
    assert RideOffer.objects.get(ride=ride, driver=offered).status == OfferStatus.WITHDRAWN
    assert DriverState.objects.get(driver=offered).status == DriverStatus.AVAILABLE
    if writer == "passenger_cancels":
        assert ride.status == RideStatus.CANCELLED
    else:
        assert (ride.status, ride.driver_id) == (RideStatus.ASSIGNED, other.pk)
        assert DriverState.objects.get(driver=other).status == DriverStatus.ON_TRIP
