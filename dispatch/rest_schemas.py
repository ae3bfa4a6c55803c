"""
Response bodies of the rides API. A ride reads as on the sockets
(dispatch.payloads.ride_status), with pickup and dropoff nested only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from ninja import Schema

Role = Literal["passenger", "caregiver", "driver", "staff"]


class PersonOut(Schema):
    id: int
    name: str
    # Absent where the viewer no longer needs it (a driver, after the ride).
    phone: str | None = None


class DriverOut(Schema):
    id: int
    name: str
    phone: str | None = None
    vehicle_type: str | None = None
    vehicle_registration: str | None = None
    rating: float | None = None
    # Only while the ride is active, and to caregivers with can_view_location.
    latitude: float | None = None
    longitude: float | None = None


class PlaceOut(Schema):
    latitude: float
    longitude: float
    address: str


class NeedsOut(Schema):
    wheelchair: bool
    walker: bool
    assistance_boarding: bool
    service_animal: bool
    notes: str
    ride_notes: str | None = None


class RideOut(Schema):
    ride_id: str
    booking_id: int
    status: str
    version: int
    # How the caller relates to the ride.
    role: Role
    passenger: PersonOut
    booked_by: PersonOut
    booked_on_behalf: bool
    driver: DriverOut | None = None
    pickup: PlaceOut
    dropoff: PlaceOut
    distance_km: float | None = None
    estimated_duration_minutes: int | None = None
    fare_amount: float | None = None
    needs_wheelchair: bool
    # The passenger's needs card, only while the ride is active.
    needs: NeedsOut | None = None
    cancelled_by: str | None = None
    cancel_reason: str | None = None
    no_driver_found: bool
    created_at: datetime
    assigned_at: datetime | None = None
    arrived_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None


class RideEventOut(Schema):
    version: int
    kind: str
    from_status: str | None = None
    to_status: str | None = None
    actor_role: str | None = None
    created_at: datetime


class RideDetailOut(RideOut):
    events: list[RideEventOut]
