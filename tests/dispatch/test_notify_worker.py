"""
The notify worker killed mid-batch (kill -9 of a real `manage.py notify`)
and started again delivers every pending notification exactly once: a
ride event owing 25 caregivers a text, fanned out by the worker, then sent.

The gateway is a stand-in SMS Portal (its legacy HTTP API) on 127.0.0.1
that accepts a text only when the test lets it: the test lets three
through, then holds the worker inside its fourth send (not accepted) with
the rest of its batch claimed but unsent, and kills it there. On
PostgreSQL the batch is claimed with FOR UPDATE SKIP LOCKED; on SQLite by
the claim column alone.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest
from django.conf import settings

from tests.server import ISOLATED_FROM, ROOT

PENDING = 25
BATCH = 10
ON_POSTGRES = settings.DATABASES["default"]["ENGINE"].endswith("postgresql")

SEED = f"""
from datetime import datetime, time
from django.utils import timezone
from dispatch.models import NoticeDue, Ride
from people.models import CaregiverLink, User
sarah = User.objects.create_user("27821230000", first_name="Sarah", user_type="passenger")
ride = Ride.objects.create(
    ride_id="kill-1", passenger=sarah, booked_by=sarah, status="completed", version=5,
    pickup_latitude=-26.2, pickup_longitude=28.0, dropoff_latitude=-26.1,
    dropoff_longitude=28.1,
)
for i in range({PENDING}):
    family = User.objects.create_user(f"2782124{{i:04d}}", first_name=f"F{{i}}")
    CaregiverLink.objects.create(
        passenger=sarah, caregiver=family, status="active", can_receive_notifications=True
    )
# Dropped off at noon (outside the default quiet hours): one SMS to each, by
# their defaults, once the worker has fanned the event out.
noon = timezone.make_aware(datetime.combine(timezone.localdate(), time(12, 0)))
NoticeDue.objects.create(ride=ride, event="completed", version=5, accepted=True, at=noon)
"""


ACCEPTED = b"<api_result><call_result><result>True</result><error/></call_result></api_result>"


class Gateway:
    """SMS Portal's legacy API, accepting one text per permit; records what it accepted."""

    def __init__(self) -> None:
        self.permits = threading.Semaphore(0)
        self.accepted: list[tuple[str, str]] = []
        self.waiting = 0
        self.refusing = False
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                form = parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
                gateway.waiting += 1
                while not gateway.permits.acquire(timeout=0.05):
                    if gateway.refusing:
                        # Its sender is gone: never accepted, never sent.
                        gateway.waiting -= 1
                        return
                gateway.waiting -= 1
                gateway.accepted.append((form["numto"][0], form["data1"][0]))
                body = ACCEPTED
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api5/http5.aspx"

    def drop_waiting(self) -> None:
        """The texts held when their sender died are dropped, not accepted."""
        self.refusing = True
        wait_for(lambda: self.waiting == 0)
        self.refusing = False

    def close(self) -> None:
        self.refusing = True
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def gateway():
    g = Gateway()
    yield g
    g.close()


@pytest.fixture(params=["postgres" if ON_POSTGRES else "sqlite"])
def worker_env(request, tmp_path, transactional_db, gateway):
    """The environment of `manage.py notify` and the database it delivers from."""
    env = {k: v for k, v in os.environ.items() if k not in ISOLATED_FROM}
    env.update(
        DEBUG="1",
        SECRET_KEY="kill-test-" + "x" * 50,
        SMS_BACKEND="smsportal",
        SMS_PORTAL_ENDPOINT=gateway.url,
        SMS_PORTAL_USERNAME="test-user",
        SMS_PORTAL_PASSWORD="test-pass",
        SMS_TIMEOUT_S="120",
        PHONE_ALLOWED_REGIONS="ZA",
        NOTIFY_BATCH=str(BATCH),
        NOTIFY_CLAIM_S="2",
        NOTIFY_POLL_S="0.2",
        NOTIFY_IN_PROCESS="0",
        SMS_MAX_PER_MINUTE="1000",
    )
    if request.param == "postgres":
        db = settings.DATABASES["default"]
        url = (
            f"postgres://{db['USER']}:{db.get('PASSWORD') or ''}@{db['HOST'] or '127.0.0.1'}:"
            f"{db['PORT'] or 5432}/{db['NAME']}"
        )
        env["DATABASE_URL"] = url
        import psycopg

        def connect():
            return psycopg.connect(url.replace("postgres://", "postgresql://"))
    else:
        path = tmp_path / "worker.sqlite3"
        env["SQLITE_PATH"] = str(path)
        manage(env, "migrate", "--noinput", "--verbosity", "0")

        def connect():
            return sqlite3.connect(path)

    manage(env, "shell", "--no-imports", "-c", SEED)
    return env, connect


def manage(env: dict, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def statuses(connect) -> dict[str, int]:
    with connect() as conn:
        cur = conn.cursor()
        cur.execute("SELECT status, count(*) FROM dispatch_notification GROUP BY status")
        return dict(cur.fetchall())


def wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_worker_killed_mid_batch_loses_nothing_and_sends_nothing_twice(worker_env, gateway):
    env, connect = worker_env
    first = subprocess.Popen(
        [sys.executable, "manage.py", "notify"], cwd=ROOT, env=env, stderr=subprocess.DEVNULL
    )
    try:
        for _ in range(3):
            gateway.permits.release()
        # Three accepted and recorded sent; the worker is inside the fourth
        # send, which the gateway holds, with the rest of its batch claimed.
        wait_for(lambda: statuses(connect).get("sent") == 3 and gateway.waiting == 1)
        assert len(gateway.accepted) == 3
        assert statuses(connect) == {"sent": 3, "pending": PENDING - 3}
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    assert first.returncode == -signal.SIGKILL

    gateway.drop_waiting()
    # Started again, with a gateway that takes everything.
    for _ in range(PENDING):
        gateway.permits.release()
    second = subprocess.Popen(
        [sys.executable, "manage.py", "notify"], cwd=ROOT, env=env, stderr=subprocess.DEVNULL
    )
    try:
        wait_for(lambda: statuses(connect) == {"sent": PENDING})
    finally:
        second.terminate()
        second.wait(10)
    numbers = [number for number, _ in gateway.accepted]
    assert sorted(numbers) == sorted(f"2782124{i:04d}" for i in range(PENDING))
