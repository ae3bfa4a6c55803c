"""
Several Daphne workers on one machine, sharing PostgreSQL and Redis.

    DATABASE_URL=postgres://... REDIS_URL=redis://... \
        python -m deploy.cluster --workers 2 --port 8067

Migrates and collects static files once (--seed also loads the demo data,
which make run-cluster asks for; production never should), then starts
worker i on port PORT+i. SIGINT/SIGTERM go to every worker
as SIGTERM (each closes its sockets with 1001 and drains); whoever is still
running after the grace period is killed. A worker that exits (crashed or
stopped) is started again while the others keep serving, so the apps it
closed with 1001 reconnect to them meanwhile. In production systemd or
supervisor run the workers one by one (deploy/systemd, deploy/supervisor):
this is the same thing for one terminal.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# A worker that exits is started again after this long, doubled while it
# keeps exiting (up to MAX_BACKOFF_S), back to this once it ran STABLE_S.
RESTART_BACKOFF_S = 0.5
MAX_BACKOFF_S = 30.0
STABLE_S = 60.0


def refuse_without_services(env: dict[str, str]) -> str | None:
    """Why a cluster cannot start with this environment, or None."""
    missing = [name for name in ("DATABASE_URL", "REDIS_URL") if not env.get(name)]
    if missing:
        return (
            f"{' and '.join(missing)} not set. Workers on several ports must share one "
            "database and one channel layer: set DATABASE_URL=postgres://... and "
            "REDIS_URL=redis://... (see deploy/care-connect.env.example)."
        )
    if not env["DATABASE_URL"].startswith(("postgres://", "postgresql://")):
        return "DATABASE_URL must name PostgreSQL (SQLite cannot be shared by workers)."
    if not env["REDIS_URL"].startswith(("redis://", "rediss://", "unix://")):
        return "REDIS_URL must be a redis:// (or rediss://) URL."
    return None


def worker_env(env: dict[str, str]) -> dict[str, str]:
    env = dict(env)
    # Positions must be visible to every worker, whatever LOCATION_STORE says.
    env["LOCATION_STORE"] = "redis"
    env.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    return env


def worker_command(
    port: int, host: str = "127.0.0.1", *, python: str = sys.executable
) -> list[str]:
    """One worker's command line (also used by tests and bench): Daphne, via project.serve."""
    timeout = os.environ.get("WEBSOCKET_TIMEOUT_S", "86400")
    return [
        python,
        "-m",
        "project.serve",
        "-b",
        host,
        "-p",
        str(port),
        # No --proxy-headers: Daphne would believe anybody's X-Forwarded-For;
        # project.common.clients believes only TRUSTED_PROXIES.
        # Sockets live as long as the channel layer keeps their groups.
        "--websocket_timeout",
        timeout,
        # After a restart every app reconnects at once; Daphne's default of
        # 5 s rejects handshakes still queued for the database thread, and
        # the apps' retries only add to the storm.
        "--websocket_connect_timeout",
        os.environ.get("WEBSOCKET_CONNECT_TIMEOUT_S", "30"),
        "--application-close-timeout",
        "10",
        "project.asgi:application",
    ]


def database_url(db: dict) -> str:
    """A DATABASE_URL for a Django DATABASES entry (PostgreSQL)."""
    from urllib.parse import quote

    auth = quote(db.get("USER") or "")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"])
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgres://{auth}{'@' if auth else ''}{host}:{port}/{db['NAME']}"


