"""
The admin's view of dispatch: rides with their event timeline, and where each
driver stands. Rides change state only through dispatch.services (the console,
or the actions here); every field is read-only.
"""

from __future__ import annotations

from django.contrib import admin, messages
from unfold.admin import ModelAdmin, TabularInline
from unfold.decorators import action, display

from dispatch.models import (
    FINAL_STATUSES,
    DriverState,
    DriverStatus,
    Ride,
    RideEvent,
    RideOffer,
    RideStatus,
)
from project.admin_mixins import NoAddOrDelete, ReadOnly

RIDE_STATUS_LABELS = {
    RideStatus.REQUESTED: "info",
    RideStatus.SEARCHING: "info",
    RideStatus.ASSIGNED: "primary",
    RideStatus.DRIVER_ARRIVED: "primary",
    RideStatus.IN_PROGRESS: "primary",
    RideStatus.COMPLETED: "success",
    RideStatus.CANCELLED: None,
    RideStatus.NO_SHOW: "warning",
    RideStatus.UNFULFILLED: "danger",
}


class RideEventInline(TabularInline):
    model = RideEvent
    extra = 0
    can_delete = False
    ordering = ("version",)
    fields = ("version", "created_at", "kind", "from_status", "to_status", "actor", "actor_role")
    readonly_fields = fields
    verbose_name = "event"
    verbose_name_plural = "timeline"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("actor")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Ride)
class RideAdmin(NoAddOrDelete, ModelAdmin):
    list_display = (
        "ride_id",
        "status_pill",
        "passenger",
        "booked_by_someone_else",
        "driver",
        "pickup",
        "created_at",
    )
    list_filter = ("status", "needs_wheelchair", "cancelled_by", "created_at")
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
    inlines = (RideEventInline,)
    actions = ("cancel_rides",)
    fieldsets = (
        ("Ride", {"fields": ("ride_id", "status", "version", "passenger", "booked_by", "driver")}),
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
                    ("created_at", "assigned_at", "arrived_at"),
                    ("started_at", "ended_at", "no_driver_found_at"),
                )
            },
        ),
        ("Ending", {"fields": ("cancelled_by", "cancel_reason")}),
    )

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("passenger", "booked_by", "driver")

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in Ride._meta.fields]

    @display(description="Status", ordering="status", label=RIDE_STATUS_LABELS)
    def status_pill(self, obj: Ride):
        return obj.status, obj.get_status_display()

    @display(description="Booked by", ordering="booked_by__last_name")
    def booked_by_someone_else(self, obj: Ride) -> str:
        return str(obj.booked_by) if obj.booked_on_behalf else "themselves"

    @display(description="Pickup")
    def pickup(self, obj: Ride) -> str:
        return obj.pickup_address or f"{obj.pickup_latitude:.4f}, {obj.pickup_longitude:.4f}"

    @action(
        description="Cancel the selected rides (as dispatcher)",
        permissions=["change"],
        icon="cancel",
    )
    def cancel_rides(self, request, queryset):
        from dispatch import services

        done = 0
        for ride in queryset.exclude(status__in=FINAL_STATUSES):
            try:
                services.ride_cancel(
                    ride=ride,
                    actor=request.user,
                    cancelled_by="dispatcher",
                    reason="Cancelled in the admin",
                )
            except services.DispatchError as exc:
                self.message_user(request, f"{ride.ride_id}: {exc}", messages.ERROR)
            else:
                done += 1
        self.message_user(request, f"{done} ride(s) cancelled.", messages.SUCCESS)


@admin.register(DriverState)
class DriverStateAdmin(ReadOnly, ModelAdmin):
    list_display = ("driver", "status_pill", "position", "location_updated_at", "last_seen_at")
    list_filter = ("status",)
    search_fields = ("driver__phone_number", "driver__first_name", "driver__last_name")
    list_select_related = ("driver",)
    readonly_fields = (
        "driver",
        "status",
        "latitude",
        "longitude",
        "heading",
        "speed",
        "location_updated_at",
        "last_seen_at",
        "updated_at",
    )
    fields = readonly_fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("driver")

    @display(
        description="Status",
        ordering="status",
        label={
            DriverStatus.AVAILABLE: "success",
            DriverStatus.ON_TRIP: "info",
            DriverStatus.OFFLINE: None,
        },
    )
    def status_pill(self, obj: DriverState):
        return obj.status, obj.get_status_display()

    @display(description="Last saved position")
    def position(self, obj: DriverState) -> str:
        if obj.latitude is None:
            return "—"
        return f"{obj.latitude:.5f}, {obj.longitude:.5f}"


@admin.register(RideOffer)
class RideOfferAdmin(ReadOnly, ModelAdmin):
    list_display = ("ride", "driver", "status", "distance_km", "created_at", "expires_at")
    list_filter = ("status",)
    search_fields = ("ride__ride_id", "driver__phone_number", "driver__last_name")
    list_select_related = ("ride", "driver")
    readonly_fields = (
        "ride",
        "driver",
        "status",
        "distance_km",
        "created_at",
        "expires_at",
        "responded_at",
    )
    fields = readonly_fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("ride", "driver")
