"""Start the real server process (Daphne) on a fresh SQLite database."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    port: int
    env: dict[str, str]
    log_path: Path

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def manage(self, *args: str) -> str:
        """Run a manage.py command against this server's database."""
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stderr}")
        return done.stdout

    def token_for(self, phone: str) -> str:
        code = (
            "from people.services import session_issue; from people.models import User; "
            f"print(session_issue(user=User.objects.get(phone_number='{phone}')).access)"
        )
        return self.manage("shell", "-c", code).strip().splitlines()[-1]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def running_server(tmp_path: Path, **env_overrides: str) -> Iterator[Server]:
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "SQLITE_PATH": str(tmp_path / "e2e.sqlite3"),
        "DEBUG": "1",
        "SMS_BACKEND": "console",
        "PYTHONUNBUFFERED": "1",
    }
    for name in ("DATABASE_URL", "REDIS_URL", "LOCATION_STORE"):
        env.pop(name, None)
    env.update(env_overrides)
    server = Server(port=port, env=env, log_path=tmp_path / "server.log")
    server.manage("migrate", "--noinput")
    server.manage("seed_demo")
    with open(server.log_path, "w") as log:
        proc = subprocess.Popen(
            [str(BIN / "daphne"), "-b", "127.0.0.1", "-p", str(port), "project.asgi:application"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"server did not start:\n{server.log()}") from None
                time.sleep(0.1)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
