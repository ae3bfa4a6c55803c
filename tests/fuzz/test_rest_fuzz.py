"""
Every REST operation (read from the API's OpenAPI schema) and the pages
beside it under generated hostile calls, in process (Django's test client),
on SQLite and on PostgreSQL: no 5xx, never `internal_error`, every refusal
in the API's error envelope, nothing written, nothing logged at ERROR.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest
from django.test import Client
from hypothesis import given

from people.models import CaregiverLink
from tests.fuzz.conftest import BATCH, DATABASES, SENT, batches, database_state, fuzz, on_database
from tests.fuzz.rest_strategies import Call, calls, endpoints

pytestmark = pytest.mark.django_db(transaction=True)

QUOTA = 3000


def send(client: Client, call: Call, tokens: dict[str, str]):
    headers = {}
    if call.token in tokens:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {tokens[call.token]}"
    elif call.token != "none":
        headers["HTTP_AUTHORIZATION"] = f"Bearer {call.token}"
    return client.generic(
        call.endpoint.method,
        call.path,
        data=call.body,
        content_type=call.content_type,
        QUERY_STRING=call.query,
        **headers,
    )


def check(call: Call, response) -> str:
    """The response is a refusal (or, for a read, an answer), never a server error."""
    assert response.status_code < 500, (call, response.status_code, response.content[:500])
    if response.status_code < 400:
        assert not call.endpoint.writes, (call, response.status_code, response.content[:300])
        return "ok"
    if not call.path.startswith("/api/"):
        return str(response.status_code)
    body = json.loads(response.content)
    assert isinstance(body, dict) and isinstance(body.get("code"), str), (call, body)
    assert body["code"] != "internal_error", (call, body)
    return body["code"]


@pytest.mark.parametrize("database", DATABASES)
def test_every_fuzzed_call_is_refused_and_writes_nothing(world, make_user, make_link, database):
    on_database(database)
    strangers = make_link(make_user("passenger"), make_user("caregiver"))
    not_theirs = (("ride_id", (world.others_ride_id,)), ("link_id", (str(strangers.pk),)))
    assert CaregiverLink.objects.count() == 2
    before = database_state()
    client = Client(raise_request_exception=True)
    key = ("rest", database)
    codes: Counter[str] = Counter()
    reached: Counter[tuple[str, str]] = Counter()

    @fuzz(QUOTA // BATCH)
    @given(batch=batches(calls(not_theirs)))
    def some(batch: list[Call]) -> None:
        for call in batch:
            response = send(client, call, world.tokens)
            SENT[key] += 1
            codes[check(call, response)] += 1
            reached[(call.endpoint.method, call.endpoint.template)] += 1

    some()
    assert SENT[key] >= QUOTA
    assert database_state() == before
    # Every operation was called, each many times.
    every = {(e.method, e.template) for e in endpoints()}
    assert every == set(reached), every - set(reached)
    assert min(reached.values()) >= 15, reached
    assert {"invalid_request", "invalid_json", "message_too_deep"} <= set(codes), codes


@pytest.mark.parametrize("database", DATABASES)
def test_a_body_over_the_upload_cap_is_refused_with_413(world, settings, database):
    """Not a SuspiciousOperation logged at ERROR: a typed 413, on every operation."""
    on_database(database)
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    before = database_state()
    client = Client(raise_request_exception=True)
    body = json.dumps({"notes": "x" * 20_000}).encode()
    for endpoint in endpoints():
        if not endpoint.operation:
            continue
        path = endpoint.template
        for name, _ in endpoint.path_params:
            path = path.replace("{" + name + "}", "1")
        response = client.generic(
            endpoint.method,
            path,
            data=body,
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {world.tokens['passenger']}",
        )
        assert response.status_code == 413, (endpoint, response.content[:300])
        assert response.json()["code"] == "request_too_large"
    assert database_state() == before
