"""
The real server process (Daphne) on a free port, against its own SQLite
database, migrated and seeded with the demo data. End-to-end and browser
tests drive it as the apps and dispatchers would.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
# Settings that would point the server at shared services: it gets its own.
ISOLATED_FROM = (
    "DATABASE_URL",
    "REDIS_URL",
    "LOCATION_STORE",
    "SQLITE_TEST_PATH",
    # The in-process tests' own setting: a real server sweeps trips.
    "TRIP_SWEEP_S",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), 0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listened on port {port} within {timeout:.0f} s")


@dataclass
class Server:
    """A running server; `manage()` and `shell()` act on its database."""

    port: int
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def manage(self, *args: str, timeout: float = 120) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stderr[-3000:]}")
        return done.stdout

    def shell(self, code: str) -> str:
        """Run Python in `manage.py shell` against the server's database."""
        return self.manage("shell", "--no-imports", "-c", code)

    def token_for(self, phone: str) -> str:
        code = (
            "from people.sessions import session_issue; from people.models import User; "
            f"print(session_issue(user=User.objects.get(phone_number='{phone}')).access)"
        )
        return self.shell(code).strip().splitlines()[-1]

    def start(self) -> None:
        """Start the server process (again, after a crash), on the same port and database."""
        with self.log_path.open("a") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "project.serve",
                    "-b",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "project.asgi:application",
                ],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@contextmanager
def running_server(
    home: Path, *, logs_errors: bool = False, **env_overrides: str
) -> Iterator[Server]:
    """
    The server, stopped afterwards. Unless `logs_errors` (a test about an
    error), its log must hold no ERROR line and no traceback.
    """
    env = {k: v for k, v in os.environ.items() if k not in ISOLATED_FROM}
    env.update(
        DJANGO_SETTINGS_MODULE="project.settings",
        SQLITE_PATH=str(home / "server.sqlite3"),
        DEBUG="1",
        SMS_BACKEND="console",
        # Staff sign in with the authenticator code, as in production.
        STAFF_2FA="1",
        # Nothing listens there: tiles fail at once, as they may in the field.
        MAP_TILE_URL=f"http://127.0.0.1:{free_port()}/{{z}}/{{x}}/{{y}}.png",
        PYTHONUNBUFFERED="1",
    )
    env.update(env_overrides)
    server = Server(port=free_port(), env=env, log_path=home / "server.log")
    server.manage("migrate", "--noinput", "-v", "0")
    server.manage("seed_demo")
    server.start()
    try:
        try:
            wait_for_port(server.port, server.process)
        except Exception:
            server.process.kill()
            raise RuntimeError(f"server did not start:\n{server.log()[-3000:]}") from None
        yield server
    finally:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
    if not logs_errors:
        errors = [
            line
            for line in server.log().splitlines()
            if " ERROR " in line or line.startswith("Traceback")
        ]
        assert not errors, "the server logged errors:\n" + "\n".join(errors[:20])
