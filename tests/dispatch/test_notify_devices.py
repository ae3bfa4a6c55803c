"""
A push token lives as long as the app session that registered it: a session
that ends (logout, support revoking a lost phone's, its refresh token
stolen, the account switched off, its time run out) takes its devices with
it, so that phone hears nothing more of anyone's rides, while the same
person's other signed-in devices still do.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client

from dispatch import booking
from people import notices, push, sessions
from people.models import ApiSession, DeviceToken, NoticeChannel
from people.notices import Topic
from tests.conftest import notifications, staff_login
from tests.dispatch.test_notify import (  # noqa: F401  (the autouse gateway fixture)
    JHB,
    _gateway,
    at_noon,
    deliver_all,
    family,
    trip,
)

pytestmark = pytest.mark.django_db(transaction=True)


def app(pair: sessions.TokenPair) -> Client:
    return Client(headers={"Authorization": f"Bearer {pair.access}"})


def signed_in_with_device(user, token: str) -> sessions.TokenPair:
    """An app install signs in and registers its push token over REST."""
    pair = sessions.session_issue(user=user, user_agent=f"CareConnect ({token})")
    reply = app(pair).post(
        "/api/notifications/devices/",
        {"token": token, "platform": "android"},
        content_type="application/json",
    )
    assert reply.status_code == 201, reply.content
    return pair


@pytest.fixture
def pushed(monkeypatch, settings) -> list[list[str]]:
    """Push on; the tokens of each push FCM was asked to deliver."""
    settings.FCM_CREDENTIALS_FILE = "/etc/care-connect/fcm.json"
    asked: list[list[str]] = []

    def fake_push(*, tokens, title, body, data):
        asked.append(sorted(tokens))
        return []

    monkeypatch.setattr(push, "push_send", fake_push)
    return asked


@pytest.fixture
def emily_on_two_devices(family, pushed):
    """Emily, on push, signed in on her phone and on her tablet."""
    sarah, emily, link = family
    phone = signed_in_with_device(emily, "emily-phone")
    tablet = signed_in_with_device(emily, "emily-tablet")
    notices.preference_set(actor=emily, link=link, channel=NoticeChannel.PUSH)
    return sarah, emily, phone, tablet


def logged_out(pair, make_user) -> None:
    assert app(pair).post("/api/auth/logout/").status_code == 204


def revoked_by_support(pair, make_user) -> None:
    support = make_user("", first_name="Suki", is_staff=True, is_superuser=True)
    admin = staff_login(Client(), support)
    reply = admin.post(
        "/admin/people/apisession/",
        {"action": "revoke", "_selected_action": [pair.session.pk]},
    )
    assert reply.status_code == 302


def refresh_token_stolen(pair, make_user) -> None:
    sessions.session_refresh(refresh=pair.refresh)
    with pytest.raises(sessions.InvalidRefreshToken):
        sessions.session_refresh(refresh=pair.refresh)


@pytest.mark.parametrize("end", [logged_out, revoked_by_support, refresh_token_stolen])
def test_a_session_that_ends_takes_its_push_token_and_the_other_device_still_hears(
    emily_on_two_devices, make_driver, make_user, monkeypatch, pushed, end
):
    """
    Emily's phone signs out (or support revokes its session, or its refresh
    token turns up twice): its token is gone at once, the next notice of
    Sarah's ride reaches her tablet alone.
    """
    at_noon(monkeypatch)
    sarah, emily, phone, tablet = emily_on_two_devices
    end(phone, make_user)

    assert not ApiSession.objects.get(pk=phone.session.pk).is_active
    assert list(DeviceToken.objects.values_list("token", flat=True)) == ["emily-tablet"]
    make_driver(JHB[0] + 0.004, JHB[1], first_name="John")
    booking.ride_book(**trip(sarah))
    deliver_all()
    assert pushed == [["emily-tablet"]]
    row = notifications().get(recipient=emily, topic=Topic.DRIVER_ASSIGNED)
    assert (row.channel, row.status) == (NoticeChannel.PUSH, "sent")


def test_an_account_switched_off_keeps_no_push_token(emily_on_two_devices):
    """Switching an account off ends every session, and every device with it."""
    _, emily, _, _ = emily_on_two_devices
    emily.is_active = False
    emily.save()
    assert not DeviceToken.objects.exists()


def test_a_session_past_its_time_is_not_pushed_to(
    emily_on_two_devices, make_driver, monkeypatch, pushed
):
    """A phone whose session ran out (unused for weeks) is signed out: no push reaches it."""
    at_noon(monkeypatch)
    sarah, emily, phone, _ = emily_on_two_devices
    ApiSession.objects.filter(pk=phone.session.pk).update(
        expires_at=phone.session.created_at - timedelta(seconds=1)
    )
    make_driver(JHB[0] + 0.004, JHB[1], first_name="John")
    booking.ride_book(**trip(sarah))
    deliver_all()
    assert pushed == [["emily-tablet"]]


def test_a_token_registered_again_moves_to_the_new_session(emily_on_two_devices, pushed):
    """
    The phone signs out without unregistering, signs in again and registers
    the same token: the new session holds it, and the old session's end
    later takes nothing from it.
    """
    sarah, emily, phone, _ = emily_on_two_devices
    again = signed_in_with_device(emily, "emily-phone")
    assert DeviceToken.objects.get(token="emily-phone").session_id == again.session.pk
    sessions.session_revoke(session=phone.session, actor=emily, reason="logout")
    assert DeviceToken.objects.get(token="emily-phone").session_id == again.session.pk
    logged_out(again, None)
    assert list(DeviceToken.objects.values_list("token", flat=True)) == ["emily-tablet"]
