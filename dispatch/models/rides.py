"""Drivers' live state, what a booking asks for, rides and their events, offers."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from people.models import UserType, VehicleType

RIDE_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"

# Who may drive at all, as lookups on the user: a driver's account, switched
# on, that support has verified. Going online, being matched or offered a
# ride, being shown on the board, being put back online after a trip and
# reaching a run's next rider all ask it (dispatch.drivers.driver_off_duty
# takes the others off duty).
MAY_DRIVE = {
    "user_type": UserType.DRIVER,
    "is_active": True,
    "driver_profile__is_verified": True,
}


class DriverStatus(models.TextChoices):
    OFFLINE = "offline", "Offline"
    AVAILABLE = "available", "Available"
    ON_TRIP = "on_trip", "On trip"


class DriverStateQuerySet(models.QuerySet):
    def may_drive(self):
        """Drivers who may drive (MAY_DRIVE): the only ones matched or shown to dispatchers."""
        return self.filter(**{f"driver__{lookup}": value for lookup, value in MAY_DRIVE.items()})

    def eligible(self, *, needs_wheelchair: bool):
        """
        Drivers who may take a ride now: available, who may drive
        (MAY_DRIVE: a driver's account, switched on, verified), and with a
        vehicle that can carry it (a wheelchair needs a wheelchair
        accessible one). Matching, offers and manual assignment all use it;
        staleness and distance come on top (dispatch.matching).
        """
        eligible = self.may_drive().filter(status=DriverStatus.AVAILABLE)
        if needs_wheelchair:
            eligible = eligible.filter(
                driver__driver_profile__vehicle_type=VehicleType.WHEELCHAIR_ACCESSIBLE
            )
        return eligible


class DriverState(models.Model):
    """
    Where a driver is and whether they can take a ride.

    The live position streams through the location store (memory or Redis);
    this row holds the status, which claims update atomically, and a copy of
    the position persisted at intervals.
    """

    driver = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="driver_state",
    )
    status = models.CharField(
        max_length=16, choices=DriverStatus.choices, default=DriverStatus.OFFLINE
    )
    latitude = models.FloatField(null=True, blank=True)
    longitude = models.FloatField(null=True, blank=True)
    heading = models.FloatField(null=True, blank=True)
    speed = models.FloatField(null=True, blank=True)
    location_updated_at = models.DateTimeField(null=True, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = DriverStateQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["status"])]
        constraints = [
            models.CheckConstraint(
                condition=Q(latitude__isnull=True) | (Q(latitude__gte=-90) & Q(latitude__lte=90)),
                name="driver_latitude_range",
            ),
            models.CheckConstraint(
                condition=Q(longitude__isnull=True)
                | (Q(longitude__gte=-180) & Q(longitude__lte=180)),
                name="driver_longitude_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.driver} ({self.status})"


class RideStatus(models.TextChoices):
    # Booked ahead: waits for its day, outside the active statuses, so a
    # passenger may hold one for tomorrow and book a ride now.
    SCHEDULED = "scheduled", "Scheduled"
    REQUESTED = "requested", "Requested"
    SEARCHING = "searching", "Searching"
    ASSIGNED = "assigned", "Driver assigned"
    DRIVER_ARRIVED = "driver_arrived", "Driver arrived"
    IN_PROGRESS = "in_progress", "In progress"
    COMPLETED = "completed", "Completed"
    CANCELLED = "cancelled", "Cancelled"
    NO_SHOW = "no_show", "No-show"
    UNFULFILLED = "unfulfilled", "Unfulfilled"


ACTIVE_STATUSES = (
    RideStatus.REQUESTED,
    RideStatus.SEARCHING,
    RideStatus.ASSIGNED,
    RideStatus.DRIVER_ARRIVED,
    RideStatus.IN_PROGRESS,
)
# The statuses in which a ride holds its driver.
DRIVER_HELD_STATUSES = (
    RideStatus.ASSIGNED,
    RideStatus.DRIVER_ARRIVED,
    RideStatus.IN_PROGRESS,
)
PENDING_STATUSES = (RideStatus.REQUESTED, RideStatus.SEARCHING)
FINAL_STATUSES = (
    RideStatus.COMPLETED,
    RideStatus.CANCELLED,
    RideStatus.NO_SHOW,
    RideStatus.UNFULFILLED,
)


# A series' own edits cancel its rides with these reasons; such a day may be
# booked again (a pause taken back), unlike a ride its rider cancelled.
SERIES_WITHDREW = ("series_changed", "series_paused", "series_ended")

# A will-call return nobody called by the end of the day after its own
# (dispatch.scheduling.returns_not_called_close) ends with this reason, and
# is told to nobody: its rider got home another way days ago.
RETURN_NOT_CALLED = "return_not_called"


class CancelledBy(models.TextChoices):
    PASSENGER = "passenger"
    CAREGIVER = "caregiver"
    DRIVER = "driver"
    DISPATCHER = "dispatcher"
    SYSTEM = "system"


class Leg(models.TextChoices):
    OUTBOUND = "outbound"
    RETURN = "return"


class RideQuerySet(models.QuerySet):
    def active(self):
        return self.filter(status__in=ACTIVE_STATUSES)

    def pending(self):
        """
        Rides waiting for a driver, each with `waiting_since`: when its rider
        began to wait. A ride booked now waits from its booking; a will-call
        return booked days ago, from its `ready` (the pickup it then asked
        for), not from its booking.
        """
        return self.filter(status__in=PENDING_STATUSES).annotate(
            waiting_since=Coalesce("pickup_at", "created_at")
        )

    def held_by(self, driver_id: int):
        """
        The rides a driver holds now: at most one on demand (a constraint
        says so), and those of their run that it has reached.
        """
        return self.filter(driver_id=driver_id, status__in=DRIVER_HELD_STATUSES).order_by(
            "assigned_at", "pk"
        )

    def scheduled(self):
        return self.filter(status=RideStatus.SCHEDULED)

    def on(self, service_date):
        """The booked-ahead rides of one service day (its pickup's local date)."""
        return self.filter(service_date=service_date)

    def with_people(self):
        """Everyone a ride's messages name, and the driver's live state (the card)."""
        return self.select_related(
            "passenger",
            "booked_by",
            "driver",
            "driver__driver_profile",
            "driver__driver_state",
            "passenger__passenger_profile",
        )


class RideRequest(models.Model):
    """
    What a booking asks for, a ride's or a recurring series': from where to
    where, and what the rider brings. A series hands these on to each ride
    it makes (dispatch.series).
    """

    pickup_latitude = models.FloatField()
    pickup_longitude = models.FloatField()
    pickup_address = models.CharField(max_length=255, blank=True)
    dropoff_latitude = models.FloatField()
    dropoff_longitude = models.FloatField()
    dropoff_address = models.CharField(max_length=255, blank=True)
    needs_wheelchair = models.BooleanField(default=False)
    needs_walker = models.BooleanField(default=False)
    service_animal = models.BooleanField(default=False)
    # People riding along; each takes a seat.
    companions = models.PositiveSmallIntegerField(default=0)
    attendant = models.BooleanField(default=False)
    notes = models.TextField(blank=True)

    class Meta:
        abstract = True

    @property
    def seats(self) -> int:
        """Seats it takes: the passenger's (unless in their wheelchair), and each companion's."""
        return (0 if self.needs_wheelchair else 1) + self.companions + int(self.attendant)


class Ride(RideRequest):
    """A booking: one passenger, one trip, at most one driver at a time."""

    # Chosen by the app, so it can open the ride's socket before booking.
    ride_id = models.CharField(max_length=64, unique=True)
    passenger = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="rides"
    )
    booked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="booked_rides"
    )
    driver = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="driven_rides",
    )
    status = models.CharField(
        max_length=16, choices=RideStatus.choices, default=RideStatus.REQUESTED
    )
    # Increases by one with every event, so a reconnecting app can tell what
    # it missed.
    version = models.PositiveIntegerField(default=0)

    distance_km = models.DecimalField(max_digits=7, decimal_places=2, null=True, blank=True)
    estimated_duration_minutes = models.PositiveIntegerField(null=True, blank=True)
    fare_amount = models.DecimalField(max_digits=9, decimal_places=2, null=True, blank=True)

    # Booked ahead: a requested pickup or an appointment to arrive by (UTC),
    # the local day it falls on, and the leg of a round trip. A will-call
    # return has no time: the rider says when they are ready.
    pickup_at = models.DateTimeField(null=True, blank=True)
    appointment_at = models.DateTimeField(null=True, blank=True)
    service_date = models.DateField(null=True, blank=True, db_index=True)
    leg = models.CharField(max_length=8, choices=Leg.choices, default=Leg.OUTBOUND)
    outbound = models.ForeignKey(
        "self", on_delete=models.CASCADE, null=True, blank=True, related_name="returns"
    )
    will_call = models.BooleanField(default=False)
    series = models.ForeignKey(
        "dispatch.RideSeries",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="rides",
    )
    # The run it is on in its day's plan, whether a dispatcher locked it
    # there, or why the planner left it out.
    run = models.ForeignKey(
        "dispatch.Run", on_delete=models.SET_NULL, null=True, blank=True, related_name="rides"
    )
    run_locked = models.BooleanField(default=False)
    unplanned_reason = models.CharField(max_length=32, blank=True)
    # What the rider was last told (a published plan): the planned pickup
    # and the window around it.
    confirmed_pickup_at = models.DateTimeField(null=True, blank=True)
    confirmed_window_start = models.DateTimeField(null=True, blank=True)
    confirmed_window_end = models.DateTimeField(null=True, blank=True)

    cancelled_by = models.CharField(max_length=16, choices=CancelledBy.choices, blank=True)
    cancel_reason = models.CharField(max_length=64, blank=True)
    # Set when a search ends without a driver; the ride waits for a dispatcher.
    no_driver_found_at = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    assigned_at = models.DateTimeField(null=True, blank=True)
    arrived_at = models.DateTimeField(null=True, blank=True)
    # When the passenger's caregivers were told the driver waits at the door
    # (the no-show escalation, dispatch.watch); cleared by a new arrival.
    waiting_escalated_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = RideQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "created_at"])]
        constraints = [
            models.CheckConstraint(
                condition=Q(ride_id__regex=RIDE_ID_PATTERN), name="ride_id_format"
            ),
            # On demand only: a run carries several passengers at once.
            models.UniqueConstraint(
                fields=["driver"],
                condition=Q(status__in=DRIVER_HELD_STATUSES, run__isnull=True),
                name="one_active_ride_per_driver",
            ),
            models.UniqueConstraint(
                fields=["passenger"],
                condition=Q(status__in=ACTIVE_STATUSES),
                name="one_active_ride_per_passenger",
            ),
            models.CheckConstraint(
                condition=Q(driver__isnull=False) | ~Q(status__in=DRIVER_HELD_STATUSES),
                name="held_ride_has_driver",
            ),
            models.CheckConstraint(
                condition=Q(pickup_latitude__gte=-90)
                & Q(pickup_latitude__lte=90)
                & Q(dropoff_latitude__gte=-90)
                & Q(dropoff_latitude__lte=90)
                & Q(pickup_longitude__gte=-180)
                & Q(pickup_longitude__lte=180)
                & Q(dropoff_longitude__gte=-180)
                & Q(dropoff_longitude__lte=180),
                name="ride_coordinates_range",
            ),
            models.CheckConstraint(
                condition=Q(pickup_at__isnull=True) | Q(appointment_at__isnull=True),
                name="pickup_time_or_appointment",
            ),
            # A series makes one ride of each leg a day, whatever became of it,
            # unless the series itself withdrew it.
            models.UniqueConstraint(
                fields=["series", "service_date", "leg"],
                condition=Q(series__isnull=False) & ~Q(cancel_reason__in=SERIES_WITHDREW),
                name="one_ride_per_series_day_and_leg",
            ),
        ]

    def __str__(self) -> str:
        return f"Ride {self.ride_id} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def is_pending(self) -> bool:
        return self.status in PENDING_STATUSES

    @property
    def is_waiting_for_ready(self) -> bool:
        """A will-call return not yet started: not searched for, and on no run yet."""
        return self.will_call and self.status == RideStatus.SCHEDULED and self.run_id is None

    @property
    def booked_on_behalf(self) -> bool:
        return self.booked_by_id != self.passenger_id

    @property
    def is_booked_ahead(self) -> bool:
        return self.service_date is not None


