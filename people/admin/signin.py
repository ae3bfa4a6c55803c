"""
Sign-in: SMS-code devices (whether a code waits, and its wrong tries) and
the apps' sessions. A phone never locks, so there is nothing to unlock: a
code dead after too many wrong tries is replaced by asking for a new one.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice
from unfold.admin import ModelAdmin
from unfold.decorators import action, display

from people.models import ApiSession, PhoneOTPDevice
from people.phones import display_phone
from people.sessions import session_revoke
from project.common.admin import HiddenFromFilters, ReadOnlyPages, pill

# django-otp's own admin for staff authenticators shows each one's secret key
# and QR code to whoever may view them. Staff enrol their own at sign-in;
# Support reset them from the Users list (its "Reset the authenticator").
if admin.site.is_registered(TOTPDevice):
    admin.site.unregister(TOTPDevice)

CODE_STATES = {
    "waiting": ("Waiting", "info"),
    "wrong": ("Waiting, after wrong tries", "warn"),
    "none": ("None waiting", "muted"),
}
SESSION_STATES = {
    "active": ("Active", "ok"),
    "revoked": ("Revoked", "danger"),
    "expired": ("Expired", "muted"),
}


@admin.register(PhoneOTPDevice)
class PhoneOTPDeviceAdmin(HiddenFromFilters, ReadOnlyPages, ModelAdmin):
    # Never the code itself: `token` is left out everywhere, filters included.
    hidden_from_filters = ("token",)
    list_display = ("phone", "user", "code_state", "failed_attempts", "valid_until")
    list_filter = (("user", admin.EmptyFieldListFilter),)
    search_fields = ("phone_number", "user__first_name", "user__last_name")
    list_select_related = ("user",)
    actions = None
    fields = ("phone_number", "user", "code_state", "failed_attempts", "valid_until")
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("user")

    @display(description="Phone", ordering="phone_number")
    def phone(self, obj: PhoneOTPDevice) -> str:
        return display_phone(obj.phone_number)

    @pill(description="Code", table=CODE_STATES)
    def code_state(self, obj: PhoneOTPDevice):
        if not obj.code_waiting():
            return "none"
        if obj.failed_attempts:
            return "wrong", f"Waiting, {obj.failed_attempts} wrong tries"
        return "waiting"


@admin.register(ApiSession)
class ApiSessionAdmin(HiddenFromFilters, ReadOnlyPages, ModelAdmin):
    # The refresh token's hashes stay out of sight, filters included.
    hidden_from_filters = ("refresh_hash", "previous_refresh_hash")
    list_display = ("user", "phone", "user_agent", "last_used_at", "expires_at", "state")
    list_filter = (
        ("revoked_at", admin.EmptyFieldListFilter),
        "user__user_type",
    )
    search_fields = ("user__phone_number", "user__first_name", "user__last_name", "user_agent")
    list_select_related = ("user",)
    ordering = ("user__last_name", "user__first_name", "-last_used_at")
    actions = ("revoke",)
    fields = ("user", "user_agent", "created_at", "last_used_at", "expires_at", "revoked_at")
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("user")

    @display(description="Phone", ordering="user__phone_number")
    def phone(self, obj: ApiSession) -> str:
        return obj.user.display_phone

    @pill(description="State", table=SESSION_STATES)
    def state(self, obj: ApiSession):
        if obj.revoked_at:
            return "revoked"
        if obj.expires_at <= timezone.now():
            return "expired"
        return "active"

    @action(description="Revoke the selected sessions (signs the app out)", permissions=["change"])
    def revoke(self, request, queryset):
        live = queryset.filter(revoked_at__isnull=True)
        count = 0
        for session in live:
            session_revoke(session=session, actor=request.user, reason="revoked in admin")
            count += 1
        self.message_user(request, f"{count} session(s) revoked.", messages.SUCCESS)
