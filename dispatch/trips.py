"""
The driver's steps of a trip: at the pickup, on board, dropped off, no
show; and a run reaching its next rider. Each goes through the state
machine (dispatch.rides), which alone writes a ride's status and version.
"""

from __future__ import annotations

import math
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from dispatch import broadcast, drivers, rides
from dispatch.errors import (
    DispatchError,
    IllegalTransition,
    NoShowTooEarly,
    NotAllowed,
    RideConflict,
)
from dispatch.models import DRIVER_HELD_STATUSES, CancelledBy, Ride, RideStatus
from people.models import User

S = RideStatus


def drivers_own(ride: Ride, driver: User) -> None:
    if ride.driver_id != driver.pk or ride.status not in DRIVER_HELD_STATUSES:
        raise NotAllowed(f"Ride {ride.ride_id} is not assigned to you.")


def drivers_active_ride(*, driver: User, ride_id: str | None = None) -> Ride:
    """
    The ride the driver holds; `ride_id`, if the app sent one, must name one
    they hold (a run may hold several: without it, the one reached first).
    """
    held = Ride.objects.with_people().held_by(driver.pk)
    ride = held.filter(ride_id=ride_id).first() if ride_id else held.first()
    if ride is None and ride_id:
        current = held.first()
        raise DispatchError(
            f"Your active ride is {current.ride_id}, not {ride_id}."
            if current is not None
            else f"You have no active ride {ride_id}.",
            code="invalid_state",
            status=409,
            fields={"ride_id": "not a ride you hold now"},
        )
    if ride is None:
        raise DispatchError("You have no active ride.", code="invalid_state", status=409)
    return ride


def _driver_step(ride: Ride, driver: User, to_status: str, kind: str, **fields) -> Ride:
    """One step of the trip, reported by the ride's own driver."""
    drivers_own(ride, driver)
    with transaction.atomic():
        freed = rides.freed_driver(ride) if to_status not in DRIVER_HELD_STATUSES else None
        rides.transition(ride, to_status, kind=kind, actor=driver, role="driver", **fields)
        drivers.release(freed)
        broadcast.ride_changed(ride, kind)
    return ride


def ride_driver_arrived(*, ride: Ride, driver: User) -> Ride:
    """
    The driver is at the pickup. The first step of the no-show escalation
    goes with it: the passenger hears the driver waits at the door
    (`waiting_passenger_told`); dispatch.watch tells the caregivers later.
    """
    drivers_own(ride, driver)
    with transaction.atomic():
        rides.transition(
            ride,
            S.DRIVER_ARRIVED,
            kind="driver_arrived",
            actor=driver,
            role="driver",
            arrived_at=timezone.now(),
            waiting_escalated_at=None,
        )
        broadcast.ride_changed(ride, "driver_arrived")
        rides.record(ride, "waiting_passenger_told", payload={"passenger_id": ride.passenger_id})
        broadcast.ride_changed(ride, "waiting_passenger_told")
    return ride


def ride_start(*, ride: Ride, driver: User) -> Ride:
    return _driver_step(ride, driver, S.IN_PROGRESS, "started", started_at=timezone.now())


def ride_complete(*, ride: Ride, driver: User) -> Ride:
    return _driver_step(ride, driver, S.COMPLETED, "completed", ended_at=timezone.now())


def no_show_allowed_at(ride: Ride):
    """
    When the driver may record a no-show: NO_SHOW_WAIT_MIN after arriving,
    and not before the caregivers were told (NO_SHOW_CAREGIVERS_AFTER_MIN).
    """
    wait = max(settings.NO_SHOW_WAIT_MIN, settings.NO_SHOW_CAREGIVERS_AFTER_MIN)
    return ride.arrived_at + timedelta(minutes=wait)


def ride_no_show(*, ride: Ride, driver: User) -> Ride:
    """
    The passenger did not come. Only after the driver has waited at the
    pickup and the escalation has run: the passenger, then their caregivers
    were told the driver waits at the door. Their returns of the day end
    with it (rides.returns_cancel).
    """
    drivers_own(ride, driver)
    if ride.status != S.DRIVER_ARRIVED or ride.arrived_at is None:
        raise IllegalTransition(ride, S.NO_SHOW, "Mark arrival at the pickup first.")
    now = timezone.now()
    allowed_at = no_show_allowed_at(ride)
    if now < allowed_at:
        left = math.ceil((allowed_at - now).total_seconds())
        raise NoShowTooEarly(
            ride,
            left,
            f"Wait at the pickup until {timezone.localtime(allowed_at):%H:%M:%S} "
            f"({left // 60} min {left % 60} s from now) before recording a no-show.",
        )
    if ride.waiting_escalated_at is None:
        # The sweep tells the caregivers within TRIP_SWEEP_S of the time.
        left = math.ceil(settings.TRIP_SWEEP_S)
        raise NoShowTooEarly(
            ride,
            left,
            f"The passenger's caregivers are being told you are waiting; try again in {left} s.",
        )
    with transaction.atomic():
        going = list(rides.returns_going_with(ride))
        _driver_step(
            ride,
            driver,
            S.NO_SHOW,
            "no_show",
            ended_at=now,
            cancelled_by=CancelledBy.SYSTEM,
            cancel_reason="no_show",
        )
        rides.returns_cancel(
            going, actor=None, cancelled_by=CancelledBy.SYSTEM, reason="No-show on the way out"
        )
    return ride


def ride_run_reached(*, ride: Ride, actor: User | None = None, role: str = "system") -> Ride:
    """
    A scheduled ride's run has reached it (its driver heads for the pickup):
    the ride becomes `assigned` to the run's driver, and everyone hears
    driver_assigned / ride_assigned as for a ride matched on demand.
    """
    if ride.run_id is None:
        raise IllegalTransition(ride, S.ASSIGNED, f"Ride {ride.ride_id} is on no run.")
    if not drivers.may_drive(ride.run.driver_id):
        # Support withdrew the driver's verification, switched the account
        # off or changed its role: they finish the trips they hold, and take
        # on no new rider (dispatch.drivers.driver_off_duty).
        raise NotAllowed(
            "Your account may no longer drive, so the run's next riders are not "
            "yours to pick up; support will contact you."
        )
    try:
        with transaction.atomic():
            # Before the ride's row, as an ending's freed_driver takes it.
            drivers.lock_status(ride.run.driver_id)
            rides.transition(
                ride,
                S.ASSIGNED,
                kind="assigned",
                actor=actor,
                role=role,
                payload={"driver_id": ride.run.driver_id, "run_id": ride.run_id},
                driver=ride.run.driver,
                assigned_at=timezone.now(),
            )
            drivers.carry(ride.run.driver_id)
            broadcast.ride_changed(ride, "assigned")
    except IntegrityError as exc:
        # The rider booked a ride now meanwhile (one active ride each).
        active = Ride.objects.active().filter(passenger_id=ride.passenger_id).first()
        if active is None:
            raise
        raise RideConflict(
            f"The rider of ride {ride.ride_id} is already on another ride ({active.ride_id}), "
            "so this pickup is not yours now; call dispatch.",
            active_ride_id=active.ride_id,
        ) from exc
    return ride
