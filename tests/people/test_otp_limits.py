"""What sign-in codes may cost: caps per phone, per client, and on all SMS."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from channels.testing import HttpCommunicator
from django.conf import settings as django_settings
from django.test import Client

from people import signin, sms
from people.models import PhoneOTPDevice
from tests.people.conftest import PHONE

pytestmark = pytest.mark.django_db

CLIENT = "41.0.0.7"


def phones(n: int, start: int = 0) -> list[str]:
    """Different South African mobile numbers."""
    return [f"2783{i:07d}" for i in range(start, start + n)]


def send_otp(phone: str, client: str = CLIENT):
    return Client().post(
        "/api/auth/send-otp/",
        {"phone_number": phone},
        content_type="application/json",
        REMOTE_ADDR=client,
    )


# --- per phone -------------------------------------------------------------------


def test_a_phone_gets_at_most_five_codes_an_hour(clock):
    """The sixth code within an hour is refused with otp_limit and the wait."""
    for _ in range(5):
        signin.otp_send(phone_number=PHONE)
        clock.advance(seconds=31)  # past the cooldown
    with pytest.raises(signin.OtpLimit) as info:
        signin.otp_send(phone_number=PHONE)
    assert "5 codes in the last hour" in str(info.value)
    wait = info.value.extra["retry_after"]
    assert 3600 - 5 * 31 <= wait <= 3600 + 300 - 5 * 31
    clock.advance(seconds=wait)
    signin.otp_send(phone_number=PHONE)


def test_a_phone_gets_at_most_ten_codes_a_day(clock):
    """Five an hour, ten a day: the eleventh waits for the first to be a day old."""
    for _ in range(2):
        for _ in range(5):
            signin.otp_send(phone_number=PHONE)
            clock.advance(seconds=31)
        clock.advance(hours=1, minutes=10)
    with pytest.raises(signin.OtpLimit) as info:
        signin.otp_send(phone_number=PHONE)
    assert "10 codes today" in str(info.value)
    assert info.value.extra["retry_after"] > 20 * 3600


def test_a_code_refused_by_a_cap_is_not_stored_or_sent(clock, caplog):
    """Over a cap the pending code stays as it was and no SMS goes out."""
    for _ in range(5):
        signin.otp_send(phone_number=PHONE)
        clock.advance(seconds=31)
    pending = PhoneOTPDevice.objects.get().token
    caplog.clear()
    with pytest.raises(signin.OtpLimit):
        signin.otp_send(phone_number=PHONE)
    assert PhoneOTPDevice.objects.get().token == pending
    assert "SMS to" not in caplog.text


# --- per client ------------------------------------------------------------------


def test_one_client_gets_codes_for_at_most_ten_phones_an_hour(sms_portal, settings):
    """Thirty numbers in a burst from one client: ten texted, twenty refused with 429."""
    settings.SMS_BACKEND = "smsportal"
    answers = [send_otp(phone) for phone in phones(30)]
    assert [a.status_code for a in answers] == [200] * 10 + [429] * 20
    refused = answers[10]
    body = refused.json()
    assert body["code"] == "client_limit"
    assert 3000 < body["retry_after"] <= 3900
    assert refused["Retry-After"] == str(body["retry_after"])
    assert len(sms_portal.requests) == 10
    assert PhoneOTPDevice.objects.count() == 10


def test_asking_again_for_the_same_phone_is_not_another_phone(clock):
    """A client that asks twice for one phone has used one of its ten."""
    for _ in range(3):
        assert send_otp(PHONE).status_code == 200
        clock.advance(seconds=31)
    statuses = [send_otp(phone).status_code for phone in phones(9)]
    assert statuses == [200] * 9
    assert send_otp(phones(1, start=100)[0]).json()["code"] == "client_limit"


def test_other_clients_are_not_held_back():
    """One client's burst leaves the next client its own ten phones."""
    for phone in phones(11):
        send_otp(phone)
    assert send_otp(phones(1, start=50)[0], client="41.0.0.8").status_code == 200


