"""
The fuzz tier's world and its bookkeeping: who is signed in where, what
the database holds before the fuzz (to prove refused messages wrote
nothing), and how many generated messages each test actually sent.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from dataclasses import dataclass

import pytest
from django.apps import apps
from django.conf import settings as django_settings
from django.test import Client
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from dispatch import booking
from dispatch.models import DriverState, Ride
from tests.conftest import (
    IN_CI,
    JHB,
    booking_keywords,
    notifications,
    staff_login,
    token_for,
)

# Reproducible under CI (the same examples every run, no example database);
# locally too unless FUZZ_RANDOM=1 asks for fresh ones.
FUZZ = settings(
    deadline=None,
    derandomize=IN_CI or not os.environ.get("FUZZ_RANDOM"),
    database=None,
    print_blob=True,
    suppress_health_check=list(HealthCheck),
)


# Frames per example: Hypothesis spends about 2 ms on each example itself,
# so each example is a batch.
BATCH = 20


def batches(frames):
    return st.lists(frames, min_size=BATCH, max_size=BATCH)


def fuzz(max_examples: int) -> settings:
    """The fuzz settings, with exactly this many examples."""
    return settings(FUZZ, max_examples=max_examples)


# Generated messages sent, by test (node id without the database), and on
# which database. tests/fuzz/test_quotas.py holds the sum to 10,000.
SENT: Counter[tuple[str, str]] = Counter()

DATABASES = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", marks=pytest.mark.postgres, id="postgresql"),
]


def on_database(name: str) -> None:
    """Skip the variant the other pass runs (make test runs SQLite, then PostgreSQL)."""
    engine = django_settings.DATABASES["default"]["ENGINE"]
    if (name == "postgresql") != engine.endswith("postgresql"):
        pytest.skip(f"the {name} variant runs in the pass on {name}")


def pytest_terminal_summary(terminalreporter):
    if SENT:
        by_db = Counter()
        for (_, db), n in SENT.items():
            by_db[db] += n
        terminalreporter.write_line(
            "fuzz: generated messages sent: "
            + ", ".join(f"{db} {n}" for db, n in sorted(by_db.items()))
        )


@dataclass
class World:
    passenger: object
    caregiver: object
    driver: object
    dispatcher: object
    ride_id: str
    others_ride_id: str
    tokens: dict[str, str]
    console_cookie: bytes


def _trip(passenger, ride_id, at=JHB):
    return booking_keywords(passenger, ride_id, at)


@pytest.fixture
def world(make_user, make_driver, make_link, dispatcher) -> World:
    """
    A passenger with a ride assigned to a driver, her caregiver, another
    passenger's ride with another driver, and a dispatcher signed in to the
    console: every socket has something a message could wrongly change.
    """
    passenger = make_user("passenger", first_name="Fuzz")
    caregiver = make_user("caregiver")
    make_link(passenger, caregiver)
    driver = make_driver(JHB[0] + 0.002, JHB[1])
    assert booking.ride_book(**_trip(passenger, "fz-ride")).ride.driver_id == driver.pk
    other = make_user("passenger")
    far = (-33.9249, 18.4241)
    make_driver(far[0] + 0.002, far[1])
    booking.ride_book(**_trip(other, "fz-other", far))
    # The bookings' notices fanned out now (the log read, and any NoticeDue):
    # a fuzzed frame then changes nothing the state check compares.
    notifications()
    client = staff_login(Client(), dispatcher)
    return World(
        passenger=passenger,
        caregiver=caregiver,
        driver=driver,
        dispatcher=dispatcher,
        ride_id="fz-ride",
        others_ride_id="fz-other",
        tokens={
            "passenger": token_for(passenger),
            "caregiver": token_for(caregiver),
            "driver": token_for(driver),
        },
        console_cookie=f"sessionid={client.cookies['sessionid'].value}".encode(),
    )


def database_state() -> dict:
    """Row counts of every model, and every ride's and driver's state."""
    counts = {m._meta.label: m._default_manager.count() for m in apps.get_models()}
    return {
        "counts": counts,
        "rides": sorted(Ride.objects.values_list("ride_id", "status", "version", "driver_id")),
        "drivers": sorted(DriverState.objects.values_list("driver_id", "status")),
    }


@pytest.fixture
def runner():
    """One event loop for a whole fuzz run: its sockets stay open across examples."""
    with asyncio.Runner() as loop:
        yield loop
