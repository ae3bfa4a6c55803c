"""`make run-cluster` (deploy.cluster): what it refuses and what it starts."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from deploy.cluster import ROOT, database_url, refuse_without_services, worker_command


def test_cluster_refuses_to_start_without_postgres_and_redis():
    """No DATABASE_URL or REDIS_URL: exit 2 and say which, before touching anything."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    done = subprocess.run(
        [sys.executable, "-m", "deploy.cluster", "--workers", "2", "--port", "18067"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "DATABASE_URL and REDIS_URL not set" in done.stderr


def test_cluster_refuses_sqlite():
    """Workers cannot share SQLite."""
    reason = refuse_without_services(
        {"DATABASE_URL": "sqlite:///db.sqlite3", "REDIS_URL": "redis://127.0.0.1:6379/0"}
    )
    assert reason and "PostgreSQL" in reason


def test_workers_run_daphne_on_their_port_with_long_lived_sockets():
    """Each worker is Daphne (through the project.serve launcher) on its own port."""
    cmd = worker_command(8068)
    assert cmd[1:3] == ["-m", "project.serve"]
    assert cmd[cmd.index("-p") + 1] == "8068"
    # Daphne's proxy headers take the client from anybody's X-Forwarded-For.
    assert "--proxy-headers" not in cmd
    assert cmd[cmd.index("--websocket_timeout") + 1] == os.environ.get(
        "WEBSOCKET_TIMEOUT_S", "86400"
    )
    assert cmd[-1] == "project.asgi:application"


def test_database_url_names_the_same_database_as_the_settings():
    """The test database's settings become a DATABASE_URL for the workers."""
    url = database_url(
        {"USER": "postgres", "PASSWORD": "p@ss", "HOST": "db", "PORT": 5433, "NAME": "test_test"}
    )
    assert url == "postgres://postgres:p%40ss@db:5433/test_test"


def test_cluster_loads_no_demo_data_unless_asked(monkeypatch):
    """Production runs the cluster without --seed: migrate and collectstatic only."""
    from deploy import cluster

    ran: list[list[str]] = []
    monkeypatch.setattr(cluster.subprocess, "run", lambda cmd, **kw: ran.append(cmd[2:]))
    cluster.setup({}, seed=False)
    assert ran == [["migrate", "--noinput"], ["collectstatic", "--noinput", "--verbosity", "0"]]
    ran.clear()
    cluster.setup({}, seed=True)
    assert ran[-1] == ["seed_demo"]


def test_cluster_seeds_only_with_the_seed_flag(monkeypatch):
    """Without --seed no demo data is loaded; make run-cluster passes --seed."""
    from deploy import cluster

    class SetUp(Exception):
        pass

    seen: list[bool] = []

    def setup(env, *, seed):
        seen.append(seed)
        raise SetUp

    monkeypatch.setattr(cluster, "setup", setup)
    monkeypatch.setattr(cluster, "refuse_without_services", lambda env: None)
    for argv in ([], ["--seed"]):
        with pytest.raises(SetUp):
            cluster.main(argv)
    assert seen == [False, True]
    makefile = (ROOT / "Makefile").read_text()
    assert "-m deploy.cluster --workers $(WORKERS) --port $(PORT) --seed" in makefile
