"""Request and response bodies of the people API."""

from __future__ import annotations

from datetime import time
from typing import Annotated, Literal

from ninja import Schema
from pydantic import AfterValidator, ConfigDict, Field, StringConstraints

from people.models import User
from project.common.errors import ApiError

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=150)]


def _local(value: time) -> time:
    if value.tzinfo is not None:
        raise ValueError("Give a local time (HH:MM), without an offset.")
    return value


# A time of day in TIME_ZONE, as quiet hours and a series' times are kept.
LocalTime = Annotated[time, AfterValidator(_local)]


class In(Schema):
    model_config = ConfigDict(extra="forbid")


def changes_sent(body: Schema) -> dict:
    """A PATCH body's fields that were sent; refused when there are none."""
    changes = body.model_dump(exclude_unset=True)
    if not changes:
        raise ApiError(400, "invalid_request", "Send at least one field to change.")
    return changes


def person_out(user: User) -> dict:
    """
    A person as every app surface shows them (PersonOut): the caregiver
    links here, and the rides and series of dispatch, REST and sockets.
    """
    return {
        "id": user.pk,
        "name": user.get_full_name() or user.display_phone,
        "phone": "+" + user.phone_number,
    }


class ErrorOut(Schema):
    code: str
    message: str


class SendOtpIn(In):
    phone_number: str = Field(max_length=32, examples=["+27 82 123 4567"])


class SendOtpOut(Schema):
    message: str
    phone_number: str
    expires_in_minutes: int


class VerifyOtpIn(In):
    phone_number: str = Field(max_length=32)
    code: str = Field(min_length=1, max_length=16, examples=["123456"])
    # Staff accounts only: the code from their authenticator app.
    authenticator_code: str = Field(default="", max_length=16)


class DriverProfileOut(Schema):
    vehicle_type: str
    vehicle_registration: str
    licence_number: str
    rating: float
    is_verified: bool


class UserOut(Schema):
    id: int
    phone_number: str
    first_name: str
    last_name: str
    full_name: str
    user_type: str
    is_staff: bool
    # Notification texts' language: en, af or zu.
    language: str
    # Drivers only; absent for everyone else.
    driver_profile: DriverProfileOut | None = None


class TokensOut(Schema):
    access: str
    refresh: str


class SignedInOut(Schema):
    user: UserOut
    tokens: TokensOut


class RegistrationNeededOut(Schema):
    verified: Literal[True] = True
    registration_token: str


class RegisterIn(In):
    registration_token: str = Field(max_length=512)
    first_name: Name
    last_name: Name
    user_type: Literal["passenger", "driver", "caregiver"]


class RefreshIn(In):
    refresh: str = Field(max_length=512)


class RefreshOut(Schema):
    tokens: TokensOut


def user_out(user: User) -> dict:
    """The user as the apps see it; drivers carry their driver_profile."""
    data = {
        "id": user.pk,
        "phone_number": user.phone_number,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "full_name": user.get_full_name(),
        "user_type": user.user_type,
        "is_staff": user.is_staff,
        "language": user.language,
    }
    profile = getattr(user, "driver_profile", None) if user.is_driver else None
    if profile is not None:
        data["driver_profile"] = {
            "vehicle_type": profile.vehicle_type,
            "vehicle_registration": profile.vehicle_registration,
            "licence_number": profile.licence_number,
            "rating": float(profile.rating),
            "is_verified": profile.is_verified,
        }
    return data
