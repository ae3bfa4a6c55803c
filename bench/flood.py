"""
`python -m bench --only flood`: what a flood costs the other users of a
worker. One worker; 20 passengers ping over their sockets (100 a second in
all, open loop) and one of them reads their profile over REST (10 a
second). Phases in one run: quiet; an unauthenticated socket sending `ping`
in a tight loop; quiet again; a driver sending `location_update` in a tight
loop. Each flooder reconnects at once whenever it is closed. The figures:
the others' ping p99 and REST p50 during each flood against the two quiet
phases together (the machine's noise moves both). Then, on a worker whose
budget is out of reach (what it was before the budget), the ping flood
again, briefly: the cost the budget removes.
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


def _ping_flood(ws: str) -> Flooder:
    return Flooder(f"{ws}/ws/ride/flood-1/", {"type": "ping"})


async def _unlimited(cast: env.Cast, seconds: float) -> tuple:
    """The others during a ping flood on a worker with no budget to speak of."""
    workers = env.start_workers(
        1, BASE_PORT, "flood-unlimited", **layer_env("pubsub"),
        WS_MESSAGE_RATE="1000000000", WS_MESSAGE_BURST="1000000000",
    )  # fmt: skip
    port = workers.ports[0]
    riders = cast.passengers[:20]
    try:
        socks = await open_many([(f"ws://127.0.0.1:{port}/ws/passenger/", p) for p in riders])
        await _phase(socks, f"http://127.0.0.1:{port}", riders[0].token, 3)
        flooder = _ping_flood(f"ws://127.0.0.1:{port}")
        await flooder.start()
        try:
            measured = await _phase(socks, f"http://127.0.0.1:{port}", riders[0].token, seconds)
        finally:
            await flooder.stop()
            rss = workers.rss_mb()[0]
    finally:
        workers.stop()
    return measured, rss


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
        driver = cast.drivers[-1]
        for name, flooder in (
            ("quiet", None),
            ("ping flood", _ping_flood(ws)),
            ("quiet again", None),
            (
                "location flood",
                Flooder(
                    f"{ws}/ws/driver/",
                    {"type": "location_update", "latitude": driver.lat, "longitude": driver.lng},
                    driver.token,
                ),
            ),
        ):
            if flooder is None:
                phases[name] = await _phase(socks, http, riders[0].token, seconds)
                continue
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
    (unlimited_ping, unlimited_rest), unlimited_rss = await _unlimited(cast, seconds / 3)
    quiet_ping, quiet_rest = phases["quiet"]
    quiet_ping.hist.merge(phases["quiet again"][0].hist)
    quiet_rest.hist.merge(phases["quiet again"][1].hist)
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
    rows.append(
        Result(
            "  the ping flood with no budget (before it), another worker",
            f"ping p99 {unlimited_ping.hist.percentile_ms(99):.0f} / REST p50 "
            f"{unlimited_rest.hist.percentile_ms(50):.0f} ms",
            "",
            None,
            f"ping {unlimited_ping.hist.summary()}; REST {unlimited_rest.hist.summary()}; "
            f"failures {(unlimited_ping.errors + unlimited_rest.errors)[:2]}; worker RSS "
            f"{unlimited_rss:.0f} MB",
        )
    )
    return rows