def test_an_ipv6_client_is_one_client_across_its_64():
    """Changing the last 64 bits of an IPv6 address does not buy more phones."""
    statuses = [
        send_otp(phone, client=f"2001:db8:7:7::{i + 1:x}").status_code
        for i, phone in enumerate(phones(11))
    ]
    assert statuses == [200] * 10 + [429]


# --- all SMS ---------------------------------------------------------------------


def test_every_client_shares_the_sms_ceiling(settings):
    """Past SMS_MAX_PER_MINUTE texts a minute, everyone gets sms_busy."""
    settings.SMS_MAX_PER_MINUTE = 3
    answers = [send_otp(phone, client=f"41.0.1.{i}") for i, phone in enumerate(phones(4))]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    body = answers[-1].json()
    assert body["code"] == "sms_busy"
    assert 1 <= body["retry_after"] <= 65
    assert answers[-1]["Retry-After"] == str(body["retry_after"])


def test_other_senders_count_against_the_same_ceiling(settings):
    """Texts counted by sms_ceiling_take leave less room for codes, and the reverse."""
    settings.SMS_MAX_PER_MINUTE = 3
    sms.sms_ceiling_take()
    sms.sms_ceiling_take()
    signin.otp_send(phone_number=PHONE)
    with pytest.raises(sms.SmsBusy) as info:
        sms.sms_ceiling_take()
    assert info.value.status == 429 and info.value.extra["retry_after"] >= 1


def test_a_code_refused_by_the_ceiling_costs_the_phone_nothing(settings, clock):
    """All or nothing: a refusal by the ceiling leaves the phone's hour untouched."""
    settings.SMS_MAX_PER_MINUTE = 0
    for _ in range(10):
        with pytest.raises(sms.SmsBusy):
            signin.otp_send(phone_number=PHONE)
    settings.SMS_MAX_PER_MINUTE = 30
    for _ in range(5):
        signin.otp_send(phone_number=PHONE)
        clock.advance(seconds=31)


# --- behind the proxy, through the real ASGI stack -------------------------------


async def send_through_nginx(phone: str, forwarded_for: str, peer: str = "127.0.0.1"):
    from project.asgi import application

    comm = HttpCommunicator(
        application,
        "POST",
        "/api/auth/send-otp/",
        body=json.dumps({"phone_number": phone}).encode(),
        headers=[
            (b"host", b"localhost"),
            (b"content-type", b"application/json"),
            (b"x-forwarded-for", forwarded_for.encode()),
        ],
    )
    comm.scope["client"] = [peer, 40000]
    response = await comm.get_response(timeout=10)
    return response["status"]


@pytest.mark.django_db(transaction=True)
async def test_clients_behind_the_proxy_are_told_apart_and_cannot_pretend(settings):
    """Behind a trusted proxy each client has its own ten; a made-up hop buys nothing."""
    settings.TRUSTED_PROXIES = ["127.0.0.1"]
    statuses = [
        await send_through_nginx(phone, f"10.9.9.{i}, {CLIENT}")
        for i, phone in enumerate(phones(11))
    ]
    assert statuses == [200] * 10 + [429]
    assert await send_through_nginx(phones(1, start=60)[0], "41.0.0.8") == 200
    # Straight to the worker, a forwarded header is the client's own claim.
    assert await send_through_nginx(phones(1, start=61)[0], "41.0.0.9", peer=CLIENT) == 429


# --- shared by every worker ------------------------------------------------------

OTHER_WORKER = """
import django
django.setup()
from people.signin import otp_send_claims
from project.common.limits import caps_take
refusal = caps_take(otp_send_claims(phone="27839999999", client="41.0.0.7"))
print(refusal.cap.name if refusal else "room")
"""


@pytest.mark.redis
def test_caps_are_shared_with_other_workers_through_redis(settings):
    """Counts one worker made in Redis hold another worker (process) back."""
    assert django_settings.CACHES["default"]["BACKEND"].endswith("RedisCache")
    for phone in phones(10):
        assert send_otp(phone).status_code == 200
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="project.settings",
        CACHE_KEY_PREFIX=settings.CACHE_KEY_PREFIX,
        REDIS_URL=django_settings.REDIS_URL,
    )
    done = subprocess.run(
        [sys.executable, "-c", OTHER_WORKER],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.strip() == "otp.client.hour", done.stderr[-2000:]
