"""What is booked ahead and who drives when: recurring series and shifts."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from dispatch.models.rides import RideRequest


class SeriesStatus(models.TextChoices):
    ACTIVE = "active"
    ENDED = "ended"


class RideSeries(RideRequest):
    """
    A recurring booking ("Mon/Wed/Fri 07:30 to the dialysis centre, back at
    12:00"): weekdays at a local time from a start date to an end date, less
    exception dates and pauses. Its rides are made BOOKING_HORIZON_DAYS ahead
    (dispatch.series), each asking for what the series does (RideRequest).
    """

    passenger = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="ride_series"
    )
    booked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    # 0 = Monday ... 6 = Sunday.
    weekdays = models.JSONField(default=list)
    # Local times (TIME_ZONE): one of a pickup time or an appointment.
    pickup_time = models.TimeField(null=True, blank=True)
    appointment_time = models.TimeField(null=True, blank=True)
    return_time = models.TimeField(null=True, blank=True)
    return_will_call = models.BooleanField(default=False)
    start_date = models.DateField()
    end_date = models.DateField(null=True, blank=True)
    # ISO dates ("2026-12-25") with no ride.
    except_dates = models.JSONField(default=list, blank=True)

    status = models.CharField(
        max_length=8, choices=SeriesStatus.choices, default=SeriesStatus.ACTIVE
    )
    version = models.PositiveIntegerField(default=1)
    # Rides exist up to this date.
    materialised_until = models.DateField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "ride series"
        constraints = [
            models.CheckConstraint(
                condition=Q(pickup_time__isnull=True) ^ Q(appointment_time__isnull=True),
                name="series_pickup_time_xor_appointment",
            ),
            models.CheckConstraint(
                condition=Q(end_date__isnull=True) | Q(end_date__gte=F("start_date")),
                name="series_ends_after_it_starts",
            ),
        ]

    def __str__(self) -> str:
        return f"Series {self.pk} of {self.passenger}"


class SeriesPause(models.Model):
    """No rides of the series from `start_date` to `end_date` (a hospital stay, a holiday)."""

    series = models.ForeignKey(RideSeries, on_delete=models.CASCADE, related_name="pauses")
    start_date = models.DateField()
    end_date = models.DateField()
    reason = models.CharField(max_length=255, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["start_date"]
        constraints = [
            models.CheckConstraint(
                condition=Q(end_date__gte=F("start_date")), name="pause_ends_after_it_starts"
            ),
        ]

    def __str__(self) -> str:
        return f"Pause {self.start_date}-{self.end_date} of series {self.series_id}"


class DriverShift(models.Model):
    """A driver on duty: when, from where to where, and what the vehicle carries."""

    driver = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="shifts"
    )
    start_at = models.DateTimeField(db_index=True)
    end_at = models.DateTimeField()
    start_latitude = models.FloatField()
    start_longitude = models.FloatField()
    start_address = models.CharField(max_length=255, blank=True)
    end_latitude = models.FloatField()
    end_longitude = models.FloatField()
    end_address = models.CharField(max_length=255, blank=True)
    seats = models.PositiveSmallIntegerField(default=4)
    wheelchair_spaces = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["start_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(end_at__gt=F("start_at")), name="shift_ends_after_it_starts"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.driver} {timezone.localtime(self.start_at):%Y-%m-%d %H:%M}"
