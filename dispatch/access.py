"""
Who may see and do what on a ride. Sockets, REST, the console and the
broadcast all ask here; none re-derives a role or a permission.

How a user relates to a ride, in this order (the first that applies):
passenger, the ride's driver, caregiver of the passenger (an active link),
dispatcher ("staff"); a family tracking link's holder is a `share` viewer
(dispatch.sharing). A personal relation comes before the staff role, so a
dispatcher who is also a caregiver sees the ride as their link allows,
on every surface.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from dispatch.errors import NotAllowed, NotFound
from dispatch.models import DRIVER_HELD_STATUSES, FINAL_STATUSES, Ride, RideSeries
from people import access as people_access
from people.access import LinkPermissions
from people.models import User, UserType
from people.phones import InvalidPhoneNumber, normalize_phone

PASSENGER = "passenger"
DRIVER = "driver"
CAREGIVER = "caregiver"
STAFF = "staff"
# Whoever holds a family tracking link (dispatch.sharing): sees the driver's
# position while the ride holds its driver, as its passenger would.
SHARE = "share"


@dataclass(frozen=True, slots=True)
class Viewer:
    """One user's relation to one ride (or to one passenger's rides)."""

    role: str
    # A caregiver's link permissions; None for every other role.
    link: LinkPermissions | None = None
    # A caregiver who booked this ride, or asked for it on this socket
    # (`ready`): they hear the answer and what follows (asking).
    asked: bool = False

    @property
    def hears_news(self) -> bool:
        """
        Told of every change; a caregiver only with can_receive_notifications,
        or of a ride they asked for (their booking's or `ready`'s answer, and
        what follows).
        """
        return self.role != CAREGIVER or self.asked or people_access.link_hears_news(self.link)

    def sees_position(self, status: str) -> bool:
        """
        Where the driver is: only while the ride holds its driver, and to a
        caregiver only with can_view_location. The driver's distance to the
        pickup and the ETA give the position away, so they go with it.
        """
        if status not in DRIVER_HELD_STATUSES:
            return False
        return self.role != CAREGIVER or people_access.link_follows_position(self.link)

    def cancels_as(self) -> str:
        """The `cancelled_by` of this viewer's cancel, or NotAllowed."""
        if self.role == PASSENGER:
            return "passenger"
        if self.role == STAFF:
            return "dispatcher"
        if self.role == CAREGIVER and people_access.link_books(self.link):
            return "caregiver"
        if self.role == DRIVER:
            raise NotAllowed("Drivers give a ride back on the driver socket (cancel_ride).")
        raise NotAllowed("You may not cancel this passenger's rides.")


def viewer_of(user: User, ride: Ride, link: LinkPermissions | None = None) -> Viewer | None:
    """
    How `user` relates to `ride`, or None when they may not see it. `link`:
    the user's link to the passenger when the caller has read it already.
    """
    if not user.is_authenticated:
        return None
    if user.pk == ride.passenger_id:
        return Viewer(PASSENGER)
    if ride.driver_id is not None and user.pk == ride.driver_id:
        return Viewer(DRIVER)
    link = link or people_access.link_between(user.pk, ride.passenger_id)
    if link is not None:
        return Viewer(CAREGIVER, link, asked=user.pk == ride.booked_by_id)
    if people_access.is_dispatcher(user):
        return Viewer(STAFF)
    return None


def viewers_of(user: User, rides: list[Ride]) -> dict[int, Viewer | None]:
    """`viewer_of` for many rides, reading the user's links once."""
    links = people_access.links_of_caregiver(user.pk, {r.passenger_id for r in rides})
    return {ride.pk: viewer_of(user, ride, links.get(ride.passenger_id)) for ride in rides}


def asking(viewer: Viewer) -> Viewer:
    """The viewer once they have asked something of the ride (it answers them)."""
    return replace(viewer, asked=True)


def follower(user: User, passenger_id: int, link: LinkPermissions | None) -> Viewer:
    """A passenger following their own rides, or a caregiver following theirs."""
    return Viewer(PASSENGER) if user.pk == passenger_id else Viewer(CAREGIVER, link)


