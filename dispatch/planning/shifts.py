"""
A driver's shift removed once its day is planned: its runs leave their
plans, and the riders they carried go back to the unassigned list with the
reason; on a published plan those riders hear that their window is gone
and the driver's manifest empties. A run under way is not taken away.
"""

from __future__ import annotations

from django.db import transaction

from dispatch.errors import DispatchError
from dispatch.models import DriverShift, PlanStatus, Ride, RideStatus, Run
from dispatch.planning import services
from dispatch.planning.problem import SHIFT_REMOVED
from people.models import User


def _refuse_under_way(run: Run, what: str) -> None:
    if services.run_under_way(run):
        raise DispatchError(
            f"{run.driver}'s run of {run.plan.service_date} is under way: {what}",
            code="invalid_state",
            status=409,
        )


def shift_remove(*, shift: DriverShift, actor: User | None) -> None:
    """
    Remove a shift. The riders on its runs are taken off them (each plan
    audited); where the plan is published they are told, and so is the
    driver. Refused while one of its runs is under way.
    """
    with transaction.atomic():
        for run in Run.objects.filter(shift=shift).select_related("plan", "driver"):
            plan = services._locked(run.plan, None)
            _refuse_under_way(run, "its shift stays until the run is done.")
            carried = Ride.objects.filter(run=run, status=RideStatus.SCHEDULED)
            ride_ids = sorted(carried.values_list("ride_id", flat=True))
            carried.update(run=None, run_locked=False, unplanned_reason=SHIFT_REMOVED)
            run.delete()
            services.audit(
                plan, "shift_removed", actor=actor, driver_id=run.driver_id, ride_ids=ride_ids
            )
            if plan.status == PlanStatus.PUBLISHED:
                services.tell_drivers(plan, "shift_removed", only=[run.driver_id])
                services.tell_riders(plan, actor=actor)
        shift.delete()
