from django.core.management.base import BaseCommand

from dispatch.notify.delivery import run


class Command(BaseCommand):
    help = (
        "Deliver the notification outbox (SMS, push, in the app): batch after batch, "
        "retrying failures with backoff, until stopped. --once: until nothing is due."
    )

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="stop when nothing is due")

    def handle(self, *args, once=False, **options):
        handled = run(once=once)
        if once:
            self.stdout.write(f"delivered {handled} notification(s)")
