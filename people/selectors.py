"""Reads for staff pages: whom a search names, which caregiver links it finds."""

from __future__ import annotations

from django.db.models import Case, IntegerField, Q, QuerySet, Value, When

from people.models import CaregiverLink, LinkStatus, User
from people.phones import InvalidPhoneNumber, normalize_phone

LINKS_SHOWN = 100
PEOPLE_SHOWN = 20


def person_filter(query: str, prefix: str = "", *, invited: bool = False) -> Q:
    """
    Whom `query` names (under `prefix`, a user relation, if given): a whole
    phone number in any usual spelling, a part of one (digits), or the
    words of a name. `invited`: a link's invited number counts as the
    caregiver's.
    """

    def on(field: str) -> str:
        return f"{prefix}__{field}" if prefix else field

    try:
        phone = normalize_phone(query)
    except InvalidPhoneNumber:
        phone = None
    if phone is not None:
        match = Q(**{on("phone_number"): phone})
        return match | Q(invited_phone=phone) if invited else match
    digits = "".join(ch for ch in query if ch.isdigit())
    if len(digits) >= 3 and not any(ch.isalpha() for ch in query):
        # "0821" or "123 4567": a number as far as the caller gave it.
        tail = digits.lstrip("0")
        match = Q(**{on("phone_number__contains"): tail})
        return match | Q(invited_phone__contains=tail) if invited else match
    match = Q()
    for word in query.split():
        match &= Q(**{on("first_name__icontains"): word}) | Q(**{on("last_name__icontains"): word})
    return match


def people_matching(query: str, limit: int = PEOPLE_SHOWN) -> list[User]:
    """Whoever the words name (person_filter); nobody for an empty search."""
    if not query.strip():
        return []
    return list(User.objects.filter(person_filter(query.strip()))[:limit])


def links_matching(
    *, passenger: str = "", caregiver: str = "", include_ended: bool = False
) -> QuerySet[CaregiverLink]:
    """
    Caregiver links for the console's links page: by the passenger's name
    or phone and by the caregiver's; invitations first, then active links,
    then (only when asked) the declined and revoked ones.
    """
    links = CaregiverLink.objects.select_related("passenger", "caregiver", "invited_by")
    if not include_ended:
        links = links.live()
    if passenger.strip():
        links = links.filter(person_filter(passenger.strip(), "passenger"))
    if caregiver.strip():
        links = links.filter(person_filter(caregiver.strip(), "caregiver", invited=True))
    order = Case(
        When(status=LinkStatus.INVITED, then=Value(0)),
        When(status=LinkStatus.ACTIVE, then=Value(1)),
        default=Value(2),
        output_field=IntegerField(),
    )
    return links.order_by(order, "-updated_at")
