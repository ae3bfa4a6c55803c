"""
The container path: Dockerfile, compose.yaml and the entry point. No Docker
engine runs where these tests run, so the files are read and the entry
point is run directly; nothing here builds an image.
"""

from __future__ import annotations

import re
import sqlite3
import subprocess

import pytest
import yaml

from deploy.cluster import ROOT

ENTRYPOINT = ROOT / "deploy" / "docker-entrypoint.sh"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


# The entry point runs manage.py, which needs a key (any, with DEBUG on).
KEY = "tests-only-key-for-the-container-entry-point-0123456789abcdef"


def test_compose_runs_the_app_with_postgresql_and_redis(compose):
    """
    The app, its notify worker and series maker, and both stores, restarted
    when they stop; health checks where something waits on them.
    """
    services = compose["services"]
    assert set(services) == {"app", "notify", "series", "postgres", "redis"}
    for name, service in services.items():
        assert service["restart"] == "unless-stopped", name
    for name in ("app", "postgres", "redis"):
        assert services[name]["healthcheck"]["test"], name
    # The outbox is delivered and series are made, against the app's stores.
    assert services["notify"]["command"] == ["notify"]
    assert services["series"]["command"][:2] == ["materialise_series", "--loop"]
    for name in ("notify", "series"):
        assert services[name]["image"] == services["app"]["image"]
        assert (
            services[name]["environment"]["DATABASE_URL"]
            == (services["app"]["environment"]["DATABASE_URL"])
        )
        assert services[name]["environment"]["REDIS_URL"] == "redis://redis:6379/0"
        assert services[name]["depends_on"] == {"app": {"condition": "service_healthy"}}
    assert services["app"]["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
    }
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["redis"]["image"].startswith("redis:")


def test_compose_takes_secrets_from_an_uncommitted_env_file(compose):
    """Settings from .env (ignored by git and by the image); no password in the file."""
    app, postgres = compose["services"]["app"], compose["services"]["postgres"]
    assert app["env_file"] == ".env"
    password = "${POSTGRES_PASSWORD:?"
    assert postgres["environment"]["POSTGRES_PASSWORD"].startswith(password)
    assert f":{password}" in app["environment"]["DATABASE_URL"]
    assert app["environment"]["REDIS_URL"] == "redis://redis:6379/0"
    assert ".env" in (ROOT / ".gitignore").read_text().split()
    assert ".env" in (ROOT / ".dockerignore").read_text().split()


def test_compose_publishes_workers_on_the_hosts_loopback_only(compose):
    """nginx on the host is the only way in, as on a server."""
    app = compose["services"]["app"]
    (ports,) = app["ports"]
    assert ports.startswith("127.0.0.1:")
    first, last = (int(p) for p in re.match(r"127\.0\.0\.1:(\d+)-(\d+):", ports).groups())
    assert last - first + 1 == int(app["environment"]["WORKERS"])
    assert first == int(app["environment"]["PORT"])
    assert "/healthz" in " ".join(app["healthcheck"]["test"])
    assert app["stop_grace_period"] == "20s"


def test_dockerfile_installs_for_production():
    """Python 3.12+, pinned dependencies without dev extras, hashed static files,
    an unprivileged user, and the entry point."""
    text = (ROOT / "Dockerfile").read_text()
    base = re.search(r"^FROM python:3\.(\d+)", text, re.M)
    assert base and int(base.group(1)) >= 12
    assert ".venv/bin/pip install -c requirements.lock ." in text
    assert "[dev]" not in text
    assert re.search(r"DEBUG=0 .*\n?.*manage\.py collectstatic", text)
    # A key settings accept with DEBUG off: random, thrown away after the step.
    assert (
        "SECRET_KEY=\"$(.venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(64))')\""
        in text
    )
    assert re.search(r"^USER care-connect$", text, re.M)
    assert 'ENTRYPOINT ["/srv/care-connect/deploy/docker-entrypoint.sh"]' in text


def test_entry_point_migrates_once_then_starts_the_workers(tmp_path):
    """No arguments: migrate, then deploy.cluster (which here refuses SQLite, after
    migrate has run). No demo data either way."""
    db = tmp_path / "db.sqlite3"
    env = {"PATH": "/usr/bin:/bin", "SQLITE_PATH": str(db), "DEBUG": "1", "SECRET_KEY": KEY}
    done = subprocess.run([str(ENTRYPOINT)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "cluster: refusing to start: DATABASE_URL and REDIS_URL not set" in done.stderr
    with sqlite3.connect(db) as conn:
        (applied,) = conn.execute("SELECT count(*) FROM django_migrations").fetchone()
        (people,) = conn.execute("SELECT count(*) FROM people_user").fetchone()
    assert applied > 0 and people == 0
    text = ENTRYPOINT.read_text()
    assert text.index("manage.py migrate") < text.index("-m deploy.cluster --no-setup")
    assert "--seed" not in text


def test_entry_point_with_arguments_runs_that_command(tmp_path):
    """`docker compose run --rm app housekeeping` runs manage.py housekeeping."""
    env = {
        "PATH": "/usr/bin:/bin",
        "SQLITE_PATH": str(tmp_path / "db.sqlite3"),
        "DEBUG": "1",
        "SECRET_KEY": KEY,
    }
    run = {"env": env, "capture_output": True, "text": True, "timeout": 120}
    assert subprocess.run([str(ENTRYPOINT), "migrate", "-v", "0"], **run).returncode == 0
    done = subprocess.run([str(ENTRYPOINT), "housekeeping"], **run)
    assert done.returncode == 0, done.stderr
    assert "housekeeping: kept 90 days" in done.stdout
