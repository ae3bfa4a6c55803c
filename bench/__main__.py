"""
python -m bench [--full] [--only NAME ...]

`--only plan` plans a synthetic day (bench/planning.py): no database, no
workers. `--only publish` publishes a plan to 100 connected drivers
(bench/publish.py). `--only booking` compares the two PostgreSQL booking paths in the
bench process (bench/booking.py). `--only notify` measures the notification
outbox: booking with and without it, and ride event to SMS (bench/notify.py).
`--only flood` measures what a flooding socket costs the other users of a
worker (bench/flood.py).

Quick set (make bench, about 8-10 minutes): index search, ping ratio, matching
at 1,000 drivers on each channel layer, 500 simultaneous requests, the two
booking paths, 5,000 idle sockets, the console map and the location path at
2,000 drivers, and one-minute soaks. --full adds matching at 10,000 drivers and at 5 rides/s,
the psycopg pool variants, longer runs, and ten-minute soaks.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import subprocess
import time

from bench import booking, env, flood, notify, planning, publish, scenarios
from bench.scenarios import Result, verdict

NAMES = [
    "geo", "plan", "ping", "match", "match10k", "burst", "booking", "notify", "publish",
    "idle", "flood", "fleet",
    "soak",
]  # fmt: skip
# What runs without the benchmark's database, Redis and workers.
STANDALONE = {"geo", "plan"}


def machine() -> str:
    cpu = "?"
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = int(open("/proc/meminfo").readline().split()[1])
    return (
        f"{os.cpu_count()} CPUs ({cpu}), {mem_kb / 1024 / 1024:.1f} GiB RAM, "
        f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M %Z')}"
    )


def cpu_check() -> float:
    """
    Seconds for a fixed pure-Python loop, best of three: the figures of two
    runs compare only when this does. The same code measured 9 ms and 33 ms
    matching p50 on two machines of this kind a day apart.
    """
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        total = 0
        for i in range(5_000_000):
            total += i
        best = min(best, time.perf_counter() - started)
    return best


def show(rows: list[Result]) -> None:
    for r in rows:
        target = f"target {r.target}" if r.target else ""
        print(f"[{verdict(r.ok):4}] {r.name}: {r.figure}  {target}", flush=True)
        if r.note:
            print(f"         {r.note}", flush=True)


async def run(args) -> list[Result]:
    full = args.full
    wanted = set(args.only or NAMES)
    rows: list[Result] = []

    def add(new):
        rows.extend(new)
        show(new)

    if "geo" in wanted:
        add(scenarios.geo_search())
        # The same fleet packed into one city (100 drivers a km2), for scale.
        dense = scenarios.geo_search(span=0.3, queries=1000, naive_queries=10)
        for r in dense:
            r.ok = None
        add(dense)
    if "plan" in wanted:
        add(await asyncio.to_thread(planning.results))
    if not wanted - STANDALONE:
        return rows
    print("bench: fresh database and Redis; seeding people...", flush=True)
    await asyncio.to_thread(env.recreate_database)
    env.flush_redis()
    t = time.perf_counter()
    n_drivers = 10_100 if full else 5_100
    if not wanted - {*STANDALONE, "publish"}:
        n_drivers = 100
    cast = await asyncio.to_thread(env.seed, n_drivers, 1_500)
    print(f"bench: {n_drivers:,} drivers, 1,500 passengers in {time.perf_counter() - t:.0f} s")

    if "ping" in wanted:
        add(await scenarios.ping_ratio())

    seconds = 60 if full else 20
    layer_scores: dict[str, float] = {}
    db_scores: dict[str, float] = {}
    if "match" in wanted:
        variants = [("core", "persistent"), ("pubsub", "persistent"), ("core", "one-thread")]
        if full:
            variants.append(("core", "pool"))
        for layer, db in variants:
            if db == "pool" and not _has_pool():
                add(
                    [
                        Result(
                            "matching with psycopg pool",
                            "skipped",
                            "",
                            None,
                            "psycopg-pool missing",
                        )
                    ]
                )
                continue
            new, info = await scenarios.match(
                cast, n_drivers=1000, rate=20, seconds=seconds, layer=layer, db=db
            )
            add(new)
            p99 = info["hist"].percentile_ms(99)
            if db == "persistent":
                layer_scores[layer] = p99
            if layer == "core":
                db_scores[db] = p99
        if full:
            # A quarter of the rate. Not a floor: a ride takes longer here than at
            # 20 rides/s (docs/benchmarks.md, "2026-11-28, morning").
            new, info = await scenarios.match(
                cast, n_drivers=1000, rate=5, seconds=seconds, layer="core", db="persistent"
            )
            add(new)
    if full and "match10k" in wanted:
        # On the layer that did better at 1,000 drivers.
        new, info = await scenarios.match(
            cast, n_drivers=10_000, rate=20, seconds=seconds, layer="pubsub",
            p50_target=None, p99_target=150,
        )  # fmt: skip
        add(new)
    if "burst" in wanted:
        for db in ("persistent", "pool") if full and _has_pool() else ("persistent",):
            new, hist = await scenarios.burst(cast, n=500, db=db)
            add(new)
            db_scores[f"burst-{db}"] = hist.percentile_ms(50)
    if "booking" in wanted:
        add(await booking.results(cast))
    if "publish" in wanted:
        add(await publish.publish_to_drivers(cast, 100))
    if "notify" in wanted:
        add(await notify.results(cast))
    if "idle" in wanted:
        add(await scenarios.idle_sockets(cast, 5000))
    if "flood" in wanted:
        add(await flood.results(cast))
    # Where the channel layer is on the path: driver -> passenger through the
    # ride group. (Matching's answer no longer crosses it, and the console
    # map reads the location store.)
    path_scores: dict[str, float] = {}
    if "fleet" in wanted:
        for layer in ("core", "pubsub"):
            new = await scenarios.fleet_on_one_worker(cast, layer=layer, phase_s=30 if full else 15)
            add(new)
            path_scores[layer] = float(new[1].figure.split("p99 ")[1].split()[0])
    if "soak" in wanted:
        soak_layers = ["core"]
        # Pub/sub is soaked when it won this run's comparisons, or when this
        # run made none (`--only soak`).
        if _pubsub_wins(path_scores) or not path_scores:
            soak_layers.append("pubsub")
        for layer in soak_layers:
            add(
                await scenarios.soak(
                    cast, seconds=600 if full else 60, layer=layer, warmup_s=60 if full else 20
                )
            )
    if path_scores:
        choice = "pubsub" if _pubsub_wins(path_scores) else "core"
        soaked = [r for r in rows if r.name.startswith("soak") and "[pubsub]" in r.name]
        if choice == "pubsub" and not (soaked and soaked[0].ok):
            choice = "core (pub/sub was faster but did not survive the soak)"
        add(
            [
                Result(
                    "channel layer chosen",
                    choice,
                    "pub/sub only if faster and soak-clean",
                    None,
                    f"location path p99 {path_scores} (ms); matching p99 {layer_scores}",
                )
            ]
        )
    if db_scores:
        add([Result("database connections", json.dumps(db_scores), "", None, "ms (p99 / p50)")])
    return rows


def _has_pool() -> bool:
    try:
        import psycopg_pool  # noqa: F401
    except ImportError:
        return False
    return True


def _pubsub_wins(path_scores: dict) -> bool:
    """Pub/sub is chosen when its driver -> passenger p99 beats core's in this run."""
    pubsub, core = path_scores.get("pubsub"), path_scores.get("core")
    return pubsub is not None and core is not None and pubsub < core


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--full", action="store_true", help="the full set (about an hour)")
    parser.add_argument("--only", nargs="*", choices=NAMES, help="run only these")
    args = parser.parse_args()
    # Stopped by `timeout` or kill: unwind as on Ctrl-C, so each scenario's
    # workers and clients are stopped and no server outlives the run.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    env.raise_fd_limit()
    env.setup_django()
    print(f"bench: {'full' if args.full else 'quick'} set on {machine()}", flush=True)
    print(f"bench: git {_git()}; logs in {env.LOG_DIR}", flush=True)
    print(
        f"bench: CPU check: a 5,000,000-step Python loop in {cpu_check():.2f} s "
        "(compare runs only when this is close)",
        flush=True,
    )
    started = time.perf_counter()
    rows = asyncio.run(run(args))
    print(f"\n=== summary ({time.perf_counter() - started:.0f} s) ===")
    for r in rows:
        print(
            f"[{verdict(r.ok):4}] {r.name}: {r.figure}"
            + (f"  (target {r.target})" if r.target else "")
        )
    env.LOG_DIR.mkdir(parents=True, exist_ok=True)
    (env.LOG_DIR / "results.json").write_text(
        json.dumps([r.__dict__ for r in rows], indent=1, default=str)
    )


def _git() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=env.ROOT
        ).stdout.strip()
    except OSError:
        return "?"


if __name__ == "__main__":
    main()
