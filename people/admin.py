"""
The support admin for people: users by role, drivers and their verification,
caregiver links, SMS-code devices, API sessions and the audit trail.

Admin actions call services (people.verification, people.services,
people.caregivers); nothing here saves a model in a loop.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import wraps

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth.admin import GroupAdmin as BaseGroupAdmin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.forms import BaseUserCreationForm
from django.contrib.auth.forms import UserChangeForm as DjangoUserChangeForm
from django.contrib.auth.models import Group
from django.core.exceptions import ObjectDoesNotExist
from django.utils import timezone
from django.utils.csp import CSP
from unfold.admin import ModelAdmin, StackedInline, TabularInline
from unfold.decorators import action, display
from unfold.forms import AdminPasswordChangeForm, UserChangeForm, UserCreationForm

from people.models import (
    ApiSession,
    AuditEvent,
    CaregiverLink,
    DriverProfile,
    LinkStatus,
    PassengerProfile,
    PhoneOTPDevice,
    User,
    UserType,
)
from people.phones import InvalidPhoneNumber, display_phone, normalize_phone
from project.admin_mixins import NoAddOrDelete, ReadOnly

# --- the admin's script policy ---------------------------------------------------
#
# Unfold builds its admin on Alpine.js, whose standard build evaluates the
# x-data / x-on attribute expressions with `new Function`. Under the site's
# policy (script-src 'self' + nonce, no 'unsafe-eval') every one of them
# fails and the admin renders behind an overlay nobody can close: checked in
# Chromium, the login button cannot even be clicked. Alpine's CSP build does
# not understand unfold's expressions, so the admin pages, and only they, add
# 'unsafe-eval' to script-src. Inline scripts stay forbidden; the console and
# every other page keep the strict policy.


def admin_csp() -> dict:
    policy = {key: list(value) for key, value in settings.SECURE_CSP.items()}
    policy["script-src"] = [*policy.get("script-src", [CSP.SELF]), CSP.UNSAFE_EVAL]
    return policy


def _with_admin_csp(view):
    @wraps(view)
    def wrapped(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        response._csp_config = admin_csp()
        return response

    return wrapped


def _relax_csp_for(site: admin.AdminSite) -> None:
    if getattr(site, "_care_connect_csp", False):
        return
    admin_view = site.admin_view

    def admin_view_with_csp(view, cacheable=False):
        return _with_admin_csp(admin_view(view, cacheable))

    site.admin_view = admin_view_with_csp
    # The login view is not wrapped by admin_view (it must work signed out).
    site.login = _with_admin_csp(site.login)
    site._care_connect_csp = True


_relax_csp_for(admin.site)


# --- users -----------------------------------------------------------------------


class PhoneField:
    """Mixin for the user forms: any usual spelling of a phone number."""

    def clean_phone_number(self):
        # InvalidPhoneNumber is a ValidationError: it lands on the field.
        return normalize_phone(self.cleaned_data["phone_number"])


class CareUserCreationForm(PhoneField, UserCreationForm):
    """App users sign in by SMS code: a password is for staff only."""

    class Meta(BaseUserCreationForm.Meta):
        model = User
        fields = ("phone_number", "first_name", "last_name", "user_type")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "usable_password" in self.fields:
            self.fields["usable_password"].help_text = (
                "Staff sign in to the console and the admin with a password. App "
                "users (passengers, drivers, caregivers) sign in by SMS code: "
                "choose Disabled for them."
            )


class CareUserChangeForm(PhoneField, UserChangeForm):
    class Meta(DjangoUserChangeForm.Meta):
        model = User
        fields = "__all__"


class DriverProfileInline(StackedInline):
    model = DriverProfile
    can_delete = False
    max_num = 1
    fields = (
        ("vehicle_type", "vehicle_registration"),
        ("licence_number", "rating"),
        ("is_verified", "is_demo"),
    )
    # Verification goes through the Drivers list's actions, which audit it.
    readonly_fields = ("is_verified", "is_demo")


class PassengerProfileInline(StackedInline):
    model = PassengerProfile
    can_delete = False
    max_num = 1
    fields = (
        ("needs_wheelchair", "needs_walker"),
        ("needs_assistance_boarding", "has_service_animal"),
        "notes",
    )


class _ReadOnlyInline(TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class CaregiverLinkInline(_ReadOnlyInline):
    """Links change through the console or the apps (consent, audit, sockets)."""

    model = CaregiverLink
    fk_name = "passenger"
    verbose_name = "caregiver"
    verbose_name_plural = "caregivers (change them on the console's Caregiver links page)"
    fields = (
        "caregiver",
        "relationship_type",
        "status",
        "can_book_rides",
        "can_view_location",
        "can_receive_notifications",
        "created_at",
    )
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("caregiver")


class CaredForInline(CaregiverLinkInline):
    fk_name = "caregiver"
    verbose_name = "person cared for"
    verbose_name_plural = "people cared for"
    fields = (
        "passenger",
        "relationship_type",
        "status",
        "can_book_rides",
        "can_view_location",
        "can_receive_notifications",
        "created_at",
    )
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("passenger")


class ApiSessionInline(_ReadOnlyInline):
    model = ApiSession
    verbose_name = "app session"
    verbose_name_plural = "app sessions (revoke them from the API sessions list)"
    fields = ("user_agent", "created_at", "last_used_at", "expires_at", "revoked_at")
    readonly_fields = fields
    ordering = ("-last_used_at",)


@admin.register(User)
class UserAdmin(BaseUserAdmin, ModelAdmin):
    form = CareUserChangeForm
    add_form = CareUserCreationForm
    change_password_form = AdminPasswordChangeForm
    list_display = ("name", "phone", "role", "access", "is_active", "date_joined")
    list_filter = ("user_type", "is_staff", "groups", "is_active")
    search_fields = ("phone_number", "first_name", "last_name")
    ordering = ("last_name", "first_name")
    filter_horizontal = ("groups",)
    readonly_fields = ("last_login", "date_joined")
    fieldsets = (
        (None, {"fields": ("phone_number", "password")}),
        ("Person", {"fields": ("first_name", "last_name", "user_type")}),
        (
            "Staff access",
            {
                "fields": ("is_active", "is_staff", "is_superuser", "groups"),
                "description": (
                    "Dispatchers run the console; Support manages people. Both need "
                    "“staff” to sign in to the console and the admin."
                ),
            },
        ),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (
            None,
            {
                "classes": ("wide",),
                "fields": (
                    "phone_number",
                    "first_name",
                    "last_name",
                    "user_type",
                    "usable_password",
                    "password1",
                    "password2",
                ),
            },
        ),
    )

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("groups")

    def has_change_permission(self, request, obj=None):
        # Support manages app users. Staff accounts (and their passwords) are
        # for superusers only, or "change user" would let anyone in Support
        # make themselves superuser or sign in as a dispatcher.
        if obj is not None and obj.is_staff and not request.user.is_superuser:
            return False
        return super().has_change_permission(request, obj)

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if not request.user.is_superuser:
            fields += ["is_staff", "is_superuser", "groups"]
        return fields

    def get_inlines(self, request, obj):
        if obj is None:
            return []
        inlines = {
            UserType.DRIVER: [DriverProfileInline],
            UserType.PASSENGER: [PassengerProfileInline, CaregiverLinkInline],
            UserType.CAREGIVER: [CaredForInline],
        }.get(obj.user_type, [])
        return [*inlines, ApiSessionInline]

    def get_search_results(self, request, queryset, search_term):
        """A phone number finds its user however it is written."""
        results, duplicates = super().get_search_results(request, queryset, search_term)
        try:
            phone = normalize_phone(search_term)
        except InvalidPhoneNumber:
            return results, duplicates
        return results | queryset.filter(phone_number=phone), duplicates

    @display(description="Name", ordering="last_name")
    def name(self, obj: User) -> str:
        return obj.get_full_name() or "—"

    @display(description="Phone", ordering="phone_number")
    def phone(self, obj: User) -> str:
        return obj.display_phone

    @display(
        description="Role",
        ordering="user_type",
        label={
            UserType.PASSENGER: "info",
            UserType.DRIVER: "success",
            UserType.CAREGIVER: "primary",
            "": "warning",
        },
    )
    def role(self, obj: User):
        if obj.user_type:
            return obj.user_type, obj.get_user_type_display()
        return "", "Staff" if obj.is_staff else "None"

    @display(description="Staff groups")
    def access(self, obj: User) -> str:
        if obj.is_superuser:
            return "Superuser"
        return ", ".join(g.name for g in obj.groups.all()) if obj.is_staff else ""


# Unfold's styling for the staff groups too.
admin.site.unregister(Group)


@admin.register(Group)
class GroupAdmin(BaseGroupAdmin, ModelAdmin):
    pass


# --- drivers -----------------------------------------------------------------------


@admin.register(DriverProfile)
class DriverProfileAdmin(ModelAdmin):
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
        from dispatch.locations import location_store

        point = location_store().get(obj.user_id)
        if point is not None:
            return f"{point.lat:.5f}, {point.lng:.5f} (live)"
        state = self._state(obj)
        if state is not None and state.latitude is not None:
            return f"{state.latitude:.5f}, {state.longitude:.5f} (last saved)"
        return "—"

    @display(description="Last seen", ordering="user__driver_state__last_seen_at")
    def last_seen(self, obj: DriverProfile):
        from dispatch.locations import location_store

        point = location_store().get(obj.user_id)
        state = self._state(obj)
        seen = state.last_seen_at if state is not None else None
        if point is not None and point.seen:
            live = datetime.fromtimestamp(point.seen, tz=UTC)
            seen = max(seen, live) if seen else live
        return seen or "—"

    def _set_verified(self, request, queryset, verified: bool) -> None:
        from people.verification import driver_verify

        for profile in queryset:
            driver_verify(profile=profile, actor=request.user, verified=verified)
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


# --- caregiver links ---------------------------------------------------------------


@admin.register(CaregiverLink)
class CaregiverLinkAdmin(NoAddOrDelete, ModelAdmin):
    """New links start as invitations on the console's Caregiver links page."""

    list_display = ("caregiver", "passenger", "relationship_type", "status_pill", "permissions")
    list_filter = ("status", "relationship_type")
    search_fields = (
        "caregiver__phone_number",
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
        "relationship_type",
        "can_book_rides",
        "can_view_location",
        "can_receive_notifications",
        "notes",
        "status",
        "invited_by",
        "created_at",
        "responded_at",
        "updated_at",
    )

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("caregiver", "passenger", "invited_by")

    @display(
        description="Status",
        ordering="status",
        label={
            LinkStatus.ACTIVE: "success",
            LinkStatus.INVITED: "info",
            LinkStatus.DECLINED: "warning",
            LinkStatus.REVOKED: "danger",
        },
    )
    def status_pill(self, obj: CaregiverLink):
        return obj.status, obj.get_status_display()

    @display(description="May")
    def permissions(self, obj: CaregiverLink) -> str:
        words = [
            name
            for name, allowed in (
                ("book rides", obj.can_book_rides),
                ("see location", obj.can_view_location),
                ("get notifications", obj.can_receive_notifications),
            )
            if allowed
        ]
        return ", ".join(words) or "nothing"

    @action(description="Revoke the selected links", permissions=["change"], icon="link_off")
    def revoke(self, request, queryset):
        from people.caregivers import LinkError, caregiver_link_revoke

        done = 0
        for link in queryset.filter(status__in=[LinkStatus.INVITED, LinkStatus.ACTIVE]):
            try:
                caregiver_link_revoke(link=link, actor=request.user)
            except LinkError as exc:
                self.message_user(request, f"{link}: {exc}", messages.ERROR)
            else:
                done += 1
        self.message_user(request, f"{done} link(s) revoked.", messages.SUCCESS)


