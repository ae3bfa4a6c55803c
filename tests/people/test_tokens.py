"""Access, refresh and registration tokens, and the sessions behind them."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.core import signing

from people import sessions, tokens
from people.models import ApiSession, AuditEvent
from people.tokens import user_for_access_token
from tests.people.conftest import PHONE

pytestmark = pytest.mark.django_db


@pytest.fixture
def user(make_account):
    return make_account()


@pytest.fixture
def pair(user) -> sessions.TokenPair:
    return sessions.session_issue(user=user, user_agent="CareConnect/1.0 (Android)")


# --- access tokens -------------------------------------------------------------


def test_an_access_token_names_its_user_and_session(user, pair):
    """The access token resolves to the user and the session it was issued for."""
    assert tokens.access_token_resolve(pair.access) == (user, pair.session)
    assert signing.loads(pair.access, salt="people.access") == {
        "u": user.pk,
        "s": pair.session.pk,
    }


@pytest.mark.parametrize("token", ["", "garbage", "a" * 5000, "Bearer x"])
def test_junk_is_not_an_access_token(user, token):
    """Anything that is not a signed access token resolves to no one."""
    assert user_for_access_token(token) is None


def test_a_tampered_access_token_is_refused(user, pair):
    """Changing one character breaks the signature."""
    flipped = pair.access[:-1] + ("A" if pair.access[-1] != "A" else "B")
    assert user_for_access_token(flipped) is None


def test_a_token_signed_for_another_purpose_is_not_an_access_token(user, pair):
    """Registration tokens and foreign salts do not pass as access tokens."""
    registration = tokens.registration_token_make(phone_number=PHONE)
    other_salt = signing.dumps({"u": user.pk, "s": pair.session.pk}, salt="elsewhere")
    assert user_for_access_token(registration) is None
    assert user_for_access_token(other_salt) is None


def test_an_expired_access_token_is_refused(settings, signing_clock, user, pair):
    """After ACCESS_TOKEN_TTL_S the access token stops working."""
    signing_clock.advance(settings.ACCESS_TOKEN_TTL_S - 5)
    assert user_for_access_token(pair.access) == user
    signing_clock.advance(10)
    assert user_for_access_token(pair.access) is None


def test_a_revoked_sessions_access_token_is_refused(user, pair):
    """Revoking the session ends its access token at once."""
    sessions.session_revoke(session=pair.session, actor=user, reason="logout")
    assert user_for_access_token(pair.access) is None
    row = AuditEvent.objects.get(action="session.revoked")
    assert (row.actor, row.payload) == (user, {"reason": "logout"})


def test_an_expired_sessions_access_token_is_refused(clock, user, pair):
    """A session past expires_at no longer honours its access tokens."""
    clock.now = pair.session.expires_at + timedelta(seconds=1)
    assert user_for_access_token(pair.access) is None


def test_a_switched_off_users_access_token_is_refused(user, pair):
    """Deactivating the user ends their sessions for good: switched on again, none returns."""
    user.is_active = False
    user.save()
    assert user_for_access_token(pair.access) is None
    user.is_active = True
    user.save()
    assert user_for_access_token(pair.access) is None
    with pytest.raises(sessions.InvalidRefreshToken):
        sessions.session_refresh(refresh=pair.refresh)


@pytest.mark.django_db(transaction=True)
async def test_access_tokens_resolve_from_async_code(make_account):
    """The WebSocket middleware's path: database_sync_to_async(user_for_access_token)."""
    user = await database_sync_to_async(make_account)()
    pair = await database_sync_to_async(sessions.session_issue)(user=user)
    assert await database_sync_to_async(user_for_access_token)(pair.access) == user


# --- refresh tokens --------------------------------------------------------------


def test_only_the_refresh_tokens_hash_is_stored(pair):
    """The session keeps sha256(refresh), never the token itself."""
    session = ApiSession.objects.get()
    assert pair.refresh.startswith(f"{session.pk}.")
    assert session.refresh_hash == hashlib.sha256(pair.refresh.encode()).hexdigest()
    assert pair.refresh not in repr(list(ApiSession.objects.values()))


def test_refreshing_rotates_the_refresh_token(user, pair):
    """A refresh returns a new pair; the old refresh token stops working."""
    fresh = sessions.session_refresh(refresh=pair.refresh)
    assert fresh.refresh != pair.refresh
    assert fresh.session.pk == pair.session.pk
    assert user_for_access_token(fresh.access) == user
    assert ApiSession.objects.get().refresh_hash == tokens.refresh_token_hash(fresh.refresh)
    # The newest refresh token keeps working.
    sessions.session_refresh(refresh=fresh.refresh)


