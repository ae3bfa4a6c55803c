"""
The notification outbox: what ride events owe (the ride event log itself,
read up to NoticeLogMark, or a NoticeDue row), then one row per recipient,
event and channel (Notification).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from people.models import NoticeChannel


class NotificationStatus(models.TextChoices):
    PENDING = "pending"
    SENT = "sent"
    # Given up after NOTIFY_MAX_ATTEMPTS.
    FAILED = "failed"
    # Not sendable, and never will be (push off, daily cap, no device).
    SKIPPED = "skipped"


class NoticeLogMark(models.Model):
    """
    How far the notify worker has read the ride event log (RideEvent) for
    the notices its events owe where the event row says all they need (the
    booking's: dispatch.notify.events, `logged`). One row, updated in the
    transaction that fans the events out (dispatch.notify.outbox).

    Ids are taken in one order and committed in another (PostgreSQL), so an
    id below the highest read may still come: `gaps` keeps the ids not seen
    yet, with when they were first missed, until they come or are too old
    to be anything but a transaction that rolled back.
    """

    # The highest event id read.
    read_to = models.BigIntegerField(default=0)
    # [[first id, last id, first missed (epoch seconds)], ...]
    gaps = models.JSONField(default=list, blank=True)

    class Meta:
        verbose_name = "event log read"
        verbose_name_plural = "event log read"

    def __str__(self) -> str:
        return f"event log read to {self.read_to} ({len(self.gaps)} gaps)"


class NoticeDue(models.Model):
    """
    A ride event that owes notices its event row does not carry (the driver
    as they were, minutes late...), written in the transaction of the ride
    change itself (dispatch.notify.outbox), with what the texts need from
    that moment. The notify worker turns it into a Notification for each
    recipient and channel, as they chose, and deletes it, in one transaction:
    an event committed is never lost, and one rolled back owes nothing.
    """

    # No index: the table holds only what the worker has not reached yet.
    ride = models.ForeignKey(
        "dispatch.Ride", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    event = models.CharField(max_length=32)
    version = models.PositiveIntegerField()
    params = models.JSONField(default=dict, blank=True)
    # Texts may go, as of the event (dispatch.notify.outbox.textable: taken
    # on, or the end of a ride booked ahead).
    accepted = models.BooleanField()
    # When it happened: quiet hours are judged at this time.
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "notice owed"
        verbose_name_plural = "notices owed"

    def __str__(self) -> str:
        return f"{self.event} on ride {self.ride_id} v{self.version}"


class Notification(models.Model):
    """
    A notice owed to one person, made from a NoticeDue by the notify worker
    (dispatch.notify.outbox) and delivered by it (dispatch.notify.delivery).
    Its key (ride, event, version, recipient, channel) is unique: writing it
    twice writes one row.
    """

    # No index of its own: the unique key below starts with the ride.
    ride = models.ForeignKey(
        "dispatch.Ride", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    # The ride event (assigned, completed, driver_near...), and the ride
    # version it happened at (for driver_near, the version that gave the
    # ride its driver: notify.events.ONCE_PER_DRIVER).
    event = models.CharField(max_length=32)
    version = models.PositiveIntegerField()
    # people.notices.Topic
    topic = models.CharField(max_length=32)
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    # The caregiver link it reaches them through; empty for the passenger.
    link_id = models.PositiveIntegerField(null=True, blank=True)
    channel = models.CharField(max_length=8, choices=NoticeChannel.choices)
    # What the text says beyond the ride (minutes late...), at the event.
    params = models.JSONField(default=dict, blank=True)
    status = models.CharField(
        max_length=8, choices=NotificationStatus.choices, default=NotificationStatus.PENDING
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    # A worker's claim on the row while it sends: another worker leaves it
    # alone until claimed_until (a crashed worker's claim runs out).
    claim_token = models.CharField(max_length=32, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    # The text as sent (no health details ever go in it).
    body = models.TextField(blank=True)
    last_error = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "next_attempt_at"])]
        constraints = [
            models.UniqueConstraint(
                fields=["ride", "event", "version", "recipient", "channel"],
                name="one_notification_per_key",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.topic} to {self.recipient_id} by {self.channel} ({self.status})"
