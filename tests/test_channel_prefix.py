"""
Two deployments on one Redis stay apart: pub/sub ignores the database
number, so each deployment's channel layer has a prefix of its own
(CHANNEL_PREFIX, by default named after its database).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent


def prefix_for(**env: str) -> str:
    """CHANNEL_PREFIX as a process with this environment would set it."""
    base = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CHANNEL_PREFIX")}
    done = subprocess.run(
        [sys.executable, "-c", "from project import settings; print(settings.CHANNEL_PREFIX)"],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_each_database_gets_its_own_prefix_unless_one_is_set():
    one = prefix_for(DATABASE_URL="postgres://cc@127.0.0.1/careconnect")
    other = prefix_for(DATABASE_URL="postgres://cc@127.0.0.1/careconnect_staging")
    assert one != other and one.startswith("cc-")
    assert prefix_for(CHANNEL_PREFIX="east") == "east"
    # Left empty in an env file: the default, not no prefix at all.
    assert prefix_for(CHANNEL_PREFIX="", DATABASE_URL="postgres://cc@127.0.0.1/careconnect") == one


@pytest.mark.redis
@pytest.mark.parametrize("backend", ["pubsub", "core"])
async def test_two_deployments_on_one_redis_do_not_hear_each_other(backend):
    from channels_redis.core import RedisChannelLayer
    from channels_redis.pubsub import RedisPubSubChannelLayer

    assert settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] == settings.CHANNEL_PREFIX
    layer_class = {"pubsub": RedisPubSubChannelLayer, "core": RedisChannelLayer}[backend]
    # Two deployments as their settings name them, even on two database
    # numbers (pub/sub would cross them).
    base = settings.REDIS_URL.rsplit("/", 1)[0]
    east = layer_class(
        hosts=[f"{base}/13"], prefix=prefix_for(DATABASE_URL="postgres://cc@127.0.0.1/east")
    )
    west = layer_class(
        hosts=[f"{base}/14"], prefix=prefix_for(DATABASE_URL="postgres://cc@127.0.0.1/west")
    )
    try:
        east_channel = await east.new_channel()
        west_channel = await west.new_channel()
        await east.group_add("ride.r1", east_channel)
        await west.group_add("ride.r1", west_channel)
        await east.group_send("ride.r1", {"type": "ride.news", "from": "east"})
        assert (await asyncio.wait_for(east.receive(east_channel), 5))["from"] == "east"
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(west.receive(west_channel), 1)
    finally:
        for layer in (east, west):
            await layer.flush()
            if hasattr(layer, "close_pools"):
                await layer.close_pools()
