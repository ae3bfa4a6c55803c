"""Helpers for the deploy tests: settings as production loads them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from deploy.cluster import ROOT


def production_env(**overrides: str) -> dict[str, str]:
    """The environment of a production worker, as far as settings go."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")
    }
    env.update(
        DEBUG="0",
        SECRET_KEY="deploy-test-only-" + "x" * 50,
        ALLOWED_HOSTS="care.example.org",
        DJANGO_SETTINGS_MODULE="project.settings",
    )
    env.update(overrides)
    return env


def settings_in(env: dict[str, str], *names: str) -> dict:
    """Some settings as a fresh process with `env` sees them."""
    code = (
        "import json, django; django.setup(); from django.conf import settings; "
        f"print(json.dumps({{n: getattr(settings, n) for n in {list(names)!r}}}, default=str))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture
def production_settings():
    return lambda *names, **env: settings_in(production_env(**env), *names)
