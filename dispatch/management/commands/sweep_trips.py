import time

from django.core.management.base import BaseCommand

from dispatch.watch import trips_sweep


class Command(BaseCommand):
    help = (
        "Take the timed steps of trips under way: tell caregivers a driver waits at "
        "the door (no-show escalation), and raise the watchdog's alarms. Every "
        "worker also does this every TRIP_SWEEP_S; run this from a timer as a backstop."
    )

    def add_arguments(self, parser):
        parser.add_argument("--loop", action="store_true", help="keep sweeping")
        parser.add_argument("--interval", type=float, default=5.0, help="seconds between sweeps")

    def handle(self, *args, loop=False, interval=5.0, **options):
        while True:
            done = trips_sweep()
            if any(done.values()):
                self.stdout.write(
                    f"told caregivers on {done['waiting_escalated']} ride(s), "
                    f"raised {done['alarms_raised']} alarm(s)"
                )
            if not loop:
                return
            time.sleep(interval)
