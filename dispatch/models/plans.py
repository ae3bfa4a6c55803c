"""A day's plan: drivers' runs, their stops in order, and the plan's audit log."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class PlanStatus(models.TextChoices):
    # Planned or changed since it was last published: riders have not heard.
    DRAFT = "draft"
    PUBLISHED = "published"


class DayPlan(models.Model):
    """The runs of one service day (TIME_ZONE), planned again in place."""

    service_date = models.DateField(unique=True)
    status = models.CharField(max_length=16, choices=PlanStatus.choices, default=PlanStatus.DRAFT)
    # Increases with every change, so a dispatcher's stale screen is refused.
    version = models.PositiveIntegerField(default=0)
    solver = models.CharField(max_length=32, blank=True)
    solve_seconds = models.FloatField(null=True, blank=True)
    # Assigned and unassigned trips, vehicle-hours... of the last planning.
    stats = models.JSONField(default=dict, blank=True)
    planned_at = models.DateTimeField(null=True, blank=True)
    published_at = models.DateTimeField(null=True, blank=True)
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-service_date"]

    def __str__(self) -> str:
        return f"Plan of {self.service_date} ({self.status})"


class Run(models.Model):
    """One driver's shift in a day's plan: the stops they drive, in order."""

    plan = models.ForeignKey(DayPlan, on_delete=models.CASCADE, related_name="runs")
    shift = models.ForeignKey("dispatch.DriverShift", on_delete=models.CASCADE, related_name="runs")
    driver = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="runs"
    )
    departs_at = models.DateTimeField(null=True, blank=True)
    returns_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["plan", "shift__start_at", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["plan", "shift"], name="one_run_per_shift_and_plan"),
        ]

    def __str__(self) -> str:
        return f"Run of {self.driver} on {self.plan.service_date}"


class StopKind(models.TextChoices):
    PICKUP = "pickup", "Pickup"
    DROPOFF = "dropoff", "Drop-off"


class Stop(models.Model):
    """A pickup or a drop-off of one ride, at its planned time in a run."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="stops")
    ride = models.ForeignKey("dispatch.Ride", on_delete=models.CASCADE, related_name="stops")
    kind = models.CharField(max_length=8, choices=StopKind.choices)
    sequence = models.PositiveIntegerField()
    arrival_at = models.DateTimeField()
    # Service starts on arrival, or when the window opens.
    service_at = models.DateTimeField()
    departure_at = models.DateTimeField()
    # The window the planner kept it in.
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()

    class Meta:
        ordering = ["run", "sequence"]
        constraints = [
            models.UniqueConstraint(fields=["run", "sequence"], name="one_stop_per_place_in_run"),
            models.UniqueConstraint(fields=["ride", "kind"], name="one_stop_of_each_kind_per_ride"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} of {self.ride.ride_id} at {timezone.localtime(self.service_at):%H:%M}"


class PlanEvent(models.Model):
    """Every change to a plan, with who made it: planned, moved, locked, published."""

    plan = models.ForeignKey(DayPlan, on_delete=models.CASCADE, related_name="events")
    version = models.PositiveIntegerField()
    kind = models.CharField(max_length=32)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    payload = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["plan", "version"]
        constraints = [
            models.UniqueConstraint(fields=["plan", "version"], name="one_plan_event_per_version"),
        ]

    def __str__(self) -> str:
        return f"{self.plan} v{self.version} {self.kind}"
