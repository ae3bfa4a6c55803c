"""The audit trail of changes to people, to read."""

from __future__ import annotations

from django.contrib import admin
from unfold.admin import ModelAdmin
from unfold.decorators import display

from people.models import AuditEvent
from project.common.admin import ReadOnly


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnly, ModelAdmin):
    list_display = ("created_at", "action", "subject", "actor")
    list_filter = ("action", "subject_type")
    search_fields = ("action", "subject_id", "actor__phone_number", "actor__last_name")
    date_hierarchy = "created_at"
    list_select_related = ("actor",)
    readonly_fields = ("created_at", "actor", "action", "subject_type", "subject_id", "payload")
    fields = readonly_fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("actor")

    @display(description="Subject")
    def subject(self, obj: AuditEvent) -> str:
        return f"{obj.subject_type} {obj.subject_id}"
