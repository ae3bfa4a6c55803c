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
        if code in ("invalid_phone", "unknown_phone", "self_link"):
            fields["fields"] = {"caregiver_phone": message}
        super().__init__(message, code=code, status=status, **fields)


def _changed(link: CaregiverLink) -> None:
    signals.links_changed.send(
        sender=CaregiverLink, user_ids=[link.passenger_id, link.caregiver_id]
    )


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
    caregiver = User.objects.filter(phone_number=phone, is_active=True).first()
    if caregiver is None:
        raise LinkError(
            "unknown_phone",
            "Nobody with that phone number uses Care Connect yet; ask them to sign up first.",
            404,
        )
    if caregiver.pk == passenger.pk:
        raise LinkError("self_link", "A passenger cannot be their own caregiver.")
    if caregiver.user_type == UserType.DRIVER:
        raise LinkError("invalid_request", "Driver accounts cannot be caregivers.")
    try:
        with transaction.atomic():
            link = CaregiverLink.objects.create(
                passenger=passenger,
                caregiver=caregiver,
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
                    "caregiver_id": caregiver.pk,
                    **link.permissions(),
                },
            )
            _changed(link)
    except IntegrityError as exc:
        raise LinkError(
            "duplicate_link", "This caregiver is already linked or invited.", 409
        ) from exc
    return link


def _respond(link: CaregiverLink, actor: User, status: str, action: str) -> CaregiverLink:
    if not access.may_answer_invitation(actor, link):
        raise LinkError("forbidden", "Only the invited caregiver can answer.", 403)
    with transaction.atomic():
        updated = CaregiverLink.objects.filter(pk=link.pk, status=LinkStatus.INVITED).update(
            status=status, responded_at=timezone.now(), updated_at=timezone.now()
        )
        if not updated:
            link.refresh_from_db()
            raise LinkError("invalid_state", f"The invitation is {link.status}, not open.", 409)
        link.refresh_from_db()
        audit_event_record(actor=actor, action=action, subject=link)
        _changed(link)
    return link


def caregiver_link_accept(*, link: CaregiverLink, actor: User) -> CaregiverLink:
    return _respond(link, actor, LinkStatus.ACTIVE, "link.accepted")


def caregiver_link_decline(*, link: CaregiverLink, actor: User) -> CaregiverLink:
    return _respond(link, actor, LinkStatus.DECLINED, "link.declined")


def caregiver_link_update(*, link: CaregiverLink, actor: User, **changes) -> CaregiverLink:
    """The passenger (or support) changes permissions, relationship or notes."""
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
    if link.status not in (LinkStatus.INVITED, LinkStatus.ACTIVE):
        raise LinkError("invalid_state", f"The link is {link.status}.", 409)
    with transaction.atomic():
        before = link.permissions()
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
        updated = CaregiverLink.objects.filter(
            pk=link.pk, status__in=[LinkStatus.INVITED, LinkStatus.ACTIVE]
        ).update(status=LinkStatus.REVOKED, updated_at=timezone.now())
        if not updated:
            link.refresh_from_db()
            raise LinkError("invalid_state", f"The link is already {link.status}.", 409)
        link.refresh_from_db()
        audit_event_record(actor=actor, action="link.revoked", subject=link)
        _changed(link)
    return link