class RideEvent(models.Model):
    """Every change to a ride, in order, with who made it."""

    ride = models.ForeignKey(Ride, on_delete=models.CASCADE, related_name="events")
    version = models.PositiveIntegerField()
    kind = models.CharField(max_length=32)
    from_status = models.CharField(max_length=16, choices=RideStatus.choices, blank=True)
    to_status = models.CharField(max_length=16, choices=RideStatus.choices, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    actor_role = models.CharField(max_length=16, blank=True)
    payload = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["ride", "version"]
        constraints = [
            models.UniqueConstraint(fields=["ride", "version"], name="one_event_per_version"),
        ]

    def __str__(self) -> str:
        return f"{self.ride.ride_id} v{self.version} {self.kind}"


class OfferStatus(models.TextChoices):
    OFFERED = "offered"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    EXPIRED = "expired"
    WITHDRAWN = "withdrawn"


class RideOffer(models.Model):
    """In offer mode: a ride put to one driver, who may accept or decline."""

    ride = models.ForeignKey(Ride, on_delete=models.CASCADE, related_name="offers")
    driver = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="ride_offers"
    )
    status = models.CharField(
        max_length=16, choices=OfferStatus.choices, default=OfferStatus.OFFERED
    )
    distance_km = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)
    responded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["driver"],
                condition=Q(status=OfferStatus.OFFERED),
                name="one_open_offer_per_driver",
            ),
            models.UniqueConstraint(
                fields=["ride"],
                condition=Q(status=OfferStatus.OFFERED),
                name="one_open_offer_per_ride",
            ),
        ]

    def __str__(self) -> str:
        return f"Offer of {self.ride.ride_id} to {self.driver} ({self.status})"
