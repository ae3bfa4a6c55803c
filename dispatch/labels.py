"""
How rides, drivers and ride events read to people: one word and one tone
for each status and event kind, the same on the console and in the admin.

Tones are the console's: ok, info, trip, warn, danger, muted. The admin maps
them to unfold's label colours (project.common.admin.UNFOLD_COLOURS).
"""

from __future__ import annotations

from dispatch.models import DriverStatus, NotificationStatus, RideStatus

S = RideStatus

RIDE_STATUS: dict[str, tuple[str, str]] = {
    S.SCHEDULED: ("Scheduled", "info"),
    S.REQUESTED: ("Requested", "info"),
    S.SEARCHING: ("Searching", "info"),
    S.ASSIGNED: ("Driver on the way", "trip"),
    S.DRIVER_ARRIVED: ("Driver at pickup", "trip"),
    S.IN_PROGRESS: ("On trip", "trip"),
    S.COMPLETED: ("Completed", "ok"),
    S.CANCELLED: ("Cancelled", "muted"),
    S.NO_SHOW: ("No-show", "warn"),
    S.UNFULFILLED: ("Closed unfulfilled", "danger"),
}

EVENT_KINDS: dict[str, tuple[str, str]] = {
    "scheduled": ("Booked ahead", "info"),
    "requested": ("Booked", "info"),
    "searching": ("Searching for a driver", "info"),
    "no_drivers": ("No driver found", "warn"),
    "assigned": ("Driver assigned", "trip"),
    "reassigned": ("Driver reassigned", "trip"),
    "offered": ("Offered to a driver", "info"),
    "offer_declined": ("Offer declined", "info"),
    "offer_expired": ("Offer expired", "info"),
    "planned": ("Planned onto a run", "info"),
    "unplanned": ("Taken off its run", "warn"),
    "moved": ("Moved to another run", "info"),
    "ready": ("Ready for the return", "info"),
    "driver_arrived": ("Driver at pickup", "trip"),
    "started": ("Trip started", "trip"),
    "completed": ("Trip completed", "ok"),
    "no_show": ("No-show", "warn"),
    "cancelled": ("Cancelled", "muted"),
    "driver_cancelled": ("Driver gave the ride back", "warn"),
    "unfulfilled": ("Closed unfulfilled", "danger"),
    "waiting_passenger_told": ("Passenger told: driver at the door", "info"),
    "waiting_caregivers_told": ("Caregivers told: driver at the door", "warn"),
    "alarm_raised": ("Alarm raised", "danger"),
    "alarm_acknowledged": ("Alarm acknowledged", "ok"),
}

DRIVER_STATUS: dict[str, tuple[str, str]] = {
    DriverStatus.AVAILABLE: ("Available", "ok"),
    DriverStatus.ON_TRIP: ("On trip", "trip"),
    DriverStatus.OFFLINE: ("Offline", "muted"),
}

# Who took a step, as the event log's actor_role names them.
ROLES = {
    "passenger": "Passenger",
    "caregiver": "Caregiver",
    "driver": "Driver",
    "dispatcher": "Dispatcher",
    "system": "Care Connect",
}


def ride_status_label(status: str) -> str:
    return RIDE_STATUS.get(status, (status.replace("_", " ").capitalize(), "info"))[0]


def ride_status_tone(status: str) -> str:
    return RIDE_STATUS.get(status, ("", "info"))[1]


def event_label(kind: str) -> str:
    return EVENT_KINDS.get(kind, (kind.replace("_", " ").capitalize(), "info"))[0]


def event_tone(kind: str) -> str:
    return EVENT_KINDS.get(kind, ("", "info"))[1]


def driver_status_label(status: str) -> str:
    return DRIVER_STATUS.get(status, (status, "muted"))[0]


def role_label(role: str) -> str:
    return ROLES.get(role, role.capitalize())


NOTIFICATION_STATUS: dict[str, tuple[str, str]] = {
    NotificationStatus.PENDING: ("Waiting to be sent", "info"),
    NotificationStatus.SENT: ("Sent", "ok"),
    NotificationStatus.FAILED: ("Failed", "danger"),
    NotificationStatus.SKIPPED: ("Not sent", "warn"),
}
