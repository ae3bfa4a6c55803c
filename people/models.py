from __future__ import annotations

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django_otp.models import SideChannelDevice

from people.phones import display_phone, normalize_phone


class UserType(models.TextChoices):
    PASSENGER = "passenger"
    DRIVER = "driver"
    CAREGIVER = "caregiver"


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def create_user(self, phone_number: str, password: str | None = None, **extra):
        user = self.model(phone_number=normalize_phone(phone_number), **extra)
        if password:
            user.set_password(password)
        else:
            # App users sign in by SMS code only.
            user.set_unusable_password()
        user.save(using=self._db)
        return user

    def create_superuser(self, phone_number: str, password: str | None = None, **extra):
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return self.create_user(phone_number, password, **extra)


class Language(models.TextChoices):
    """The languages texts and pushes are written in (settings.LANGUAGES)."""

    ENGLISH = "en", "English"
    AFRIKAANS = "af", "Afrikaans"
    ZULU = "zu", "isiZulu"


class User(AbstractBaseUser, PermissionsMixin):
    """A person, identified by a normalised phone number ("27821234567")."""

    phone_number = models.CharField(max_length=16, unique=True)
    first_name = models.CharField(max_length=150, blank=True)
    last_name = models.CharField(max_length=150, blank=True)
    # What their texts and pushes are written in (people.notices).
    language = models.CharField(max_length=8, choices=Language.choices, default=Language.ENGLISH)
    # Staff (dispatchers, support) may have no app role at all.
    user_type = models.CharField(max_length=16, choices=UserType.choices, blank=True)
    is_staff = models.BooleanField(default=False)
    is_active = models.BooleanField(default=True)
    date_joined = models.DateTimeField(default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "phone_number"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        ordering = ["last_name", "first_name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(phone_number__regex=r"^[1-9][0-9]{6,14}$"),
                name="user_phone_is_normalised",
            ),
        ]

    def __str__(self) -> str:
        return self.get_full_name() or self.display_phone

    def get_full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()

    def get_short_name(self) -> str:
        return self.first_name

    @property
    def display_phone(self) -> str:
        return display_phone(self.phone_number)

    @property
    def is_driver(self) -> bool:
        return self.user_type == UserType.DRIVER


class VehicleType(models.TextChoices):
    SEDAN = "sedan", "Sedan"
    HATCHBACK = "hatchback", "Hatchback"
    SUV = "suv", "SUV"
    MINIVAN = "minivan", "Minivan"
    WHEELCHAIR_ACCESSIBLE = "wheelchair_accessible", "Wheelchair accessible"


class DriverProfile(models.Model):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="driver_profile"
    )
    licence_number = models.CharField(max_length=32, blank=True)
    vehicle_type = models.CharField(
        max_length=32, choices=VehicleType.choices, default=VehicleType.SEDAN
    )
    vehicle_registration = models.CharField(max_length=16, blank=True)
    rating = models.DecimalField(max_digits=3, decimal_places=2, default=5)
    is_verified = models.BooleanField(default=False)
    # Seeded demo drivers stand still and no app reports for them
    # (dispatch.drivers.reports_position).
    is_demo = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(rating__gte=0) & Q(rating__lte=5), name="driver_rating_0_5"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} ({self.vehicle_registration or self.vehicle_type})"


class PassengerProfile(models.Model):
    """What a passenger needs from a vehicle and a driver."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="passenger_profile",
    )
    needs_wheelchair = models.BooleanField(default=False)
    needs_walker = models.BooleanField(default=False)
    needs_assistance_boarding = models.BooleanField(default=False)
    has_service_animal = models.BooleanField(default=False)
    notes = models.TextField(blank=True)

    def __str__(self) -> str:
        return f"Needs of {self.user}"


class RelationshipType(models.TextChoices):
    FAMILY = "family"
    FRIEND = "friend"
    PROFESSIONAL = "professional"
    VOLUNTEER = "volunteer"
    OTHER = "other"


class LinkStatus(models.TextChoices):
    INVITED = "invited"
    ACTIVE = "active"
    DECLINED = "declined"
    REVOKED = "revoked"


# A link in force or waiting for its answer: the pair may not be invited
# again.
LIVE_LINK_STATUSES = (LinkStatus.INVITED, LinkStatus.ACTIVE)


class CaregiverLinkQuerySet(models.QuerySet):
    def active(self):
        return self.filter(status=LinkStatus.ACTIVE)

    def live(self):
        """Invited or active: the links that block a duplicate invitation."""
        return self.filter(status__in=LIVE_LINK_STATUSES)


class CaregiverLink(models.Model):
    """
    One caregiver looking after one passenger, with their own permissions.

    An invitation names a phone number. It reaches its caregiver when that
    number has (or later makes) an account that may care for someone; until
    then `caregiver` is empty, and nobody can tell from the invitation
    whether the number uses Care Connect.
    """

    passenger = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="caregiver_links"
    )
    caregiver = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="cared_for_links",
    )
    # The number invited, normalised ("27821234569").
    invited_phone = models.CharField(max_length=16)
    relationship_type = models.CharField(
        max_length=16, choices=RelationshipType.choices, default=RelationshipType.FAMILY
    )
    can_book_rides = models.BooleanField(default=True)
    can_view_location = models.BooleanField(default=True)
    can_receive_notifications = models.BooleanField(default=True)
    notes = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=LinkStatus.choices, default=LinkStatus.INVITED)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(default=timezone.now)
    responded_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = CaregiverLinkQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(passenger=models.F("caregiver")), name="link_not_to_self"
            ),
            models.UniqueConstraint(
                fields=["passenger", "invited_phone"],
                condition=Q(status__in=LIVE_LINK_STATUSES),
                name="one_live_link_per_pair",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.caregiver_label} cares for {self.passenger} ({self.status})"

    def save(self, *args, **kwargs):
        # A link made for a known caregiver names their number too.
        if not self.invited_phone and self.caregiver_id:
            self.invited_phone = self.caregiver.phone_number
        super().save(*args, **kwargs)

    @property
    def caregiver_label(self) -> str:
        """The caregiver's name, or the number invited while it has no account."""
        return str(self.caregiver) if self.caregiver_id else display_phone(self.invited_phone)

    @property
    def caregiver_phone(self) -> str:
        """The number to call: the caregiver's, or the one invited."""
        return self.caregiver.phone_number if self.caregiver_id else self.invited_phone

    def permissions(self) -> dict[str, bool]:
        return {
            "can_book_rides": self.can_book_rides,
            "can_view_location": self.can_view_location,
            "can_receive_notifications": self.can_receive_notifications,
        }


