"""
Caregiver links: who looks after whom, with consent and permissions.

A passenger (or support staff) invites a caregiver by phone; the link becomes
active only when the caregiver accepts. The passenger can change permissions
or revoke at any time. Every change is audited, and every socket of both
people re-reads its links at once (people.signals.links_changed), so a
revoked permission stops the flow immediately. Who may do each is
people.access's to say.
"""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils import timezone

from people import access, signals
from people.audit import audit_event_record
from people.models import CaregiverLink, LinkStatus, RelationshipType, User, UserType
from people.phones import InvalidPhoneNumber, normalize_phone
from project.common.errors import ServiceError

PERMISSIONS = ("can_book_rides", "can_view_location", "can_receive_notifications")


class LinkError(ServiceError):
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        fields = {}
        if code in ("invalid_phone", "self_link"):
            fields["fields"] = {"caregiver_phone": message}
        super().__init__(message, code=code, status=status, **fields)


def _changed(link: CaregiverLink) -> None:
    users = [link.passenger_id, *([link.caregiver_id] if link.caregiver_id else [])]
    signals.links_changed.send(sender=CaregiverLink, user_ids=users)


def _may_care(user: User | None) -> User | None:
    """The user if their account may care for someone (people.access.may_care)."""
    return user if access.may_care(user) else None


def on_caring_changed(sender, *, user_id: int, **kwargs) -> None:
    """
    An account switched off, or made a driver's, grants nothing through its
    links (people.access.granting_links): its sockets and its passengers',
    and the pages it shared, are told at once, as for a link revoked (and
    as for a link accepted when it may care again).
    """
    passengers = CaregiverLink.objects.active().filter(caregiver_id=user_id)
    passenger_ids = list(passengers.values_list("passenger_id", flat=True))
    if passenger_ids:
        signals.links_changed.send(sender=CaregiverLink, user_ids=[user_id, *passenger_ids])


def caregiver_invitations_claim(*, user: User) -> int:
    """
    A new account takes up the invitations made to its number before it
    existed (signing up in the app, or added or changed in the admin);
    returns how many.
    """
    if _may_care(user) is None:
        return 0
    with transaction.atomic():
        links = list(
            CaregiverLink.objects.filter(
                caregiver__isnull=True, invited_phone=user.phone_number, status=LinkStatus.INVITED
            )
        )
        CaregiverLink.objects.filter(pk__in=[link.pk for link in links]).update(
            caregiver=user, updated_at=timezone.now()
        )
        for link in links:
            link.caregiver = user
            audit_event_record(actor=user, action="link.claimed", subject=link)
            _changed(link)
    return len(links)


def caregiver_link_invite(
    *,
    passenger: User,
    caregiver_phone: str,
    actor: User,
    relationship_type: str = RelationshipType.FAMILY,
    can_book_rides: bool = True,
    can_view_location: bool = True,
    can_receive_notifications: bool = True,
    notes: str = "",
) -> CaregiverLink:
    """Invite a caregiver by phone; the link waits for their consent."""
    if not access.may_invite_caregiver(actor, passenger):
        raise LinkError("forbidden", "Only the passenger or support staff can invite.", 403)
    if passenger.user_type != UserType.PASSENGER:
        raise LinkError("forbidden", "Only passenger accounts can have caregivers.", 403)
    if relationship_type not in RelationshipType.values:
        raise LinkError("invalid_request", f"Unknown relationship_type '{relationship_type}'.")
    try:
        phone = normalize_phone(caregiver_phone)
    except InvalidPhoneNumber as exc:
        raise LinkError("invalid_phone", exc.messages[0]) from exc
    if phone == passenger.phone_number:
        raise LinkError("self_link", "A passenger cannot be their own caregiver.")
    try:
        with transaction.atomic():
            link = CaregiverLink.objects.create(
                passenger=passenger,
                # Nobody yet if the number has no account that may care (none
                # at all, a driver's, one switched off): the answer is the same.
                caregiver=_may_care(User.objects.filter(phone_number=phone).first()),
                invited_phone=phone,
                relationship_type=relationship_type,
                can_book_rides=can_book_rides,
                can_view_location=can_view_location,
                can_receive_notifications=can_receive_notifications,
                notes=notes,
                invited_by=actor,
            )
            audit_event_record(
                actor=actor,
                action="link.invited",
                subject=link,
                payload={
                    "passenger_id": passenger.pk,
                    "caregiver_id": link.caregiver_id,
                    **link.permissions(),
                },
            )
            _changed(link)
    except IntegrityError as exc:
        raise LinkError(
            "duplicate_link", "This caregiver is already linked or invited.", 409
        ) from exc
    return link


