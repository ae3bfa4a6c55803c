"""
Notification choices and push tokens over REST, under /api/notifications/.
The rules live in people.notices; these views find the caller's own
preferences (as a passenger) or their link (as its caregiver).
"""

from __future__ import annotations

from datetime import time
from typing import Annotated

from django.http import HttpRequest
from ninja import Router, Schema, Status
from pydantic import Field, StringConstraints

from people import notices
from people.access import link_hears_news
from people.models import CaregiverLink, LinkStatus, NoticeChannel, UserType
from people.notices import Topic
from people.rest_schemas import ErrorOut, In, LocalTime, changes_sent
from people.tokens import AccessTokenAuth
from project.common.errors import ApiError

notice_router = Router(auth=AccessTokenAuth(), tags=["notifications"])

ERRORS = {400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut}


class PreferenceOut(Schema):
    topics: list[Topic]
    channel: NoticeChannel
    quiet_start: time | None
    quiet_end: time | None
    # False: nothing chosen yet, these are the defaults.
    customised: bool


class PreferenceIn(In):
    """Only the fields sent change. Quiet hours: both times, or both null."""

    topics: list[Topic] = Field(default=None, max_length=len(Topic.values))
    channel: NoticeChannel = Field(default=None)
    quiet_start: LocalTime | None = Field(default=None)
    quiet_end: LocalTime | None = Field(default=None)


# FCM registration tokens: printable ASCII, a few hundred characters. Bounded
# so the unique index can hold any (PostgreSQL's holds at most 2,704 bytes).
Token = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[\x21-\x7e]{1,1024}$")]


class DeviceIn(In):
    token: Token
    platform: Annotated[str, StringConstraints(pattern=r"^(android|ios|web)$")] = "android"


class DeviceOut(Schema):
    token: str
    platform: str
    registered: bool


@notice_router.get(
    "/preferences/", response={200: PreferenceOut, **ERRORS}, summary="My own rides' notices"
)
def own_preferences(request: HttpRequest):
    return notices.preference_of(passenger=request.auth)


@notice_router.patch(
    "/preferences/",
    response={200: PreferenceOut, **ERRORS},
    summary="Choose my own rides' notices (passenger)",
)
def own_preferences_set(request: HttpRequest, body: PreferenceIn):
    user = request.auth
    if user.user_type != UserType.PASSENGER:
        raise ApiError(403, "forbidden", "Only passengers have rides of their own to hear of.")
    return notices.preference_set(actor=user, passenger=user, **changes_sent(body))


def _my_link(request: HttpRequest, link_id: int) -> CaregiverLink:
    link = (
        CaregiverLink.objects.select_related("caregiver")
        .filter(pk=link_id, caregiver=request.auth, status=LinkStatus.ACTIVE)
        .first()
    )
    if link is None:
        raise ApiError(404, "not_found", "No such active link of yours as caregiver.")
    return link


@notice_router.get(
    "/links/{int:link_id}/preferences/",
    response={200: PreferenceOut, **ERRORS},
    summary="My notices of a passenger's rides (caregiver)",
)
def link_preferences(request: HttpRequest, link_id: int):
    return notices.preference_of(link=_my_link(request, link_id))


@notice_router.patch(
    "/links/{int:link_id}/preferences/",
    response={200: PreferenceOut, **ERRORS},
    summary="Choose my notices of a passenger's rides (caregiver)",
)
def link_preferences_set(request: HttpRequest, link_id: int, body: PreferenceIn):
    link = _my_link(request, link_id)
    if not link_hears_news(link):
        raise ApiError(
            403, "forbidden", "This link does not let you receive notifications; ask the passenger."
        )
    return notices.preference_set(actor=request.auth, link=link, **changes_sent(body))


@notice_router.post(
    "/devices/", response={201: DeviceOut, **ERRORS}, summary="Register this app's push token"
)
def device_register(request: HttpRequest, body: DeviceIn):
    device = notices.device_token_register(
        session=request.api_session, token=body.token, platform=body.platform
    )
    return Status(201, {"token": device.token, "platform": device.platform, "registered": True})


@notice_router.post(
    "/devices/unregister/",
    response={200: DeviceOut, **ERRORS},
    summary="Forget this app's push token (signing out)",
)
def device_unregister(request: HttpRequest, body: DeviceIn):
    device = notices.device_token_unregister(user=request.auth, token=body.token)
    if device is None:
        raise ApiError(404, "not_found", "No such push token of yours.")
    return {"token": device.token, "platform": device.platform, "registered": False}
