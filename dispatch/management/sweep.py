"""The shape of a command that sweeps once, or again and again (`--loop`)."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand
from django.db import close_old_connections


class SweepCommand(BaseCommand):
    """
    One `sweep()` a run; with `--loop`, one every `--interval` seconds until
    stopped. What a sweep says, if anything, is written out.
    """

    # Seconds between sweeps under --loop, unless --interval says otherwise.
    interval = 1.0

    def add_arguments(self, parser):
        parser.add_argument("--loop", action="store_true", help="keep sweeping")
        parser.add_argument(
            "--interval", type=float, default=self.interval, help="seconds between sweeps"
        )

    def handle(self, *args, loop=False, interval=None, **options):
        while True:
            said = self.sweep()
            if said:
                self.stdout.write(said)
            if not loop:
                return
            # Between sweeps, as between requests: a connection past its
            # age, or broken (the database restarted), is not used again.
            close_old_connections()
            time.sleep(self.interval if interval is None else interval)

    def sweep(self) -> str | None:
        """Do one sweep; what to say about it, or None to say nothing."""
        raise NotImplementedError
