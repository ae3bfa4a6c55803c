"""
The admin's view of dispatch: rides with their event timeline, drivers with
their verification, and their states and offers. Rides change state only
through dispatch's services (the console, or the actions here); every field
is read-only. Where a driver is shows only to those
people.access.may_see_live_positions allows.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.contrib import admin, messages
from django.core.exceptions import ObjectDoesNotExist
from unfold.admin import ModelAdmin, TabularInline
from unfold.decorators import action, display

from dispatch import drivers, rides
from dispatch.errors import DispatchError
from dispatch.locations import live_position
from dispatch.models import (
    FINAL_STATUSES,
    DayPlan,
    DriverShift,
    DriverState,
    DriverStatus,
    Notification,
    NotificationStatus,
    Ride,
    RideEvent,
    RideOffer,
    RideSeries,
    RideStatus,
)
from dispatch.notify import delivery
from people.access import may_see_live_positions
from people.models import DriverProfile
from project.common.admin import NoAddOrDelete, ReadOnly

POSITION_FIELDS = ("position", "latitude", "longitude", "heading", "speed")


class PositionsForDispatchers:
    """A ModelAdmin mixin: position columns and fields only for those who may see them."""

    def get_list_display(self, request):
        shown = super().get_list_display(request)
        if may_see_live_positions(request.user):
            return shown
        return [name for name in shown if name not in POSITION_FIELDS]

    def get_fields(self, request, obj=None):
        fields = super().get_fields(request, obj)
        if may_see_live_positions(request.user):
            return fields
        return [name for name in fields if name not in POSITION_FIELDS]

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if may_see_live_positions(request.user):
            return fieldsets
        return [
            (name, {**opts, "fields": [f for f in opts["fields"] if f not in POSITION_FIELDS]})
            for name, opts in fieldsets
        ]


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
        done = 0
        for ride in queryset.exclude(status__in=FINAL_STATUSES):
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
                done += 1
        self.message_user(request, f"{done} ride(s) cancelled.", messages.SUCCESS)


@admin.register(DriverState)
class DriverStateAdmin(PositionsForDispatchers, ReadOnly, ModelAdmin):
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


NOTIFICATION_LABELS = {
    NotificationStatus.PENDING: "info",
    NotificationStatus.SENT: "success",
    NotificationStatus.FAILED: "danger",
    NotificationStatus.SKIPPED: "warning",
}


@admin.register(Notification)
class NotificationAdmin(ReadOnly, ModelAdmin):
    """The notification outbox (dispatch.notify): what was owed, sent, and why not."""

    list_display = (
        "ride",
        "topic",
        "recipient",
        "channel",
        "status_pill",
        "attempts",
        "last_error",
        "created_at",
        "sent_at",
    )
    list_filter = ("status", "channel", "topic")
    search_fields = ("ride__ride_id", "recipient__phone_number", "recipient__last_name")
    list_select_related = ("ride", "recipient")
    readonly_fields = [f.name for f in Notification._meta.fields]
    actions = ("send_again",)

    @display(description="Status", ordering="status", label=NOTIFICATION_LABELS)
    def status_pill(self, obj: Notification):
        return obj.status, obj.get_status_display()

    @action(description="Send again (failed or skipped)")
    def send_again(self, request, queryset):
        count = delivery.notifications_send_again(queryset)
        messages.success(request, f"{count} notification(s) will be sent again.")


@admin.register(DriverProfile)
class DriverProfileAdmin(PositionsForDispatchers, ModelAdmin):
    list_display = (
        "driver",
        "phone",
        "vehicle",
        "verified",
        "state",
        "position",
        "last_seen",
    )
    list_filter = ("is_verified", "vehicle_type", "user__driver_state__status", "is_demo")
    search_fields = (
        "user__phone_number",
        "user__first_name",
        "user__last_name",
        "vehicle_registration",
        "licence_number",
    )
    list_select_related = ("user", "user__driver_state")
    autocomplete_fields = ("user",)
    actions = ("verify", "unverify")
    fieldsets = (
        ("Driver", {"fields": ("user", "licence_number", "rating", "verified", "is_demo")}),
        ("Vehicle", {"fields": ("vehicle_type", "vehicle_registration")}),
        ("Right now", {"fields": ("state", "position", "last_seen")}),
    )

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("user", "user__driver_state")

    def get_readonly_fields(self, request, obj=None):
        fields = ["verified", "is_demo", "state", "position", "last_seen"]
        return [*fields, "user"] if obj is not None else fields

    @staticmethod
    def _state(obj: DriverProfile):
        try:
            return obj.user.driver_state
        except ObjectDoesNotExist:
            return None

    @display(description="Driver", ordering="user__last_name")
    def driver(self, obj: DriverProfile) -> str:
        return str(obj.user)

    @display(description="Phone", ordering="user__phone_number")
    def phone(self, obj: DriverProfile) -> str:
        return obj.user.display_phone

    @display(description="Vehicle", ordering="vehicle_type")
    def vehicle(self, obj: DriverProfile) -> str:
        kind = obj.get_vehicle_type_display()
        return f"{kind} · {obj.vehicle_registration}" if obj.vehicle_registration else kind

    @display(description="Verified", label={True: "success", False: "warning"})
    def verified(self, obj: DriverProfile):
        return obj.is_verified, "Verified" if obj.is_verified else "Not verified"

    @display(
        description="Status",
        ordering="user__driver_state__status",
        label={"available": "success", "on_trip": "info", "offline": None},
    )
    def state(self, obj: DriverProfile):
        state = self._state(obj)
        if state is None:
            return "offline", "Never online"
        return state.status, state.get_status_display()

    @display(description="Position")
    def position(self, obj: DriverProfile) -> str:
        point = live_position(obj.user_id, self._state(obj))
        if point is None:
            return "—"
        return f"{point.lat:.5f}, {point.lng:.5f} (as of {_when(point.seen)})"

    @display(description="Last seen", ordering="user__driver_state__last_seen_at")
    def last_seen(self, obj: DriverProfile):
        state = self._state(obj)
        point = live_position(obj.user_id, state)
        seen = state.last_seen_at if state is not None else None
        if point is not None and point.seen:
            live = datetime.fromtimestamp(point.seen, tz=UTC)
            seen = max(seen, live) if seen else live
        return seen or "—"

    def _set_verified(self, request, queryset, verified: bool) -> None:
        for profile in queryset:
            drivers.driver_verify(profile=profile, actor=request.user, verified=verified)
        word = "verified" if verified else "no longer verified"
        self.message_user(request, f"{queryset.count()} driver(s) {word}.", messages.SUCCESS)

    @action(description="Verify the selected drivers", permissions=["change"], icon="verified")
    def verify(self, request, queryset):
        self._set_verified(request, queryset, True)

    @action(
        description="Withdraw verification (takes them offline)",
        permissions=["change"],
        icon="block",
    )
    def unverify(self, request, queryset):
        self._set_verified(request, queryset, False)


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if ts else "?"


# --- booking ahead and planning --------------------------------------------------------


@admin.register(DriverShift)
class DriverShiftAdmin(ModelAdmin):
    """Shifts are entered here until the console has a screen for them."""

    list_display = ("driver", "start_at", "end_at", "seats", "wheelchair_spaces")
    list_filter = ("start_at",)
    search_fields = ("driver__first_name", "driver__last_name", "driver__phone_number")
    autocomplete_fields = ("driver",)
    date_hierarchy = "start_at"


@admin.register(RideSeries)
class RideSeriesAdmin(ReadOnly, ModelAdmin):
    """Series change through their services (the apps, REST): here they are read."""

    list_display = ("passenger", "booked_by", "weekdays", "pickup_time", "appointment_time",
                    "start_date", "end_date", "status")  # fmt: skip
    list_filter = ("status",)
    search_fields = ("passenger__first_name", "passenger__last_name", "passenger__phone_number")


@admin.register(DayPlan)
class DayPlanAdmin(ReadOnly, ModelAdmin):
    """Plans change through dispatch.planning.services: here they are read."""

    list_display = ("service_date", "status", "version", "solver", "solve_seconds", "published_at")
    list_filter = ("status",)
