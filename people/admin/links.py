"""Caregiver links: read and revoked here; made on the console's links page."""

from __future__ import annotations

from django.contrib import admin, messages
from unfold.admin import ModelAdmin
from unfold.contrib.filters.admin import ChoicesDropdownFilter
from unfold.decorators import action, display

from people import labels
from people.caregivers import LinkError, caregiver_link_revoke
from people.models import CaregiverLink
from project.common.admin import ReadOnlyPages, pill


@admin.register(CaregiverLink)
class CaregiverLinkAdmin(ReadOnlyPages, ModelAdmin):
    """New links start as invitations on the console's Caregiver links page."""

    list_display = ("who", "passenger", "relationship_type", "status_pill", "permissions")
    list_filter = (("status", ChoicesDropdownFilter), ("relationship_type", ChoicesDropdownFilter))
    search_fields = (
        "caregiver__phone_number",
        "invited_phone",
        "caregiver__first_name",
        "caregiver__last_name",
        "passenger__phone_number",
        "passenger__first_name",
        "passenger__last_name",
    )
    list_select_related = ("caregiver", "passenger")
    actions = ("revoke",)
    readonly_fields = (
        "passenger",
        "caregiver",
        "invited_phone",
        "relationship_type",
        "can_book_rides",
        "can_view_location",
        "can_receive_notifications",
        "notes",
        "status_pill",
        "invited_by",
        "created_at",
        "responded_at",
        "updated_at",
    )
    fields = readonly_fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("caregiver", "passenger", "invited_by")

    @display(description="Caregiver", ordering="caregiver__last_name")
    def who(self, obj: CaregiverLink) -> str:
        return obj.caregiver_label

    @pill(description="Status", ordering="status", table=labels.LINK_STATUS)
    def status_pill(self, obj: CaregiverLink):
        return obj.status

    @display(description="May")
    def permissions(self, obj: CaregiverLink) -> str:
        return labels.link_allows(obj)

    @action(description="Revoke the selected links", permissions=["change"], icon="link_off")
    def revoke(self, request, queryset):
        done = 0
        for link in queryset.live():
            try:
                caregiver_link_revoke(link=link, actor=request.user)
            except LinkError as exc:
                self.message_user(request, f"{link}: {exc}", messages.ERROR)
            else:
                done += 1
        self.message_user(request, f"{done} link(s) revoked.", messages.SUCCESS)
