"""Reads about people for staff pages: who a search names, which links match."""

from __future__ import annotations

from django.db.models import Case, IntegerField, Q, QuerySet, Value, When

from people.models import CaregiverLink, LinkStatus
from people.phones import InvalidPhoneNumber, normalize_phone

LINKS_SHOWN = 100


def _person_filter(prefix: str, query: str, *, invited: bool = False) -> Q:
    """
    Whom `query` names under `prefix` (a user relation): a whole phone
    number in any usual spelling, a part of one (digits), or words of a name.
    """
    try:
        phone = normalize_phone(query)
    except InvalidPhoneNumber:
        phone = None
    if phone is not None:
        match = Q(**{f"{prefix}__phone_number": phone})
        return match | Q(invited_phone=phone) if invited else match
    digits = "".join(ch for ch in query if ch.isdigit())
    if digits and len(digits) >= 3 and not any(ch.isalpha() for ch in query):
        # "0821" or "123 4567": a number as far as the caller gave it.
        tail = digits.lstrip("0")
        match = Q(**{f"{prefix}__phone_number__contains": tail})
        return match | Q(invited_phone__contains=tail) if invited else match
    match = Q()
    for word in query.split():
        match &= Q(**{f"{prefix}__first_name__icontains": word}) | Q(
            **{f"{prefix}__last_name__icontains": word}
        )
    return match


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
        links = links.filter(_person_filter("passenger", passenger.strip()))
    if caregiver.strip():
        links = links.filter(_person_filter("caregiver", caregiver.strip(), invited=True))
    order = Case(
        When(status=LinkStatus.INVITED, then=Value(0)),
        When(status=LinkStatus.ACTIVE, then=Value(1)),
        default=Value(2),
        output_field=IntegerField(),
    )
    return links.order_by(order, "-updated_at")
