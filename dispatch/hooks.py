"""
What dispatch hears from the layers below it: people's signals, and where a
cold location store starts from. Connected once, in DispatchConfig.ready.
"""

from __future__ import annotations

from dispatch import broadcast, drivers, locations, rides
from people import signals


def _links_changed(sender, *, user_ids: list[int], **kwargs) -> None:
    broadcast.links_changed(*user_ids)


def _needs_changed(sender, *, passenger_id: int, **kwargs) -> None:
    rides.ride_needs_changed(passenger_id=passenger_id)


def connect() -> None:
    signals.links_changed.connect(_links_changed, dispatch_uid="dispatch.links_changed")
    signals.needs_changed.connect(_needs_changed, dispatch_uid="dispatch.needs_changed")
    locations.start_from(drivers.saved_positions)
