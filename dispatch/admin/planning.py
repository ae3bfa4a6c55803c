"""Booking ahead and planning: shifts, recurring series, day plans."""

from __future__ import annotations

from django.contrib import admin, messages
from django.http import HttpResponseRedirect
from django.urls import reverse
from unfold.admin import ModelAdmin

from dispatch.errors import DispatchError
from dispatch.models import DayPlan, DriverShift, RideSeries
from dispatch.planning.shifts import shift_change, shift_remove
from project.common.admin import ReadOnly


@admin.register(DriverShift)
class DriverShiftAdmin(ModelAdmin):
    """Shifts are entered here until the console has a screen for them."""

    list_display = ("driver", "start_at", "end_at", "seats", "wheelchair_spaces")
    list_filter = ("start_at",)
    search_fields = ("driver__first_name", "driver__last_name", "driver__phone_number")
    autocomplete_fields = ("driver",)
    date_hierarchy = "start_at"

    def _refused(self, request, object_id, exc: DispatchError):
        self.message_user(request, str(exc), messages.ERROR)
        if object_id is None:
            return HttpResponseRedirect(reverse("admin:dispatch_drivershift_changelist"))
        url = reverse("admin:dispatch_drivershift_change", args=[object_id])
        return HttpResponseRedirect(url)

    # A refusal (DispatchError) rolls the whole change back and is shown on
    # the shift's page.
    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except DispatchError as exc:
            return self._refused(request, object_id, exc)

    def delete_view(self, request, object_id, extra_context=None):
        try:
            return super().delete_view(request, object_id, extra_context)
        except DispatchError as exc:
            return self._refused(request, object_id, exc)

    def save_model(self, request, obj, form, change):
        shift_change(shift=obj, actor=request.user)

    def delete_model(self, request, obj):
        shift_remove(shift=obj, actor=request.user)

    def delete_queryset(self, request, queryset):
        for shift in queryset:
            try:
                shift_remove(shift=shift, actor=request.user)
            except DispatchError as exc:
                self.message_user(request, f"{shift}: {exc}", messages.ERROR)


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
