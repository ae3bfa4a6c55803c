"""
What dispatch hears from the layers below it: people's signals, and where a
cold location store starts from. Connected once, in DispatchConfig.ready.
"""

from __future__ import annotations

from dispatch import broadcast, drivers, locations, rides, sharing
from people import signals
from project.common.sockets import CLOSE_UNAUTHENTICATED


def _links_changed(sender, *, user_ids: list[int], **kwargs) -> None:
    sharing.share_links_recheck(user_ids)
    broadcast.links_changed(*user_ids)


def _needs_changed(sender, *, passenger_id: int, **kwargs) -> None:
    rides.ride_needs_changed(passenger_id=passenger_id)


def _access_ended(
    sender,
    *,
    user_id: int,
    api_session_id: int | None = None,
    console_session_key: str | None = None,
    **kwargs,
) -> None:
    broadcast.access_ended(
        user_id,
        code=CLOSE_UNAUTHENTICATED,
        error="authentication_required",
        message="You were signed out. Sign in again.",
        api_session_id=api_session_id,
        console_session_key=console_session_key,
    )


def _driving_ended(sender, *, user_id: int, **kwargs) -> None:
    drivers.driver_off_duty(
        driver_id=user_id,
        message="Your account may no longer drive; support will contact you.",
    )


def _roles_changed(sender, *, user_id: int, **kwargs) -> None:
    broadcast.roles_changed(user_id)


def connect() -> None:
    signals.links_changed.connect(_links_changed, dispatch_uid="dispatch.links_changed")
    signals.needs_changed.connect(_needs_changed, dispatch_uid="dispatch.needs_changed")
    signals.access_ended.connect(_access_ended, dispatch_uid="dispatch.access_ended")
    signals.roles_changed.connect(_roles_changed, dispatch_uid="dispatch.roles_changed")
    signals.driving_ended.connect(_driving_ended, dispatch_uid="dispatch.driving_ended")
    locations.start_from(drivers.saved_positions)