def test_reusing_a_rotated_refresh_token_revokes_the_session(user, pair):
    """An old refresh token coming back means theft: the whole session ends."""
    fresh = sessions.session_refresh(refresh=pair.refresh)
    with pytest.raises(sessions.InvalidRefreshToken):
        sessions.session_refresh(refresh=pair.refresh)
    session = ApiSession.objects.get()
    assert session.revoked_at is not None
    with pytest.raises(sessions.InvalidRefreshToken):
        sessions.session_refresh(refresh=fresh.refresh)
    assert user_for_access_token(fresh.access) is None
    row = AuditEvent.objects.get(action="session.revoked")
    assert row.payload == {"reason": "refresh_token_reused"}


def test_a_guessed_refresh_token_fails_without_revoking(user, pair):
    """A made-up secret for a real session id fails but signs nobody out."""
    with pytest.raises(sessions.InvalidRefreshToken):
        sessions.session_refresh(refresh=f"{pair.session.pk}.made-up-secret")
    assert ApiSession.objects.get().revoked_at is None
    sessions.session_refresh(refresh=pair.refresh)


@pytest.mark.parametrize("refresh", ["", "nodot", "x.y", "999999.secret", ".secret", "1."])
def test_malformed_or_unknown_refresh_tokens_fail(pair, refresh):
    """Tokens that name no session fail with InvalidRefreshToken."""
    with pytest.raises(sessions.InvalidRefreshToken):
        sessions.session_refresh(refresh=refresh)


def test_a_revoked_session_cannot_be_refreshed(user, pair):
    """After logout the refresh token is dead too."""
    sessions.session_revoke(session=pair.session, actor=user)
    with pytest.raises(sessions.InvalidRefreshToken):
        sessions.session_refresh(refresh=pair.refresh)


def test_an_expired_session_cannot_be_refreshed(clock, user, pair):
    """Past REFRESH_TOKEN_TTL_DAYS of disuse the session is over."""
    clock.now = pair.session.expires_at + timedelta(seconds=1)
    with pytest.raises(sessions.InvalidRefreshToken):
        sessions.session_refresh(refresh=pair.refresh)


def test_refreshing_extends_the_session(settings, clock, user, pair):
    """Each refresh moves expires_at to REFRESH_TOKEN_TTL_DAYS from now."""
    clock.advance(days=20)
    sessions.session_refresh(refresh=pair.refresh)
    session = ApiSession.objects.get()
    assert session.expires_at == clock.now + timedelta(days=settings.REFRESH_TOKEN_TTL_DAYS)
    assert session.last_used_at == clock.now


def test_revoking_twice_is_harmless(user, pair):
    """A second revoke changes nothing and writes no second audit row."""
    sessions.session_revoke(session=pair.session, actor=user)
    first = ApiSession.objects.get().revoked_at
    sessions.session_revoke(session=pair.session, actor=user)
    assert ApiSession.objects.get().revoked_at == first
    assert AuditEvent.objects.filter(action="session.revoked").count() == 1


# --- registration tokens ----------------------------------------------------------


def test_a_registration_token_proves_its_phone():
    """The registration token carries the verified phone number."""
    token = tokens.registration_token_make(phone_number=PHONE)
    assert tokens.registration_token_phone(token) == PHONE


def test_a_registration_token_expires(settings, signing_clock):
    """After REGISTRATION_TOKEN_TTL_S the registration token is refused."""
    token = tokens.registration_token_make(phone_number=PHONE)
    signing_clock.advance(settings.REGISTRATION_TOKEN_TTL_S + 5)
    assert tokens.registration_token_phone(token) is None


def test_an_access_token_is_not_a_registration_token(pair):
    """Tokens signed for access cannot register a phone."""
    assert tokens.registration_token_phone(pair.access) is None
    forged = signing.dumps({"phone": PHONE}, salt="people.access")
    assert tokens.registration_token_phone(forged) is None


def test_reuse_is_caught_after_the_audit_log_is_purged(user, pair):
    """The session itself remembers the previous token: a retention purge weakens nothing."""
    sessions.session_refresh(refresh=pair.refresh)
    AuditEvent.objects.all().delete()
    with pytest.raises(sessions.InvalidRefreshToken):
        sessions.session_refresh(refresh=pair.refresh)
    assert ApiSession.objects.get().revoked_at is not None


def test_the_session_keeps_only_hashes_of_its_tokens(pair):
    """After a rotation the session holds sha256 of the previous token, not the token."""
    fresh = sessions.session_refresh(refresh=pair.refresh)
    session = ApiSession.objects.get()
    assert session.previous_refresh_hash == tokens.refresh_token_hash(pair.refresh)
    dumped = repr(list(ApiSession.objects.values())) + repr(list(AuditEvent.objects.values()))
    for secret in (pair.refresh, fresh.refresh):
        assert secret not in dumped
