"""
What each person wants to hear of a passenger's rides, and where: the
topics they choose, the channel, quiet hours, and their app installs' push
tokens. Which ride event is which topic, and the sending, are dispatch's
(dispatch.notify); this module knows only people.

Recipients of a passenger's rides: the passenger, and each caregiver on an
active link that may receive notifications. Each has a NoticePreference or,
without one, the defaults here.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, time

from django.db import transaction
from django.db.models import Exists, F, IntegerField, OuterRef, Q, TextChoices, Value
from django.utils import timezone

from people.access import notified_links
from people.audit import audit_event_record
from people.models import (
    ApiSession,
    CaregiverLink,
    DeviceToken,
    NoticeChannel,
    NoticePreference,
    User,
)
from people.push import push_enabled
from project.common.errors import ServiceError


class Topic(TextChoices):
    """What a recipient may choose to hear of."""

    BOOKED = "booked", "Booked"
    DRIVER_ASSIGNED = "driver_assigned", "Driver assigned"
    DRIVER_NEAR = "driver_near", "Driver about N minutes away"
    ARRIVED = "arrived", "Driver arrived"
    ON_BOARD = "on_board", "On board"
    DROPPED_OFF = "dropped_off", "Dropped off"
    CANCELLED = "cancelled", "Cancelled"
    NO_SHOW = "no_show", "No-show"
    DELAYED = "delayed", "Delayed"
    DOOR_WAIT = "door_wait", "Driver waiting at the door"
    ALARM = "alarm", "Alarm"


# Sent in quiet hours too.
URGENT = frozenset({Topic.NO_SHOW, Topic.ALARM, Topic.DOOR_WAIT})

# A family member hears what says where the person is and what went wrong;
# a passenger, what to get ready for. Both by SMS: an old phone has no app.
CAREGIVER_DEFAULT = (
    Topic.DRIVER_ASSIGNED,
    Topic.DRIVER_NEAR,
    Topic.DROPPED_OFF,
    Topic.CANCELLED,
    Topic.NO_SHOW,
    Topic.DELAYED,
    Topic.DOOR_WAIT,
    Topic.ALARM,
)
PASSENGER_DEFAULT = (
    Topic.DRIVER_ASSIGNED,
    Topic.DRIVER_NEAR,
    Topic.ARRIVED,
    Topic.CANCELLED,
    Topic.DELAYED,
)
DEFAULT_QUIET = (time(21, 0), time(7, 0))


class NoticeError(ServiceError):
    code = "invalid_request"


@dataclass(frozen=True)
class Recipient:
    """One person to tell of a passenger's rides, as they chose."""

    user_id: int
    link_id: int | None
    topics: frozenset[str]
    channel: str
    quiet_start: time | None
    quiet_end: time | None

    def wants(self, topic: str, at: datetime) -> bool:
        """Whether `topic` goes out to them at `at`: chosen, and urgent in quiet hours."""
        if topic not in self.topics:
            return False
        return topic in URGENT or not in_quiet_hours(self.quiet_start, self.quiet_end, at)


def in_quiet_hours(start: time | None, end: time | None, at: datetime) -> bool:
    """Whether `at` (local time) falls in [start, end); start after end spans midnight."""
    if start is None or end is None or start == end:
        return False
    now = timezone.localtime(at).time()
    if start < end:
        return start <= now < end
    return now >= start or now < end


def _defaults(*, caregiver: bool) -> dict:
    return {
        "topics": list(CAREGIVER_DEFAULT if caregiver else PASSENGER_DEFAULT),
        "channel": NoticeChannel.SMS,
        # The rider is told of their own ride at any hour; a family member's
        # nights stay quiet but for what is urgent.
        "quiet_start": DEFAULT_QUIET[0] if caregiver else None,
        "quiet_end": DEFAULT_QUIET[1] if caregiver else None,
    }


CHOICES = ("topics", "channel", "quiet_start", "quiet_end")