# --- sign-in: SMS-code devices and API sessions -----------------------------------------


@admin.register(PhoneOTPDevice)
class PhoneOTPDeviceAdmin(NoAddOrDelete, ModelAdmin):
    # Never the code itself: `token` is left out everywhere.
    list_display = ("phone", "user", "lock_state", "throttling_failure_count", "valid_until")
    list_filter = (("user", admin.EmptyFieldListFilter),)
    search_fields = ("phone_number", "user__first_name", "user__last_name")
    list_select_related = ("user",)
    actions = ("reset_lock",)
    fields = (
        "phone_number",
        "user",
        "lock_state",
        "throttling_failure_count",
        "throttling_failure_timestamp",
        "valid_until",
    )
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("user")

    @display(description="Phone", ordering="phone_number")
    def phone(self, obj: PhoneOTPDevice) -> str:
        return display_phone(obj.phone_number)

    @display(description="State", label={"locked": "danger", "backoff": "warning", "ok": "success"})
    def lock_state(self, obj: PhoneOTPDevice):
        if obj.is_locked:
            return "locked", "Locked"
        if obj.throttling_failure_count:
            return "backoff", f"{obj.throttling_failure_count} wrong code(s)"
        return "ok", "OK"

    @action(description="Reset the lock (clears wrong-code count)", permissions=["change"])
    def reset_lock(self, request, queryset):
        from people.services import otp_device_reset

        for device in queryset:
            otp_device_reset(device=device, actor=request.user)
        self.message_user(request, f"{queryset.count()} phone(s) unlocked.", messages.SUCCESS)


