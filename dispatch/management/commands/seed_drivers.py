from django.core.management.base import BaseCommand

from dispatch.demo import seed_drivers


class Command(BaseCommand):
    help = "Create the three original demo drivers, available and verified (idempotent)."

    def handle(self, *args, **options):
        for driver in seed_drivers():
            self.stdout.write(f"  {driver.get_full_name()}  +{driver.phone_number}")
        self.stdout.write(self.style.SUCCESS("Seeded 3 demo drivers."))