class AuditEvent(models.Model):
    """Who changed what about people: links, devices, sessions, verification."""

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    action = models.CharField(max_length=64)
    subject_type = models.CharField(max_length=64)
    subject_id = models.CharField(max_length=64)
    payload = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["subject_type", "subject_id"])]

    def __str__(self) -> str:
        return f"{self.action} {self.subject_type}:{self.subject_id}"


class PhoneOTPDevice(SideChannelDevice):
    """
    The SMS one-time-code device of a phone number: at most one code
    waiting (django-otp's token and valid_until), and the wrong tries at it.

    It exists before its user does: an unknown phone proves itself first, then
    registers. After OTP_MAX_ATTEMPTS wrong tries the code is dead and a new
    one must be sent; the phone itself never locks (people.signin).
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="otp_devices",
    )
    phone_number = models.CharField(max_length=16, unique=True)
    # Wrong tries at the code now waiting; a new code starts again at 0.
    failed_attempts = models.PositiveSmallIntegerField(default=0)

    class Meta:
        verbose_name = "SMS code device"

    def __str__(self) -> str:
        return f"SMS codes for {display_phone(self.phone_number)}"

    def code_waiting(self) -> bool:
        """Whether a code was sent that may still be typed."""
        return self.token is not None and self.valid_until > timezone.now()


class ApiSessionQuerySet(models.QuerySet):
    def signed_in(self):
        """Neither revoked nor past its time: `ApiSession.is_active`, as a query."""
        return self.filter(revoked_at__isnull=True, expires_at__gt=timezone.now())


class ApiSession(models.Model):
    """
    One signed-in app install. The refresh token's hash lives here; access
    tokens name the session, so revoking it ends both at once.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_sessions"
    )
    refresh_hash = models.CharField(max_length=64, unique=True)
    # The hash of the refresh token the current one replaced: if it comes
    # back, two parties hold the session's tokens (people.signin).
    previous_refresh_hash = models.CharField(max_length=64, blank=True, default="")
    user_agent = models.CharField(max_length=256, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiSessionQuerySet.as_manager()

    class Meta:
        ordering = ["-last_used_at"]
        verbose_name = "API session"

    def __str__(self) -> str:
        return f"Session {self.pk} of {self.user}"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and self.expires_at > timezone.now()


class NoticeChannel(models.TextChoices):
    SMS = "sms", "SMS"
    PUSH = "push", "Push"
    IN_APP = "in_app", "In the app"


class NoticePreference(models.Model):
    """
    What one recipient wants to hear of a passenger's rides: a passenger of
    their own (`passenger`), or a caregiver on one link (`link`). Without a
    row the defaults of people.notices apply.
    """

    passenger = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="notice_preference",
    )
    link = models.OneToOneField(
        CaregiverLink,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="notice_preference",
    )
    # people.notices.Topic values.
    topics = models.JSONField(default=list)
    channel = models.CharField(max_length=8, choices=NoticeChannel.choices)
    # Local times; both empty: no quiet hours. Start after end spans midnight.
    quiet_start = models.TimeField(null=True, blank=True)
    quiet_end = models.TimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(Q(passenger__isnull=True) & Q(link__isnull=False))
                | (Q(passenger__isnull=False) & Q(link__isnull=True)),
                name="notice_preference_one_owner",
            ),
        ]

    def __str__(self) -> str:
        return f"Notices for {self.link or self.passenger}"


class DeviceToken(models.Model):
    """
    An app install's push token (FCM), registered by the signed-in app. It
    lives as long as the session that registered it: a phone signed out
    (or revoked by support) hears nothing more (people.sessions).
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="device_tokens"
    )
    # Null only on tokens registered before sessions held them.
    session = models.ForeignKey(
        ApiSession,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="device_tokens",
    )
    token = models.CharField(max_length=4096, unique=True)
    platform = models.CharField(max_length=16)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.platform} device of {self.user}"
