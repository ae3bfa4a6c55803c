"""Notification choices, push tokens and language over REST."""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from django.test import Client

from people import notices
from people.models import AuditEvent, DeviceToken, NoticePreference, User
from people.notices import CAREGIVER_DEFAULT
from people.sessions import session_issue, session_revoke
from project.common.errors import ServiceError
from tests.conftest import token_for

pytestmark = pytest.mark.django_db


class Api:
    def __init__(self, user=None) -> None:
        headers = {"Authorization": f"Bearer {token_for(user)}"} if user else {}
        self.client = Client(headers=headers)

    def get(self, path: str):
        return self.client.get(f"/api/{path}")

    def send(self, method: str, path: str, body):
        return getattr(self.client, method)(f"/api/{path}", body, content_type="application/json")


@pytest.fixture
def family(passenger, make_user, make_link):
    emily = make_user("caregiver", first_name="Emily", last_name="Davis")
    return passenger, emily, make_link(passenger, emily, can_receive_notifications=True)


def test_a_caregiver_reads_the_family_defaults_then_sets_her_choices_on_her_link(family):
    sarah, emily, link = family
    api = Api(emily)
    path = f"notifications/links/{link.pk}/preferences/"
    before = api.get(path).json()
    assert before == {
        "topics": list(CAREGIVER_DEFAULT),
        "channel": "sms",
        "quiet_start": "21:00:00",
        "quiet_end": "07:00:00",
        "customised": False,
    }
    reply = api.send(
        "patch",
        path,
        {"topics": ["dropped_off", "driver_assigned"], "quiet_start": None, "quiet_end": None},
    )
    assert reply.status_code == 200, reply.content
    assert reply.json() == {
        "topics": ["driver_assigned", "dropped_off"],
        "channel": "sms",
        "quiet_start": None,
        "quiet_end": None,
        "customised": True,
    }
    assert NoticePreference.objects.get(link=link).topics == ["driver_assigned", "dropped_off"]
    assert AuditEvent.objects.filter(action="notice_preference_set", actor=emily).exists()


def test_the_passenger_chooses_for_her_own_rides(family):
    sarah, _, _ = family
    reply = Api(sarah).send("patch", "notifications/preferences/", {"channel": "in_app"})
    assert reply.status_code == 200
    assert reply.json()["channel"] == "in_app"
    assert NoticePreference.objects.get(passenger=sarah).channel == "in_app"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"topics": ["booked", "teleported"]}, "topics.1"),
        ({"channel": "pigeon"}, "channel"),
        ({"quiet_start": "25:00"}, "quiet_start"),
        ({"quiet_start": "21:00+02:00", "quiet_end": "07:00+02:00"}, "quiet_start"),
        ({"volume": 11}, "volume"),
        ({"topics": "booked"}, "topics"),
    ],
)
def test_bad_preferences_get_a_typed_error_and_change_nothing(family, body, field):
    _, emily, link = family
    reply = Api(emily).send("patch", f"notifications/links/{link.pk}/preferences/", body)
    assert reply.status_code == 400
    assert reply.json()["code"] == "invalid_request"
    assert field in reply.json()["fields"]
    assert not NoticePreference.objects.exists()


def test_quiet_hours_need_both_ends(family):
    _, emily, link = family
    reply = Api(emily).send(
        "patch", f"notifications/links/{link.pk}/preferences/", {"quiet_end": None}
    )
    assert reply.status_code == 400
    assert set(reply.json()["fields"]) == {"quiet_start", "quiet_end"}
    assert not NoticePreference.objects.exists()


def test_an_empty_change_is_refused(family):
    _, emily, link = family
    reply = Api(emily).send("patch", f"notifications/links/{link.pk}/preferences/", {})
    assert (reply.status_code, reply.json()["code"]) == (400, "invalid_request")


def test_only_the_links_caregiver_reaches_its_preferences(family, make_user):
    sarah, emily, link = family
    path = f"notifications/links/{link.pk}/preferences/"
    assert Api(sarah).get(path).status_code == 404
    assert Api(make_user("caregiver")).get(path).status_code == 404
    assert Api().get(path).status_code == 401


def test_a_link_without_the_permission_cannot_choose_notices(passenger, make_user, make_link):
    emily = make_user("caregiver")
    link = make_link(passenger, emily, can_receive_notifications=False)
    reply = Api(emily).send(
        "patch", f"notifications/links/{link.pk}/preferences/", {"channel": "push"}
    )
    assert (reply.status_code, reply.json()["code"]) == (403, "forbidden")


