"""
What a notice says: one short text per topic, from the gettext catalogues
(dispatch/locale: en, af, zu), in the recipient's language. Each fits one
SMS part (160 GSM-7 characters) with ordinary names, and names nobody's
health, needs or address: the passenger's and the driver's first names,
the vehicle as access.vehicle_told names it (its plate), minutes, and for a
ride booked ahead its day and time, so a family with a ride three times a
week knows which one is meant.
"""

from __future__ import annotations

from django.utils import formats, timezone, translation
from django.utils.translation import gettext
from django.utils.translation import gettext_noop as _

from dispatch import access
from dispatch.models import Ride
from people.models import User
from people.notices import Topic
from people.sms import gsm7

TITLE = "Care Connect"

TEXTS: dict[str, str] = {
    Topic.BOOKED: _("Care Connect: %(name)s's ride is booked."),
    Topic.DRIVER_ASSIGNED: _("Care Connect: %(driver)s will drive %(name)s. %(vehicle)s."),
    Topic.DRIVER_NEAR: _("Care Connect: %(driver)s is about %(minutes)s min from %(name)s."),
    Topic.ARRIVED: _("Care Connect: %(driver)s has arrived for %(name)s."),
    Topic.ON_BOARD: _("Care Connect: %(name)s is on the way with %(driver)s."),
    Topic.DROPPED_OFF: _("Care Connect: %(name)s has been dropped off."),
    Topic.CANCELLED: _("Care Connect: %(name)s's ride was cancelled."),
    Topic.NO_SHOW: _(
        "Care Connect: %(driver)s waited, but %(name)s did not come out. The ride is closed."
    ),
    Topic.DELAYED: _("Care Connect: %(name)s's pickup is about %(minutes)s min later than asked."),
    Topic.DOOR_WAIT: _("Care Connect: %(driver)s is waiting at the door for %(name)s."),
    Topic.ALARM: _("Care Connect: alarm on %(name)s's ride. A dispatcher is checking."),
}

# A driver whose profile has no plate yet: these topics say nothing of it.
TEXTS_NO_VEHICLE: dict[str, str] = {
    Topic.DRIVER_ASSIGNED: _("Care Connect: %(driver)s will drive %(name)s."),
}

# A ride booked ahead: these topics name its day and time, since its people
# may have several rides ahead and must know which one is meant.
TEXTS_AHEAD: dict[str, str] = {
    Topic.BOOKED: _("Care Connect: %(name)s's ride on %(when)s is booked."),
    Topic.CANCELLED: _("Care Connect: %(name)s's ride on %(when)s was cancelled."),
    Topic.DELAYED: _(
        "Care Connect: %(name)s's pickup on %(when)s is about %(minutes)s min later than asked."
    ),
}


def ride_when(ride: Ride) -> str:
    """
    A booked-ahead ride's time as its texts say it, in the active language:
    "Mon 7 Dec 09:30"; a will-call return, which has no time, its day.
    """
    at = ride.confirmed_pickup_at or ride.pickup_at or ride.appointment_at
    if at is not None:
        return formats.date_format(timezone.localtime(at), "D j M H:i")
    return formats.date_format(ride.service_date, "D j M") if ride.service_date else ""


def driver_words(driver: User | None) -> dict:
    """A ride's driver as its texts name them (with their profile); nothing without one."""
    if driver is None:
        return {}
    return {"driver": driver.first_name, "vehicle": access.vehicle_told(driver)}


def ride_driver(ride: Ride) -> User | None:
    """The ride's driver now, if it has one."""
    return ride.driver if ride.driver_id else None


def notice_text(
    topic: str, ride: Ride, params: dict, language: str, *, for_sms: bool = False
) -> str:
    """
    The text of `topic` about `ride` (with its people loaded), in `language`;
    `params` first (the driver as at the event), then the ride as it is now.
    `for_sms`: names in GSM-7's letters, so a Daniël keeps the text one part.
    """
    values = {"name": ride.passenger.first_name or "", "driver": "", "vehicle": "", "minutes": ""}
    values |= driver_words(ride_driver(ride)) | params
    if for_sms:
        values |= {key: gsm7(values[key]) for key in ("name", "driver")}
    with translation.override(language):
        when = ride_when(ride) if ride.is_booked_ahead else ""
        if when and topic in TEXTS_AHEAD:
            return gettext(TEXTS_AHEAD[topic]) % (values | {"when": when})
        if not values["vehicle"] and topic in TEXTS_NO_VEHICLE:
            return gettext(TEXTS_NO_VEHICLE[topic]) % values
        return gettext(TEXTS[topic]) % values
