"""
What a notice says: one short text per topic, from the gettext catalogues
(dispatch/locale: en, af, zu), in the recipient's language. Each fits one
SMS part (160 GSM-7 characters) with ordinary names, and names nobody's
health, needs or address: the passenger's and the driver's first names,
the vehicle as access.vehicle_told names it (its plate), minutes.
"""

from __future__ import annotations

from django.utils import translation
from django.utils.translation import gettext
from django.utils.translation import gettext_noop as _

from dispatch import access
from dispatch.models import Ride
from people.notices import Topic

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


def notice_text(topic: str, ride: Ride, params: dict, language: str) -> str:
    """The text of `topic` about `ride` (with its people loaded), in `language`."""
    driver = ride.driver if ride.driver_id else None
    values = {
        "name": ride.passenger.first_name or "",
        "driver": driver.first_name if driver else "",
        "vehicle": access.vehicle_told(driver),
        "minutes": "",
        **params,
    }
    with translation.override(language):
        return gettext(TEXTS[topic]) % values
