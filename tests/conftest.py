"""Shared fixtures: people, drivers in place, sockets, and the service gates."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import uuid
from typing import NoReturn
from urllib.parse import urlparse

import pytest
from channels.testing import WebsocketCommunicator
from django.conf import settings

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _reachable(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection(
            (parsed.hostname or "127.0.0.1", parsed.port or default_port), 2
        ):
            return True
    except OSError:
        return False


def nginx_binary() -> str | None:
    """nginx on PATH, or where Debian installs it (not on a user's PATH)."""
    return shutil.which("nginx") or next(
        (path for path in ("/usr/sbin/nginx",) if os.path.exists(path)), None
    )


def _service_gate(item) -> str | None:
    """Why this test cannot run here, or None when it can."""
    if item.get_closest_marker("postgres"):
        if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
            return "needs PostgreSQL: run `make test-services` (sets DATABASE_URL)"
        db = settings.DATABASES["default"]
        if not _reachable(f"pg://{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}", 5432):
            return f"PostgreSQL at {db.get('HOST')}:{db.get('PORT')} does not answer"
    if item.get_closest_marker("redis"):
        if not settings.REDIS_URL:
            return "needs Redis: run `make test-services` (sets REDIS_URL)"
        if not _reachable(settings.REDIS_URL, 6379):
            return f"Redis at {settings.REDIS_URL} does not answer"
    if item.get_closest_marker("browser") and not shutil.which("chromium"):
        return "needs Debian's chromium on PATH (apt-get install -y chromium)"
    if item.get_closest_marker("nginx") and nginx_binary() is None:
        return "needs nginx (apt-get install -y nginx)"
    return None


def cannot_run(reason: str) -> NoReturn:
    """Something this test needs is absent: skipped on a newcomer's machine, failed under CI."""
    if IN_CI:
        pytest.fail(f"CI=true and this test cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


def pytest_runtest_setup(item):
    reason = _service_gate(item)
    if reason:
        cannot_run(reason)


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup):
    """
    pytest-django's, with the connections of the pool threads and of the
    thread async tests run ORM calls on (`database_sync_to_async`) closed
    before the drop.
    """
    yield
    import asyncio

    from asgiref.sync import sync_to_async
    from django.db import connections

    from project.common.db import close_pool_connections

    close_pool_connections()
    asyncio.run(sync_to_async(connections.close_all)())


@pytest.fixture(autouse=True)
def _no_error_logged(request, caplog):
    """
    A test that is not about an error leaves no ERROR line in the log; one
    that is says so with @pytest.mark.logs_errors.
    """
    yield
    if request.node.get_closest_marker("logs_errors"):
        return
    errors = [r for r in caplog.get_records("call") if r.levelno >= logging.ERROR]
    assert not errors, "ERROR logged: " + "; ".join(
        f"{r.name}: {r.getMessage()[:200]}" for r in errors
    )


@pytest.fixture(autouse=True)
def _fresh_locations():
    from dispatch.locations import reset_location_store

    reset_location_store()
    yield
    reset_location_store()


@pytest.fixture(autouse=True)
def _fresh_cache(settings):
    """
    Each test counts its rate limits afresh: the cache gets a key prefix of
    its own, so a Redis shared with other tests or runs is never flushed.
    """
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    settings.CACHES = {
        alias: {**config, "KEY_PREFIX": prefix} for alias, config in settings.CACHES.items()
    }
    settings.CACHE_KEY_PREFIX = prefix
    yield


@pytest.fixture(autouse=True)
def _fresh_channel_layer():
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


# --- people --------------------------------------------------------------------


@pytest.fixture
def make_user(db):
    from people.models import PassengerProfile, User

    counter = iter(range(1000, 10_000))

    def make(user_type="passenger", phone=None, first_name="Test", last_name=None, **extra):
        from people.models import UserType

        user = User.objects.create_user(
            phone or f"2782{next(counter):07d}",
            first_name=first_name,
            last_name=last_name or user_type.title(),
            user_type=user_type,
            **extra,
        )
        if user_type == UserType.PASSENGER:
            PassengerProfile.objects.create(user=user)
        return user

    return make


@pytest.fixture
def passenger(make_user):
    return make_user("passenger", first_name="Sarah", last_name="Johnson")


@pytest.fixture
def make_driver(make_user):
    """A driver; with a position it is available there and reporting now."""
    from dispatch import drivers
    from people.models import DriverProfile, VehicleType

    def make(
        lat=None,
        lng=None,
        *,
        verified=True,
        vehicle_type=VehicleType.SEDAN,
        demo=False,
        available=True,
        **extra,
    ):
        user = make_user("driver", **extra)
        DriverProfile.objects.create(
            user=user,
            vehicle_type=vehicle_type,
            vehicle_registration=f"CA {user.pk:03d} GP",
            licence_number=f"L{user.pk}",
            is_verified=verified,
            is_demo=demo,
        )
        drivers.driver_state_for(user)
        if lat is not None:
            drivers.driver_place(driver=user, latitude=lat, longitude=lng)
            if available and verified:
                drivers.driver_set_status(driver=user, status="available")
        return user

    return make


@pytest.fixture
def make_link(db):
    from people.models import CaregiverLink, LinkStatus

    def make(passenger, caregiver, **perms):
        return CaregiverLink.objects.create(
            passenger=passenger, caregiver=caregiver, status=LinkStatus.ACTIVE, **perms
        )

    return make


@pytest.fixture
def dispatcher(make_user):
    from django.contrib.auth.models import Group

    user = make_user("", first_name="Dana", last_name="Dispatcher", is_staff=True)
    user.set_password("pw-for-tests-only")
    user.save()
    user.groups.add(Group.objects.get_or_create(name="Dispatchers")[0])
    return user


def staff_login(client, user):
    """
    Sign `client` in as `user` the whole way, as the password and the
    authenticator code would: a confirmed authenticator, and the session
    marked as verified with it (django_otp.login's session key).
    """
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    client.force_login(user)
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="test", confirmed=True)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return client


