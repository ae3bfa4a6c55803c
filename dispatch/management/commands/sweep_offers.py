import time

from django.core.management.base import BaseCommand

from dispatch.offers import ride_offers_expire


class Command(BaseCommand):
    help = (
        "Expire overdue ride offers (offer mode) and pass each ride on. Every "
        "worker also does this once a second; run this from a timer as a backstop."
    )

    def add_arguments(self, parser):
        parser.add_argument("--loop", action="store_true", help="keep sweeping")
        parser.add_argument("--interval", type=float, default=1.0, help="seconds between sweeps")

    def handle(self, *args, loop=False, interval=1.0, **options):
        while True:
            expired = ride_offers_expire()
            if expired:
                self.stdout.write(f"expired {expired} offer(s)")
            if not loop:
                return
            time.sleep(interval)
