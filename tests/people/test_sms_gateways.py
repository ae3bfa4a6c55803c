"""The SMS gateways, run against a stand-in SMS Portal over real HTTP."""

from __future__ import annotations

import base64
import logging
import socket

import pytest

from people import sms
from people.sms import SMSDeliveryError, sms_send
from tests.people.conftest import FAKE_PASSWORD, FAKE_USERNAME, PHONE

MESSAGE = "123456 is your Care Connect code."


@pytest.fixture
def legacy(settings, sms_portal):
    settings.SMS_BACKEND = "smsportal"
    return sms_portal


@pytest.fixture
def rest(settings, sms_portal):
    settings.SMS_BACKEND = "smsportal-rest"
    return sms_portal


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


# --- backend choice and console ----------------------------------------------


@pytest.mark.parametrize("phone", ["19005550123", "27123456789", "447911123456"])
def test_numbers_that_may_not_be_texted_never_reach_the_gateway(legacy, phone):
    """A premium, landline or foreign number is refused before SMS Portal is asked."""
    with pytest.raises(SMSDeliveryError, match="not a mobile number"):
        sms_send(phone_number=phone, message=MESSAGE)
    assert legacy.requests == []


def test_backend_is_read_when_sending_not_at_import(settings, legacy):
    """Changing SMS_BACKEND takes effect on the next send."""
    settings.SMS_BACKEND = "console"
    sms_send(phone_number=PHONE, message=MESSAGE)
    assert legacy.requests == []
    settings.SMS_BACKEND = "smsportal"
    sms_send(phone_number=PHONE, message=MESSAGE)
    assert len(legacy.requests) == 1


def test_unknown_backend_fails_clearly(settings):
    """An unknown SMS_BACKEND is a delivery failure naming the choices."""
    settings.SMS_BACKEND = "carrier-pigeon"
    with pytest.raises(SMSDeliveryError, match="carrier-pigeon.*console"):
        sms_send(phone_number=PHONE, message=MESSAGE)


def test_console_backend_logs_the_message(caplog):
    """The console backend writes the whole message, code included, to the log."""
    with caplog.at_level(logging.INFO, logger="people.sms"):
        sms_send(phone_number=PHONE, message=MESSAGE)
    assert MESSAGE in caplog.text
    assert PHONE in caplog.text


# --- smsportal: the legacy HTTP API ------------------------------------------


def test_legacy_sends_the_documented_parameters(legacy):
    """The legacy API gets Type, username, password, numto and data1."""
    sms_send(phone_number="+27 82 123 4567", message=MESSAGE)
    [received] = legacy.requests
    assert received.method == "POST"
    assert received.path == "/api5/http5.aspx"
    assert received.form == {
        "Type": "sendparam",
        "username": FAKE_USERNAME,
        "password": FAKE_PASSWORD,
        "numto": PHONE,
        "data1": MESSAGE,
    }
    # The password travels in the body, never in the URL.
    assert received.query == {}


def test_legacy_result_false_fails_with_portal_error(legacy):
    """result False fails, carrying SMS Portal's error text."""
    legacy.legacy_reply = (
        b"<api_result><call_result><result>False</result>"
        b"<error>Insufficient credits</error></call_result></api_result>"
    )
    with pytest.raises(SMSDeliveryError, match="Insufficient credits"):
        sms_send(phone_number=PHONE, message=MESSAGE)


@pytest.mark.parametrize(
    "reply",
    [
        b"this is not xml",
        b"<html><body>Gateway error</body></html>",
        b"<api_result><call_result><error /></call_result></api_result>",
        b"",
        b'<?xml version="1.0" encoding="shift_jis"?><html>Gateway error</html>',
        b'<?xml version="1.0" encoding="utf-32"?><api_result/>',
        b'<?xml version="1.0" encoding="base64"?><api_result/>',
    ],
    ids=["garbage", "html", "no-result", "empty", "multi-byte", "utf-32", "not-a-text-codec"],
)
def test_legacy_unreadable_reply_fails(legacy, reply):
    """Anything other than result True is a failure."""
    legacy.legacy_reply = reply
    with pytest.raises(SMSDeliveryError):
        sms_send(phone_number=PHONE, message=MESSAGE)


