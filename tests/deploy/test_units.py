"""
deploy/'s service files: systemd units, supervisor, cron and the scripts
they run. No systemd runs here, so the units are read, not started: the
essentials that make a machine come back after a reboot and run its jobs.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from deploy.cluster import ROOT, worker_command
from tests.conftest import cannot_run

UNITS = ROOT / "deploy" / "systemd"
PYTHON = "/srv/care-connect/.venv/bin/python"


def unit(name: str) -> dict[str, dict[str, list[str]]]:
    """A unit file's sections: each key with its values, in order, continuations joined."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    text = re.sub(r"\s*\\\n\s*", " ", (UNITS / name).read_text())
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), defaultdict(list))
            continue
        key, _, value = line.partition("=")
        current[key.strip()].append(value.strip())
    return sections


def test_the_target_is_wanted_by_multi_user_so_workers_come_back_after_a_reboot():
    """Enabled, care-connect.target starts with the machine and pulls in every worker."""
    target = unit("care-connect.target")
    assert target["Install"]["WantedBy"] == ["multi-user.target"]
    wanted = " ".join(target["Unit"]["Wants"]).split()
    assert wanted == ["care-connect@8067.service", "care-connect@8068.service"]


def test_workers_run_the_same_command_line_as_the_cluster_runner():
    """care-connect@.service's ExecStart is worker_command's, port and timeouts filled in."""
    worker = unit("care-connect@.service")
    (exec_start,) = worker["Service"]["ExecStart"]
    args = shlex.split(exec_start)
    assert args[0] == PYTHON and args[1:3] == ["-m", "project.serve"]
    expected = worker_command(8067, python=PYTHON)
    expected[expected.index("--websocket_timeout") + 1] = "${WEBSOCKET_TIMEOUT_S}"
    expected[expected.index("--websocket_connect_timeout") + 1] = "${WEBSOCKET_CONNECT_TIMEOUT_S}"
    assert [a.replace("%i", "8067") for a in args] == expected
    assert worker["Install"]["WantedBy"] == ["care-connect.target"]
    assert "care-connect-migrate.service" in worker["Unit"]["Requires"]


def test_migrations_run_once_before_the_workers_and_load_no_demo_data():
    """A oneshot that stays active: restarting a worker does not migrate again."""
    migrate = unit("care-connect-migrate.service")
    service = migrate["Service"]
    assert service["Type"] == ["oneshot"] and service["RemainAfterExit"] == ["yes"]
    assert service["ExecStart"] == [
        f"{PYTHON} manage.py migrate --noinput",
        f"{PYTHON} manage.py collectstatic --noinput --verbosity 0",
    ]
    assert "care-connect-migrate.service" in unit("care-connect.target")["Unit"]["After"][0]


def test_nothing_in_deploy_loads_demo_data():
    """Units, supervisor, cron and the container entry point never run seed_demo."""
    files = [p for p in (ROOT / "deploy").rglob("*") if p.is_file() and p.suffix != ".py"]
    files += [ROOT / "Dockerfile", ROOT / "compose.yaml"]
    for path in files:
        if path.exists() and "__pycache__" not in path.parts:
            assert "seed_demo" not in path.read_text(), path


@pytest.mark.parametrize(
    ("timer", "command"),
    [
        ("care-connect-housekeeping", "manage.py housekeeping"),
        ("care-connect-sweep-offers", "manage.py sweep_offers"),
        ("care-connect-sweep-trips", "manage.py sweep_trips"),
    ],
)
def test_timers_start_their_management_command(timer, command):
    """Each timer names its service, is enabled with timers.target, and the service runs
    its command as the service user with the workers' environment."""
    timer_unit = unit(f"{timer}.timer")
    assert timer_unit["Timer"]["Unit"] == [f"{timer}.service"]
    assert timer_unit["Install"]["WantedBy"] == ["timers.target"]
    assert timer_unit["Timer"].get("OnCalendar") or timer_unit["Timer"].get("OnUnitActiveSec")
    service = unit(f"{timer}.service")["Service"]
    assert service["Type"] == ["oneshot"]
    assert service["ExecStart"] == [f"{PYTHON} {command}"]
    assert service["User"] == ["care-connect"]
    assert service["EnvironmentFile"] == ["/etc/care-connect/care-connect.env"]
    assert service["WorkingDirectory"] == ["/srv/care-connect"]


