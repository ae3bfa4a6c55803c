import time

from django.conf import settings
from django.core.management.base import BaseCommand

from dispatch.series import series_materialise


class Command(BaseCommand):
    help = (
        "Make the rides of every active recurring series up to BOOKING_HORIZON_DAYS "
        "ahead (idempotent). Run it from a timer (deploy/systemd/"
        "care-connect-series.timer); `make run` does it in-process."
    )

    def add_arguments(self, parser):
        parser.add_argument("--loop", action="store_true", help="keep going")
        parser.add_argument("--interval", type=float, default=3600, help="seconds between runs")

    def handle(self, *args, loop=False, interval=3600.0, **options):
        while True:
            made = series_materialise()
            self.stdout.write(
                f"{made} ride(s) made, up to {settings.BOOKING_HORIZON_DAYS} days ahead."
            )
            if not loop:
                return
            time.sleep(interval)
