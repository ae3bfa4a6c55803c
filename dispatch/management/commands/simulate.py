"""`manage.py simulate`: a simulated day against a running server (dispatch.simulation)."""

from __future__ import annotations

import asyncio
import os
import signal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from dispatch.demo import demo_data_present, seed_simulation


class Command(BaseCommand):
    help = (
        "Drive a simulated day (about 20 moving drivers, passengers and caregivers "
        "booking) through the real sockets of a running server, e.g. `make run`. "
        "Ctrl-C stops it cleanly."
    )

    def add_arguments(self, parser):
        port = os.environ.get("PORT", "8067")
        parser.add_argument(
            "--url",
            default=f"http://127.0.0.1:{port}",
            help="the running server (default: http://127.0.0.1:$PORT, PORT=8067)",
        )
        parser.add_argument("--drivers", type=int, default=20, help="simulated drivers (20)")
        parser.add_argument(
            "--speed",
            type=float,
            default=4.0,
            help="drivers move this many times faster than city speed (4)",
        )
        parser.add_argument(
            "--booking-every", type=float, default=8.0, help="seconds between bookings (8)"
        )
        parser.add_argument(
            "--tick", type=float, default=2.0, help="seconds between position reports (2)"
        )
        parser.add_argument("--no-show-share", type=float, default=0.05)
        parser.add_argument("--far-share", type=float, default=0.15)
        parser.add_argument(
            "--unmatched-wait", type=float, default=120.0, help="seconds an unmatched booker waits"
        )
        parser.add_argument("--duration", type=float, default=None, help="stop after N seconds")
        parser.add_argument("--seed", type=int, default=None, help="random seed")
        parser.add_argument(
            "--i-know",
            action="store_true",
            help="run although DEBUG is off or the demo data is missing (never on real people)",
        )

    def handle(self, *args, **options):
        if not options["i_know"]:
            if not settings.DEBUG:
                raise CommandError(
                    "DEBUG is off, so this may be a database of real people: not simulating. "
                    "--i-know overrides."
                )
            if not demo_data_present():
                raise CommandError(
                    "The demo data is not in this database (make setup loads it): not "
                    "simulating. --i-know overrides."
                )
        if options["drivers"] < 1:
            raise CommandError("--drivers must be at least 1.")
        # Imported here, after the refusals: the simulator's socket client
        # (websockets) is a development dependency, absent from a production
        # install, where this command must still refuse in words.
        from dispatch.simulation import SimConfig, Simulation

        url = options["url"].rstrip("/")
        if url.startswith("http"):
            url = "ws" + url.removeprefix("http")
        cast = seed_simulation(options["drivers"])
        config = SimConfig(
            url=url,
            speed=options["speed"],
            booking_every_s=options["booking_every"],
            tick_s=options["tick"],
            far_share=options["far_share"],
            no_show_share=options["no_show_share"],
            unmatched_wait_s=options["unmatched_wait"],
            duration_s=options["duration"],
            seed=options["seed"],
        )
        self.stdout.write(
            f"Simulating {len(cast.drivers)} drivers, {len(cast.passengers)} passengers and "
            f"{len(cast.caregivers)} caregivers against {url} (Ctrl-C stops)."
        )
        stats = asyncio.run(self._run(Simulation, config, cast))
        self.stdout.write(
            self.style.SUCCESS("Stopped cleanly: ")
            + f"{stats.booked} booked, {stats.assigned} assigned, {stats.completed} completed, "
            f"{stats.no_shows} no-shows, {stats.cancelled} cancelled."
        )

    async def _run(self, simulation, config, cast):
        sim = simulation(config, cast, say=lambda line: self.stdout.write(line))
        loop = asyncio.get_running_loop()

        def first_signal():
            sim.stop()
            # A second Ctrl-C stops at once.
            loop.remove_signal_handler(signal.SIGINT)

        loop.add_signal_handler(signal.SIGINT, first_signal)
        loop.add_signal_handler(signal.SIGTERM, sim.stop)
        return await sim.run()