def test_legacy_reply_with_entities_is_refused_unparsed(legacy):
    """A reply with a DTD is refused rather than expanded."""
    legacy.legacy_reply = (
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY t "True">]>'
        b"<api_result><call_result><result>&t;</result></call_result></api_result>"
    )
    with pytest.raises(SMSDeliveryError, match="DTD"):
        sms_send(phone_number=PHONE, message=MESSAGE)


def test_legacy_http_error_fails(legacy):
    """An HTTP error status is a failure naming the status."""
    legacy.legacy_status = 503
    with pytest.raises(SMSDeliveryError, match="503"):
        sms_send(phone_number=PHONE, message=MESSAGE)


@pytest.mark.parametrize("backend", ["smsportal", "smsportal-rest"])
def test_portal_without_credentials_fails_before_calling_out(settings, sms_portal, backend):
    """Missing credentials fail with a message naming the settings."""
    settings.SMS_BACKEND = backend
    settings.SMS_PORTAL_PASSWORD = ""
    with pytest.raises(SMSDeliveryError, match="SMS_PORTAL_USERNAME"):
        sms_send(phone_number=PHONE, message=MESSAGE)
    assert sms_portal.requests == []


@pytest.mark.parametrize("backend", ["smsportal", "smsportal-rest"])
def test_portal_connection_refused_fails(settings, backend):
    """A gateway that cannot be reached is a failure."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings.SMS_BACKEND = backend
    settings.SMS_PORTAL_USERNAME = FAKE_USERNAME
    settings.SMS_PORTAL_PASSWORD = FAKE_PASSWORD
    settings.SMS_PORTAL_ENDPOINT = f"http://127.0.0.1:{port}/api5/http5.aspx"
    settings.SMS_PORTAL_REST_URL = f"http://127.0.0.1:{port}/v1"
    with pytest.raises(SMSDeliveryError, match="connect"):
        sms_send(phone_number=PHONE, message=MESSAGE)


@pytest.mark.parametrize("backend", ["smsportal", "smsportal-rest"])
def test_portal_that_never_answers_times_out(settings, backend):
    """A gateway that accepts the connection but never replies times out."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        settings.SMS_BACKEND = backend
        settings.SMS_PORTAL_USERNAME = FAKE_USERNAME
        settings.SMS_PORTAL_PASSWORD = FAKE_PASSWORD
        settings.SMS_PORTAL_ENDPOINT = f"http://127.0.0.1:{port}/api5/http5.aspx"
        settings.SMS_PORTAL_REST_URL = f"http://127.0.0.1:{port}/v1"
        settings.SMS_TIMEOUT_S = 0.2
        with pytest.raises(SMSDeliveryError, match="in time"):
            sms_send(phone_number=PHONE, message=MESSAGE)


@pytest.mark.parametrize("backend", ["smsportal", "smsportal-rest"])
def test_portal_backends_log_neither_message_nor_credentials(settings, sms_portal, caplog, backend):
    """Outside the console backend, no log line carries the message or password."""
    settings.SMS_BACKEND = backend
    with caplog.at_level(logging.DEBUG):
        sms_send(phone_number=PHONE, message=MESSAGE)
    assert sms_portal.requests, "the stand-in portal was not called"
    assert caplog.records, "nothing was logged at all"
    assert "123456" not in caplog.text
    assert FAKE_PASSWORD not in caplog.text


# --- smsportal-rest: the REST API v1 -----------------------------------------


