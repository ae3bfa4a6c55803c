"""
The signing key and DEBUG: no public key ever signs tokens, and a forgotten
DEBUG in production means DEBUG off.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def start(**env: str) -> subprocess.CompletedProcess:
    """`manage.py check` with exactly these DEBUG/SECRET_KEY settings."""
    base = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "SECRET_KEY")}
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "key",
    [
        "CHANGE_ME",
        "dev-only-insecure-key-change-me",
        "short-but-random-3f9a",
        "please-change-me-to-a-long-random-string-of-fifty-or-more-characters",
        "django-insecure-" + "x" * 50,
    ],
)
def test_with_debug_off_a_placeholder_or_short_key_stops_the_start(key):
    done = start(DEBUG="0", SECRET_KEY=key)
    assert done.returncode != 0 and "SECRET_KEY is a placeholder" in done.stderr


def test_without_any_key_nothing_starts_whatever_debug_says():
    for debug in ("0", "1"):
        done = start(DEBUG=debug)
        assert done.returncode != 0 and "SECRET_KEY is not set" in done.stderr


def test_debug_is_off_unless_asked_for():
    """A forgotten DEBUG: off, so a real key is needed; with one, it starts."""
    assert start(SECRET_KEY="CHANGE_ME").returncode != 0
    done = start(SECRET_KEY=secrets.token_urlsafe(64))
    assert done.returncode == 0, done.stderr
    check = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            "from django.conf import settings; print(settings.DEBUG)",
        ],
        cwd=ROOT,
        env={
            **{k: v for k, v in os.environ.items() if k not in ("DEBUG",)},
            "SECRET_KEY": secrets.token_urlsafe(64),
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.stdout.strip().splitlines()[-1] == "False"


def test_every_variable_of_the_env_example_left_empty_takes_its_default():
    """.env.example sourced as written (`NAME=`): each empty one is its default, and it starts."""
    empty = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and not line.startswith("#") and value == "":
            empty[name.strip()] = ""
    assert {"SQLITE_PATH", "LOCATION_STORE", "REDIS_URL"} <= set(empty)
    base = {k: v for k, v in os.environ.items() if k not in empty}
    check = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            "from django.conf import settings; "
            "print(settings.DATABASES['default']['NAME'].endswith('db.sqlite3'), "
            "settings.LOCATION_STORE)",
        ],
        cwd=ROOT,
        env={**base, **empty, "DEBUG": "1", "SECRET_KEY": secrets.token_urlsafe(64)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stderr
    assert check.stdout.strip().splitlines()[-1] == "True memory"