def _recipient(user_id: int, link_id: int | None, pref: dict | None) -> Recipient:
    """`pref`: holds the NoticePreference's CHOICES, or None for the defaults."""
    values = _defaults(caregiver=link_id is not None) if pref is None else pref
    return Recipient(
        user_id=user_id,
        link_id=link_id,
        topics=frozenset(values["topics"]),
        channel=values["channel"],
        quiet_start=values["quiet_start"],
        quiet_end=values["quiet_end"],
    )


def _recipient_rows(passenger_id: int):
    """
    The passenger's recipients, a row each: the passenger and each
    caregiver who may receive notifications (people.access.notified_links),
    with their NoticePreference's choices (pref_id None: they have none).
    One query.
    """

    def chosen(path: str) -> dict:
        return {"pref_id": F(f"{path}__id"), **{c: F(f"{path}__{c}") for c in CHOICES}}

    own = (
        User.objects.filter(pk=passenger_id)
        .order_by()
        .values(
            user_id=F("pk"),
            link_id=Value(None, output_field=IntegerField()),
            **chosen("notice_preference"),
        )
    )
    links = (
        notified_links(passenger_id)
        .order_by()
        .values(user_id=F("caregiver_id"), link_id=F("pk"), **chosen("notice_preference"))
    )
    return own.union(links, all=True).order_by()


def notice_recipients(passenger_id: int) -> list[Recipient]:
    """
    The passenger's recipients, as they chose, by a channel that reaches
    them now: push chosen while it reached them, that no longer does (the
    server's credentials gone, the app uninstalled), falls back to SMS, so
    the person still hears.
    """
    recipients = [
        _recipient(row["user_id"], row["link_id"], None if row["pref_id"] is None else row)
        for row in _recipient_rows(passenger_id)
    ]
    return [replace(r, channel=channel_reaching(r.channel, r.user_id)) for r in recipients]


def channel_reaching(channel: str, user_id: int) -> str:
    """The chosen channel, or SMS for push that does not reach the person now."""
    if channel == NoticeChannel.PUSH and not push_reaches(user_id):
        return NoticeChannel.SMS
    return channel


def push_reaches(user_id: int) -> bool:
    """Whether push reaches the person now: on here, and a device of theirs signed in."""
    return push_enabled() and _signed_in_devices(user_id).exists()


# --- reading and choosing ------------------------------------------------------


def preference_of(*, passenger: User | None = None, link: CaregiverLink | None = None) -> dict:
    """The choices in force for a passenger's own rides, or a caregiver's link."""
    owner = {"passenger": passenger} if link is None else {"link": link}
    pref = NoticePreference.objects.filter(**owner).values(*CHOICES).first()
    user = link.caregiver if link is not None else passenger
    recipient = _recipient(user.pk, link.pk if link is not None else None, pref)
    return {
        "topics": sorted(recipient.topics, key=Topic.values.index),
        "channel": recipient.channel,
        "quiet_start": recipient.quiet_start,
        "quiet_end": recipient.quiet_end,
        "customised": pref is not None,
    }


