from datetime import timedelta

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from dispatch.retention import positions_purge
from people.retention import api_sessions_purge, otp_devices_purge


class Command(BaseCommand):
    help = (
        "Delete what is kept no longer than RETENTION_DAYS: ended API sessions, "
        "SMS-code devices of phones that never registered, offline drivers' last "
        "positions; and expired console sessions (clearsessions). Run daily."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--days", type=int, default=None, help="override RETENTION_DAYS for this run"
        )

    def handle(self, *args, days=None, **options):
        days = settings.RETENTION_DAYS if days is None else days
        if days < 1:
            raise CommandError(f"The retention must be at least 1 day, not {days}.")
        before = timezone.now() - timedelta(days=days)
        counts = {
            "API sessions": api_sessions_purge(before=before),
            "SMS-code devices": otp_devices_purge(before=before),
            "driver positions": positions_purge(before=before),
        }
        call_command("clearsessions")
        self.stdout.write(
            f"housekeeping: kept {days} days; deleted "
            + ", ".join(f"{n} {what}" for what, n in counts.items())
            + "; expired console sessions cleared"
        )
