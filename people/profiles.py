"""
A person edits their own profile: their name, and a passenger their needs.
Driver and vehicle details are support's to change, never the driver's.
"""

from __future__ import annotations

from django.db import transaction

from people import signals
from people.audit import audit_event_record
from people.models import PassengerProfile, User, UserType
from project.common.errors import ServiceError

NAME_FIELDS = ("first_name", "last_name")
# The user's own fields besides their name.
USER_FIELDS = ("language",)
NEEDS_FIELDS = (
    "needs_wheelchair",
    "needs_walker",
    "needs_assistance_boarding",
    "has_service_animal",
    "notes",
)


def needs_wheelchair(passenger: User, said: bool | None) -> bool:
    """
    Whether a trip carries a wheelchair: what the booking says, else the
    passenger's profile (read with select_related("passenger_profile")).
    """
    if said is not None:
        return said
    profile = getattr(passenger, "passenger_profile", None)
    return bool(profile and profile.needs_wheelchair)


class ProfileError(ServiceError):
    code = "invalid_request"


def needs_check(user: User, names) -> None:
    """Raises ProfileError when `names` (of NEEDS_FIELDS) change for someone not a passenger."""
    if names and user.user_type != UserType.PASSENGER:
        raise ProfileError(
            "Only passengers have travel needs.",
            fields={name: "Only passengers have travel needs." for name in names},
        )


def profile_update(*, user: User, actor: User | None = None, **fields) -> User:
    """
    Change the fields given; the others stay. Only passengers have needs.
    Raises ProfileError for a field the user may not change.
    """
    actor = actor or user
    unknown = set(fields) - {*NAME_FIELDS, *USER_FIELDS, *NEEDS_FIELDS}
    if unknown:
        raise ProfileError(
            "Unknown fields: " + ", ".join(sorted(unknown)) + ".",
            fields={name: "Not a profile field." for name in unknown},
        )
    needs = {k: v for k, v in fields.items() if k in NEEDS_FIELDS}
    needs_check(user, needs)
    names = {k: v.strip() for k, v in fields.items() if k in NAME_FIELDS}
    names.update({k: str(v) for k, v in fields.items() if k in USER_FIELDS})
    with transaction.atomic():
        changed: list[str] = []
        if names:
            user = User.objects.select_for_update().get(pk=user.pk)
            changed += [k for k, v in names.items() if getattr(user, k) != v]
            for name, value in names.items():
                setattr(user, name, value)
            user.save(update_fields=list(names))
        if needs:
            profile, _ = PassengerProfile.objects.select_for_update().get_or_create(user=user)
            changed += [k for k, v in needs.items() if getattr(profile, k) != v]
            for name, value in needs.items():
                setattr(profile, name, value)
            profile.save(update_fields=list(needs))
        if any(name in NEEDS_FIELDS for name in changed):
            # A driver already on the way sees the new needs at once.
            signals.needs_changed.send(sender=PassengerProfile, passenger_id=user.pk)
        if changed:
            audit_event_record(
                actor=actor,
                action="profile.updated",
                subject=user,
                # Names of what changed and the new flags; the free-text
                # notes are health details and stay out of the log.
                payload={
                    "changed": sorted(changed),
                    **{k: needs[k] for k in changed if k in needs and k != "notes"},
                },
            )
    return user
