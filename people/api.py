"""
Sign-in for the apps, under /api/auth/. The views only translate: the rules
live in people.services.
"""

from __future__ import annotations

from django.http import HttpRequest
from ninja import Router, Status

from people import services
from people.phones import InvalidPhoneNumber, display_phone
from people.schemas import (
    ErrorOut,
    RefreshIn,
    RefreshOut,
    RegisterIn,
    RegistrationNeededOut,
    SendOtpIn,
    SendOtpOut,
    SignedInOut,
    VerifyOtpIn,
    user_out,
)
from people.sms import SMSDeliveryError
from people.tokens import AccessTokenAuth
from project.api import ApiError

auth_router = Router(tags=["auth"])

_STATUS: dict[type[services.SignInError], int] = {
    services.InvalidCode: 400,
    services.InvalidRegistrationToken: 400,
    services.InvalidRefreshToken: 401,
    services.AccountDisabled: 403,
    services.AlreadyRegistered: 409,
    services.OtpLocked: 423,
    services.OtpThrottled: 429,
    services.OtpCooldown: 429,
}


def _api_error(exc: services.SignInError) -> ApiError:
    return ApiError(_STATUS.get(type(exc), 400), exc.code, str(exc), **exc.extra)


def _phone_error(exc: InvalidPhoneNumber) -> ApiError:
    message = exc.messages[0]
    return ApiError(400, "invalid_request", message, fields={"phone_number": message})


def _user_agent(request: HttpRequest) -> str:
    return request.headers.get("User-Agent", "")[:256]


def _signed_in(user, pair: services.TokenPair) -> dict:
    return {
        "user": user_out(user),
        "tokens": {"access": pair.access, "refresh": pair.refresh},
    }


@auth_router.post(
    "/send-otp/",
    response={200: SendOtpOut, 400: ErrorOut, 423: ErrorOut, 429: ErrorOut, 502: ErrorOut},
    summary="Text a sign-in code to a phone",
)
def send_otp(request: HttpRequest, body: SendOtpIn):
    try:
        sent = services.otp_send(phone_number=body.phone_number)
    except InvalidPhoneNumber as exc:
        raise _phone_error(exc) from exc
    except services.SignInError as exc:
        raise _api_error(exc) from exc
    except SMSDeliveryError as exc:
        raise ApiError(
            502,
            "sms_failed",
            "The SMS with your code could not be sent. Please try again in a moment.",
        ) from exc
    return {
        "message": f"A code was sent to {display_phone(sent.phone_number)}.",
        "phone_number": sent.phone_number,
        "expires_in_minutes": sent.expires_in_minutes,
    }


@auth_router.post(
    "/verify-otp/",
    response={
        200: SignedInOut | RegistrationNeededOut,
        400: ErrorOut,
        403: ErrorOut,
        423: ErrorOut,
        429: ErrorOut,
    },
    exclude_none=True,
    summary="Check a code: sign in, or get a registration token",
)
def verify_otp(request: HttpRequest, body: VerifyOtpIn):
    try:
        result = services.otp_verify(
            phone_number=body.phone_number,
            code=body.code,
            user_agent=_user_agent(request),
        )
    except InvalidPhoneNumber as exc:
        raise _phone_error(exc) from exc
    except services.SignInError as exc:
        raise _api_error(exc) from exc
    if result.user is not None and result.tokens is not None:
        return _signed_in(result.user, result.tokens)
    return {"verified": True, "registration_token": result.registration_token}


@auth_router.post(
    "/register/",
    response={201: SignedInOut, 400: ErrorOut, 409: ErrorOut},
    exclude_none=True,
    summary="Create the account of a phone that passed its code",
)
def register(request: HttpRequest, body: RegisterIn):
    try:
        user = services.user_register(
            registration_token=body.registration_token,
            first_name=body.first_name,
            last_name=body.last_name,
            user_type=body.user_type,
        )
    except services.SignInError as exc:
        raise _api_error(exc) from exc
    pair = services.session_issue(user=user, user_agent=_user_agent(request))
    return Status(201, _signed_in(user, pair))


@auth_router.post(
    "/refresh/",
    response={200: RefreshOut, 401: ErrorOut},
    summary="Swap a refresh token for a new pair",
)
def refresh(request: HttpRequest, body: RefreshIn):
    try:
        pair = services.session_refresh(refresh=body.refresh)
    except services.SignInError as exc:
        raise _api_error(exc) from exc
    return {"tokens": {"access": pair.access, "refresh": pair.refresh}}


@auth_router.post(
    "/logout/",
    auth=AccessTokenAuth(),
    response={204: None, 401: ErrorOut},
    summary="End this app's session",
)
def logout(request: HttpRequest):
    services.session_revoke(session=request.api_session, actor=request.auth, reason="logout")
    return Status(204, None)
