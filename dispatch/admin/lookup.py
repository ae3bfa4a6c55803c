"""
The caller lookup: "Where is my mother's ride?", "Who booked it?", "Why was
it cancelled?" answered on one page. From a phone number in any usual
spelling (people.phones.normalize_phone) or a name, support reach the
person, their caregivers or the people they care for, their rides and each
ride's timeline.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import Q
from django.views.generic import TemplateView
from unfold.views import UnfoldModelAdminViewMixin

from dispatch import labels
from dispatch.admin.timeline import TimelineRow, ride_timeline, stamp
from dispatch.models import Ride
from people import access
from people import labels as people_labels
from people.models import CaregiverLink, User
from people.phones import InvalidPhoneNumber, display_phone, normalize_phone
from people.selectors import people_matching

RIDES_SHOWN = 10


@dataclass
class RideCard:
    ride: Ride
    status: str
    tone: str
    booked_by: str
    booked: str
    # A ride booked ahead: the pickup (or the appointment) it is booked
    # for, or a will-call return's day.
    booked_for: str
    ended_why: str
    timeline: list[TimelineRow]


@dataclass
class PersonCard:
    person: User
    role: str
    caregivers: list[CaregiverLink] = field(default_factory=list)
    cared_for: list[CaregiverLink] = field(default_factory=list)
    # Rides the person rode, booked or drove, and those of everyone they
    # care for on an active link, newest first.
    rides: list[RideCard] = field(default_factory=list)


def invitations_to(query: str) -> list[CaregiverLink]:
    """Invitations to a number that has no account yet."""
    try:
        phone = normalize_phone(query)
    except InvalidPhoneNumber:
        return []
    return list(
        CaregiverLink.objects.filter(caregiver__isnull=True, invited_phone=phone).select_related(
            "passenger"
        )
    )


def booked_for(ride: Ride) -> str:
    """
    When a ride booked ahead is for: its pickup or appointment, or for a
    will-call return, which has no time, its day.
    """
    if not ride.is_booked_ahead:
        return ""
    if ride.pickup_at is None and ride.appointment_at is None:
        return f"{ride.service_date:%Y-%m-%d}, will-call (when the rider says they are ready)"
    return stamp(ride.pickup_at or ride.appointment_at)


def _ride_card(ride: Ride) -> RideCard:
    if ride.booked_on_behalf:
        booked_by = f"{ride.booked_by} for {ride.passenger}"
    else:
        booked_by = f"{ride.passenger} themselves"
    return RideCard(
        ride=ride,
        status=labels.ride_status_label(ride.status),
        tone=labels.ride_status_tone(ride.status),
        booked_by=booked_by,
        booked=stamp(ride.created_at),
        booked_for=booked_for(ride),
        ended_why=ride.cancel_reason,
        timeline=ride_timeline(ride),
    )


def person_card(person: User) -> PersonCard:
    links = CaregiverLink.objects.select_related("passenger", "caregiver").order_by(
        "status", "-created_at"
    )
    card = PersonCard(
        person=person,
        role=people_labels.ROLE.get(person.user_type, ("", ""))[0] or "No app role",
        caregivers=list(links.filter(passenger=person)),
        cared_for=list(links.filter(caregiver=person)),
    )
    for link in card.caregivers:
        link.may = people_labels.permission_words(link)
        link.phone_shown = display_phone(link.caregiver_phone)
    # Only the people they care for now: an ended link (or one not yet
    # accepted) shows, but gives the caller no one's rides.
    passengers = {person.pk, *access.links_of_caregiver(person.pk)}
    rides = (
        Ride.objects.filter(Q(passenger_id__in=passengers) | Q(booked_by=person) | Q(driver=person))
        .select_related("passenger", "booked_by", "driver")
        .order_by("-created_at")[:RIDES_SHOWN]
    )
    card.rides = [_ride_card(ride) for ride in rides]
    return card


class CallerLookupView(UnfoldModelAdminViewMixin, TemplateView):
    title = "Caller lookup"
    template_name = "admin/dispatch/caller_lookup.html"
    permission_required = ("dispatch.view_ride", "people.view_user")

    def get_context_data(self, **kwargs):
        # Text no database can store never gets here (the site's storable_query).
        query = self.request.GET.get("q", "").strip()
        people = people_matching(query) if query else []
        return super().get_context_data(
            query=query,
            cards=[person_card(person) for person in people[:1]] if len(people) == 1 else [],
            people=people if len(people) > 1 else [],
            invitations=invitations_to(query) if query else [],
            **kwargs,
        )
