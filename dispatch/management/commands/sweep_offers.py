from dispatch.management.sweep import SweepCommand
from dispatch.offers import ride_offers_expire


class Command(SweepCommand):
    help = (
        "Expire overdue ride offers (offer mode) and pass each ride on. Every "
        "worker also does this once a second; run this from a timer as a backstop."
    )
    interval = 1.0

    def sweep(self):
        expired = ride_offers_expire()
        return f"expired {expired} offer(s)" if expired else None
