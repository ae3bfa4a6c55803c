"""Request and response bodies of the caregiver links API."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from ninja import Schema
from pydantic import Field

from people.models import CaregiverLink, LinkStatus, RelationshipType, User
from people.phones import display_phone
from people.rest_schemas import In, person_out

# Built from the model's choices so the two cannot drift apart.
Relationship = Literal[tuple(RelationshipType.values)]  # type: ignore[valid-type]
LinkState = Literal[tuple(LinkStatus.values)]  # type: ignore[valid-type]


class PersonOut(Schema):
    # None for the caregiver of an invitation nobody has taken up.
    id: int | None
    name: str
    phone: str = Field(examples=["+27821234567"])


class LinkOut(Schema):
    id: int
    # The caller's side of the link.
    role: Literal["passenger", "caregiver"]
    passenger: PersonOut
    caregiver: PersonOut
    relationship_type: Relationship
    can_book_rides: bool
    can_view_location: bool
    can_receive_notifications: bool
    notes: str
    status: LinkState
    created_at: datetime
    responded_at: datetime | None


class LinkInviteIn(In):
    caregiver_phone: str = Field(max_length=32, examples=["+27 82 123 4569"])
    relationship_type: Relationship = "family"
    can_book_rides: bool = True
    can_view_location: bool = True
    can_receive_notifications: bool = True
    notes: str = Field(default="", max_length=1000)


class LinkUpdateIn(In):
    """Only the fields sent change; null is not a value."""

    relationship_type: Relationship = Field(default=None)
    can_book_rides: bool = Field(default=None)
    can_view_location: bool = Field(default=None)
    can_receive_notifications: bool = Field(default=None)
    notes: str = Field(default=None, max_length=1000)


def _invitee(link: CaregiverLink, viewer: User) -> dict:
    """
    The caregiver as the viewer may see them: the passenger sees only the
    number they invited until the caregiver answers, so an invitation never
    tells whether that number uses Care Connect, not even once it is
    withdrawn unanswered.
    """
    if link.caregiver_id and (link.caregiver_id == viewer.pk or link.responded_at is not None):
        return person_out(link.caregiver)
    return {
        "id": None,
        "name": display_phone(link.invited_phone),
        "phone": "+" + link.invited_phone,
    }


def link_out(link: CaregiverLink, viewer: User) -> dict:
    return {
        "id": link.pk,
        "role": "passenger" if link.passenger_id == viewer.pk else "caregiver",
        "passenger": person_out(link.passenger),
        "caregiver": _invitee(link, viewer),
        "relationship_type": link.relationship_type,
        **link.permissions(),
        "notes": link.notes,
        "status": link.status,
        "created_at": link.created_at,
        "responded_at": link.responded_at,
    }