def shown_to(viewer: Viewer, message: dict[str, Any], status: str) -> dict[str, Any] | None:
    """
    `message` about a ride in `status` as `viewer` may see it, or None when
    they may not see it at all. The one place where positions, distances and
    phone numbers are withheld.
    """
    if message.get("type") == "driver_location":
        return message if viewer.sees_position(status) else None
    shown = message
    if not viewer.sees_position(status):
        driver = shown.get("driver")
        if isinstance(driver, dict) and driver.get("latitude") is not None:
            shown = {**shown, "driver": {**driver, "latitude": None, "longitude": None}}
        if shown.get("type") == "driver_assigned":
            shown = {**shown, "distance_km": None, "eta_minutes": None}
    if status in FINAL_STATUSES:
        # After the ride, phone numbers are no longer the other side's business.
        if viewer.role not in (STAFF, DRIVER) and isinstance(shown.get("driver"), dict):
            shown = {**shown, "driver": {**shown["driver"], "phone": None}}
        if viewer.role == DRIVER:
            shown = {
                **shown,
                **{
                    key: {**shown[key], "phone": None}
                    for key in ("passenger", "booked_by")
                    if isinstance(shown.get(key), dict)
                },
            }
    return shown


def vehicle_told(driver: User | None) -> str:
    """
    The driver's vehicle as texts and the family's tracking page name it:
    its plate. Not its kind: a wheelchair user is only ever driven in a
    wheelchair-accessible one, so the kind would tell the need.
    """
    profile = getattr(driver, "driver_profile", None) if driver else None
    return profile.vehicle_registration if profile is not None else ""


def _named_passenger(
    user: User, passenger_id: int | None, passenger_phone: str | None
) -> tuple[bool, User | None]:
    """
    Whether a booking names someone other than `user`, and who that is (None
    when nobody has that id or number, or when the id and the number name
    two people: answered as for nobody, so it tells nothing of either). A
    malformed phone is a bad request.
    """
    by_id = None if passenger_id is None else passenger_id
    by_phone = None
    if passenger_phone:
        try:
            phone = normalize_phone(passenger_phone)
        except InvalidPhoneNumber as exc:
            raise NotAllowed(
                exc.messages[0],
                code="invalid_request",
                status=400,
                fields={"passenger_phone": exc.messages[0]},
            ) from exc
        by_phone = (
            user.pk
            if phone == user.phone_number
            else User.objects.filter(phone_number=phone).values_list("pk", flat=True).first()
        )
        if by_phone is None:
            return True, None
    if by_id is not None and by_phone is not None and by_id != by_phone:
        return True, None
    named = by_id if by_id is not None else by_phone
    if named is None or named == user.pk:
        return False, None
    return True, User.objects.filter(pk=named).first()


def passenger_to_book_for(
    user: User, passenger_id: int | None = None, passenger_phone: str | None = None
) -> User:
    """
    Who rides when `user` books: themselves, or a passenger who gave them
    the booking permission. An unknown passenger and one who gave no
    permission get the same answer, so nobody learns who uses Care Connect.
    """
    named, target = _named_passenger(user, passenger_id, passenger_phone)
    if not named:
        if user.user_type == UserType.DRIVER:
            raise NotAllowed("Driver accounts cannot book rides.")
        return user
    if target is None or not people_access.may_book_for(user, target):
        raise NotAllowed("You may book only for passengers who gave you the booking permission.")
    return target


def passenger_to_book_ahead_for(
    user: User, passenger_id: int | None = None, passenger_phone: str | None = None
) -> User:
    """
    Who rides when `user` books ahead: as for booking now, and a dispatcher
    may name any passenger (booking on the phone with them).
    """
    if people_access.is_dispatcher(user) and (passenger_id or passenger_phone):
        named, target = _named_passenger(user, passenger_id, passenger_phone)
        if not named or target is None or target.user_type != UserType.PASSENGER:
            raise NotFound("There is no passenger with that id or phone number.")
        return target
    return passenger_to_book_for(user, passenger_id, passenger_phone)


def booker_role(user: User, passenger: User) -> str:
    """The role a booking, or a change to a series, is recorded with."""
    if user.pk == passenger.pk:
        return PASSENGER
    if people_access.may_book_for(user, passenger):
        return CAREGIVER
    return "dispatcher"


def may_see_series(user: User, series: RideSeries) -> bool:
    """The passenger, a caregiver with an active link, or a dispatcher."""
    if user.pk == series.passenger_id:
        return True
    if people_access.link_between(user.pk, series.passenger_id) is not None:
        return True
    return people_access.is_dispatcher(user)


def may_change_series(user: User, series: RideSeries) -> bool:
    """Create, edit, pause, end: the passenger, a caregiver who may book, a dispatcher."""
    return people_access.may_book_for(user, series.passenger) or people_access.is_dispatcher(user)


def may_say_ready(viewer: Viewer | None) -> bool:
    """A will-call return's 'ready': the passenger, a caregiver who may book, staff."""
    if viewer is None:
        return False
    if viewer.role == CAREGIVER:
        return people_access.link_books(viewer.link)
    return viewer.role in (PASSENGER, STAFF)
