"""
What the browser tests share: the demo's people, app sessions and sockets
signed in as an app does, a booking, and the console's sign-in with its
authenticator code.
"""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from django_otp.oath import TOTP
from websockets.sync.client import connect

DISPATCHER = ("27800000001", "dispatch-demo")
SARAH = "27821234567"
MICHAEL = "27821234568"
CAPE_TOWN = (-33.9249, 18.4241)
STELLENBOSCH = {"latitude": -33.9321, "longitude": 18.8602}


def issue_token(server, phone: str) -> tuple[int, str]:
    """An app session for the user, issued in the server's own database."""
    out = server.shell(
        "import json\n"
        "from people.models import User\n"
        "from people.sessions import session_issue\n"
        f"user = User.objects.get(phone_number='{phone}')\n"
        "print(json.dumps([user.pk, session_issue(user=user).access]))\n"
    )
    user_id, token = json.loads(out.strip().splitlines()[-1])
    return user_id, token


def new_passenger(server, first_name: str) -> str:
    phone = f"2782{uuid.uuid4().int % 10_000_000:07d}"
    server.shell(
        "from people.models import PassengerProfile, User\n"
        f"user = User.objects.create_user('{phone}', first_name='{first_name}',"
        " last_name='Tester', user_type='passenger')\n"
        "PassengerProfile.objects.create(user=user)\n"
    )
    return phone


@contextmanager
def app_socket(server, path: str, token: str) -> Iterator:
    """An app's socket, signed in with its bearer token, closed afterwards."""
    with connect(
        f"{server.ws}{path}",
        additional_headers={"Authorization": f"Bearer {token}"},
        open_timeout=10,
    ) as sock:
        receive_until(sock, "connection_established")
        yield sock


def receive_until(sock, wanted: str, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        message = json.loads(sock.recv(timeout=max(0.1, deadline - time.monotonic())))
        if message.get("type") == wanted:
            return message
        seen.append(message.get("type"))
    raise AssertionError(f"no {wanted} within {timeout} s; got {seen}")


def find_driver(
    sock,
    at=CAPE_TOWN,
    pickup: str = "12 Long Street, Cape Town",
    dropoff: str = "Groote Schuur Hospital",
) -> None:
    """The passenger's find_driver: picked up at `at`, dropped off nearby."""
    sock.send(
        json.dumps(
            {
                "type": "find_driver",
                "pickup_latitude": at[0],
                "pickup_longitude": at[1],
                "pickup_address": pickup,
                "dropoff_latitude": at[0] - 0.02,
                "dropoff_longitude": at[1] + 0.03,
                "dropoff_address": dropoff,
            }
        )
    )


def wait_js(page, expression: str, timeout: float = 10.0) -> None:
    """
    Poll a JavaScript expression until it is true. Playwright's
    wait_for_function evaluates with eval() in the page, which the console's
    script policy forbids (as it should); evaluate() goes through the devtools
    protocol instead.
    """
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout} s: {expression}")
        time.sleep(0.05)


def authenticator_code(server, page, phone: str) -> str:
    """
    What the staff member's authenticator app shows: from the key on the
    enrolment page the first time, then from the key in the server's
    database, one step past the last code used (a code works once, and
    several sign-ins may fall within one 30 s step).
    """
    secret = page.locator("#totp-secret")
    if secret.count():
        key = base64.b32decode(secret.get_attribute("data-totp-secret").replace(" ", ""))
        return f"{TOTP(key).token():06d}"
    out = server.shell(
        "import json\n"
        "from django_otp.plugins.otp_totp.models import TOTPDevice\n"
        f"d = TOTPDevice.objects.get(user__phone_number='{phone}', confirmed=True)\n"
        "print(json.dumps([d.key, d.drift, d.last_t]))\n"
    )
    key_hex, drift, last_t = json.loads(out.strip().splitlines()[-1])
    while True:
        # Now or one step ahead: both stay within the server's tolerance
        # should a step begin between here and its check.
        for ahead in (0, 1):
            totp = TOTP(bytes.fromhex(key_hex), drift=drift + ahead)
            if totp.t() > last_t:
                return f"{totp.token():06d}"
        time.sleep(1)


def sign_in(server, page, phone: str = DISPATCHER[0], password: str = DISPATCHER[1]):
    """The console's sign-in as a person does it: phone, password, then the code."""
    page.goto(f"{server.http}/console/")
    assert "/console/login/" in page.url
    page.fill("input[name=username]", f"+{phone[:2]} {phone[2:4]} {phone[4:7]} {phone[7:]}")
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/console/two-factor/.*"))
    page.fill("input[name=code]", authenticator_code(server, page, phone))
    page.click("#two-factor-form button[type=submit]")
    page.wait_for_url(re.compile(rf"{server.http}/console/(links/)?$"))


def open_board(server, page):
    sign_in(server, page)
    page.wait_for_selector("#live-status[data-state=open]")