def preference_set(
    *,
    actor: User,
    passenger: User | None = None,
    link: CaregiverLink | None = None,
    **changes,
) -> dict:
    """
    Change the choices given (topics, channel, quiet_start, quiet_end); the
    others keep their value. Raises NoticeError for an unknown topic or
    channel, push that cannot reach the person (off on this server, or no
    device of theirs registered), or quiet hours with one end only.
    """
    unknown = set(changes) - {"topics", "channel", "quiet_start", "quiet_end"}
    if unknown:
        raise NoticeError(
            "Unknown fields: " + ", ".join(sorted(unknown)) + ".",
            fields={name: "Not a preference." for name in unknown},
        )
    if "topics" in changes:
        bad = [t for t in changes["topics"] if t not in Topic.values]
        if bad:
            raise NoticeError(
                f"Unknown topics: {', '.join(map(str, bad))}. Choose from "
                f"{', '.join(Topic.values)}.",
                fields={"topics": "Unknown topic."},
            )
        changes["topics"] = sorted(set(changes["topics"]), key=Topic.values.index)
    if "channel" in changes and changes["channel"] not in NoticeChannel.values:
        raise NoticeError(
            f"Unknown channel: choose from {', '.join(NoticeChannel.values)}.",
            fields={"channel": "Unknown channel."},
        )
    if changes.get("channel") == NoticeChannel.PUSH:
        _reachable_by_push(link.caregiver if link is not None else passenger)
    owner = {"passenger": passenger} if link is None else {"link": link}
    with transaction.atomic():
        # The first choice makes the row; a request racing it takes that row.
        pref, _ = NoticePreference.objects.select_for_update().get_or_create(
            **owner, defaults=_defaults(caregiver=link is not None)
        )
        for name, value in changes.items():
            setattr(pref, name, value)
        if (pref.quiet_start is None) != (pref.quiet_end is None):
            raise NoticeError(
                "Give quiet hours both a start and an end, or neither.",
                fields={"quiet_start": "Both or neither.", "quiet_end": "Both or neither."},
            )
        pref.save()
        audit_event_record(
            actor=actor,
            action="notice_preference_set",
            subject=link if link is not None else passenger,
            payload={k: str(v) if isinstance(v, time) else v for k, v in changes.items()},
        )
    return preference_of(passenger=passenger, link=link)


def _reachable_by_push(user: User) -> None:
    """Push is chosen only where it reaches the person; otherwise nothing would."""
    if not push_enabled():
        raise NoticeError(
            "Push notifications are off on this server: choose sms or in_app.",
            fields={"channel": "Push is off on this server."},
        )
    if not push_reaches(user.pk):
        raise NoticeError(
            "No device of yours is registered for push: register this app's token "
            "(POST /api/notifications/devices/), then choose push.",
            fields={"channel": "No device registered for push."},
        )


# --- push tokens -----------------------------------------------------------------


def device_token_register(*, session: ApiSession, token: str, platform: str) -> DeviceToken:
    """
    An app install's push token, now held by this session and its user (a
    token moves with its install, so from an older session to this one).
    Raises ServiceError (401) for a session that ended since its request
    signed in: no token outlives the session that registered it.
    """
    with transaction.atomic():
        # Locked as ending a session locks it (people.sessions): either the
        # end comes first and nothing is written, or it finds the token.
        if not ApiSession.objects.signed_in().select_for_update().filter(pk=session.pk):
            raise ServiceError(
                "You were signed out. Sign in again.", code="authentication_required", status=401
            )
        device, _ = DeviceToken.objects.update_or_create(
            token=token,
            defaults={"user_id": session.user_id, "session": session, "platform": platform},
        )
    return device


def device_token_unregister(*, user: User, token: str) -> DeviceToken | None:
    """Forget the token if it is this user's; the device it was, or None."""
    device = DeviceToken.objects.filter(user=user, token=token).first()
    if device is not None:
        DeviceToken.objects.filter(pk=device.pk).delete()
    return device


def device_tokens_dead(tokens: list[str]) -> None:
    """Tokens the push service says no longer exist."""
    DeviceToken.objects.filter(token__in=tokens).delete()


def device_tokens_reaching(user_id: int) -> list[str]:
    """The person's push tokens on devices signed in now: where their push goes."""
    return list(_signed_in_devices(user_id).values_list("token", flat=True))


def device_tokens_session_ended(*, session: ApiSession) -> None:
    """
    A session ended (people.sessions, in its transaction): the tokens it
    registered go, so the phone it was on hears nothing more of anyone's
    rides. So do the person's tokens registered before sessions held them:
    nobody can tell which of their devices those were.
    """
    DeviceToken.objects.filter(
        Q(session=session) | Q(session__isnull=True, user_id=session.user_id)
    ).delete()


def _signed_in_devices(user_id: int):
    # A session past its time ends with no moment to delete at: its tokens
    # stay until the session is purged (people.retention), reaching nobody.
    session_signed_in = Exists(ApiSession.objects.signed_in().filter(pk=OuterRef("session_id")))
    return DeviceToken.objects.filter(user_id=user_id).filter(
        Q(session__isnull=True) | session_signed_in
    )
