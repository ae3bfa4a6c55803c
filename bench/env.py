"""
The benchmark's world: its own PostgreSQL database and Redis database, the
people in them, and worker processes started as in production
(deploy.cluster's Daphne command line).
"""

from __future__ import annotations

import os
import random
import resource
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_DATABASE_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/cc_bench"
)
BENCH_REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")
LOG_DIR = Path(os.environ.get("BENCH_LOG_DIR", "/tmp/cc-bench"))
# Johannesburg: everyone within a 0.3-degree box (about 33 x 30 km).
CENTRE = (-26.15, 28.05)
SPAN = 0.3


BENCH_KEY = secrets.token_urlsafe(64)


def base_env(**overrides: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "DATABASE_URL": BENCH_DATABASE_URL,
        "REDIS_URL": BENCH_REDIS_URL,
        "LOCATION_STORE": "redis",
        "DEBUG": "0",
        # A fresh random key per run: DEBUG is off, so a placeholder is refused.
        "SECRET_KEY": BENCH_KEY,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "ACCESS_TOKEN_TTL_S": "86400",
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
        # Every client of the benchmark connects from this one address.
        "WS_MAX_SOCKETS_PER_IP": "1000000",
    }
    env.update(overrides)
    return env


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def setup_django() -> None:
    os.environ.update(base_env())
    import django

    django.setup()


def recreate_database() -> None:
    """A fresh cc_bench database, migrated."""
    import psycopg

    name = BENCH_DATABASE_URL.rsplit("/", 1)[1]
    admin = BENCH_DATABASE_URL.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [name]
        )
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=base_env(),
        check=True,
    )


def flush_redis() -> None:
    import redis

    redis.Redis.from_url(BENCH_REDIS_URL).flushdb()


@dataclass
class Person:
    pk: int
    token: str
    lat: float = 0.0
    lng: float = 0.0


@dataclass
class Cast:
    drivers: list[Person] = field(default_factory=list)
    passengers: list[Person] = field(default_factory=list)
    # A signed-in dispatcher's session cookie, for real console sockets.
    console_cookie: str = ""


def random_point(rng: random.Random) -> tuple[float, float]:
    return (
        CENTRE[0] + rng.uniform(-SPAN / 2, SPAN / 2),
        CENTRE[1] + rng.uniform(-SPAN / 2, SPAN / 2),
    )


def seed(n_drivers: int, n_passengers: int, seed_value: int = 1) -> Cast:
    """Verified, available drivers and passengers with API sessions, in bulk."""
    from django.utils import timezone

    from dispatch.models import DriverState, DriverStatus
    from people import tokens
    from people.models import (
        ApiSession,
        DriverProfile,
        PassengerProfile,
        User,
        UserType,
        VehicleType,
    )

    rng = random.Random(seed_value)
    now = timezone.now()

    def users(kind: str, n: int, prefix: str) -> list:
        made = User.objects.bulk_create(
            [
                User(
                    phone_number=f"{prefix}{i:08d}",
                    first_name="Bench",
                    last_name=f"{kind} {i}",
                    user_type=kind,
                    password="!",
                )
                for i in range(n)
            ],
            batch_size=2000,
        )
        sessions = ApiSession.objects.bulk_create(
            [
                ApiSession(
                    user=u,
                    refresh_hash=secrets.token_hex(32),
                    user_agent="bench",
                    expires_at=now + timedelta(days=2),
                )
                for u in made
            ],
            batch_size=2000,
        )
        return [
            (u, tokens.access_token_make(session=s)) for u, s in zip(made, sessions, strict=True)
        ]

    cast = Cast()
    for user, token in users(UserType.DRIVER, n_drivers, "2761"):
        lat, lng = random_point(rng)
        cast.drivers.append(Person(user.pk, token, lat, lng))
    DriverProfile.objects.bulk_create(
        [
            DriverProfile(
                user_id=d.pk,
                vehicle_type=VehicleType.SEDAN,
                vehicle_registration=f"BE {d.pk} GP",
                licence_number=f"B{d.pk}",
                is_verified=True,
            )
            for d in cast.drivers
        ],
        batch_size=2000,
    )
    DriverState.objects.bulk_create(
        [
            DriverState(
                driver_id=d.pk,
                status=DriverStatus.AVAILABLE,
                latitude=d.lat,
                longitude=d.lng,
                location_updated_at=now,
                last_seen_at=now,
            )
            for d in cast.drivers
        ],
        batch_size=2000,
    )
    for user, token in users(UserType.PASSENGER, n_passengers, "2762"):
        lat, lng = random_point(rng)
        cast.passengers.append(Person(user.pk, token, lat, lng))
    PassengerProfile.objects.bulk_create(
        [PassengerProfile(user_id=p.pk) for p in cast.passengers], batch_size=2000
    )
    cast.console_cookie = _dispatcher_cookie()
    return cast


