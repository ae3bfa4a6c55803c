"""
A driver's shift changed or removed once its day is planned. A changed
shift's runs follow it (its driver, its hours, places and vehicle: the
same stops timed again), or the change is refused in words; a removed
shift's runs leave their plans, and the riders they carried go back to the
unassigned list with the reason. On a published plan the riders whose
window or driver changed are told, and the drivers' manifests follow. A
run under way keeps its shift as it is.
"""

from __future__ import annotations

from django.db import transaction

from dispatch.errors import DispatchError
from dispatch.models import DriverShift, PlanStatus, Ride, RideStatus, Run
from dispatch.planning import build as rows
from dispatch.planning import services
from dispatch.planning.problem import SHIFT_REMOVED
from dispatch.planning.timetable import as_asked, timetable
from people.models import User


def _refuse_under_way(run: Run, what: str) -> None:
    if services.run_under_way(run):
        raise DispatchError(
            f"{run.driver}'s run of {run.plan.service_date} is under way: {what}",
            code="invalid_state",
            status=409,
        )


def shift_change(*, shift: DriverShift, actor: User | None) -> DriverShift:
    """
    Save a shift as edited (or a new one). Each run on it is driven by the
    shift's driver and its stops, in the same order, are timed again for
    the shift as it now is. Refused, saving nothing, when they no longer
    fit it (move trips off, or plan the day again, first) or while a run
    on it is under way.
    """
    with transaction.atomic():
        shift.save()
        for run in Run.objects.filter(shift=shift).select_related("plan", "driver"):
            plan = services._locked(run.plan, None)
            _refuse_under_way(run, "its shift changes once the run is done.")
            on_run = Ride.objects.filter(run=run, status=RideStatus.SCHEDULED)
            day = rows.build(plan.service_date, rides=on_run.select_related("run"), shifts=[shift])
            route = timetable(day.problem, day.problem.vehicle[shift.pk], rows.sequence_of(run))
            if route is None:
                raise DispatchError(
                    f"{run.driver}'s run of {plan.service_date} no longer fits this shift "
                    "(its hours, places, seats or wheelchair spaces): move trips off the "
                    "run, or plan the day again, first.",
                    code="invalid_state",
                    status=409,
                )
            before = run.driver_id
            run.driver = shift.driver
            run.save(update_fields=["driver"])
            rows.write_route(day, run, as_asked(day.problem, route))
            services.audit(
                plan, "shift_changed", actor=actor, driver_id=shift.driver_id, before=before
            )
            if plan.status == PlanStatus.PUBLISHED:
                services.tell_drivers(plan, "shift_changed", only=[before, shift.driver_id])
                services.tell_riders(plan, actor=actor)
    return shift


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
