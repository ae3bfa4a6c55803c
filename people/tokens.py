"""
The apps' tokens, built on django.core.signing and ApiSession.

- Access token: a signed {"u": user id, "s": session id}, good for
  ACCESS_TOKEN_TTL_S and only while its session and user are active.
- Refresh token: "<session id>.<secret>". Only its sha256 is stored, on the
  session; services.session_refresh rotates it.
- Registration token: a signed {"phone": normalised number}, proof that the
  phone passed an SMS code, good for REGISTRATION_TOKEN_TTL_S.

Nothing here writes; issuing and rotating sessions is in people.signin.
"""

from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.core import signing
from django.http import HttpRequest
from ninja.security import HttpBearer

from people.models import ApiSession, User

ACCESS_SALT = "people.access"
REGISTRATION_SALT = "people.registration"
# Far longer than any token made here; longer input is refused unread.
MAX_TOKEN_LENGTH = 512


# --- access ------------------------------------------------------------------


def access_token_make(*, session: ApiSession) -> str:
    return signing.dumps({"u": session.user_id, "s": session.pk}, salt=ACCESS_SALT, compress=True)


def access_token_resolve(token: str) -> tuple[User, ApiSession] | None:
    """
    The user and session an access token stands for, or None when the token
    is forged, expired, or its session or user is no longer active.
    """
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    try:
        payload = signing.loads(token, salt=ACCESS_SALT, max_age=settings.ACCESS_TOKEN_TTL_S)
    except signing.BadSignature:
        return None
    if not isinstance(payload, dict):
        return None
    user_id, session_id = payload.get("u"), payload.get("s")
    if not isinstance(user_id, int) or not isinstance(session_id, int):
        return None
    session = (
        ApiSession.objects.select_related("user").filter(pk=session_id, user_id=user_id).first()
    )
    if session is None or not _signs_in(session):
        return None
    return session.user, session


def session_signs_in(session_id: int) -> bool:
    """
    Whether an app session still signs its user in, read now. A socket
    opened on one of its tokens asks once it is in its user's group, where
    any later end of the session (people.sessions) reaches it.
    """
    session = ApiSession.objects.select_related("user").filter(pk=session_id).first()
    return session is not None and _signs_in(session)


def _signs_in(session: ApiSession) -> bool:
    return session.is_active and session.user.is_active


def user_for_access_token(token: str) -> User | None:
    """
    The active user behind an access token, or None. Queries the database:
    from async code call it through database_sync_to_async.
    """
    resolved = access_token_resolve(token)
    return resolved[0] if resolved else None


class AccessTokenAuth(HttpBearer):
    """
    ``Authorization: Bearer <access token>`` for django-ninja routes.
    Sets request.auth to the user and request.api_session to the session.
    """

    def authenticate(self, request: HttpRequest, token: str) -> User | None:
        resolved = access_token_resolve(token)
        if resolved is None:
            return None
        user, session = resolved
        request.api_session = session  # type: ignore[attr-defined]
        return user


# --- refresh -----------------------------------------------------------------


def refresh_token_make(*, session_id: int) -> str:
    return f"{session_id}.{secrets.token_urlsafe(32)}"


def refresh_token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def refresh_token_session_id(token: str) -> int | None:
    """The session a refresh token names, if it is shaped like one."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
        return None
    session_id, dot, secret = token.partition(".")
    if not dot or not secret or not session_id.isdigit() or not session_id.isascii():
        return None
    return int(session_id)


# --- registration ------------------------------------------------------------


def registration_token_make(*, phone_number: str) -> str:
    return signing.dumps({"phone": phone_number}, salt=REGISTRATION_SALT)


def registration_token_phone(token: str) -> str | None:
    """The phone number a registration token proves, or None."""
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    try:
        payload = signing.loads(
            token, salt=REGISTRATION_SALT, max_age=settings.REGISTRATION_TOKEN_TTL_S
        )
    except signing.BadSignature:
        return None
    phone = payload.get("phone") if isinstance(payload, dict) else None
    return phone if isinstance(phone, str) and phone else None
