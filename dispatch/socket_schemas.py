"""The messages the apps send on the sockets, typed. Numbers may arrive as numeric strings."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

from dispatch.geo import MAX_LATITUDE
from dispatch.scheduling import Needs, Place


def _not_boolean(value):
    # JSON's true and false are no numbers, though pydantic reads them as 1
    # and 0: `passenger_id: true` would name account 1, `weekdays: [true]`
    # a Tuesday.
    if isinstance(value, bool):
        raise ValueError("a number, not true or false")
    return value


# The numbers the apps send (sockets and REST): numbers or numeric strings.
Number = Annotated[float, BeforeValidator(_not_boolean), Field(allow_inf_nan=False)]
Integer = Annotated[int, BeforeValidator(_not_boolean)]
Latitude = Annotated[Number, Field(ge=-MAX_LATITUDE, le=MAX_LATITUDE)]
Longitude = Annotated[Number, Field(ge=-180, le=180)]
PassengerId = Annotated[Integer, Field(gt=0)]
Address = Annotated[str, Field(max_length=255)]


class Inbound(BaseModel):
    # Apps may send fields this server does not know yet: ignore them.
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)


class FindDriver(Inbound):
    pickup_latitude: Latitude
    pickup_longitude: Longitude
    pickup_address: Address = ""
    dropoff_latitude: Latitude
    dropoff_longitude: Longitude
    dropoff_address: Address = ""
    passenger_phone: str | None = Field(default=None, max_length=32)
    passenger_id: PassengerId | None = None
    distance_km: Decimal | None = Field(default=None, ge=0, le=10000, decimal_places=2)
    estimated_duration_minutes: Number | None = Field(default=None, ge=0, le=24 * 60)
    fare_amount: Decimal | None = Field(default=None, ge=0, le=1_000_000, decimal_places=2)
    needs_wheelchair: bool | None = None
    notes: str = Field(default="", max_length=1000)
    # Booking ahead (docs/protocol.md): a pickup time or an appointment to
    # arrive by, a return leg, and who and what rides along.
    pickup_at: datetime | None = None
    appointment_at: datetime | None = None
    return_at: datetime | None = None
    return_will_call: bool = False
    needs_walker: bool = False
    service_animal: bool = False
    companions: Integer = Field(default=0, ge=0, le=6)
    attendant: bool = False

    @property
    def books_ahead(self) -> bool:
        return self.pickup_at is not None or self.appointment_at is not None

    @field_validator("distance_km", "fare_amount", mode="before")
    @classmethod
    def _round_money(cls, value):
        # Apps send floats such as 12.345; two places is what is stored.
        if isinstance(value, float | int | str) and value != "":
            try:
                return Decimal(str(value)).quantize(Decimal("0.01"))
            except ArithmeticError:
                return value
        return None if value == "" else value

    @field_validator("return_at", "return_will_call")
    @classmethod
    def _return_of_a_ride_ahead(cls, value, info: ValidationInfo):
        # A return leg is booked with a ride ahead only (dispatch.scheduling):
        # on a ride booked now it would be dropped, the rider left waiting.
        asked = value is not None and value is not False
        if asked and info.data.get("pickup_at") is None and info.data.get("appointment_at") is None:
            raise ValueError("a return is booked with pickup_at or appointment_at")
        return value

    @field_validator("passenger_phone", "passenger_id", mode="before")
    @classmethod
    def _blank_is_none(cls, value):
        return None if value == "" else value

    def ride_details(self) -> dict:
        """The booked ride's own fields (dispatch.booking.ride_book's keywords)."""
        minutes = self.estimated_duration_minutes
        return {
            "pickup_latitude": self.pickup_latitude,
            "pickup_longitude": self.pickup_longitude,
            "pickup_address": self.pickup_address,
            "dropoff_latitude": self.dropoff_latitude,
            "dropoff_longitude": self.dropoff_longitude,
            "dropoff_address": self.dropoff_address,
            "distance_km": self.distance_km,
            "estimated_duration_minutes": None if minutes is None else round(minutes),
            "fare_amount": self.fare_amount,
            "needs_wheelchair": self.needs_wheelchair,
            "notes": self.notes,
        }

    def ahead_details(self) -> dict:
        """A ride booked ahead (dispatch.scheduling.ride_book_ahead's keywords)."""
        return {
            "pickup": Place(self.pickup_latitude, self.pickup_longitude, self.pickup_address),
            "dropoff": Place(self.dropoff_latitude, self.dropoff_longitude, self.dropoff_address),
            "pickup_at": self.pickup_at,
            "appointment_at": self.appointment_at,
            "return_at": self.return_at,
            "return_will_call": self.return_will_call,
            "needs": Needs(
                wheelchair=self.needs_wheelchair,
                walker=self.needs_walker,
                service_animal=self.service_animal,
                companions=self.companions,
                attendant=self.attendant,
            ),
            "notes": self.notes,
        }


class CancelRide(Inbound):
    reason: str = Field(default="", max_length=64)
    # Cancelling an outbound trip cancels its return too, unless this.
    keep_return: bool = False


class SetStatus(Inbound):
    status: Literal["available", "offline"]


def _unknown_if_minus_one(value):
    # iOS (Core Location) reports a course or speed it does not know as -1.
    return None if value == -1 and not isinstance(value, bool) else value


# A heading or speed the phone does not know: null, or iOS's -1.
Heading = Annotated[
    Annotated[Number, Field(ge=0, le=360)] | None, BeforeValidator(_unknown_if_minus_one)
]
Speed = Annotated[
    Annotated[Number, Field(ge=0, le=100)] | None, BeforeValidator(_unknown_if_minus_one)
]


class LocationUpdate(Inbound):
    latitude: Latitude
    longitude: Longitude
    heading: Heading = None
    speed: Speed = None


class RideAction(Inbound):
    """arrived, start_trip, complete_trip, no_show, accept/decline_ride."""

    ride_id: str | None = Field(default=None, max_length=64)
    reason: str = Field(default="", max_length=64)


class GetManifest(Inbound):
    """The driver's manifest of a day (today by default: TIME_ZONE)."""

    service_date: date | None = None
