"""
The signed-in person's own profile, at /api/auth/profile/. Writes go through
people.profiles.profile_update.
"""

from __future__ import annotations

from django.http import HttpRequest
from ninja import Router, Schema
from pydantic import Field

from people.models import Language, PassengerProfile, User, UserType
from people.profiles import profile_update
from people.rest_schemas import ErrorOut, In, Name, UserOut, user_out
from people.tokens import AccessTokenAuth

profile_router = Router(auth=AccessTokenAuth(), tags=["profile"])


class NeedsOut(Schema):
    needs_wheelchair: bool
    needs_walker: bool
    needs_assistance_boarding: bool
    has_service_animal: bool
    notes: str


class ProfileOut(UserOut):
    # Passengers only; absent for everyone else. Drivers carry the read-only
    # driver_profile instead.
    needs: NeedsOut | None = None


class ProfileIn(In):
    """Only the fields sent change. The needs fields are for passengers."""

    first_name: Name = Field(default=None)
    last_name: Name = Field(default=None)
    language: Language = Field(default=None)
    needs_wheelchair: bool = Field(default=None)
    needs_walker: bool = Field(default=None)
    needs_assistance_boarding: bool = Field(default=None)
    has_service_animal: bool = Field(default=None)
    notes: str = Field(default=None, max_length=1000)


def _profile_out(user: User) -> dict:
    data = user_out(user)
    if user.user_type == UserType.PASSENGER:
        profile = PassengerProfile.objects.filter(user=user).first() or PassengerProfile()
        data["needs"] = {
            "needs_wheelchair": profile.needs_wheelchair,
            "needs_walker": profile.needs_walker,
            "needs_assistance_boarding": profile.needs_assistance_boarding,
            "has_service_animal": profile.has_service_animal,
            "notes": profile.notes,
        }
    return data


def _fresh(user: User) -> User:
    return User.objects.select_related("driver_profile").get(pk=user.pk)


@profile_router.get(
    "/",
    response={200: ProfileOut, 401: ErrorOut},
    exclude_none=True,
    summary="My profile",
)
def profile_detail(request: HttpRequest):
    return _profile_out(_fresh(request.auth))


@profile_router.patch(
    "/",
    response={200: ProfileOut, 400: ErrorOut, 401: ErrorOut},
    exclude_none=True,
    summary="Change my name, my language, or my travel needs as a passenger",
)
def profile_patch(request: HttpRequest, body: ProfileIn):
    profile_update(user=request.auth, **body.model_dump(exclude_unset=True))
    return _profile_out(_fresh(request.auth))
