"""
Dispatch's rows: drivers' live state, what a booking asks for, rides and
their events, offers (`rides`); the notification outbox (`notifications`);
share links and alarms (`alerts`); recurring series and shifts
(`schedule`); day plans, runs and stops (`plans`).
"""

from dispatch.models.alerts import Alarm, AlarmKind, ShareLink
from dispatch.models.notifications import (
    NoticeDue,
    NoticeLogMark,
    Notification,
    NotificationStatus,
)
from dispatch.models.plans import DayPlan, PlanEvent, PlanStatus, Run, Stop, StopKind
from dispatch.models.rides import (
    ACTIVE_STATUSES,
    DRIVER_HELD_STATUSES,
    FINAL_STATUSES,
    MAY_DRIVE,
    PENDING_STATUSES,
    RETURN_NOT_CALLED,
    RIDE_ID_PATTERN,
    SERIES_WITHDREW,
    CancelledBy,
    DriverState,
    DriverStateQuerySet,
    DriverStatus,
    Leg,
    OfferStatus,
    Ride,
    RideEvent,
    RideOffer,
    RideQuerySet,
    RideRequest,
    RideStatus,
)
from dispatch.models.schedule import DriverShift, RideSeries, SeriesPause, SeriesStatus

__all__ = [
    "ACTIVE_STATUSES",
    "DRIVER_HELD_STATUSES",
    "FINAL_STATUSES",
    "MAY_DRIVE",
    "PENDING_STATUSES",
    "RIDE_ID_PATTERN",
    "RETURN_NOT_CALLED",
    "SERIES_WITHDREW",
    "Alarm",
    "AlarmKind",
    "CancelledBy",
    "DayPlan",
    "DriverShift",
    "DriverState",
    "DriverStateQuerySet",
    "DriverStatus",
    "Leg",
    "NoticeDue",
    "NoticeLogMark",
    "Notification",
    "NotificationStatus",
    "OfferStatus",
    "PlanEvent",
    "PlanStatus",
    "Ride",
    "RideEvent",
    "RideOffer",
    "RideQuerySet",
    "RideRequest",
    "RideSeries",
    "RideStatus",
    "Run",
    "SeriesPause",
    "SeriesStatus",
    "ShareLink",
    "Stop",
    "StopKind",
]