def start_worker(
    port: int, env: dict[str, str], log_path: Path | str, host: str = "127.0.0.1"
) -> subprocess.Popen:
    """One worker in its own session, output to log_path (tests and bench)."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            worker_command(port, host),
            env=worker_env(env),
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_healthy(port: int, timeout_s: float = 60.0, host: str = "127.0.0.1") -> dict | None:
    """Poll /healthz until it answers 200; the body, or None on timeout."""
    import json

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://{host}:{port}/healthz", timeout=3) as resp:
                if resp.status == 200:
                    return json.loads(resp.read())
        except OSError:
            pass
        time.sleep(0.2)
    return None


def setup(env: dict[str, str], *, seed: bool) -> None:
    manage = [sys.executable, str(ROOT / "manage.py")]
    steps = [
        ["migrate", "--noinput"],
        ["collectstatic", "--noinput", "--verbosity", "0"],
    ]
    if seed:
        steps.append(["seed_demo"])
    for step in steps:
        print(f"cluster: manage.py {' '.join(step)}", flush=True)
        subprocess.run(manage + step, env=env, cwd=ROOT, check=True)


def stop_all(procs: list[subprocess.Popen], grace_s: float) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for proc in procs:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"cluster: worker pid {proc.pid} did not stop; killing it", flush=True)
            proc.kill()
            proc.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.cluster", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="how many Daphne workers (default 2)"
    )
    parser.add_argument("--port", type=int, default=8067, help="first port; worker i gets PORT+i")
    parser.add_argument(
        "--host", default="127.0.0.1", help="bind address (nginx in front: 127.0.0.1)"
    )
    parser.add_argument("--no-setup", action="store_true", help="skip migrate and collectstatic")
    parser.add_argument(
        "--seed",
        action="store_true",
        help="also load the demo data (a public dispatcher password: never in production)",
    )
    args = parser.parse_args(argv)

    env = worker_env(os.environ)
    reason = refuse_without_services(env)
    if reason:
        print(f"cluster: refusing to start: {reason}", file=sys.stderr)
        return 2
    if args.workers < 1:
        print("cluster: --workers must be at least 1", file=sys.stderr)
        return 2
    if not args.no_setup:
        setup(env, seed=args.seed)

    grace_s = float(env.get("SHUTDOWN_GRACE_S", "5")) + 5
    stopping = False

    def on_signal(signum, frame):
        nonlocal stopping
        stopping = True

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, on_signal)

    ports = [args.port + i for i in range(args.workers)]

    def start(i: int) -> subprocess.Popen:
        # A session of its own: Ctrl-C reaches this process only, which stops
        # the workers in order instead of all of them racing on SIGINT.
        proc = subprocess.Popen(
            worker_command(ports[i], args.host),
            env=dict(env, WORKER_ID=str(i)),
            cwd=ROOT,
            start_new_session=True,
        )
        proc.started = time.monotonic()
        print(f"cluster: worker {i} pid {proc.pid} on {args.host}:{ports[i]}", flush=True)
        return proc

    procs = [start(i) for i in range(len(ports))]
    for port in ports:
        if stopping:
            break
        health = wait_healthy(port, host=args.host if args.host != "0.0.0.0" else "127.0.0.1")
        print(f"cluster: :{port} /healthz -> {health or 'no answer'}", flush=True)
    print("cluster: running; Ctrl-C stops every worker", flush=True)

    # A worker that exits is started again, as systemd and supervisor do,
    # while the others keep serving; one that keeps dying waits longer each
    # time (up to MAX_BACKOFF_S), so a broken release does not spin.
    restart_at: dict[int, float] = {}
    backoff = [RESTART_BACKOFF_S] * len(ports)
    while not stopping:
        now = time.monotonic()
        for i, proc in enumerate(procs):
            if i in restart_at:
                if now >= restart_at[i]:
                    del restart_at[i]
                    procs[i] = start(i)
                continue
            rc = proc.poll()
            if rc is None:
                if now - proc.started > STABLE_S:
                    backoff[i] = RESTART_BACKOFF_S
                continue
            print(
                f"cluster: worker on :{ports[i]} exited with {rc}; "
                f"starting it again in {backoff[i]:g} s",
                flush=True,
            )
            restart_at[i] = now + backoff[i]
            backoff[i] = min(backoff[i] * 2, MAX_BACKOFF_S)
        time.sleep(0.3)
    print("cluster: stopping workers (SIGTERM, sockets closed with 1001)", flush=True)
    stop_all(procs, grace_s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