def _respond(
    link: CaregiverLink, actor: User, status: str, action: str, payload: dict | None = None
) -> CaregiverLink:
    if not access.may_answer_invitation(actor, link):
        raise LinkError("forbidden", "Only the invited caregiver can answer.", 403)
    if status == LinkStatus.ACTIVE and _may_care(link.caregiver) is None:
        # Switched off, or made a driver, since the invitation: as an
        # invitation to them now would be, it is refused.
        raise LinkError(
            "invalid_state",
            "This account cannot care for anyone now (switched off, or a driver).",
            409,
        )
    with transaction.atomic():
        updated = CaregiverLink.objects.filter(pk=link.pk, status=LinkStatus.INVITED).update(
            status=status, responded_at=timezone.now(), updated_at=timezone.now()
        )
        if not updated:
            link.refresh_from_db()
            raise LinkError("invalid_state", f"The invitation is {link.status}, not open.", 409)
        link.refresh_from_db()
        audit_event_record(actor=actor, action=action, subject=link, payload=payload)
        _changed(link)
    return link


def caregiver_link_accept(*, link: CaregiverLink, actor: User, consent: str = "") -> CaregiverLink:
    """
    The caregiver accepts; or staff accept in their place, saying how the
    caregiver consented (by phone), which the audit row keeps.
    """
    if not access.answers_for_caregiver(actor, link):
        return _respond(link, actor, LinkStatus.ACTIVE, "link.accepted")
    if not access.may_accept_for_caregiver(actor, link):
        # Only staff learn that a number has no account; anyone else is
        # refused alike, so the answer never tells whether a number is used.
        if (
            access.is_support(actor)
            and link.status == LinkStatus.INVITED
            and link.caregiver_id is None
        ):
            raise LinkError(
                "invalid_state",
                "This number has no Care Connect account yet: the caregiver accepts in "
                "the app once they sign up.",
                409,
            )
        raise LinkError("forbidden", "Only the invited caregiver or staff can accept.", 403)
    consent = consent.strip()
    if not consent:
        raise LinkError(
            "consent_required",
            'Say how the caregiver agreed (e.g. "Phoned Emily at 14:05, she agreed").',
        )
    payload = {"on_behalf_of": link.caregiver_id, "consent": consent[:500]}
    return _respond(link, actor, LinkStatus.ACTIVE, "link.accepted", payload)


def caregiver_link_decline(*, link: CaregiverLink, actor: User) -> CaregiverLink:
    return _respond(link, actor, LinkStatus.DECLINED, "link.declined")


def caregiver_link_update(
    *,
    link: CaregiverLink,
    actor: User,
    expected: access.LinkPermissions | None = None,
    **changes,
) -> CaregiverLink:
    """
    The passenger (or support) changes permissions, relationship or notes.
    `expected`: the permissions the actor's screen showed; a link whose
    permissions changed since is refused, not written over.
    """
    if not access.may_change_link(actor, link):
        raise LinkError("forbidden", "Only the passenger or support staff can change this.", 403)
    allowed = {*PERMISSIONS, "relationship_type", "notes"}
    unknown = set(changes) - allowed
    if unknown:
        raise LinkError("invalid_request", "Unknown fields: " + ", ".join(sorted(unknown)))
    if (
        "relationship_type" in changes
        and changes["relationship_type"] not in RelationshipType.values
    ):
        raise LinkError("invalid_request", "Unknown relationship_type.")
    with transaction.atomic():
        current = CaregiverLink.objects.select_for_update().get(pk=link.pk)
        if not access.is_live(current):
            raise LinkError("invalid_state", f"The link is {current.status}.", 409)
        if expected is not None and access.LinkPermissions.of(current) != expected:
            raise LinkError(
                "invalid_state",
                f"What {current.caregiver_label} may do changed while you were looking at "
                "it; this is how it stands now. Check it again, then save.",
                409,
            )
        before = current.permissions()
        CaregiverLink.objects.filter(pk=link.pk).update(updated_at=timezone.now(), **changes)
        link.refresh_from_db()
        audit_event_record(
            actor=actor,
            action="link.updated",
            subject=link,
            payload={
                "before": before,
                "after": link.permissions(),
                **(
                    {"relationship_type": changes["relationship_type"]}
                    if "relationship_type" in changes
                    else {}
                ),
            },
        )
        _changed(link)
    return link


def caregiver_link_revoke(*, link: CaregiverLink, actor: User) -> CaregiverLink:
    """End a link: the caregiver loses every permission at once."""
    if not access.may_revoke_link(actor, link):
        raise LinkError("forbidden", "You cannot revoke this link.", 403)
    with transaction.atomic():
        updated = (
            CaregiverLink.objects.live()
            .filter(pk=link.pk)
            .update(status=LinkStatus.REVOKED, updated_at=timezone.now())
        )
        if not updated:
            link.refresh_from_db()
            raise LinkError("invalid_state", f"The link is already {link.status}.", 409)
        link.refresh_from_db()
        audit_event_record(actor=actor, action="link.revoked", subject=link)
        _changed(link)
    return link
