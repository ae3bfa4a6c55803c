"""
Sign-in for the apps, under /api/auth/. The views only translate: the rules
live in people.signin, and its refusals render as {"code", "message"} with
their own HTTP status (project.common.errors).
"""

from __future__ import annotations

from django.http import HttpRequest
from ninja import Router, Status

from people import sessions, signin
from people.phones import InvalidPhoneNumber, display_phone
from people.rest_schemas import (
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
from project.common.clients import client_ip
from project.common.errors import ApiError

auth_router = Router(tags=["auth"])


def _phone_error(exc: InvalidPhoneNumber) -> ApiError:
    message = exc.messages[0]
    return ApiError(400, "invalid_request", message, fields={"phone_number": message})


def _user_agent(request: HttpRequest) -> str:
    return request.headers.get("User-Agent", "")[:256]


def _signed_in(user, pair: sessions.TokenPair) -> dict:
    return {
        "user": user_out(user),
        "tokens": {"access": pair.access, "refresh": pair.refresh},
    }


@auth_router.post(
    "/send-otp/",
    response={200: SendOtpOut, 400: ErrorOut, 429: ErrorOut, 502: ErrorOut},
    summary="Text a sign-in code to a phone",
)
def send_otp(request: HttpRequest, body: SendOtpIn):
    try:
        sent = signin.otp_send(phone_number=body.phone_number, client=client_ip(request))
    except InvalidPhoneNumber as exc:
        raise _phone_error(exc) from exc
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
    },
    exclude_none=True,
    summary="Check a code: sign in, or get a registration token",
)
def verify_otp(request: HttpRequest, body: VerifyOtpIn):
    try:
        result = signin.otp_verify(
            phone_number=body.phone_number,
            code=body.code,
            user_agent=_user_agent(request),
            authenticator_code=body.authenticator_code,
        )
    except InvalidPhoneNumber as exc:
        raise _phone_error(exc) from exc
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
    user = signin.user_register(
        registration_token=body.registration_token,
        first_name=body.first_name,
        last_name=body.last_name,
        user_type=body.user_type,
    )
    pair = sessions.session_issue(user=user, user_agent=_user_agent(request))
    return Status(201, _signed_in(user, pair))


@auth_router.post(
    "/refresh/",
    response={200: RefreshOut, 401: ErrorOut},
    summary="Swap a refresh token for a new pair",
)
def refresh(request: HttpRequest, body: RefreshIn):
    pair = sessions.session_refresh(refresh=body.refresh)
    return {"tokens": {"access": pair.access, "refresh": pair.refresh}}


@auth_router.post(
    "/logout/",
    auth=AccessTokenAuth(),
    response={204: None, 401: ErrorOut},
    summary="End this app's session",
)
def logout(request: HttpRequest):
    sessions.session_revoke(session=request.api_session, actor=request.auth, reason="logout")
    return Status(204, None)
