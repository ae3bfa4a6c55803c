"""The input rules every socket message and REST call is held to (project.common.inbound)."""

from __future__ import annotations

import pytest

from project.common.inbound import MAX_DEPTH, TooDeep, UnstorableText, inbound_check
from tests.conftest import db, token_for
from tests.fuzz.strategies import nested


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ({"notes": "a\x00b"}, "notes"),
        ({"stops": [{"address": "\x00"}]}, "stops.0.address"),
        ({"pick\x00up": 1}, "pick\\x00up"),
        ({"ride_id": "r\ud800"}, "ride_id"),
        ("\x00", "message"),
    ],
)
def test_text_no_database_can_store_is_refused_naming_the_field(value, field):
    with pytest.raises(UnstorableText) as refused:
        inbound_check(value)
    assert refused.value.code == "invalid_request"
    assert list(refused.value.extra["fields"]) == [field]


def test_nesting_is_allowed_to_the_limit_and_refused_past_it():
    inbound_check(eval(nested(MAX_DEPTH, "list")))  # noqa: S307 (our own literal)
    with pytest.raises(TooDeep) as refused:
        inbound_check(eval(nested(MAX_DEPTH + 1, "list")))  # noqa: S307
    assert refused.value.code == "message_too_deep"


def test_any_depth_is_checked_without_recursion():
    value: list = []
    for _ in range(200_000):
        value = [value]
    with pytest.raises(TooDeep):
        inbound_check(value)


def test_ordinary_text_passes():
    inbound_check({"type": "find_driver", "notes": "Ring twice \u00e9\U0001f600", "n": [1, 2.5]})


@pytest.mark.django_db(transaction=True)
async def test_a_deep_message_within_the_size_cap_is_told_so_and_the_socket_stays(ws, passenger):
    """60 KB of nesting: a typed message_too_deep, then the socket answers ping."""
    comm = await ws("/ws/ride/deep-1/", token=await db(token_for, passenger))
    await comm.receive_json_from()
    # About 60 KB each; the deepest is past what the JSON parser itself reads.
    for kind, depth in (("list", 29_000), ("object", 9_000), ("mixed", 14_000)):
        raw = '{"type": "find_driver", "notes": ' + nested(depth, kind) + "}"
        assert 50_000 < len(raw) < 64 * 1024
        await comm.send_to(text_data=raw)
        error = await comm.receive_json_from()
        assert error["code"] == "message_too_deep", error
    await comm.send_json_to({"type": "ping"})
    assert (await comm.receive_json_from())["type"] == "pong"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "text/plain",
        "application/octet-stream",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ],
)
def test_a_rest_body_is_held_to_the_rules_whatever_its_content_type(passenger, content_type):
    """ninja reads any body as JSON, so the rules hold for any Content-Type: nothing is written."""
    from django.test import Client

    from people.models import CaregiverLink

    client = Client(headers={"Authorization": f"Bearer {token_for(passenger)}"})
    raw = '{"caregiver_phone": "0821239003", "notes": "x\\u0000y"}'
    response = client.post("/api/caregivers/", raw, content_type=content_type)
    assert response.status_code == 400
    assert response.json()["fields"] == {"notes": response.json()["fields"]["notes"]}
    assert not CaregiverLink.objects.exists()
