"""Booking ahead and planning: shifts, recurring series, day plans."""

from __future__ import annotations

from django.contrib import admin
from unfold.admin import ModelAdmin

from dispatch.models import DayPlan, DriverShift, RideSeries
from project.common.admin import ReadOnly


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
