"""
`python -m bench --only flood`: what a flood costs the other users of a
worker. One worker; 20 passengers ping over their sockets (100 a second in
all, open loop) and one of them reads their profile over REST (10 a
second). Three phases in one run: quiet; an unauthenticated socket sending
`ping` in a tight loop; a driver sending `location_update` in a tight
loop. Each flooder reconnects at once whenever it is closed. The figures:
the others' ping p99 and REST p50 during each flood against quiet.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import urllib.request

from bench import env
from bench.clients import AppSocket, open_many
from bench.loadgen import Recorder, open_loop
from bench.scenarios import BASE_PORT, Result, layer_env

PING_RATE, REST_RATE = 100, 10


async def _phase(socks: list[AppSocket], http: str, token: str, seconds: float):
    pings, rest = Recorder("ping"), Recorder("rest")
    locks = [asyncio.Lock() for _ in socks]

    async def ping(i, due):
        async with locks[i % len(socks)]:
            sock = socks[i % len(socks)]
            await sock.send({"type": "ping"})
            try:
                await sock.wait({"pong"}, 30)
                pings.ok(due)
            except Exception as exc:  # noqa: BLE001
                pings.fail(f"timeout {exc!r}")

    def profile() -> int:
        request = urllib.request.Request(
            f"{http}/api/auth/profile/", headers={"Authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
            return response.status

    async def get(i, due):
        try:
            status = await asyncio.to_thread(profile)
        except Exception as exc:  # noqa: BLE001
            rest.fail(f"timeout {exc!r}")
            return
        if status == 200:
            rest.ok(due)
        else:
            rest.fail(f"status {status}")

    await asyncio.gather(
        open_loop(PING_RATE, int(PING_RATE * seconds), ping),
        open_loop(REST_RATE, int(REST_RATE * seconds), get),
    )
    return pings, rest


class Flooder:
    def __init__(self, url: str, message: dict, token: str = "") -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.flooder", url, json.dumps(message), token],
            cwd=env.ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )

    async def start(self) -> None:
        line = await asyncio.to_thread(self.proc.stdout.readline)
        assert line.startswith("READY"), line
        # Let it get going (and be closed a few times) before measuring.
        await asyncio.sleep(2)

    async def stop(self) -> dict:
        self.proc.terminate()
        out, _ = await asyncio.to_thread(self.proc.communicate, timeout=30)
        return json.loads(out.strip().splitlines()[-1])


async def results(cast: env.Cast, seconds: float = 15) -> list[Result]:
    await asyncio.to_thread(env.reset_rides)
    workers = env.start_workers(1, BASE_PORT, "flood", **layer_env("pubsub"))
    port = workers.ports[0]
    ws, http = f"ws://127.0.0.1:{port}", f"http://127.0.0.1:{port}"
    riders = cast.passengers[:20]
    phases: dict[str, tuple] = {}
    floods: dict[str, dict] = {}
    try:
        socks = await open_many([(f"{ws}/ws/passenger/", p) for p in riders])
        await _phase(socks, http, riders[0].token, 3)  # warm-up
        phases["quiet"] = await _phase(socks, http, riders[0].token, seconds)
        driver = cast.drivers[-1]
        for name, flooder in (
            ("ping flood", Flooder(f"{ws}/ws/ride/flood-1/", {"type": "ping"})),
            (
                "location flood",
                Flooder(
                    f"{ws}/ws/driver/",
                    {"type": "location_update", "latitude": driver.lat, "longitude": driver.lng},
                    driver.token,
                ),
            ),
        ):
            await flooder.start()
            try:
                phases[name] = await _phase(socks, http, riders[0].token, seconds)
            finally:
                floods[name] = await flooder.stop()
        rss = workers.rss_mb()[0]
        for sock in socks:
            await sock.close()
        crashes = workers.crashes()
    finally:
        workers.stop()
    quiet_ping, quiet_rest = phases["quiet"]
    rows = [
        Result(
            "others during no flood: ping p99 / REST p50",
            f"{quiet_ping.hist.percentile_ms(99):.2f} / {quiet_rest.hist.percentile_ms(50):.2f} ms",
            "",
            None,
            f"ping {quiet_ping.hist.summary()}; REST {quiet_rest.hist.summary()}",
        )
    ]
    for name in ("ping flood", "location flood"):
        ping, rest = phases[name]
        r_ping = ping.hist.percentile_ms(99) / quiet_ping.hist.percentile_ms(99)
        r_rest = rest.hist.percentile_ms(50) / quiet_rest.hist.percentile_ms(50)
        failed = ping.errors + rest.errors
        rows.append(
            Result(
                f"  others during a {name}: ping p99 / REST p50",
                f"{ping.hist.percentile_ms(99):.2f} / {rest.hist.percentile_ms(50):.2f} ms "
                f"({r_ping:.2f}x / {r_rest:.2f}x quiet)",
                "<= 2x (goal)",
                r_ping <= 2 and r_rest <= 2 and not failed,
                f"flooder {floods[name]}; failures {failed[:3]}; worker RSS {rss:.0f} MB; "
                f"crashes {len(crashes)}",
            )
        )
    return rows