def _dispatcher_cookie() -> str:
    """
    A dispatcher signed in through a real Django session (the console's way):
    the password, then the code of their confirmed authenticator (without it
    the console socket closes with 4403: people.access.passed_second_factor).
    """
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.auth.models import Group
    from django.contrib.sessions.backends.db import SessionStore
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from people.models import User, UserType

    user = User.objects.create(
        phone_number="27630000000",
        first_name="Bench",
        last_name="Dispatcher",
        user_type=UserType.PASSENGER,
        is_staff=True,
        password="!",
    )
    user.groups.add(Group.objects.get_or_create(name="Dispatchers")[0])
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    device = TOTPDevice.objects.create(user=user, name="bench", confirmed=True)
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.create()
    return f"{settings.SESSION_COOKIE_NAME}={session.session_key}"


def reset_rides() -> None:
    """No rides, every driver available again, no positions, no groups."""
    from django.db import connection

    from dispatch.models import DriverState, DriverStatus, Ride, RideEvent, RideOffer

    RideEvent.objects.all().delete()
    RideOffer.objects.all().delete()
    Ride.objects.all().delete()
    DriverState.objects.update(status=DriverStatus.AVAILABLE)
    connection.close()
    vacuum_analyze()
    flush_redis()


def vacuum_analyze() -> None:
    """
    Statistics and no dead rows, as autovacuum keeps a production database:
    bulk loads and the resets above otherwise leave the planner with stale
    estimates and a bloated status index (measured: 3 ms instead of 0.1 ms
    for the candidates query).
    """
    import psycopg

    with psycopg.connect(BENCH_DATABASE_URL, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


def place_drivers(drivers: list[Person]) -> None:
    """Put drivers into the shared location store as reporting now."""
    import json

    import redis

    from dispatch.locations import RedisLocationStore

    r = redis.Redis.from_url(BENCH_REDIS_URL)
    pipe = r.pipeline(transaction=False)
    now = time.time()
    for d in drivers:
        pipe.geoadd(RedisLocationStore.GEO_KEY, [d.lng, d.lat, d.pk])
        pipe.hset(RedisLocationStore.META_KEY, d.pk, json.dumps([d.lat, d.lng, now, None, None]))
    pipe.set(RedisLocationStore.WARM_KEY, "1")
    pipe.execute()


# --- worker processes ----------------------------------------------------------


@dataclass
class Workers:
    ports: list[int]
    procs: list[subprocess.Popen]
    logs: list[Path]
    env: dict[str, str]

    def rss_mb(self) -> list[float]:
        return [rss_mb(p.pid) for p in self.procs]

    def _lines(self, wanted) -> list[str]:
        found = []
        for log in self.logs:
            text = log.read_text(errors="replace") if log.exists() else ""
            found += [f"{log.name}: {line[:200]}" for line in text.splitlines() if wanted(line)]
        return found

    def crashes(self) -> list[str]:
        """Consumers that raised: Daphne's 'Exception inside application'."""
        return self._lines(lambda line: "Exception inside application" in line)

    def errors(self) -> list[str]:
        """Every other ERROR line (e.g. channels-redis cleaning up a channel)."""
        return self._lines(
            lambda line: " ERROR " in line and "Exception inside application" not in line
        )

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.procs)

    def stop(self) -> None:
        from deploy.cluster import stop_all

        stop_all(self.procs, 15)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def port_free(port: int) -> None:
    """
    Refuse a port something already listens on: a worker left over from an
    interrupted run would answer the health check, and the figures would be
    that stale server's.
    """
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            raise RuntimeError(
                f"port {port} is taken (a server left from another run?): stop it, "
                "or set BENCH_BASE_PORT"
            )


def start_workers(n: int, base_port: int, tag: str, **env_overrides: str) -> Workers:
    from deploy.cluster import start_worker, wait_healthy

    LOG_DIR.mkdir(parents=True, exist_ok=True)
    env = base_env(**env_overrides)
    ports = [base_port + i for i in range(n)]
    for port in ports:
        port_free(port)
    logs = [LOG_DIR / f"{tag}-{port}.log" for port in ports]
    for log in logs:
        log.write_text("")
    procs = [start_worker(port, env, log) for port, log in zip(ports, logs, strict=True)]
    workers = Workers(ports, procs, logs, env)
    for port, log in zip(ports, logs, strict=True):
        if wait_healthy(port, timeout_s=60) is None:
            workers.stop()
            raise RuntimeError(f"worker :{port} did not come up:\n{log.read_text()[-3000:]}")
    return workers
