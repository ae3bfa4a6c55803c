"""
Drivers with their verification, their states and their offers. Where a
driver is shows only to those people.access.may_see_live_positions allows.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.contrib import admin, messages
from django.core.exceptions import ObjectDoesNotExist
from unfold.admin import ModelAdmin
from unfold.contrib.filters.admin import ChoicesDropdownFilter
from unfold.decorators import action, display

from dispatch import drivers, labels
from dispatch.admin.timeline import stamp
from dispatch.locations import live_position
from dispatch.models import DriverState, RideOffer
from people import labels as people_labels
from people.access import may_see_live_positions
from people.models import DriverProfile
from project.common.admin import HiddenFromFilters, ReadOnly, pill

POSITION_FIELDS = ("position", "latitude", "longitude", "heading", "speed")
# A driver with no state row has never gone online.
NEVER_ONLINE = ("never", ("Never online", "muted"))


class PositionsForDispatchers(HiddenFromFilters):
    """A ModelAdmin mixin: position columns, fields and filters only for those who may see them."""

    def hidden_fields(self, request) -> tuple[str, ...]:
        return () if may_see_live_positions(request.user) else POSITION_FIELDS

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


@admin.register(DriverState)
class DriverStateAdmin(PositionsForDispatchers, ReadOnly, ModelAdmin):
    list_display = ("driver", "status_pill", "position", "location_updated_at", "last_seen_at")
    list_filter = (("status", ChoicesDropdownFilter),)
    search_fields = ("driver__phone_number", "driver__first_name", "driver__last_name")
    list_select_related = ("driver",)
    readonly_fields = (
        "driver",
        "status_pill",
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

    @pill(description="Status", ordering="status", table=labels.DRIVER_STATUS)
    def status_pill(self, obj: DriverState):
        return obj.status

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

    @pill(description="Verified", ordering="is_verified", table=people_labels.VERIFIED)
    def verified(self, obj: DriverProfile):
        return obj.is_verified

    @pill(
        description="Status",
        ordering="user__driver_state__status",
        table={**labels.DRIVER_STATUS, NEVER_ONLINE[0]: NEVER_ONLINE[1]},
    )
    def state(self, obj: DriverProfile):
        state = self._state(obj)
        return NEVER_ONLINE[0] if state is None else state.status

    @display(description="Position")
    def position(self, obj: DriverProfile) -> str:
        point = live_position(obj.user_id, self._state(obj))
        if point is None:
            return "—"
        seen = stamp(datetime.fromtimestamp(point.seen, tz=UTC)) if point.seen else "?"
        return f"{point.lat:.5f}, {point.lng:.5f} (as of {seen})"

    @display(description="Last seen", ordering="user__driver_state__last_seen_at")
    def last_seen(self, obj: DriverProfile) -> str:
        state = self._state(obj)
        point = live_position(obj.user_id, state)
        seen = state.last_seen_at if state is not None else None
        if point is not None and point.seen:
            live = datetime.fromtimestamp(point.seen, tz=UTC)
            seen = max(seen, live) if seen else live
        return stamp(seen)

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
