from django.core.management.base import BaseCommand

from dispatch.demo import DEMO_DISPATCHER_PASSWORD, DEMO_DISPATCHER_PHONE, seed_demo


class Command(BaseCommand):
    help = "Load the demo data (drivers, passenger, caregiver, dispatcher); idempotent."

    def handle(self, *args, **options):
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
