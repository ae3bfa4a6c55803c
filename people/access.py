"""
Who may do what, as far as people go: staff roles and caregiver links.
Every view, socket, REST endpoint, admin page and service asks here; none
re-derives a role or a permission.

Staff are users with `is_staff` in a staff group (superusers count as
both): Dispatchers run the live console; Support look after people in the
admin and on the console's links page. Staff sign in with a password and
then a code from their authenticator app (`passed_second_factor`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import Q
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

from people.models import LIVE_LINK_STATUSES, CaregiverLink, LinkStatus, User, UserType

DISPATCHERS = "Dispatchers"
SUPPORT = "Support"


def _staff_in(user: User, groups: tuple[str, ...]) -> bool:
    if not (user.is_authenticated and user.is_active and user.is_staff):
        return False
    return user.is_superuser or user.groups.filter(name__in=groups).exists()


def is_dispatcher(user: User) -> bool:
    """May use the live board: assign, cancel, close rides."""
    return _staff_in(user, (DISPATCHERS,))


def is_support(user: User) -> bool:
    """Support staff, or dispatchers: may manage people and caregiver links."""
    return _staff_in(user, (DISPATCHERS, SUPPORT))


def may_see_live_positions(user: User) -> bool:
    """
    Drivers' live positions outside a ride are for dispatchers, who place
    drivers; support staff answer about rides, not where a driver stands.
    """
    return is_dispatcher(user)


# --- the second factor ----------------------------------------------------------


def second_factor_required(user: User) -> bool:
    """
    Anyone who may open the admin (staff) proves themselves with a code from
    an authenticator app after the password. STAFF_2FA=0 waives it only while
    DEBUG is on: a server with DEBUG off always asks (settings refuses to
    start with STAFF_2FA=0 there too).
    """
    if not (user.is_authenticated and user.is_staff):
        return False
    return settings.STAFF_2FA or not settings.DEBUG


def passed_second_factor(user: User, session: Mapping[str, Any]) -> bool:
    """
    Whether this signed-in browser session may be used as it is: it needs no
    second factor, or it passed one with the user's own, confirmed
    authenticator (django_otp.login keeps that device's id in the session).
    The console's pages, the sockets signed in by session cookie and the
    admin site all ask here.
    """
    if not second_factor_required(user):
        return True
    device_id = session.get(DEVICE_ID_SESSION_KEY)
    if not device_id:
        return False
    device = TOTPDevice.from_persistent_id(device_id)
    # from_persistent_id loads any django-otp device (an SMS one too).
    return isinstance(device, TOTPDevice) and device.confirmed and device.user_id == user.pk


def may_reset_second_factor(actor: User, staff_member: User) -> bool:
    """
    Support reset a colleague's authenticator (lost phone), who then enrols a
    new one at their next sign-in. A superuser's is reset by another
    superuser only, and nobody resets their own: a session that could would
    let whoever holds it swap the authenticator for theirs.
    """
    if actor.pk == staff_member.pk or not staff_member.is_staff:
        return False
    # No group lets anyone but a superuser reset a superuser's.
    return _staff_in(actor, () if staff_member.is_superuser else (SUPPORT,))


# --- caregiver links -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LinkPermissions:
    can_book_rides: bool
    can_view_location: bool
    can_receive_notifications: bool

    @classmethod
    def of(cls, link: CaregiverLink) -> LinkPermissions:
        return cls(link.can_book_rides, link.can_view_location, link.can_receive_notifications)

    def as_dict(self) -> dict[str, bool]:
        return {
            "can_book_rides": self.can_book_rides,
            "can_view_location": self.can_view_location,
            "can_receive_notifications": self.can_receive_notifications,
        }


def may_care(user: User | None) -> bool:
    """
    Whether an account may care for someone: switched on, and not a
    driver's. An invitation is taken up and accepted only by such an
    account, and an active link grants nothing while its caregiver's is not.
    """
    return user is not None and user.is_active and user.user_type != UserType.DRIVER


def granting_links():
    """
    The links that grant their permissions now: active, and their caregiver
    may care (an account switched off, or made a driver's, hears and sees
    nothing of the passenger's rides).
    """
    return (
        CaregiverLink.objects.active()
        .filter(caregiver__is_active=True)
        .exclude(caregiver__user_type=UserType.DRIVER)
    )


def passengers_cared_for(caregiver_id: int):
    """The ids of the passengers whose links grant this caregiver anything (a subquery)."""
    return granting_links().filter(caregiver_id=caregiver_id).values("passenger_id")


def links_of_caregiver(
    caregiver_id: int, passenger_ids: set[int] | None = None
) -> dict[int, LinkPermissions]:
    """passenger id -> permissions, over the caregiver's granting links."""
    links = granting_links().filter(caregiver_id=caregiver_id)
    if passenger_ids is not None:
        links = links.filter(passenger_id__in=passenger_ids)
    return {link.passenger_id: LinkPermissions.of(link) for link in links}


def link_between(caregiver_id: int, passenger_id: int) -> LinkPermissions | None:
    """The active link's permissions, or None when there is none."""
    return links_of_caregiver(caregiver_id, {passenger_id}).get(passenger_id)


# What a caregiver's link lets them do, each once (`link`: a LinkPermissions
# or a CaregiverLink; None, no active link).


def link_books(link) -> bool:
    """Book, cancel and say "ready" for the passenger's rides."""
    return link is not None and link.can_book_rides


def link_follows_position(link) -> bool:
    """See where the driver is on the passenger's rides, and share it with family."""
    return link is not None and link.can_view_location


def link_hears_news(link) -> bool:
    """Be told of the passenger's rides as they change (sockets, notifications)."""
    return link is not None and link.can_receive_notifications


def may_book_for(user: User, passenger: User) -> bool:
    """Booking on behalf: the passenger themselves, or a caregiver allowed to book."""
    return user.pk == passenger.pk or link_books(link_between(user.pk, passenger.pk))


def may_invite_caregiver(actor: User, passenger: User) -> bool:
    return actor.pk == passenger.pk or is_support(actor)


def may_answer_invitation(actor: User, link: CaregiverLink) -> bool:
    return actor.pk == link.caregiver_id or is_support(actor)


def answers_for_caregiver(actor: User, link: CaregiverLink) -> bool:
    """
    Staff answering an invitation in the caregiver's place: an acceptance
    then needs the caregiver's consent, taken by phone, in words
    (people.caregivers.caregiver_link_accept records them).
    """
    return actor.pk != link.caregiver_id


def may_accept_for_caregiver(actor: User, link: CaregiverLink) -> bool:
    """
    Dispatchers and support may accept an open invitation for a caregiver
    who has an account (whom the link will name) and who consented by phone.
    """
    return (
        link.status == LinkStatus.INVITED
        and link.caregiver_id is not None
        and answers_for_caregiver(actor, link)
        and is_support(actor)
    )


def may_change_link(actor: User, link: CaregiverLink) -> bool:
    return actor.pk == link.passenger_id or is_support(actor)


def is_live(link: CaregiverLink) -> bool:
    """Invited or active: an ended link (declined, revoked) allows nothing, and stays so."""
    return link.status in LIVE_LINK_STATUSES


def may_edit_permissions(actor: User, link: CaregiverLink) -> bool:
    """The console's and the apps' permission switches, on a live link."""
    return is_live(link) and may_change_link(actor, link)


def granted(link: CaregiverLink) -> LinkPermissions | None:
    """What the link lets its caregiver do; None once it has ended."""
    return LinkPermissions.of(link) if is_live(link) else None


def may_revoke_link(actor: User, link: CaregiverLink) -> bool:
    return actor.pk in (link.passenger_id, link.caregiver_id) or is_support(actor)


def caregivers_following_query(passenger_id):
    """
    Caregivers told of every change to the passenger's rides: those who may
    receive notifications or see the location (their socket needs the news
    to follow the ride's driver position, and drops the rest itself).
    `passenger_id` may be an expression (the booking compiles it in).
    """
    return (
        granting_links()
        .filter(Q(can_receive_notifications=True) | Q(can_view_location=True))
        .filter(passenger_id=passenger_id)
        .values_list("caregiver_id", flat=True)
    )


def caregivers_following(passenger_id: int) -> list[int]:
    return list(caregivers_following_query(passenger_id))


def notified_links(passenger_id: int):
    """The granting links whose caregivers may receive notifications of the passenger's rides."""
    return granting_links().filter(passenger_id=passenger_id, can_receive_notifications=True)


def caregivers_notified(passenger_id: int) -> list[int]:
    return list(notified_links(passenger_id).values_list("caregiver_id", flat=True))


def may_share_ride(user: User, passenger: User) -> bool:
    """
    A family tracking link shows where the driver is: the passenger makes
    one, or a caregiver whose link lets them follow the ride's position
    (can_view_location).
    """
    return user.pk == passenger.pk or link_follows_position(link_between(user.pk, passenger.pk))
