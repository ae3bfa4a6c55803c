"""
The group messages: what each channel-layer message that dispatch.broadcast
sends carries, typed, for the sockets that receive them (dispatch.consumers,
console.consumers). Who is in which group, and who hears what, is
dispatch.broadcast's.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict


class RideNews(TypedDict):
    """A change to a ride, as one audience's app is told of it."""

    type: Literal["ride.news"]
    # the ride event (assigned, cancelled...), released/withdrawn, or PICKUP_WINDOW
    kind: str
    audience: Literal["ride", "passenger", "driver", "caregiver"]
    ride_id: str
    passenger_id: int
    status: str
    version: int
    message: dict[str, Any]  # the app's JSON (dispatch.payloads)


class RideLocation(TypedDict):
    """The ride's driver reported a position."""

    type: Literal["ride.location"]
    ride_id: str
    passenger_id: int
    message: dict[str, Any]


class NoticeNews(TypedDict):
    """An in-app notification for every socket of its recipient (dispatch.notify)."""

    type: Literal["notice.news"]
    message: dict[str, Any]


class ConsoleRide(TypedDict):
    type: Literal["console.ride"]
    kind: str
    ride_pk: int
    ride_id: str
    status: str
    version: int


class ConsoleDriver(TypedDict):
    type: Literal["console.driver"]
    kind: str
    driver_id: int


class DriverStatusNews(TypedDict):
    """
    A driver set their status (available, offline): every socket of theirs
    hears it (a driver may be signed in on two phones).
    """

    type: Literal["driver.status"]
    status: str


class ConsolePositions(TypedDict):
    """Drivers' latest reports on one worker over CONSOLE_MAP_BATCH_S."""

    type: Literal["console.positions"]
    # [driver_id, lat, lng, heading, seen, reported] each
    drivers: list[list[Any]]


class ManifestChanged(TypedDict):
    """
    A driver's runs of a day may have changed (a plan published or changed,
    a ride on the run moving on): their socket reads the manifest again and
    sends `manifest_updated` if it differs.
    """

    type: Literal["driver.manifest"]
    service_date: str
    reason: str


class LinksChanged(TypedDict):
    type: Literal["links.changed"]


class RolesChanged(TypedDict):
    type: Literal["roles.changed"]


class ConsoleLinks(TypedDict):
    type: Literal["console.links"]


class AccessEnded(TypedDict):
    """A user's sockets close: all of them, or those of one session."""

    type: Literal["access.ended"]
    api_session_id: int | None
    console_session_key: str | None
    code: int  # the close code: 4401 sign in again, 4403 no longer allowed
    error: str
    message: str
