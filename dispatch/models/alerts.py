"""Family tracking links to one ride, and alarms raised on a trip."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from dispatch.models.rides import Ride


class ShareLink(models.Model):
    """
    A public link that follows one ride (/t/<token>/). Only a hash of the
    token is kept: whoever reads the table cannot open the page.
    """

    ride = models.ForeignKey(Ride, on_delete=models.CASCADE, related_name="share_links")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Share link {self.pk} of {self.ride_id}"


class AlarmKind(models.TextChoices):
    SILENT = "silent", "Driver silent"
    STOPPED = "stopped", "Driver stopped on the way"
    SOS = "sos", "SOS from the passenger"


class Alarm(models.Model):
    """Something wrong on a trip; it stays on the board until a dispatcher acknowledges it."""

    ride = models.ForeignKey(Ride, on_delete=models.CASCADE, related_name="alarms")
    kind = models.CharField(max_length=16, choices=AlarmKind.choices)
    raised_at = models.DateTimeField(default=timezone.now)
    raised_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    details = models.JSONField(default=dict, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["raised_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["ride", "kind"],
                condition=Q(acknowledged_at__isnull=True),
                name="one_open_alarm_per_ride_and_kind",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} on {self.ride_id}"

    @property
    def is_open(self) -> bool:
        return self.acknowledged_at is None
