"""
/healthz: may this worker take traffic? A load balancer or systemd watchdog
asks it; it answers 200 only when both the database and the channel layer
answer within a short timeout.

It is answered by a middleware ahead of every other, before anything asks
for the request's host: probes on the machine say `Host: 127.0.0.1:8067`,
which production's ALLOWED_HOSTS (the public name) rightly refuses for
every other page.
"""

from __future__ import annotations

import asyncio
import time
import uuid

from asgiref.sync import async_to_sync, iscoroutinefunction, sync_to_async
from channels.layers import get_channel_layer
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.decorators import sync_and_async_middleware
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

CHECK_TIMEOUT_S = 2.0
PATH = "/healthz"


def _database() -> None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    finally:
        # This runs on a pool thread, outside any request's cleanup: do not
        # leave a connection open per thread.
        connection.close()


async def _channel_layer() -> None:
    """A message sent to a fresh channel comes back: Redis is up and writable."""
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer is configured")
    channel = await layer.new_channel("healthz.")
    token = uuid.uuid4().hex
    await layer.send(channel, {"type": "healthz.ping", "token": token})
    message = await layer.receive(channel)
    if message.get("token") != token:
        raise RuntimeError("the channel layer returned someone else's message")


async def _timed(name: str, check, timings: dict[str, float]) -> str | None:
    """None when `check` passes in time, else why it did not."""
    started = time.perf_counter()
    try:
        await asyncio.wait_for(check(), CHECK_TIMEOUT_S)
    except TimeoutError:
        return f"{name}: no answer within {CHECK_TIMEOUT_S:g} s"
    except Exception as exc:  # noqa: BLE001 - any failure is the answer
        return f"{name}: {type(exc).__name__}: {exc}"[:300]
    finally:
        timings[f"{name}_ms"] = round((time.perf_counter() - started) * 1000, 2)
    return None


@never_cache
@require_GET
async def health_view(request: HttpRequest) -> JsonResponse:
    timings: dict[str, float] = {}
    # thread_sensitive=False: a slow request on the shared database thread must
    # not make a healthy worker look dead.
    database = sync_to_async(_database, thread_sensitive=False)
    reasons = [
        reason
        for reason in await asyncio.gather(
            _timed("database", database, timings),
            _timed("channel_layer", _channel_layer, timings),
        )
        if reason
    ]
    if reasons:
        return JsonResponse({"status": "fail", "reason": "; ".join(reasons), **timings}, status=503)
    return JsonResponse({"status": "ok", **timings})


@sync_and_async_middleware
def health_middleware(get_response):
    """Answer /healthz whatever the Host header; pass everything else on."""
    if iscoroutinefunction(get_response):

        async def middleware(request: HttpRequest) -> HttpResponse:
            if request.path == PATH:
                return await health_view(request)
            return await get_response(request)

    else:

        def middleware(request: HttpRequest) -> HttpResponse:
            if request.path == PATH:
                return async_to_sync(health_view)(request)
            return get_response(request)

    return middleware
