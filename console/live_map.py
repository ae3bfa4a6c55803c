"""
What the console's map draws, as JSON for its script: driver markers, ride
pickups, and the drivers' positions as they stream in. Whether a driver is
stale is the server's to say (`stale_at`, dispatch.drivers); the script
only compares it with the clock.
"""

from __future__ import annotations

import time
from typing import Any

from console.regions import DriverRow, driver_rows
from dispatch import drivers
from dispatch.geo import Point
from dispatch.models import DRIVER_HELD_STATUSES, PENDING_STATUSES, Ride, RideStatus
from people.models import User

MAP_RIDES_SHOWN = 2000
# Drivers per map message: a snapshot of a few thousand markers (about
# 300 bytes each) would pass the 1 MiB frame limit of the server.
MAP_CHUNK = 1000


def _name(user: User | None) -> str:
    if user is None:
        return ""
    return user.get_full_name() or user.display_phone


def driver_marker(row: DriverRow) -> dict[str, Any]:
    return {
        "id": row.driver.pk,
        "name": _name(row.driver),
        "phone": row.driver.display_phone,
        "vehicle": row.vehicle,
        "status": row.status,
        "status_label": row.status_label,
        "demo": row.is_demo,
        "lat": row.latitude,
        "lng": row.longitude,
        "heading": row.heading,
        "ts": row.last_report,
        "stale_at": row.stale_at,
        "ride_id": row.ride.ride_id if row.ride else None,
        "passenger": _name(row.ride.passenger) if row.ride else None,
    }


def _on_map(row: DriverRow) -> bool:
    return row.online and row.latitude is not None and row.longitude is not None


def ride_marker(ride: Ride) -> dict[str, Any]:
    return {
        "ride_pk": ride.pk,
        "ride_id": ride.ride_id,
        "status": ride.status,
        "status_label": RideStatus(ride.status).label,
        "pending": ride.is_pending,
        "no_driver": ride.no_driver_found_at is not None,
        "lat": ride.pickup_latitude,
        "lng": ride.pickup_longitude,
        "pickup": ride.pickup_address,
        "dropoff": ride.dropoff_address,
        "passenger": _name(ride.passenger),
        "driver_id": ride.driver_id if not ride.is_pending else None,
        "driver": _name(ride.driver) if ride.driver_id and not ride.is_pending else None,
        "version": ride.version,
    }


def _map_rides(pks: set[int] | None = None) -> list[Ride]:
    rides = Ride.objects.select_related("passenger", "driver").filter(
        status__in=[*PENDING_STATUSES, *DRIVER_HELD_STATUSES]
    )
    if pks is not None:
        rides = rides.filter(pk__in=pks)
    return list(rides.order_by("created_at")[:MAP_RIDES_SHOWN])


def map_snapshot(drivers: list[DriverRow] | None = None) -> dict[str, Any]:
    """
    Everything the map draws, as JSON-ready data: online drivers with their
    state, and the pickups of pending and active rides.
    """
    drivers = driver_rows() if drivers is None else drivers
    return {
        "type": "map.snapshot",
        "server_now": time.time(),
        "drivers": [driver_marker(row) for row in drivers if _on_map(row)],
        "rides": [ride_marker(ride) for ride in _map_rides()],
    }


def map_drivers_update(ids: set[int]) -> dict[str, Any]:
    """Markers of these drivers, and which of them left the map."""
    rows = [row for row in driver_rows(ids) if _on_map(row)]
    shown = {row.driver.pk for row in rows}
    return {
        "type": "map.drivers",
        "server_now": time.time(),
        "drivers": [driver_marker(row) for row in rows],
        "removed": sorted(set(ids) - shown),
    }


def map_rides_update(pks: set[int]) -> dict[str, Any]:
    """Pickups of these rides, and which rides ended (their pickup goes)."""
    rides = _map_rides(pks)
    live = {ride.pk for ride in rides}
    ended = Ride.objects.filter(pk__in=set(pks) - live).values_list("ride_id", flat=True)
    return {
        "type": "map.rides",
        "rides": [ride_marker(ride) for ride in rides],
        "removed": sorted(ended),
    }


def positions_update(reports: list[list[Any]]) -> dict[str, Any]:
    """
    A "map.positions" message from the drivers' reports a worker batched
    (dispatch.group_messages.ConsolePositions).
    """
    markers = []
    for driver_id, lat, lng, heading, seen, reported in reports:
        point = Point(lat, lng, seen, heading, None, reported)
        markers.append(
            {
                "id": driver_id,
                "lat": lat,
                "lng": lng,
                "heading": heading,
                "ts": seen,
                "stale_at": drivers.stale_at(point),
            }
        )
    return {"type": "map.positions", "server_now": time.time(), "full": False, "drivers": markers}


def map_parts(message: dict) -> list[dict]:
    """
    A map message in frames of at most MAP_CHUNK drivers: a snapshot's
    first part replaces the map, the rest add markers ("map.drivers").
    """
    markers = message.get("drivers") or []
    if len(markers) <= MAP_CHUNK:
        return [message]
    parts = [{**message, "drivers": markers[:MAP_CHUNK]}]
    kind = "map.drivers" if message["type"] == "map.snapshot" else message["type"]
    for start in range(MAP_CHUNK, len(markers), MAP_CHUNK):
        part = {
            "type": kind,
            "server_now": message.get("server_now"),
            "drivers": markers[start : start + MAP_CHUNK],
        }
        if kind == "map.drivers":
            part["removed"] = []
        if "full" in message:
            part["full"] = message["full"]
        parts.append(part)
    return parts