def test_rest_authenticates_then_posts_bulk_message(rest):
    """Basic auth gets a token; BulkMessages gets it as a bearer and the JSON body."""
    sms_send(phone_number=PHONE, message=MESSAGE)
    auth, bulk = rest.requests
    assert (auth.method, auth.path) == ("GET", "/v1/Authentication")
    assert auth.headers["authorization"] == basic(FAKE_USERNAME, FAKE_PASSWORD)
    assert (bulk.method, bulk.path) == ("POST", "/v1/BulkMessages")
    assert bulk.headers["authorization"] == "Bearer tok-1"
    assert bulk.json == {"Messages": [{"Content": MESSAGE, "Destination": PHONE}]}


def test_rest_reuses_its_token_until_near_expiry(rest, monkeypatch):
    """The token is cached and replaced once its lifetime, less a margin, is up."""
    now = [1000.0]
    monkeypatch.setattr(sms, "_clock", lambda: now[0])
    rest.expires_in_minutes = 10
    sms_send(phone_number=PHONE, message=MESSAGE)
    sms_send(phone_number=PHONE, message=MESSAGE)
    assert rest.paths().count("/v1/Authentication") == 1

    now[0] += 10 * 60 - sms.TOKEN_SAFETY_MARGIN_S - 1
    sms_send(phone_number=PHONE, message=MESSAGE)
    assert rest.paths().count("/v1/Authentication") == 1

    now[0] += 2
    sms_send(phone_number=PHONE, message=MESSAGE)
    assert rest.paths().count("/v1/Authentication") == 2
    assert rest.requests[-1].headers["authorization"] == "Bearer tok-2"


def test_rest_token_shorter_than_the_margin_is_not_cached(rest):
    """A token that would expire within the safety margin is used once only."""
    rest.expires_in_minutes = 1
    sms_send(phone_number=PHONE, message=MESSAGE)
    sms_send(phone_number=PHONE, message=MESSAGE)
    assert rest.paths().count("/v1/Authentication") == 2


def test_rest_token_cache_is_per_base_url_and_username(settings, rest):
    """Another username gets its own token, not the cached one."""
    sms_send(phone_number=PHONE, message=MESSAGE)
    settings.SMS_PORTAL_USERNAME = "other-user"
    with pytest.raises(SMSDeliveryError, match="credentials"):
        sms_send(phone_number=PHONE, message=MESSAGE)
    assert rest.requests[-1].headers["authorization"] == basic("other-user", FAKE_PASSWORD)


def test_rest_401_reauthenticates_once_and_retries(rest):
    """A token the portal no longer honours is replaced once and the send retried."""
    sms_send(phone_number=PHONE, message=MESSAGE)
    rest.expire_all_tokens()
    sms_send(phone_number=PHONE, message=MESSAGE)
    assert rest.paths() == [
        "/v1/Authentication",
        "/v1/BulkMessages",
        "/v1/BulkMessages",
        "/v1/Authentication",
        "/v1/BulkMessages",
    ]
    assert [r.headers.get("authorization") for r in rest.requests[2:]] == [
        "Bearer tok-1",
        basic(FAKE_USERNAME, FAKE_PASSWORD),
        "Bearer tok-2",
    ]


def test_rest_second_401_fails_without_looping(rest):
    """When even a fresh token is refused, the send fails after one retry."""
    rest.accept_new_tokens = False
    with pytest.raises(SMSDeliveryError, match="401"):
        sms_send(phone_number=PHONE, message=MESSAGE)
    assert rest.paths() == [
        "/v1/Authentication",
        "/v1/BulkMessages",
        "/v1/Authentication",
        "/v1/BulkMessages",
    ]
    # The refused token is not kept for the next send.
    rest.accept_new_tokens = True
    sms_send(phone_number=PHONE, message=MESSAGE)
    assert rest.paths()[-2:] == ["/v1/Authentication", "/v1/BulkMessages"]


