"""
The apps' sessions: one ApiSession per signed-in app install, its access
and refresh tokens, rotation, and revocation (which closes its sockets too).
Signing in by SMS code is people.signin's.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from people import signals, tokens
from people.audit import audit_event_record
from people.models import ApiSession, User
from people.notices import device_tokens_session_ended
from project.common.errors import ServiceError


class InvalidRefreshToken(ServiceError):
    code = "invalid_refresh_token"
    status = 401


@dataclass(frozen=True)
class TokenPair:
    access: str
    refresh: str
    session: ApiSession


def session_issue(*, user: User, user_agent: str = "") -> TokenPair:
    """Open an ApiSession for a signed-in user and return its tokens."""
    now = timezone.now()
    with transaction.atomic():
        session = ApiSession.objects.create(
            user=user,
            # Placeholder until the pk, which the refresh token names, exists.
            refresh_hash=secrets.token_hex(32),
            user_agent=user_agent[:256],
            created_at=now,
            last_used_at=now,
            expires_at=_session_expiry(now),
        )
        refresh = tokens.refresh_token_make(session_id=session.pk)
        session.refresh_hash = tokens.refresh_token_hash(refresh)
        session.save(update_fields=["refresh_hash"])
        audit_event_record(
            actor=user,
            action="session.issued",
            subject=session,
            payload={"user_agent": session.user_agent},
        )
    return TokenPair(
        access=tokens.access_token_make(session=session), refresh=refresh, session=session
    )


def session_refresh(*, refresh: str) -> TokenPair:
    """
    Rotate a refresh token: the presented one stops working, a new pair comes
    back, and the session's lifetime starts again from now.

    The refresh token just rotated away coming back means two parties hold
    the session's tokens: the session is revoked. (An older one is simply
    refused: whoever holds it holds nothing the session still accepts.)
    Raises InvalidRefreshToken.
    """
    invalid = InvalidRefreshToken("Please sign in again.")
    session_id = tokens.refresh_token_session_id(refresh)
    if session_id is None:
        raise invalid
    presented = tokens.refresh_token_hash(refresh)
    pair: TokenPair | None = None
    with transaction.atomic():
        session = (
            ApiSession.objects.select_for_update(of=("self",))
            .select_related("user")
            .filter(pk=session_id)
            .first()
        )
        if session is None:
            pass
        elif hmac.compare_digest(session.refresh_hash, presented):
            if session.is_active and session.user.is_active:
                pair = _session_rotate(session=session, retired_hash=presented)
        elif session.previous_refresh_hash and hmac.compare_digest(
            session.previous_refresh_hash, presented
        ):
            if session.revoked_at is None:
                _session_mark_revoked(session=session, actor=None, reason="refresh_token_reused")
    if pair is None:
        raise invalid
    return pair


def session_revoke(*, session: ApiSession, actor: User | None, reason: str = "") -> ApiSession:
    """End a session: its access and refresh tokens stop working at once."""
    with transaction.atomic():
        session = ApiSession.objects.select_for_update().get(pk=session.pk)
        if session.revoked_at is None:
            _session_mark_revoked(session=session, actor=actor, reason=reason)
    return session


def sessions_end_all(*, user_id: int, actor: User | None = None, reason: str) -> None:
    """Every open session of the user ends, as `session_revoke` ends one."""
    with transaction.atomic():
        for session in ApiSession.objects.select_for_update().filter(
            user_id=user_id, revoked_at__isnull=True
        ):
            _session_mark_revoked(session=session, actor=actor, reason=reason)


def on_switched_off(sender, *, user_id: int, **kwargs) -> None:
    """An account switched off: switching it on again revives none of its tokens."""
    sessions_end_all(user_id=user_id, reason="account_switched_off")


def on_made_staff(sender, *, user_id: int, **kwargs) -> None:
    """
    An account made staff: its app sessions were opened by SMS code alone,
    and staff powers in the apps come only with the authenticator
    (people.signin), so they end.
    """
    sessions_end_all(user_id=user_id, reason="made_staff")


# --- helpers ---------------------------------------------------------------


def _session_expiry(now: datetime) -> datetime:
    return now + timedelta(days=settings.REFRESH_TOKEN_TTL_DAYS)


def _session_rotate(*, session: ApiSession, retired_hash: str) -> TokenPair:
    now = timezone.now()
    refresh = tokens.refresh_token_make(session_id=session.pk)
    # Kept so that its reuse is recognised as theft rather than as a guess
    # (which must not revoke anything).
    session.previous_refresh_hash = retired_hash
    session.refresh_hash = tokens.refresh_token_hash(refresh)
    session.last_used_at = now
    session.expires_at = _session_expiry(now)
    session.save(
        update_fields=["previous_refresh_hash", "refresh_hash", "last_used_at", "expires_at"]
    )
    audit_event_record(actor=session.user, action="session.refreshed", subject=session)
    return TokenPair(
        access=tokens.access_token_make(session=session), refresh=refresh, session=session
    )


def _session_mark_revoked(*, session: ApiSession, actor: User | None, reason: str) -> None:
    """
    Every end of a session comes here (logout, support, a stolen refresh
    token, the account switched off), inside its transaction and with the
    session's row locked.
    """
    session.revoked_at = timezone.now()
    session.save(update_fields=["revoked_at"])
    audit_event_record(
        actor=actor,
        action="session.revoked",
        subject=session,
        payload={"reason": reason} if reason else {},
    )
    # The phone it was on hears no more push notifications either.
    device_tokens_session_ended(session=session)
    # Its open sockets close too, not only its tokens.
    signals.access_ended.send(sender=ApiSession, user_id=session.user_id, api_session_id=session.pk)