def token_for(user) -> str:
    from people.sessions import session_issue

    return session_issue(user=user).access


# --- sockets -------------------------------------------------------------------


@pytest.fixture
async def ws():
    """Open app sockets against the real ASGI stack; all are closed after."""
    from project.asgi import application

    opened: list[WebsocketCommunicator] = []

    async def connect(path, token=None, headers=None, expect_accept=True):
        hdrs = list(headers or [])
        if token:
            hdrs.append((b"authorization", f"Bearer {token}".encode()))
        comm = WebsocketCommunicator(application, path, headers=hdrs)
        connected, code = await comm.connect()
        opened.append(comm)
        if expect_accept:
            assert connected, f"{path} refused with {code}"
            return comm
        return comm, connected, code

    yield connect

    for comm in opened:
        try:
            await comm.disconnect()
        except Exception:
            pass


async def refused(ws, path, token=None) -> tuple[str, int]:
    """
    Open a socket the server refuses (accepted, told why, then closed, so an
    app sees the code): the error's code and the close code.
    """
    comm = await ws(path, token=token)
    error = await comm.receive_json_from()
    closed = await comm.receive_output()
    assert closed["type"] == "websocket.close", closed
    return error["code"], closed["code"]


JHB = (-26.2041, 28.0473)


def find_driver(at=JHB, **extra):
    """A find_driver message with a pickup at `at` and a dropoff nearby."""
    return {
        "type": "find_driver",
        "pickup_latitude": at[0],
        "pickup_longitude": at[1],
        "pickup_address": "12 Main Rd",
        "dropoff_latitude": at[0] + 0.03,
        "dropoff_longitude": at[1] + 0.03,
        "dropoff_address": "Clinic",
        **extra,
    }


def booking_keywords(passenger, ride_id: str, at=JHB, **extra) -> dict:
    """`dispatch.booking.ride_book`'s keywords: a pickup at `at`, a dropoff nearby."""
    return {
        "ride_id": ride_id,
        "passenger": passenger,
        "booked_by": extra.pop("booked_by", passenger),
        "pickup_latitude": at[0],
        "pickup_longitude": at[1],
        "pickup_address": "Pickup",
        "dropoff_latitude": at[0] + 0.05,
        "dropoff_longitude": at[1] + 0.05,
        "dropoff_address": "Dropoff",
        **extra,
    }


def notifications():
    """The notifications, once the notify worker's first step has fanned out every event's."""
    from dispatch.models import Notification
    from dispatch.notify import outbox

    while outbox.fan_out():
        pass
    return Notification.objects


async def db(fn, *args, **kwargs):
    """Run a sync (ORM) call from an async test, as consumers do."""
    from channels.db import database_sync_to_async

    return await database_sync_to_async(fn)(*args, **kwargs)


async def receive_until(comm, wanted_type, limit=10, timeout=3):
    """Read messages until one of `wanted_type`; returns (it, those before)."""
    seen = []
    for _ in range(limit):
        msg = await comm.receive_json_from(timeout=timeout)
        if msg.get("type") == wanted_type:
            return msg, seen
        seen.append(msg)
    raise AssertionError(f"no {wanted_type} in {seen}")