def test_rest_wrong_credentials_fail(settings, rest):
    """Credentials SMS Portal refuses fail without sending anything."""
    settings.SMS_PORTAL_PASSWORD = "not-the-password"
    with pytest.raises(SMSDeliveryError, match="refused the credentials"):
        sms_send(phone_number=PHONE, message=MESSAGE)
    assert rest.paths() == ["/v1/Authentication"]


def test_rest_server_error_fails_with_its_message(rest):
    """An HTTP error from BulkMessages fails, carrying the portal's message."""
    rest.bulk_status = 400
    rest.bulk_reply = {"errorMessage": "Invalid destination"}
    with pytest.raises(SMSDeliveryError, match="400.*Invalid destination"):
        sms_send(phone_number=PHONE, message=MESSAGE)


def test_rest_destination_fault_fails(rest):
    """A destination listed in errorReport.faults was not sent to: a failure."""
    rest.bulk_reply = {
        "errorReport": {"faults": [{"destination": PHONE, "errorMessage": "Opted out"}]}
    }
    with pytest.raises(SMSDeliveryError, match="Opted out"):
        sms_send(phone_number=PHONE, message=MESSAGE)


# Nested past any parser's depth, yet under MAX_REPLY_BYTES.
DEEP = b"[" * 30_000 + b"]" * 30_000


@pytest.mark.parametrize(
    "reply",
    [
        DEEP,
        b'{"token": ' + DEEP + b"}",
        b"not json",
        b"\xff\xfe\x00garbage",
        b"[]",
        b'"tok-1"',
        b'{"token": 7}',
        b'{"token": ""}',
        b'{"token": "tok-1", "expiresInMinutes": "soon"}',
        b'{"token": "tok-1", "expiresInMinutes": {}}',
        b'{"token": "tok-1", "expiresInMinutes": 1' + b"0" * 400 + b"}",
        b'{"token": "tok-1", "expiresInMinutes": 1e999}',
        b'{"token": "tok-1", "expiresInMinutes": NaN}',
        b'{"token": "' + b"t" * (sms.MAX_REPLY_BYTES * 4) + b'"}',
    ],
    ids=[
        "nested-deep", "token-nested-deep", "garbage", "not-utf8", "a-list", "a-string",
        "token-not-text", "token-empty", "expiry-not-a-number", "expiry-an-object",
        "expiry-too-large-for-a-float", "expiry-infinite", "expiry-nan", "too-large",
    ],
)  # fmt: skip
def test_rest_malformed_authentication_reply_fails_typed(rest, reply):
    """Whatever SMS Portal's sign-in answers, a reply it should not give is a failed SMS."""
    rest.auth_raw = reply
    with pytest.raises(SMSDeliveryError, match="authentication reply"):
        sms_send(phone_number=PHONE, message=MESSAGE)
    assert rest.paths() == ["/v1/Authentication"]


@pytest.mark.parametrize("status", [200, 400])
@pytest.mark.parametrize(
    "reply",
    [DEEP, b'{"errorReport": {"faults": ' + DEEP + b"}}", b"x" * (sms.MAX_REPLY_BYTES * 4)],
    ids=["nested-deep", "faults-nested-deep", "too-large"],
)
def test_rest_malformed_bulk_reply_is_read_as_its_status_says(rest, reply, status):
    """An unreadable BulkMessages reply: its HTTP status alone says whether it was sent."""
    rest.bulk_status, rest.bulk_raw = status, reply
    if status == 200:
        sms_send(phone_number=PHONE, message=MESSAGE)
    else:
        with pytest.raises(SMSDeliveryError, match="HTTP 400"):
            sms_send(phone_number=PHONE, message=MESSAGE)


def test_legacy_reply_too_large_fails(legacy):
    legacy.legacy_reply = b"<api_result>" + b" " * (sms.MAX_REPLY_BYTES * 4) + b"</api_result>"
    with pytest.raises(SMSDeliveryError, match="too large"):
        sms_send(phone_number=PHONE, message=MESSAGE)
