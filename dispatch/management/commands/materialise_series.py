from django.conf import settings

from dispatch.management.sweep import SweepCommand
from dispatch.series import series_materialise


class Command(SweepCommand):
    help = (
        "Make the rides of every active recurring series up to BOOKING_HORIZON_DAYS "
        "ahead (idempotent). Run it from a timer (deploy/systemd/"
        "care-connect-series.timer); `make run` does it in-process."
    )
    interval = 3600.0

    def sweep(self):
        made = series_materialise()
        return f"{made} ride(s) made, up to {settings.BOOKING_HORIZON_DAYS} days ahead."
