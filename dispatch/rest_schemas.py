"""
Request and response bodies of the rides API. A ride reads as on the
sockets (dispatch.payloads.ride_status), with pickup and dropoff nested
only. What comes in is refused for a field it does not know (people.
rest_schemas.In), as on every other REST call.
"""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any, Literal

from ninja import Field, Schema
from pydantic import field_validator

from dispatch.scheduling import Needs, Place
from dispatch.socket_schemas import Integer, Latitude, Longitude, PassengerId
from people.rest_schemas import In, LocalTime

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
    companions: int = 0
    attendant: bool = False
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
    # A ride booked ahead: its times, leg, and confirmed pickup window.
    booked_ahead: dict[str, Any] | None = None
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


# --- booking ahead ------------------------------------------------------------


class PlaceIn(In):
    latitude: Latitude
    longitude: Longitude
    address: str = Field(default="", max_length=255)

    def place(self) -> Place:
        return Place(**self.model_dump())


class NeedsIn(In):
    # None: the passenger profile's.
    wheelchair: bool | None = None
    walker: bool = False
    service_animal: bool = False
    companions: Integer = Field(default=0, ge=0, le=6)
    attendant: bool = False

    def needs(self) -> Needs:
        return Needs(**self.model_dump())


class BookAheadIn(In):
    """A ride booked ahead: a pickup time or an appointment, from now to the horizon."""

    pickup: PlaceIn
    dropoff: PlaceIn
    pickup_at: datetime | None = None
    appointment_at: datetime | None = None
    return_at: datetime | None = None
    return_will_call: bool = False
    needs: NeedsIn = NeedsIn()
    notes: str = Field(default="", max_length=1000)
    # Booking for someone else (a caregiver with the permission, a dispatcher).
    passenger_id: PassengerId | None = None
    passenger_phone: str | None = Field(default=None, max_length=32)
    # Chosen by the app, or made by the server.
    ride_id: str | None = Field(default=None, max_length=64)


class BookedOut(Schema):
    ride: RideOut
    returns: list[RideOut]


class CancelIn(In):
    reason: str = Field(default="", max_length=64)
    # As cancel_ride's: an outbound trip's return is cancelled with it, unless this.
    keep_return: bool = False


# --- recurring series -----------------------------------------------------------


class SeriesIn(In):
    """Weekdays 0 (Monday) to 6 (Sunday), local times (TIME_ZONE)."""

    weekdays: list[Integer]
    start_date: date
    end_date: date | None = None
    pickup_time: LocalTime | None = None
    appointment_time: LocalTime | None = None
    return_time: LocalTime | None = None
    return_will_call: bool = False
    except_dates: list[date] = []
    pickup: PlaceIn
    dropoff: PlaceIn
    needs: NeedsIn = NeedsIn()
    notes: str = Field(default="", max_length=1000)
    passenger_id: PassengerId | None = None
    passenger_phone: str | None = Field(default=None, max_length=32)


class SeriesPatch(In):
    """
    Only the fields sent change; null is a value only where the series may
    go without (an end date, one of the times, the exceptions). Needs sent
    in part change those parts.
    """

    weekdays: list[Integer] = Field(default=None)
    end_date: date | None = None
    pickup_time: LocalTime | None = None
    appointment_time: LocalTime | None = None
    return_time: LocalTime | None = None
    return_will_call: bool = Field(default=None)
    except_dates: list[date] | None = None
    pickup: PlaceIn = Field(default=None)
    dropoff: PlaceIn = Field(default=None)
    needs: NeedsIn = Field(default=None)
    notes: str = Field(default=None, max_length=1000)

    @field_validator(
        "weekdays", "return_will_call", "pickup", "dropoff", "needs", "notes", mode="before"
    )
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("null is no value here; leave the field out to keep it.")
        return value


class PauseIn(In):
    start_date: date
    end_date: date
    reason: str = Field(default="", max_length=255)


class EndIn(In):
    # The last day with rides; default today.
    last_date: date | None = None


class PauseOut(Schema):
    id: int
    start_date: date
    end_date: date
    reason: str


class SeriesOut(Schema):
    id: int
    passenger: PersonOut
    booked_by: PersonOut
    status: str
    version: int
    weekdays: list[int]
    start_date: date
    end_date: date | None = None
    pickup_time: time | None = None
    appointment_time: time | None = None
    return_time: time | None = None
    return_will_call: bool
    except_dates: list[date]
    pauses: list[PauseOut]
    pickup: PlaceOut
    dropoff: PlaceOut
    needs: NeedsIn
    notes: str
    materialised_until: date | None = None
    # Upcoming rides: ride_id, service_date, status, leg, planned (on a run).
    upcoming: list[dict]


class SeriesChangeOut(Schema):
    """A series, and what the change did to its rides."""

    series: SeriesOut
    created: list[str]
    changed: list[str]
    cancelled: list[str]
    # Planned rides the change left alone: a dispatcher decides them.
    kept_planned: list[str]


class ShareLinkOut(Schema):
    id: int
    ride_id: str
    # The page to send to family: /t/<token>/. The token is shown only here.
    url: str
    token: str
    created_at: datetime
    # The end of the ride plus 30 minutes; null while the ride is under way.
    expires_at: datetime | None = None
