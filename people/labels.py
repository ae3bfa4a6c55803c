"""
How people's records read: one word and one tone for each link status,
role and verification, the same on the console and in the admin. Tones are
the console's (ok, info, trip, warn, danger, muted); the admin maps them
to unfold's colours (project.common.admin.UNFOLD_COLOURS).
"""

from __future__ import annotations

from people.access import granted
from people.models import CaregiverLink, LinkStatus, UserType

LINK_STATUS: dict[str, tuple[str, str]] = {
    LinkStatus.INVITED: ("Invited", "info"),
    LinkStatus.ACTIVE: ("Active", "ok"),
    LinkStatus.DECLINED: ("Declined", "warn"),
    LinkStatus.REVOKED: ("Revoked", "muted"),
}

ROLE: dict[str, tuple[str, str]] = {
    UserType.PASSENGER: ("Passenger", "info"),
    UserType.DRIVER: ("Driver", "ok"),
    UserType.CAREGIVER: ("Caregiver", "trip"),
    "": ("Staff", "warn"),
}

VERIFIED: dict[bool, tuple[str, str]] = {
    True: ("Verified", "ok"),
    False: ("Not verified", "warn"),
}

# What an active link lets its caregiver do, in the order shown.
PERMISSIONS: tuple[tuple[str, str], ...] = (
    ("can_book_rides", "Books rides"),
    ("can_view_location", "Sees location"),
    ("can_receive_notifications", "Notified"),
)


def permission_words(allowed) -> list[str]:
    """
    What a link (or people.access.LinkPermissions) lets its caregiver do, in
    words ("Books rides", ...).
    """
    return [words for name, words in PERMISSIONS if getattr(allowed, name)]


def link_allows(link: CaregiverLink) -> str:
    """What a link allows, as one line; a dash once it has ended (it allows nothing)."""
    allowed = granted(link)
    if allowed is None:
        return "—"
    return ", ".join(permission_words(allowed)) or "Nothing"


def link_status_label(status: str) -> str:
    return LINK_STATUS.get(status, (status, "muted"))[0]


def link_status_tone(status: str) -> str:
    return LINK_STATUS.get(status, ("", "muted"))[1]