def test_housekeeping_runs_daily_and_catches_up_after_downtime():
    """Daily, and Persistent, so a machine off at 03:30 runs it when it is back."""
    timer = unit("care-connect-housekeeping.timer")["Timer"]
    assert timer["OnCalendar"] == ["*-*-* 03:30:00"] and timer["Persistent"] == ["true"]


def test_backups_run_daily_as_postgres_into_their_directory():
    """pg_dump as postgres (peer authentication), into the one directory it may write."""
    timer = unit("care-connect-backup.timer")
    assert timer["Timer"]["Unit"] == ["care-connect-backup.service"]
    assert timer["Install"]["WantedBy"] == ["timers.target"]
    service = unit("care-connect-backup.service")["Service"]
    assert service["User"] == ["postgres"]
    (exec_start,) = service["ExecStart"]
    script, db, directory, keep = shlex.split(exec_start)
    assert script == "/srv/care-connect/deploy/backup.sh" and db == "care_connect"
    assert service["ReadWritePaths"] == [directory] and int(keep) > 0


def test_cron_and_supervisor_run_the_same_jobs():
    """Without systemd: cron runs housekeeping and backups, supervisor the two sweeps."""
    cron = (ROOT / "deploy" / "cron" / "care-connect").read_text()
    jobs = [line.split(None, 6) for line in cron.splitlines() if re.match(r"^\d", line)]
    assert {(j[5], j[6]) for j in jobs} == {
        ("care-connect", "/srv/care-connect/deploy/manage.sh housekeeping"),
        (
            "postgres",
            "/srv/care-connect/deploy/backup.sh care_connect /var/backups/care-connect 14",
        ),
    }
    supervisor = (ROOT / "deploy" / "supervisor" / "care-connect.conf").read_text()
    assert "command=/srv/care-connect/deploy/manage.sh sweep_offers --loop" in supervisor
    assert "command=/srv/care-connect/deploy/manage.sh notify\n" in supervisor
    assert "command=/srv/care-connect/deploy/manage.sh sweep_trips --loop" in supervisor


def test_the_notify_worker_runs_for_good_beside_the_workers():
    """care-connect-notify.service: restarted whenever it stops, started with the target."""
    notify = unit("care-connect-notify.service")
    service = notify["Service"]
    assert service["Type"] == ["simple"] and service["Restart"] == ["always"]
    assert service["ExecStart"] == [f"{PYTHON} manage.py notify"]
    assert service["User"] == ["care-connect"]
    assert service["EnvironmentFile"] == ["/etc/care-connect/care-connect.env"]
    assert "care-connect-migrate.service" in notify["Unit"]["Requires"]
    assert notify["Install"]["WantedBy"] == ["care-connect.target"]


def test_scripts_are_executable():
    """The units and cron call these directly."""
    for name in ("manage.sh", "backup.sh", "run-worker.sh"):
        assert (ROOT / "deploy" / name).stat().st_mode & 0o111, name


