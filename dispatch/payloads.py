"""
The JSON the apps receive about rides. Names and fields are a contract with
the mobile apps (docs/protocol.md): add fields, never rename them. What a
given viewer may see of each message is dispatch.access's to decide.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.utils import timezone

from dispatch.geo import Point, haversine_km
from dispatch.models import Ride

# Average urban speed for the pickup ETA when the app sent none.
ETA_SPEED_KMH = 30.0


def eta_minutes(distance_km: float) -> int:
    """Minutes to cover `distance_km` at an average urban speed (at least one)."""
    return max(1, round(distance_km / ETA_SPEED_KMH * 60))


def _num(value: Decimal | float | None) -> float | None:
    return None if value is None else float(value)


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def person(user) -> dict[str, Any] | None:
    if user is None:
        return None
    return {
        "id": user.pk,
        "name": user.get_full_name() or user.display_phone,
        "phone": "+" + user.phone_number,
    }


def driver_card(driver, point: Point | None) -> dict:
    """The driver as the apps show them; `point`: where they are now."""
    profile = getattr(driver, "driver_profile", None)
    return {
        "id": driver.pk,
        "name": driver.get_full_name() or driver.display_phone,
        "phone": "+" + driver.phone_number,
        "vehicle_type": profile.vehicle_type if profile else None,
        "vehicle_registration": profile.vehicle_registration if profile else None,
        "rating": _num(profile.rating) if profile else None,
        "latitude": point.lat if point else None,
        "longitude": point.lng if point else None,
    }


def needs_card(ride: Ride) -> dict[str, Any]:
    """
    What the passenger needs on this ride: the one shape every surface shows
    (driver app, REST, console). The wheelchair is the ride's own, as it was
    matched (the booking's word, else the profile's), so a driver is never
    told of a wheelchair the matcher ignored; the rest is the profile's.
    """
    profile = getattr(ride.passenger, "passenger_profile", None)
    card = {
        "wheelchair": ride.needs_wheelchair,
        "walker": bool(profile and profile.needs_walker),
        "assistance_boarding": bool(profile and profile.needs_assistance_boarding),
        "service_animal": bool(profile and profile.has_service_animal),
        "notes": profile.notes if profile else "",
    }
    if ride.notes:
        card["ride_notes"] = ride.notes
    return card


def _places(ride: Ride) -> dict[str, Any]:
    return {
        "pickup_latitude": ride.pickup_latitude,
        "pickup_longitude": ride.pickup_longitude,
        "pickup_address": ride.pickup_address,
        "dropoff_latitude": ride.dropoff_latitude,
        "dropoff_longitude": ride.dropoff_longitude,
        "dropoff_address": ride.dropoff_address,
        "pickup": {
            "latitude": ride.pickup_latitude,
            "longitude": ride.pickup_longitude,
            "address": ride.pickup_address,
        },
        "dropoff": {
            "latitude": ride.dropoff_latitude,
            "longitude": ride.dropoff_longitude,
            "address": ride.dropoff_address,
        },
        "distance_km": _num(ride.distance_km),
        "estimated_duration_minutes": ride.estimated_duration_minutes,
        "fare_amount": _num(ride.fare_amount),
    }


def _about(ride: Ride, kind: str) -> dict[str, Any]:
    """What every ride message opens with: its type, the ride and its version."""
    return {
        "type": kind,
        "ride_id": ride.ride_id,
        "booking_id": ride.pk,
        "status": ride.status,
        "version": ride.version,
    }


def ride_status(ride: Ride, point: Point | None) -> dict[str, Any]:
    """
    The whole ride as one snapshot: sent on connect and on every change.
    `point`: the driver's live position.
    """
    return {
        **_about(ride, "ride_status"),
        "passenger": person(ride.passenger),
        "booked_by": person(ride.booked_by),
        "booked_on_behalf": ride.booked_on_behalf,
        "driver": driver_card(ride.driver, point) if ride.driver_id else None,
        **_places(ride),
        "needs_wheelchair": ride.needs_wheelchair,
        "cancelled_by": ride.cancelled_by or None,
        "cancel_reason": ride.cancel_reason or None,
        "no_driver_found": ride.no_driver_found_at is not None,
        "created_at": _iso(ride.created_at),
        "assigned_at": _iso(ride.assigned_at),
        "arrived_at": _iso(ride.arrived_at),
        "started_at": _iso(ride.started_at),
        "ended_at": _iso(ride.ended_at),
        "timestamp": timezone.now().isoformat(),
    }


def searching(ride: Ride) -> dict[str, Any]:
    return {
        **_about(ride, "searching"),
        "message": "Searching for available drivers...",
    }


def no_drivers(ride: Ride) -> dict[str, Any]:
    return {
        **_about(ride, "no_drivers"),
        "message": "No drivers available nearby",
    }


def driver_assigned(ride: Ride, point: Point | None) -> dict[str, Any]:
    """The passenger's news of their driver; `point`: where the driver is now."""
    card = driver_card(ride.driver, point)
    distance = None
    if point is not None:
        distance = round(
            haversine_km(point.lat, point.lng, ride.pickup_latitude, ride.pickup_longitude), 2
        )
    eta = None if distance is None else eta_minutes(distance)
    return {
        **_about(ride, "driver_assigned"),
        "message": "Driver found!",
        "driver": card,
        # The flat shape too: apps in the field read either.
        "driver_id": card["id"],
        "driver_name": card["name"],
        "driver_phone": card["phone"],
        "driver_rating": card["rating"],
        "vehicle_type": card["vehicle_type"],
        "vehicle_registration": card["vehicle_registration"],
        "distance_km": distance,
        "eta_minutes": eta,
    }


def ride_assigned(ride: Ride) -> dict[str, Any]:
    """What the driver's app is told of a ride it now carries."""
    passenger = person(ride.passenger)
    return {
        **_about(ride, "ride_assigned"),
        "passenger": passenger,
        "passenger_name": passenger["name"],
        "passenger_phone": passenger["phone"],
        "booked_by": person(ride.booked_by),
        **_places(ride),
        "needs": needs_card(ride),
    }


def ride_updated(ride: Ride) -> dict[str, Any]:
    """What the driver's app is told when the passenger's needs change mid-ride."""
    return {
        **_about(ride, "ride_updated"),
        "changed": ["needs"],
        "needs": needs_card(ride),
    }


def ride_request(ride: Ride, distance_km: float | None, expires_at) -> dict[str, Any]:
    """Offer mode: a ride put to one driver, to accept or decline."""
    return {
        **ride_assigned(ride),
        "type": "ride_request",
        "pickup_distance_km": None if distance_km is None else round(distance_km, 2),
        "expires_at": _iso(expires_at),
        "timeout_s": max(0, round((expires_at - timezone.now()).total_seconds())),
    }


def ride_cancelled(ride: Ride) -> dict[str, Any]:
    return {
        **_about(ride, "ride_cancelled"),
        "cancelled_by": ride.cancelled_by or None,
        "reason": ride.cancel_reason or None,
    }


def driver_location(ride_id: str, driver_id: int, point: Point) -> dict[str, Any]:
    return {
        "type": "driver_location",
        "ride_id": ride_id,
        "driver_id": driver_id,
        "latitude": point.lat,
        "longitude": point.lng,
        "heading": point.heading,
        "speed": point.speed,
        "timestamp": timezone.now().isoformat(),
    }