@admin.register(ApiSession)
class ApiSessionAdmin(NoAddOrDelete, ModelAdmin):
    list_display = ("user", "phone", "user_agent", "last_used_at", "expires_at", "state")
    list_filter = (
        ("revoked_at", admin.EmptyFieldListFilter),
        "user__user_type",
    )
    search_fields = ("user__phone_number", "user__first_name", "user__last_name", "user_agent")
    list_select_related = ("user",)
    ordering = ("user__last_name", "user__first_name", "-last_used_at")
    actions = ("revoke",)
    # refresh_hash stays out of sight.
    fields = ("user", "user_agent", "created_at", "last_used_at", "expires_at", "revoked_at")
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("user")

    @display(description="Phone", ordering="user__phone_number")
    def phone(self, obj: ApiSession) -> str:
        return obj.user.display_phone

    @display(description="State", label={"active": "success", "revoked": "danger", "expired": None})
    def state(self, obj: ApiSession):
        if obj.revoked_at:
            return "revoked", "Revoked"
        if obj.expires_at <= timezone.now():
            return "expired", "Expired"
        return "active", "Active"

    @action(description="Revoke the selected sessions (signs the app out)", permissions=["change"])
    def revoke(self, request, queryset):
        from people.services import session_revoke

        live = queryset.filter(revoked_at__isnull=True)
        count = 0
        for session in live:
            session_revoke(session=session, actor=request.user, reason="revoked in admin")
            count += 1
        self.message_user(request, f"{count} session(s) revoked.", messages.SUCCESS)


# --- audit -----------------------------------------------------------------------------


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
