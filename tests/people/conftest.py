"""
Fixtures for the people tests: a movable clock, users, and a stand-in SMS
Portal that speaks both of its protocols over real HTTP on 127.0.0.1.
"""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core import signing
from django.utils import timezone

from people import sms
from people.models import DriverProfile, PassengerProfile, PhoneOTPDevice, User, UserType

PHONE = "27821234567"
FAKE_USERNAME = "test-user"
FAKE_PASSWORD = "test-pass"


@pytest.fixture(autouse=True)
def _sign_in_settings(settings):
    settings.SMS_BACKEND = "console"
    settings.SMS_PORTAL_USERNAME = ""
    settings.SMS_PORTAL_PASSWORD = ""
    settings.OTP_VALID_MINUTES = 5
    settings.OTP_MAX_ATTEMPTS = 5
    settings.OTP_RESEND_COOLDOWN_S = 30
    settings.OTP_MAX_PER_PHONE_HOUR = 5
    settings.OTP_MAX_PER_PHONE_DAY = 10
    settings.OTP_MAX_PHONES_PER_CLIENT_HOUR = 10
    settings.SMS_MAX_PER_MINUTE = 30
    settings.PHONE_ALLOWED_REGIONS = ["ZA"]
    settings.TRUSTED_PROXIES = []
    sms.sms_token_cache_clear()
    yield
    sms.sms_token_cache_clear()


class Clock:
    """Stands in for django.utils.timezone.now; moves only when told."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock(monkeypatch) -> Clock:
    c = Clock(timezone.now())
    monkeypatch.setattr(timezone, "now", c)
    return c


class SigningClock:
    """Stands in for the time module inside django.core.signing."""

    def __init__(self) -> None:
        self.offset = 0.0

    def time(self) -> float:
        import time

        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@pytest.fixture
def signing_clock(monkeypatch) -> SigningClock:
    c = SigningClock()
    monkeypatch.setattr(signing, "time", c)
    return c


@pytest.fixture
def make_account(db):
    def make(phone: str = PHONE, user_type: str = UserType.PASSENGER, **extra) -> User:
        extra.setdefault("first_name", "Thandi")
        extra.setdefault("last_name", "Mokoena")
        user = User.objects.create_user(phone, user_type=user_type, **extra)
        if user_type == UserType.DRIVER:
            DriverProfile.objects.create(
                user=user, vehicle_registration="CA 123-456", licence_number="L1"
            )
        elif user_type == UserType.PASSENGER:
            PassengerProfile.objects.create(user=user)
        return user

    return make


def pending_code(phone: str = PHONE) -> str:
    """The code the last otp_send stored for the phone."""
    token = PhoneOTPDevice.objects.get(phone_number=phone).token
    assert token is not None, "no code pending"
    return token


def wrong_code(phone: str = PHONE) -> str:
    code = PhoneOTPDevice.objects.get(phone_number=phone).token or "000000"
    return f"{(int(code) + 1) % 1_000_000:06d}"


# --- the stand-in SMS Portal --------------------------------------------------


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    @property
    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode()).items()}

    @property
    def json(self):
        return json.loads(self.body)


@dataclass
class PortalState:
    requests: list[Received] = field(default_factory=list)
    # Legacy API.
    legacy_status: int = 200
    legacy_reply: bytes = (
        b"<api_result><send_info><eventid>1234</eventid></send_info>"
        b"<call_result><result>True</result><error /></call_result></api_result>"
    )
    # REST API.
    expires_in_minutes: float = 1440
    issued: list[str] = field(default_factory=list)
    live_tokens: set[str] = field(default_factory=set)
    accept_new_tokens: bool = True
    # Raw bodies, when set, answered instead of the JSON above (a broken
    # or hostile portal, or a proxy's page in its place).
    auth_raw: bytes | None = None
    bulk_raw: bytes | None = None
    bulk_status: int = 200
    bulk_reply: dict = field(
        default_factory=lambda: {
            "cost": 1,
            "remainingBalance": 99,
            "eventId": 42,
            "messages": 1,
            "parts": 1,
            "errorReport": {"noNetwork": 0, "noContacts": 0, "faults": []},
        }
    )

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]

    def expire_all_tokens(self) -> None:
        """SMS Portal forgets every token it issued (as after a restart)."""
        self.live_tokens.clear()


class _Handler(BaseHTTPRequestHandler):
    state: PortalState

    def log_message(self, format, *args):  # noqa: A002 - keep test output quiet
        pass

    def _record(self) -> Received:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        received = Received(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=self.rfile.read(length) if length else b"",
        )
        self.state.requests.append(received)
        return received

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, data) -> None:
        self._send(status, json.dumps(data).encode(), "application/json")

    def do_GET(self):
        received = self._record()
        if received.path == "/v1/Authentication":
            return self._authenticate(received)
        return self._legacy(received)

    def do_POST(self):
        received = self._record()
        if received.path == "/v1/BulkMessages":
            return self._bulk(received)
        return self._legacy(received)

    def _legacy(self, received: Received):
        if received.path != "/api5/http5.aspx":
            return self._send(404, b"not found", "text/plain")
        self._send(self.state.legacy_status, self.state.legacy_reply, "text/xml")

    def _authenticate(self, received: Received):
        expected = base64.b64encode(f"{FAKE_USERNAME}:{FAKE_PASSWORD}".encode()).decode()
        if received.headers.get("authorization") != f"Basic {expected}":
            return self._json(401, {"errorMessage": "Invalid credentials"})
        token = f"tok-{len(self.state.issued) + 1}"
        self.state.issued.append(token)
        if self.state.accept_new_tokens:
            self.state.live_tokens.add(token)
        if self.state.auth_raw is not None:
            return self._send(200, self.state.auth_raw, "application/json")
        self._json(
            200,
            {
                "token": token,
                "schema": "JWT",
                "expiresInMinutes": self.state.expires_in_minutes,
            },
        )

    def _bulk(self, received: Received):
        auth = received.headers.get("authorization", "")
        token = auth.removeprefix("Bearer ")
        if not auth.startswith("Bearer ") or token not in self.state.live_tokens:
            return self._json(401, {"errorMessage": "Token expired"})
        if self.state.bulk_raw is not None:
            return self._send(self.state.bulk_status, self.state.bulk_raw, "application/json")
        self._json(self.state.bulk_status, self.state.bulk_reply)


@pytest.fixture
def sms_portal(settings):
    """
    A local SMS Portal, with settings pointing both portal backends at it and
    fake credentials. Yields its PortalState.
    """
    state = PortalState()
    handler = type("Handler", (_Handler,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    settings.SMS_PORTAL_ENDPOINT = f"{base}/api5/http5.aspx"
    settings.SMS_PORTAL_REST_URL = f"{base}/v1"
    settings.SMS_PORTAL_USERNAME = FAKE_USERNAME
    settings.SMS_PORTAL_PASSWORD = FAKE_PASSWORD
    settings.SMS_TIMEOUT_S = 5
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
