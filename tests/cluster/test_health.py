"""/healthz: 200 when the database and the channel layer answer, else 503."""

from __future__ import annotations

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
def test_healthz_fails_with_the_reason_when_the_channel_layer_is_down(client, monkeypatch):
    """A channel layer that cannot take a message makes the worker unhealthy."""
    from channels.layers import get_channel_layer

    async def refuse(self, channel, message):
        raise ConnectionError("Redis went away")

    # In memory under `make test`, Redis under `make test-services`.
    monkeypatch.setattr(type(get_channel_layer()), "send", refuse)
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "fail"
    assert "channel_layer" in body["reason"] and "Redis went away" in body["reason"]


@pytest.mark.django_db
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
