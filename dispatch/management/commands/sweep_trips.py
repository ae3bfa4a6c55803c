from dispatch.management.sweep import SweepCommand
from dispatch.watch import trips_sweep


class Command(SweepCommand):
    help = (
        "Take the timed steps of trips: tell caregivers a driver waits at the door "
        "(no-show escalation), raise the watchdog's alarms, and close will-call "
        "returns nobody called. Every "
        "worker also does this every TRIP_SWEEP_S; run this from a timer as a backstop."
    )
    interval = 5.0

    def sweep(self):
        done = trips_sweep()
        if not any(done.values()):
            return None
        return (
            f"told caregivers on {done['waiting_escalated']} ride(s), "
            f"raised {done['alarms_raised']} alarm(s), "
            f"closed {done['returns_closed']} return(s) nobody called"
        )
