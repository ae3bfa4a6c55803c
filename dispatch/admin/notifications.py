"""
The notification outbox (dispatch.notify) for support: what was owed, sent,
and why not; and how far the worker has come with what ride events owe:
the notices owed rows (a list that stays empty while the worker runs) and
the ride event log read (no events left unread while it runs).
"""

from django.contrib import admin, messages
from unfold.admin import ModelAdmin
from unfold.contrib.filters.admin import ChoicesDropdownFilter
from unfold.decorators import action

from dispatch import labels
from dispatch.models import NoticeDue, NoticeLogMark, Notification, RideEvent
from dispatch.notify import delivery
from project.common.admin import ReadOnly, pill


@admin.register(Notification)
class NotificationAdmin(ReadOnly, ModelAdmin):
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
    list_filter = (
        ("status", ChoicesDropdownFilter),
        ("channel", ChoicesDropdownFilter),
        "topic",
    )
    search_fields = ("ride__ride_id", "recipient__phone_number", "recipient__last_name")
    list_select_related = ("ride", "recipient")
    readonly_fields = [f.name for f in Notification._meta.fields]
    actions = ("send_again",)

    @pill(description="Status", ordering="status", table=labels.NOTIFICATION_STATUS)
    def status_pill(self, obj: Notification):
        return obj.status

    @action(description="Send again (failed or skipped)")
    def send_again(self, request, queryset):
        count = delivery.notifications_send_again(queryset)
        messages.success(request, f"{count} notification(s) will be sent again.")


@admin.register(NoticeDue)
class NoticeDueAdmin(ReadOnly, ModelAdmin):
    list_display = ("ride", "event", "version", "accepted", "at")
    search_fields = ("ride__ride_id",)
    list_select_related = ("ride",)
    readonly_fields = [f.name for f in NoticeDue._meta.fields]


@admin.register(NoticeLogMark)
class NoticeLogMarkAdmin(ReadOnly, ModelAdmin):
    list_display = ("read_to", "unread", "awaited")
    readonly_fields = ("read_to", "unread", "awaited")
    fields = readonly_fields

    @admin.display(description="Events not read yet")
    def unread(self, obj: NoticeLogMark) -> int:
        return RideEvent.objects.filter(pk__gt=obj.read_to).count()

    @admin.display(description="Ids still looked for (committing, or rolled back)")
    def awaited(self, obj: NoticeLogMark) -> int:
        return sum(last - first + 1 for first, last, _ in obj.gaps)
