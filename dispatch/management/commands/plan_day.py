from datetime import date, timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from dispatch.planning import services


class Command(BaseCommand):
    help = (
        "Plan a day's scheduled rides onto its drivers' shifts (default: tomorrow). "
        "Locked trips stay on their runs; a published plan stays published and "
        "riders whose pickup window changed are told."
    )

    def add_arguments(self, parser):
        parser.add_argument("--date", help="the service day, YYYY-MM-DD (default: tomorrow)")
        parser.add_argument("--publish", action="store_true", help="publish the plan after")
        parser.add_argument(
            "--timeout", type=float, default=None, help="solver seconds (default PLAN_TIMEOUT_S)"
        )

    def handle(self, *args, date=None, publish=False, timeout=None, **options):
        try:
            day = _date(date) if date else timezone.localdate() + timedelta(days=1)
        except ValueError as exc:
            raise CommandError(f"--date is YYYY-MM-DD, not {date!r}.") from exc
        plan = services.plan_day(service_date=day, timeout_s=timeout)
        stats = plan.stats
        self.stdout.write(
            f"{day}: {stats['assigned']} of {stats['trips']} trips on runs, "
            f"{stats['vehicles_used']} of {stats['vehicles']} shifts used, "
            f"{stats['vehicle_hours']} vehicle-hours, solved in {plan.solve_seconds} s "
            f"({plan.solver})."
        )
        for ride, why in services.unassigned_of(plan):
            self.stdout.write(f"  not planned: {ride.ride_id}: {why}")
        if publish:
            plan = services.plan_publish(plan=plan)
            self.stdout.write(self.style.SUCCESS(f"Published (version {plan.version})."))


def _date(text: str) -> date:
    return date.fromisoformat(text)