def test_manage_sh_runs_manage_py_with_the_env_file(tmp_path):
    """deploy/manage.sh loads the env file, so the first staff account is made as
    production sees the database: createsuperuser normalises the phone number."""
    db = tmp_path / "db.sqlite3"
    env_file = tmp_path / "care-connect.env"
    env_file.write_text(
        f"DEBUG=false\nSECRET_KEY={'k' * 60}\nALLOWED_HOSTS=care.example.org\nSQLITE_PATH={db}\n"
    )
    env = {"PATH": "/usr/bin:/bin", "CARE_CONNECT_ENV": str(env_file)}
    manage = [str(ROOT / "deploy" / "manage.sh")]
    if not (ROOT / ".venv" / "bin" / "python").exists():
        cannot_run("needs the project's .venv (make setup)")
    run = {"env": env, "capture_output": True, "text": True, "timeout": 120}
    done = subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], **run)
    assert done.returncode == 0, done.stderr
    done = subprocess.run(
        [*manage, "createsuperuser", "--noinput", "--phone_number", "082 555 0100"],
        **{**run, "env": {**env, "DJANGO_SUPERUSER_PASSWORD": "a-long-test-password-1"}},
    )
    assert done.returncode == 0, done.stderr
    code = (
        "from people.models import User; from people.access import is_dispatcher; "
        "u = User.objects.get(); print(u.phone_number, u.is_staff, is_dispatcher(u))"
    )
    done = subprocess.run([*manage, "shell", "-c", code], **run)
    assert done.stdout.split()[-3:] == ["27825550100", "True", "True"], done.stderr


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_backup_restores_into_a_fresh_database(tmp_path, make_user):
    """backup.sh's dump, restored with pg_restore into a new database, has the same rows."""
    import shutil

    import psycopg
    from django.conf import settings

    if not shutil.which("pg_dump"):
        cannot_run("needs pg_dump and pg_restore (apt-get install -y postgresql-client)")
    for i in range(3):
        make_user(phone=f"2782555010{i}")
    db = settings.DATABASES["default"]
    pg_env = {
        "PATH": "/usr/bin:/bin",
        "PGHOST": db.get("HOST") or "127.0.0.1",
        "PGPORT": str(db.get("PORT") or 5432),
        "PGUSER": db.get("USER") or "postgres",
        "PGPASSWORD": db.get("PASSWORD") or "",
    }
    done = subprocess.run(
        [str(ROOT / "deploy" / "backup.sh"), db["NAME"], str(tmp_path), "14"],
        env=pg_env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (dump,) = tmp_path.glob(f"{db['NAME']}-*.dump")
    assert not list(tmp_path.glob("*.partial"))

    restored = f"{db['NAME']}_restore_check"
    admin = psycopg.connect(dbname="postgres", autocommit=True, **_conninfo(pg_env))
    try:
        admin.execute(f'DROP DATABASE IF EXISTS "{restored}"')
        admin.execute(f'CREATE DATABASE "{restored}"')
        done = subprocess.run(
            ["pg_restore", "--no-owner", "--exit-on-error", "-d", restored, str(dump)],
            env=pg_env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        counts = {}
        for name in (db["NAME"], restored):
            with psycopg.connect(dbname=name, **_conninfo(pg_env)) as conn:
                counts[name] = [
                    conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                    for table in ("people_user", "django_migrations", "auth_group")
                ]
        assert counts[restored] == counts[db["NAME"]]
        assert counts[restored][0] == 3
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{restored}"')
        admin.close()


def _conninfo(pg_env: dict[str, str]) -> dict[str, str]:
    return {
        "host": pg_env["PGHOST"],
        "port": pg_env["PGPORT"],
        "user": pg_env["PGUSER"],
        "password": pg_env["PGPASSWORD"],
    }


def test_unit_parser_joins_continued_lines(tmp_path, monkeypatch):
    """The reader above treats `\\` line ends as systemd does."""
    monkeypatch.setattr(sys.modules[__name__], "UNITS", tmp_path)
    Path(tmp_path / "x.service").write_text("[Service]\nExecStart=a \\\n    b\nExecStart=c\n")
    assert unit("x.service")["Service"]["ExecStart"] == ["a b", "c"]


def test_systemd_accepts_every_unit(tmp_path):
    """`systemd-analyze verify` on the units, with /srv/care-connect moved into tmp."""
    import shutil

    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        cannot_run("needs systemd-analyze (Debian's systemd package)")
    app, units = tmp_path / "app", tmp_path / "units"
    (app / ".venv" / "bin").mkdir(parents=True)
    (app / "deploy").mkdir()
    units.mkdir()
    (app / ".venv" / "bin" / "python").symlink_to("/usr/bin/true")
    (app / "deploy" / "backup.sh").symlink_to(ROOT / "deploy" / "backup.sh")
    for path in UNITS.iterdir():
        text = path.read_text().replace("/srv/care-connect", str(app))
        name = path.name.replace("@.service", "@8067.service")
        (units / name).write_text(text)
    done = subprocess.run(
        [analyze, "verify", "--man=no", *sorted(f"./{p.name}" for p in units.iterdir())],
        cwd=units, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr
