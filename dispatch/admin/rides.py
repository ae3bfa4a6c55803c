"""
Rides, each with its timeline, and the caller lookup: a support agent
answering a family's call finds the person by phone, then their caregivers,
their rides and each ride's timeline. Every field is read-only; rides
change through the console or the list's actions (dispatch's services).
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin, messages
from django.urls import path
from unfold.admin import ModelAdmin
from unfold.contrib.filters.admin import ChoicesDropdownFilter, RangeDateFilter
from unfold.decorators import action, display

from dispatch import labels, rides
from dispatch.admin import lookup
from dispatch.admin.timeline import no_driver_found_at, ride_timeline, stamp
from dispatch.errors import DispatchError
from dispatch.models import FINAL_STATUSES, Ride, RideStatus
from project.common.admin import ReadOnlyPages, pill

# Rides a cancel left alone (they had ended) named in its message, at most.
ENDED_NAMED = 10


def _time_column(field: str, description: str, ordering: str | None = None):
    """A read-only column showing one of a ride's times to the second, in TIME_ZONE."""

    @display(description=description, ordering=ordering)
    def column(self, obj: Ride) -> str:
        return stamp(getattr(obj, field))

    return column


@admin.register(Ride)
class RideAdmin(ReadOnlyPages, ModelAdmin):
    list_display = (
        "ride_id",
        "status_pill",
        "passenger",
        "booked_by_someone_else",
        "driver",
        "pickup",
        "created",
    )
    list_filter = (
        ("status", ChoicesDropdownFilter),
        ("created_at", RangeDateFilter),
        "needs_wheelchair",
        ("cancelled_by", ChoicesDropdownFilter),
    )
    list_filter_submit = True
    date_hierarchy = "created_at"
    search_fields = (
        "ride_id",
        "passenger__phone_number",
        "passenger__first_name",
        "passenger__last_name",
        "driver__phone_number",
        "driver__last_name",
        "pickup_address",
        "dropoff_address",
    )
    list_select_related = ("passenger", "booked_by", "driver")
    actions = ("cancel_rides",)
    # The event log, read with its people named (dispatch.admin.timeline).
    change_form_after_template = "admin/dispatch/ride/timeline.html"
    fieldsets = (
        (
            "Ride",
            {"fields": ("ride_id", "status_pill", "version", "passenger", "booked_by", "driver")},
        ),
        (
            "Trip",
            {
                "fields": (
                    ("pickup_address", "pickup_latitude", "pickup_longitude"),
                    ("dropoff_address", "dropoff_latitude", "dropoff_longitude"),
                    ("distance_km", "estimated_duration_minutes", "fare_amount"),
                    "needs_wheelchair",
                    "notes",
                )
            },
        ),
        (
            "Times",
            {
                "fields": (
                    ("created", "assigned", "arrived"),
                    ("started", "ended", "no_driver_found"),
                )
            },
        ),
        ("Ending", {"fields": ("ended_by", "why_ended")}),
    )

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("passenger", "booked_by", "driver")

    def get_readonly_fields(self, request, obj=None):
        shown = ("status_pill", "created", "assigned", "arrived", "started", "ended")
        return [f.name for f in Ride._meta.fields] + [
            *shown,
            "no_driver_found",
            "ended_by",
            "why_ended",
        ]

    def get_urls(self):
        view = self.admin_site.admin_view(lookup.CallerLookupView.as_view(model_admin=self))
        return [path("callers/", view, name="dispatch_caller_lookup"), *super().get_urls()]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        ride = self.get_object(request, object_id)
        extra = {
            "timeline": ride_timeline(ride) if ride is not None else [],
            "time_zone": settings.TIME_ZONE,
        }
        return super().change_view(request, object_id, form_url, {**extra, **(extra_context or {})})

    @pill(description="Status", ordering="status", table=labels.RIDE_STATUS)
    def status_pill(self, obj: Ride):
        return obj.status

    @display(description="Booked by", ordering="booked_by__last_name")
    def booked_by_someone_else(self, obj: Ride) -> str:
        return str(obj.booked_by) if obj.booked_on_behalf else "themselves"

    @display(description="Pickup")
    def pickup(self, obj: Ride) -> str:
        return obj.pickup_address or f"{obj.pickup_latitude:.4f}, {obj.pickup_longitude:.4f}"

    created = _time_column("created_at", "Booked at", ordering="created_at")
    assigned = _time_column("assigned_at", "Driver assigned at")
    arrived = _time_column("arrived_at", "Driver arrived at")
    started = _time_column("started_at", "Trip started at")
    ended = _time_column("ended_at", "Ended at")

    @display(description="No driver found at")
    def no_driver_found(self, obj: Ride) -> str:
        return stamp(no_driver_found_at(obj))

    @display(description="Ended by")
    def ended_by(self, obj: Ride) -> str:
        if obj.status not in FINAL_STATUSES:
            return "Not ended yet"
        if obj.status == RideStatus.COMPLETED:
            return "Completed by the driver"
        return labels.role_label(obj.cancelled_by or "system")

    @display(description="Why it ended")
    def why_ended(self, obj: Ride) -> str:
        if obj.status not in FINAL_STATUSES or obj.status == RideStatus.COMPLETED:
            return "—"
        if obj.status == RideStatus.NO_SHOW:
            return "The passenger did not come to the pickup"
        return obj.cancel_reason or "No reason was given"

    @action(
        description="Cancel the selected rides (as dispatcher)",
        permissions=["change"],
        icon="cancel",
    )
    def cancel_rides(self, request, queryset):
        cancelled: set[int] = set()
        ended: list[str] = []
        for pk in queryset.values_list("pk", flat=True):
            # Read each afresh: a return selected with its outbound has ended with it.
            ride = Ride.objects.get(pk=pk)
            if ride.status in FINAL_STATUSES:
                if ride.outbound_id in cancelled and ride.status == RideStatus.CANCELLED:
                    cancelled.add(ride.pk)
                else:
                    ended.append(ride.ride_id)
                continue
            try:
                rides.ride_cancel(
                    ride=ride,
                    actor=request.user,
                    cancelled_by="dispatcher",
                    reason="Cancelled in the admin",
                )
            except DispatchError as exc:
                self.message_user(request, f"{ride.ride_id}: {exc}", messages.ERROR)
            else:
                cancelled.add(ride.pk)
        if cancelled:
            self.message_user(request, f"{len(cancelled)} ride(s) cancelled.", messages.SUCCESS)
        if ended:
            named = ", ".join(ended[:ENDED_NAMED]) + ("…" if len(ended) > ENDED_NAMED else "")
            self.message_user(
                request,
                f"{len(ended)} ride(s) had already ended and were left as they were: {named}.",
                messages.WARNING,
            )
