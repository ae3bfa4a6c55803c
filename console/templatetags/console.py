"""Small presentation helpers for the console's templates."""

from __future__ import annotations

from math import ceil

from django import template
from django.utils import timezone

from console.regions import vehicle_label
from dispatch import labels
from people.phones import display_phone

register = template.Library()

# The words and tones are dispatch.labels', shared with the admin.
register.filter("ride_status_label", labels.ride_status_label)
register.filter("ride_status_tone", labels.ride_status_tone)
register.filter("event_label", labels.event_label)
register.filter("event_tone", labels.event_tone)

# How a feed entry names its driver ("Driver assigned r-42 · to Ann Lee").
EVENT_DRIVER_WORDS = {
    "offered": "to",
    "assigned": "to",
    "reassigned": "to",
    "offer_declined": "by",
    "offer_expired": "by",
    "driver_cancelled": "by",
}


@register.filter
def event_driver_word(kind: str) -> str:
    return EVENT_DRIVER_WORDS.get(kind, "driver")


@register.filter
def seconds_left(offer) -> int:
    """Whole seconds until an offer expires (the page counts down from it)."""
    return max(0, ceil((offer.expires_at - timezone.now()).total_seconds()))


@register.filter
def km(value: float | None) -> str:
    if value is None:
        return "position unknown"
    if value < 1:
        return f"{value * 1000:.0f} m"
    return f"{value:.1f} km"


@register.filter
def tel(who) -> str:
    """A tel: link target for a user, or a number in digits ("27821234567")."""
    if who is None or who == "":
        return ""
    return f"tel:+{who if isinstance(who, str) else who.phone_number}"


@register.filter
def phone(digits: str) -> str:
    """A number in digits as people read it: "+27 82 123 4567"."""
    return display_phone(digits) if digits else ""


@register.filter
def vehicle(user) -> str:
    """A driver's vehicle, e.g. "Sedan · CA 123 GP"."""
    return vehicle_label(user)
