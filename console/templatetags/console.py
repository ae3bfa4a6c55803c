"""Small presentation helpers for the console's templates."""

from __future__ import annotations

from django import template

from console.regions import vehicle_label
from dispatch.models import RideStatus
from people.phones import display_phone

register = template.Library()

# Each ride status as words a dispatcher reads at a glance, and its tone.
RIDE_STATUS = {
    RideStatus.REQUESTED: ("Requested", "info"),
    RideStatus.SEARCHING: ("Searching", "info"),
    RideStatus.ASSIGNED: ("Driver on the way", "trip"),
    RideStatus.DRIVER_ARRIVED: ("Driver at pickup", "trip"),
    RideStatus.IN_PROGRESS: ("On trip", "trip"),
    RideStatus.COMPLETED: ("Completed", "ok"),
    RideStatus.CANCELLED: ("Cancelled", "muted"),
    RideStatus.NO_SHOW: ("No-show", "warn"),
    RideStatus.UNFULFILLED: ("Unfulfilled", "danger"),
}

EVENT_KINDS = {
    "requested": "Booked",
    "searching": "Searching for a driver",
    "no_drivers": "No driver found",
    "assigned": "Driver assigned",
    "reassigned": "Driver reassigned",
    "offered": "Offered to a driver",
    "offer_declined": "Offer declined",
    "offer_expired": "Offer expired",
    "driver_arrived": "Driver at pickup",
    "started": "Trip started",
    "completed": "Trip completed",
    "no_show": "No-show",
    "cancelled": "Cancelled",
    "driver_cancelled": "Driver gave the ride back",
    "unfulfilled": "Closed unfulfilled",
    "waiting_passenger_told": "Passenger told: driver at the door",
    "waiting_caregivers_told": "Caregivers told: driver at the door",
    "alarm_raised": "Alarm raised",
    "alarm_acknowledged": "Alarm acknowledged",
}

EVENT_TONES = {
    "no_drivers": "warn",
    "assigned": "trip",
    "reassigned": "trip",
    "completed": "ok",
    "cancelled": "muted",
    "driver_cancelled": "warn",
    "no_show": "warn",
    "unfulfilled": "danger",
    "waiting_caregivers_told": "warn",
    "alarm_raised": "danger",
    "alarm_acknowledged": "ok",
}


@register.filter
def ride_status_label(status: str) -> str:
    return RIDE_STATUS.get(status, (status, "info"))[0]


@register.filter
def ride_status_tone(status: str) -> str:
    return RIDE_STATUS.get(status, (status, "info"))[1]


@register.filter
def event_label(kind: str) -> str:
    return EVENT_KINDS.get(kind, kind.replace("_", " ").capitalize())


@register.filter
def event_tone(kind: str) -> str:
    return EVENT_TONES.get(kind, "info")


@register.filter
def km(value: float | None) -> str:
    if value is None:
        return "position unknown"
    if value < 1:
        return f"{value * 1000:.0f} m"
    return f"{value:.1f} km"


@register.filter
def tel(who) -> str:
    """A tel: link target for a user, or a number in digits ("27821234567")."""
    if who is None or who == "":
        return ""
    return f"tel:+{who if isinstance(who, str) else who.phone_number}"


@register.filter
def phone(digits: str) -> str:
    """A number in digits as people read it: "+27 82 123 4567"."""
    return display_phone(digits) if digits else ""


@register.filter
def vehicle(user) -> str:
    """A driver's vehicle, e.g. "Sedan · CA 123 GP"."""
    return vehicle_label(user)