def test_an_app_registers_and_unregisters_its_push_token(family):
    _, emily, _ = family
    api = Api(emily)
    reply = api.send("post", "notifications/devices/", {"token": "fcm-abc", "platform": "ios"})
    assert reply.status_code == 201
    assert reply.json() == {"token": "fcm-abc", "platform": "ios", "registered": True}
    assert DeviceToken.objects.get(token="fcm-abc").user == emily
    reply = api.send("post", "notifications/devices/unregister/", {"token": "fcm-abc"})
    assert reply.status_code == 200
    assert reply.json() == {"token": "fcm-abc", "platform": "ios", "registered": False}
    assert not DeviceToken.objects.exists()
    again = api.send("post", "notifications/devices/unregister/", {"token": "fcm-abc"})
    assert (again.status_code, again.json()["code"]) == (404, "not_found")


def test_a_push_token_belongs_to_the_app_session_that_registered_it(family):
    """The token is this session's: its end (people.sessions) takes the token along."""
    _, emily, _ = family
    pair = session_issue(user=emily)
    reply = Client(headers={"Authorization": f"Bearer {pair.access}"}).post(
        "/api/notifications/devices/", {"token": "fcm-abc"}, content_type="application/json"
    )
    assert reply.status_code == 201
    device = DeviceToken.objects.get(token="fcm-abc")
    assert (device.user, device.session) == (emily, pair.session)


def test_a_session_ended_while_its_token_arrives_registers_nothing(family):
    """
    The request was signed in, but its session ended before the token was
    written (support revoked the lost phone's): no token outlives it.
    """
    _, emily, _ = family
    stale = session_issue(user=emily).session
    session_revoke(session=stale, actor=None, reason="lost phone")
    with pytest.raises(ServiceError) as refused:
        notices.device_token_register(session=stale, token="fcm-abc", platform="android")
    assert (refused.value.status, refused.value.code) == (401, "authentication_required")
    assert not DeviceToken.objects.exists()


def test_a_bad_push_token_gets_a_typed_error(family):
    _, emily, _ = family
    bodies = ({"token": ""}, {"token": "x", "platform": "nokia"}, {}, {"token": "x" * 1025})
    for body in (*bodies, {"token": "a b"}, {"token": "tök"}):
        reply = Api(emily).send("post", "notifications/devices/", body)
        assert (reply.status_code, reply.json()["code"]) == (400, "invalid_request")
    assert not DeviceToken.objects.exists()


def test_the_language_is_set_through_the_profile(family):
    _, emily, _ = family
    api = Api(emily)
    reply = api.send("patch", "auth/profile/", {"language": "af"})
    assert reply.status_code == 200 and reply.json()["language"] == "af"
    assert User.objects.get(pk=emily.pk).language == "af"
    bad = api.send("patch", "auth/profile/", {"language": "xh"})
    assert bad.status_code == 400 and "language" in bad.json()["fields"]
    assert User.objects.get(pk=emily.pk).language == "af"


def test_push_is_chosen_only_where_it_reaches_the_person(family, settings):
    """
    Off on the server, or no device of hers registered: a typed refusal and
    the choice unchanged, not a silence later. Registered, it is taken.
    """
    _, emily, link = family
    api = Api(emily)
    path = f"notifications/links/{link.pk}/preferences/"
    settings.FCM_CREDENTIALS_FILE = ""
    off = api.send("patch", path, {"channel": "push"})
    assert (off.status_code, off.json()["code"]) == (400, "invalid_request")
    assert "off" in off.json()["fields"]["channel"]
    settings.FCM_CREDENTIALS_FILE = "/etc/care-connect/fcm.json"
    unregistered = api.send("patch", path, {"channel": "push"})
    assert (unregistered.status_code, unregistered.json()["code"]) == (400, "invalid_request")
    assert "device" in unregistered.json()["fields"]["channel"]
    assert api.get(path).json()["channel"] == "sms"
    assert not NoticePreference.objects.filter(link=link).exists()
    devices = api.send("post", "notifications/devices/", {"token": "fcm-1", "platform": "ios"})
    assert devices.status_code == 201
    chosen = api.send("patch", path, {"channel": "push"})
    assert (chosen.status_code, chosen.json()["channel"]) == (200, "push")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_first_choices_at_once_both_take(family, monkeypatch):
    """Two switches flipped at once on a first visit: two 200s and both kept, no 500."""
    _, emily, link = family
    path = f"notifications/links/{link.pk}/preferences/"
    both = threading.Barrier(2)
    defaults = notices._defaults

    def met(**kwargs):
        # Each request has looked for her choices and found none.
        both.wait(timeout=30)
        return defaults(**kwargs)

    monkeypatch.setattr(notices, "_defaults", met)
    replies = {}

    def patch(body) -> None:
        try:
            replies[next(iter(body))] = Api(emily).send("patch", path, body).status_code
        finally:
            connection.close()

    threads = [
        threading.Thread(target=patch, args=(body,))
        for body in ({"channel": "in_app"}, {"topics": ["alarm"]})
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert replies == {"channel": 200, "topics": 200}
    pref = NoticePreference.objects.get(link=link)
    assert (pref.channel, pref.topics) == ("in_app", ["alarm"])
