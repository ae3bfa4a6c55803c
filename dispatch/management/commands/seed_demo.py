from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from dispatch.demo import DEMO_DISPATCHER_PASSWORD, DEMO_DISPATCHER_PHONE, seed_demo


class Command(BaseCommand):
    help = "Load the demo data (drivers, passenger, caregiver, dispatcher); idempotent."

    def add_arguments(self, parser):
        parser.add_argument(
            "--even-without-debug",
            action="store_true",
            help="load it although DEBUG is off (a demo server; never a real one)",
        )

    def handle(self, *args, even_without_debug=False, **options):
        # The demo dispatcher's password is in the README: with DEBUG off this
        # is most likely a production database, which must never get it.
        if not settings.DEBUG and not even_without_debug:
            raise CommandError(
                "DEBUG is off, so this looks like production: demo data not loaded "
                "(its dispatcher password is public). --even-without-debug overrides."
            )
        seed_demo()
        self.stdout.write(
            self.style.SUCCESS("Demo data loaded: ")
            + "drivers John Doe, Jane Smith, Mike Johnson (available), Michael Brown "
            "(offline); passenger Sarah Johnson 27821234567; caregiver Emily Davis "
            "27821234569."
        )
        self.stdout.write(
            self.style.WARNING(
                f"DEMO ONLY: dispatcher login {DEMO_DISPATCHER_PHONE} / "
                f"{DEMO_DISPATCHER_PASSWORD} (console at /console/). "
                "This account exists in demo data only; never load demo data in production."
            )
        )
