"""Users by role, with their profiles, links and app sessions inline."""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.auth.admin import GroupAdmin as BaseGroupAdmin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.forms import BaseUserCreationForm
from django.contrib.auth.forms import UserChangeForm as DjangoUserChangeForm
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db.models import Exists, OuterRef
from django.forms.models import BaseInlineFormSet
from django_otp.plugins.otp_totp.models import TOTPDevice
from unfold.admin import ModelAdmin, StackedInline, TabularInline
from unfold.decorators import action, display
from unfold.forms import AdminPasswordChangeForm, UserChangeForm, UserCreationForm

from people import caregivers, labels, profiles
from people.models import (
    ApiSession,
    CaregiverLink,
    DriverProfile,
    PassengerProfile,
    User,
    UserType,
)
from people.phones import InvalidPhoneNumber, normalize_phone
from people.staff_signin import ResetRefused, totp_reset
from project.common.admin import pill

AUTHENTICATOR = {"set": ("Set up", "ok"), "unset": ("At next sign-in", "warn")}


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


class _ProfileInline(StackedInline):
    """A user's one profile of a kind, edited on the user's page, never deleted there."""

    can_delete = False
    max_num = 1


class DriverProfileInline(_ProfileInline):
    model = DriverProfile
    fields = (
        ("vehicle_type", "vehicle_registration"),
        ("licence_number", "rating"),
        ("is_verified", "is_demo"),
    )
    # Verification goes through the Drivers list's actions, which audit it.
    readonly_fields = ("is_verified", "is_demo")


class PassengerNeedsFormSet(BaseInlineFormSet):
    """
    Needs changed on the page are refused there when the user, as the page
    also changes them, is no longer a passenger (people.profiles says who).
    """

    def clean(self):
        super().clean()
        changed = {name for form in self.forms for name in form.changed_data}
        changed &= set(profiles.NEEDS_FIELDS)
        try:
            profiles.needs_check(self.instance, changed)
        except profiles.ProfileError as exc:
            raise ValidationError(str(exc)) from exc


class PassengerProfileInline(_ProfileInline):
    model = PassengerProfile
    formset = PassengerNeedsFormSet
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
    """
    Links change through the console or the apps (consent, audit, sockets).
    A row names the person at the link's other end (`other_end`) from the
    user the page is about (`fk_name`).
    """

    model = CaregiverLink
    fk_name = "passenger"
    other_end = "caregiver"
    verbose_name = "caregiver"
    verbose_name_plural = "caregivers (change them on the console's Caregiver links page)"

    def get_fields(self, request, obj=None):
        return (self.other_end, "relationship_type", "status_pill", "may", "created_at")

    def get_readonly_fields(self, request, obj=None):
        return self.get_fields(request, obj)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related(self.other_end)

    @pill(description="Status", table=labels.LINK_STATUS)
    def status_pill(self, obj: CaregiverLink):
        return obj.status

    @display(description="May")
    def may(self, obj: CaregiverLink) -> str:
        return labels.link_allows(obj)


class CaredForInline(CaregiverLinkInline):
    fk_name = "caregiver"
    other_end = "passenger"
    verbose_name = "person cared for"
    verbose_name_plural = "people cared for"


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
    list_display = ("name", "phone", "role", "access", "authenticator", "is_active", "date_joined")
    list_filter = ("user_type", "is_staff", "groups", "is_active")
    search_fields = ("phone_number", "first_name", "last_name")
    ordering = ("last_name", "first_name")
    filter_horizontal = ("groups",)
    readonly_fields = ("last_login", "date_joined")
    actions = ("reset_authenticator",)
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
        enrolled = TOTPDevice.objects.filter(user=OuterRef("pk"), confirmed=True)
        return (
            super()
            .get_queryset(request)
            .prefetch_related("groups")
            .annotate(has_authenticator=Exists(enrolled))
        )

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

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        # An account added here (or given this number, or able to care
        # again) takes up the invitations to its number, as one made in
        # the app does: its owner never signs up, so would never claim them.
        caregivers.caregiver_invitations_claim(user=obj)

    def save_formset(self, request, form, formset, change):
        """A passenger's needs change through people.profiles: audited, a driver on the way told."""
        if formset.model is not PassengerProfile:
            return super().save_formset(request, form, formset, change)
        # What the admin's history message reads.
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        for inline in formset.forms:
            changed = [name for name in inline.changed_data if name in profiles.NEEDS_FIELDS]
            if changed:
                formset.changed_objects.append((inline.instance, changed))
                profiles.profile_update(
                    user=form.instance,
                    actor=request.user,
                    **{name: inline.cleaned_data[name] for name in changed},
                )

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

    @pill(description="Role", ordering="user_type", table=labels.ROLE)
    def role(self, obj: User):
        if obj.user_type or obj.is_staff:
            return obj.user_type
        return "", "None"

    @display(description="Staff groups")
    def access(self, obj: User) -> str:
        if obj.is_superuser:
            return "Superuser"
        return ", ".join(g.name for g in obj.groups.all()) if obj.is_staff else ""

    @pill(description="Authenticator", table=AUTHENTICATOR)
    def authenticator(self, obj: User):
        if not obj.is_staff:
            return "", "—"
        return "set" if obj.has_authenticator else "unset"

    @action(
        description="Reset the authenticator (a new one is set up at the next sign-in)",
        permissions=["change"],
    )
    def reset_authenticator(self, request, queryset):
        # Who may reset whose is people.access.may_reset_second_factor's
        # call, asked by the service for each person.
        done, refused = [], []
        for user in queryset.filter(is_staff=True):
            try:
                totp_reset(staff_member=user, actor=request.user)
            except ResetRefused:
                refused.append(str(user))
            else:
                done.append(str(user))
        if done:
            self.message_user(
                request,
                f"Authenticator reset for {', '.join(done)}: they set up a new one at "
                "their next sign-in, and are signed out now.",
                messages.SUCCESS,
            )
        if refused:
            self.message_user(
                request,
                f"Not reset for {', '.join(refused)}: Support reset colleagues' "
                "authenticators (not their own), and only a superuser resets a superuser's.",
                messages.ERROR,
            )
        if not done and not refused:
            self.message_user(
                request, "Only staff accounts have an authenticator.", messages.WARNING
            )


# Unfold's styling for the staff groups too.
admin.site.unregister(Group)


@admin.register(Group)
class GroupAdmin(BaseGroupAdmin, ModelAdmin):
    pass
