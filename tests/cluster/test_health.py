"""/healthz: 200 when the database and the channel layer answer, else 503."""

from __future__ import annotations

import json
import logging

import pytest


@pytest.mark.django_db
def test_healthz_answers_ok_when_database_and_channel_layer_answer(client):
    """Both checks pass: 200 with their timings."""
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert {"database_ms", "channel_layer_ms"} <= set(body)
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.django_db
@pytest.mark.logs_errors
def test_healthz_fails_with_the_reason_when_the_channel_layer_is_down(client, monkeypatch):
    """A channel layer that cannot take a message makes the worker unhealthy."""
    from channels.layers import get_channel_layer

    async def refuse(channel, message):
        raise ConnectionError("Redis went away")

    # In memory, or Redis when REDIS_URL is set (the pub/sub layer proxies
    # its methods, so the instance's is replaced).
    monkeypatch.setattr(get_channel_layer(), "send", refuse)
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "fail"
    assert "channel_layer" in body["reason"] and "Redis went away" in body["reason"]


@pytest.mark.django_db
@pytest.mark.logs_errors
def test_healthz_fails_when_the_database_does_not_answer(client, monkeypatch):
    """A database error is reported, not raised."""
    from project import health

    def broken():
        raise RuntimeError("connection refused")

    monkeypatch.setattr(health, "_database", broken)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["reason"].startswith("database: RuntimeError")


def test_healthz_is_get_only(client):
    """Only GET is answered."""
    assert client.post("/healthz").status_code == 405


@pytest.mark.django_db
@pytest.mark.parametrize("host", ["127.0.0.1:8067", "[::1]:8068", "localhost"])
def test_healthz_answers_probes_on_the_machine_under_production_hosts(
    client, settings, caplog, host
):
    """A probe saying Host: 127.0.0.1:8067 gets the health JSON, not 400."""
    settings.DEBUG = False
    settings.ALLOWED_HOSTS = ["care.example.org"]
    with caplog.at_level(logging.WARNING):
        response = client.get("/healthz", HTTP_HOST=host)
    assert response.status_code in (200, 503)
    assert response.json()["status"] in ("ok", "fail")
    assert not [r for r in caplog.records if "DisallowedHost" in r.name + r.getMessage()]


@pytest.mark.django_db
@pytest.mark.logs_errors
def test_other_pages_still_refuse_hosts_outside_allowed_hosts(client, settings):
    """Only /healthz is exempt from ALLOWED_HOSTS."""
    settings.DEBUG = False
    settings.ALLOWED_HOSTS = ["care.example.org"]
    assert client.get("/console/login/", HTTP_HOST="127.0.0.1:8067").status_code == 400
    assert client.get("/console/login/", HTTP_HOST="care.example.org").status_code == 200


@pytest.mark.django_db(transaction=True)
async def test_healthz_answers_through_the_asgi_stack_under_production_hosts(settings):
    """The worker's own path (ASGI, async middleware) answers a loopback probe too."""
    from channels.testing import HttpCommunicator

    from project.asgi import application

    settings.DEBUG = False
    settings.ALLOWED_HOSTS = ["care.example.org"]
    comm = HttpCommunicator(application, "GET", "/healthz", headers=[(b"host", b"127.0.0.1:8067")])
    response = await comm.get_response()
    assert response["status"] == 200
    assert json.loads(response["body"])["status"] == "ok"
