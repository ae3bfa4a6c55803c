"""
docs/deploy.md is followed top to bottom by someone with a fresh server: its
commands may only name files, units and management commands that exist, and
it has every step the server needs.
"""

from __future__ import annotations

import re

import pytest

from deploy.cluster import ROOT

GUIDE = (ROOT / "docs" / "deploy.md").read_text()
# Units that Debian's packages bring.
DEBIAN_UNITS = {"nginx", "redis-server", "postgresql", "certbot.timer"}


def shell_blocks() -> str:
    return "\n".join(re.findall(r"```sh\n(.*?)```", GUIDE, re.S))


def test_every_repository_file_the_guide_names_exists():
    """deploy/..., Dockerfile, compose.yaml: each path in a command is in the repository."""
    paths = set(re.findall(r"(?<![\w/.])((?:deploy|docs)/[\w./@-]+\w)", GUIDE))
    paths |= {p for p in ("Dockerfile", "compose.yaml", "requirements.lock") if p in GUIDE}
    missing = []
    for path in sorted(paths):
        if "*" in path or "{" in path:
            continue
        if not (ROOT / path).exists():
            missing.append(path)
    assert not missing


def test_every_management_command_the_guide_runs_exists():
    """manage.sh / manage.py / the container's entry point: real commands only."""
    import django.core.management

    known = set(django.core.management.get_commands())
    run = re.findall(
        r"(?:manage\.sh|manage\.py|docker-entrypoint\.sh|run --rm app) ([a-z_]+)", shell_blocks()
    )
    assert run
    assert set(run) <= known, set(run) - known


def test_every_unit_the_guide_starts_is_shipped_or_debians():
    """systemctl names deploy/systemd's units (or Debian's own)."""
    shipped = {p.name for p in (ROOT / "deploy" / "systemd").iterdir()}
    named = set()
    for line in re.findall(r"systemctl [^\n]+", shell_blocks()):
        named |= set(re.findall(r"(care-connect[\w@.$*-]*|nginx|redis-server)", line))
    for unit in named:
        if unit in DEBIAN_UNITS or "*" in unit or "$" in unit:
            continue  # a pattern, or an instance named by a shell variable
        name = unit if "." in unit else f"{unit}.service"
        name = re.sub(r"@\d+\.", "@.", name)
        assert name in shipped, unit


@pytest.mark.parametrize(
    ("item", "pattern"),
    [
        ("Python 3.12+ on Debian 12", r"uv python install 3\.1[2-9]"),
        ("a service user", r"useradd --system [^\n]*\\\n[^\n]*care-connect"),
        ("production install, no dev extras", r"pip install -c requirements\.lock \.\n"),
        ("PostgreSQL role and database", r"CREATE ROLE care_connect LOGIN[\s\S]*createdb --owner"),
        ("Redis", r"systemctl enable --now redis-server"),
        ("a generated SECRET_KEY", r"SECRET_KEY=\$\(openssl rand"),
        ("the target enabled for reboots", r"systemctl enable --now care-connect\.target\b"),
        ("certbot before the TLS site", r"certbot certonly --webroot -w /var/www/letsencrypt"),
        ("nginx -t on the real site", r"care-connect\n[^\n]*\nnginx -t && systemctl reload"),
        ("the timers", r"enable --now care-connect-housekeeping\.timer care-connect-sweep"),
        ("the first staff account", r"manage\.sh createsuperuser"),
        ("a scheduled pg_dump", r"enable --now care-connect-backup\.timer"),
        ("a restore tried", r"pg_restore --no-owner --role=care_connect"),
        ("migrations once on upgrade", r"manage\.sh migrate --noinput\n"),
        ("rolling restarts", r"for port in 8067 8068; do\n\s+systemctl restart"),
        ("containers", r"docker compose up -d --build"),
    ],
)
def test_the_guide_has_the_step(item, pattern):
    """Each item of the server's setup is a command in the guide."""
    assert re.search(pattern, shell_blocks()), item


def test_the_server_path_never_loads_demo_data():
    """seed_demo appears only as a warning, never as a command to run."""
    assert "seed_demo" not in shell_blocks()


def test_the_guide_holds_no_secrets():
    """Placeholders and generated values only."""
    for line in shell_blocks().splitlines():
        assert not re.search(r"(PASSWORD|SECRET_KEY)=[A-Za-z0-9]{12,}", line), line
