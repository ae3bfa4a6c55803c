"""
Durable notifications (dispatch.notify): the outbox written with the ride
change and fanned out to its recipients, preferences and quiet hours, what
is texted when, the texts' language and length, the caps, retries and push
without credentials.
The worker killed mid-batch: test_notify_worker.py.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, time, timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from dispatch import alarms, booking, rides, trips, watch
from dispatch.models import NoticeDue, NotificationStatus, Ride, RideStatus
from dispatch.notify import delivery, outbox
from dispatch.notify.events import NOTICES
from dispatch.notify.texts import TEXTS, notice_text
from people import notices, push, sms
from people.models import Language, LinkStatus, NoticeChannel, NoticePreference
from people.notices import Topic
from people.sessions import session_issue
from tests.conftest import booking_keywords, cannot_run, notifications

pytestmark = pytest.mark.django_db(transaction=True)

JHB = (-26.2041, 28.0473)
N = NotificationStatus


@pytest.fixture(autouse=True)
def _gateway(settings, tmp_path):
    """The recording SMS gateway: each text a JSON line in a file."""
    settings.SMS_BACKEND = "file"
    settings.SMS_FILE_PATH = str(tmp_path / "sms.jsonl")
    settings.PHONE_ALLOWED_REGIONS = ["ZA"]
    settings.SMS_MAX_PER_MINUTE = 1000
    settings.NOTIFY_SMS_MAX_PER_DAY = 20
    settings.NOTIFY_ENABLED = True
    settings.FCM_CREDENTIALS_FILE = ""
    push._announced.clear()


def texts(settings) -> list[dict]:
    try:
        with open(settings.SMS_FILE_PATH, encoding="utf-8") as f:
            return [json.loads(line) for line in f]
    except FileNotFoundError:
        return []


def trip(passenger, ride_id="n1", at=JHB):
    return booking_keywords(passenger, ride_id, at)


@pytest.fixture
def family(passenger, make_user, make_link):
    """Sarah, and Emily on an active link that may receive notifications."""
    emily = make_user("caregiver", first_name="Emily", last_name="Davis")
    link = make_link(passenger, emily, can_receive_notifications=True)
    return passenger, emily, link


def at_noon(monkeypatch):
    """Quiet hours see noon (the rest of the clock runs on)."""
    noon = timezone.make_aware(datetime.combine(timezone.localdate(), time(12, 0)))
    monkeypatch.setattr(outbox, "event_time", lambda at: noon)
    return noon


def deliver_all() -> int:
    return delivery.run(once=True)


# --- the outbox ------------------------------------------------------------------


def test_a_booking_owes_its_notices_by_its_events_alone(path, family, make_driver, monkeypatch):
    """
    Booked and assigned: the booking writes nothing for its notices (its
    events, committed with it, are the debt); the worker reads them from
    the log and makes the caregiver's SMS row of the assigned one, naming
    the driver, and none of the search (no driver had accepted yet).
    """
    at_noon(monkeypatch)
    sarah, emily, link = family
    driver = make_driver(JHB[0] + 0.004, JHB[1], first_name="John")
    booking.ride_book(**trip(sarah))
    assert not NoticeDue.objects.exists()
    row = notifications().get(recipient=emily)
    assert (row.event, row.version, row.topic, row.channel, row.status, row.link_id) == (
        "assigned",
        3,
        Topic.DRIVER_ASSIGNED,
        NoticeChannel.SMS,
        N.PENDING,
        link.pk,
    )
    assert row.params == {"driver": "John", "vehicle": driver.driver_profile.vehicle_registration}
    assert Ride.objects.get(ride_id="n1").driver_id == driver.pk


def test_a_ride_change_that_rolls_back_writes_no_notice(family, make_driver, monkeypatch):
    at_noon(monkeypatch)
    sarah, emily, _ = family
    make_driver(JHB[0] + 0.004, JHB[1])
    result = booking.ride_book(**trip(sarah))
    notifications().all().delete()
    ride = Ride.objects.with_people().get(pk=result.ride.pk)

    class Abort(Exception):
        pass

    with pytest.raises(Abort), transaction.atomic():
        trips.ride_driver_arrived(ride=ride, driver=ride.driver)
        assert NoticeDue.objects.filter(event="driver_arrived").exists()
        assert Ride.objects.get(pk=ride.pk).status == RideStatus.DRIVER_ARRIVED
        raise Abort
    assert not NoticeDue.objects.exists()
    assert notifications().count() == 0
    assert Ride.objects.get(pk=ride.pk).status == RideStatus.ASSIGNED


def test_the_same_event_written_twice_is_one_row_per_recipient_and_channel(
    family, make_driver, monkeypatch
):
    at_noon(monkeypatch)
    sarah, emily, _ = family
    make_driver(JHB[0] + 0.004, JHB[1])
    ride = booking.ride_book(**trip(sarah)).ride
    before = notifications().count()
    with transaction.atomic():
        outbox.notices_write(ride, "assigned")
    assert notifications().count() == before
    with transaction.atomic():
        outbox.notices_write(ride, "driver_near")
        outbox.notices_write(ride, "driver_near")
    near = notifications().filter(event="driver_near")
    assert sorted(near.values_list("recipient_id", flat=True)) == [sarah.pk, emily.pk]


def test_each_notice_is_sent_once_even_when_the_worker_runs_again(
    family, make_driver, monkeypatch, settings
):
    at_noon(monkeypatch)
    sarah, emily, _ = family
    make_driver(JHB[0] + 0.004, JHB[1], first_name="John")
    booking.ride_book(**trip(sarah))
    assert deliver_all() == 2
    assert deliver_all() == 0
    sent = [t for t in texts(settings) if t["to"] == emily.phone_number]
    assert len(sent) == 1 and len(texts(settings)) == 2
    assert "John" in sent[0]["message"] and "Sarah" in sent[0]["message"]
    row = notifications().get(recipient=emily)
    assert row.status == N.SENT and row.body == sent[0]["message"]


def test_a_booking_owes_each_recipient_what_they_chose(
    path, family, make_user, make_link, make_driver, monkeypatch
):
    """
    Both ways of booking (on PostgreSQL the one statement writes its
    notices itself) owe a row to each recipient as they chose, and none to
    a link that may not hear, was revoked, or left the topic out.
    """
    at_noon(monkeypatch)
    sarah, emily, link = family
    notices.preference_set(
        actor=sarah, passenger=sarah, topics=[Topic.DRIVER_ASSIGNED], channel=NoticeChannel.IN_APP
    )
    anna = make_user("caregiver", first_name="Anna")
    notices.preference_set(
        actor=anna,
        link=make_link(sarah, anna, can_receive_notifications=True),
        topics=[Topic.DROPPED_OFF],
    )
    make_link(sarah, make_user("caregiver"), can_receive_notifications=False)
    gone = make_link(sarah, make_user("caregiver"), can_receive_notifications=True)
    gone.status = LinkStatus.REVOKED
    gone.save()
    make_driver(JHB[0] + 0.004, JHB[1])
    booking.ride_book(**trip(sarah))
    owed = set(notifications().values_list("recipient_id", "link_id", "topic", "channel"))
    assert owed == {
        (sarah.pk, None, Topic.DRIVER_ASSIGNED, NoticeChannel.IN_APP),
        (emily.pk, link.pk, Topic.DRIVER_ASSIGNED, NoticeChannel.SMS),
    }


# --- what is texted when ---------------------------------------------------------


def test_nothing_is_texted_before_a_driver_has_accepted(path, family, monkeypatch, settings):
    """A search without a driver, and its cancelling, text nobody; once assigned, they do."""
    at_noon(monkeypatch)
    sarah, emily, link = family
    notices.preference_set(
        actor=emily, link=link, topics=[Topic.BOOKED, Topic.DRIVER_ASSIGNED, Topic.CANCELLED]
    )
    ride = booking.ride_book(**trip(sarah)).ride
    assert ride.status in (RideStatus.SEARCHING, RideStatus.UNFULFILLED)
    rides.ride_cancel(ride=Ride.objects.get(pk=ride.pk), actor=sarah, cancelled_by="passenger")
    assert notifications().filter(channel=NoticeChannel.SMS).count() == 0
    deliver_all()
    assert texts(settings) == []


def test_in_app_choosers_hear_of_the_booking_before_any_driver(path, family, monkeypatch):
    at_noon(monkeypatch)
    sarah, emily, link = family
    notices.preference_set(
        actor=emily, link=link, topics=[Topic.BOOKED], channel=NoticeChannel.IN_APP
    )
    booking.ride_book(**trip(sarah))
    row = notifications().get(recipient=emily)
    assert (row.topic, row.channel) == (Topic.BOOKED, NoticeChannel.IN_APP)


def test_a_family_member_hears_the_defaults_and_not_what_they_left_out(
    family, make_driver, monkeypatch
):
    at_noon(monkeypatch)
    sarah, emily, link = family
    driver = make_driver(JHB[0] + 0.004, JHB[1])
    ride = booking.ride_book(**trip(sarah)).ride
    ride = Ride.objects.with_people().get(pk=ride.pk)
    trips.ride_driver_arrived(ride=ride, driver=driver)
    trips.ride_start(ride=ride, driver=driver)
    trips.ride_complete(ride=ride, driver=driver)
    heard = list(
        notifications().filter(recipient=emily).order_by("version").values_list("topic", flat=True)
    )
    # Arrived and on board are not among a family member's defaults.
    assert heard == [Topic.DRIVER_ASSIGNED, Topic.DROPPED_OFF]
    notices.preference_set(actor=emily, link=link, topics=[Topic.ON_BOARD])
    assert notices.preference_of(link=link)["topics"] == [Topic.ON_BOARD]


def test_a_link_without_the_notification_permission_hears_nothing(
    path, passenger, make_user, make_link, make_driver, monkeypatch
):
    at_noon(monkeypatch)
    make_link(passenger, make_user("caregiver"), can_receive_notifications=False)
    make_driver(JHB[0] + 0.004, JHB[1])
    booking.ride_book(**trip(passenger))
    assert not notifications().exclude(recipient=passenger).exists()


def test_quiet_hours_hold_back_all_but_urgent_notices(
    path, family, make_driver, monkeypatch, settings
):
    sarah, emily, link = family
    late = timezone.make_aware(datetime.combine(timezone.localdate(), time(23, 30)))
    monkeypatch.setattr(outbox, "event_time", lambda at: late)
    notices.preference_set(
        actor=emily,
        link=link,
        topics=[Topic.DRIVER_ASSIGNED, Topic.NO_SHOW],
        quiet_start=time(22, 0),
        quiet_end=time(6, 0),
    )
    driver = make_driver(JHB[0] + 0.004, JHB[1])
    ride = Ride.objects.with_people().get(pk=booking.ride_book(**trip(sarah)).ride.pk)
    assert not notifications().filter(recipient=emily).exists()
    trips.ride_driver_arrived(ride=ride, driver=driver)
    settings.NO_SHOW_WAIT_MIN = 0
    settings.NO_SHOW_CAREGIVERS_AFTER_MIN = 0
    watch.waiting_escalate()
    ride.refresh_from_db()
    trips.ride_no_show(ride=ride, driver=driver)
    # The door wait was not among her topics; the no-show goes out at night.
    assert list(notifications().filter(recipient=emily).values_list("topic", flat=True)) == [
        Topic.NO_SHOW
    ]


def test_quiet_hours_that_span_midnight():
    def at(h, m=0):
        return timezone.make_aware(datetime.combine(timezone.localdate(), time(h, m)))

    quiet = (time(22, 0), time(6, 0))
    assert notices.in_quiet_hours(*quiet, at(23))
    assert notices.in_quiet_hours(*quiet, at(5, 59))
    assert not notices.in_quiet_hours(*quiet, at(6))
    assert not notices.in_quiet_hours(*quiet, at(12))
    assert not notices.in_quiet_hours(None, None, at(23))


# --- the texts -------------------------------------------------------------------


def test_an_afrikaans_caregiver_is_texted_in_afrikaans(family, make_driver, monkeypatch, settings):
    at_noon(monkeypatch)
    sarah, emily, _ = family
    emily.language = Language.AFRIKAANS
    emily.save()
    make_driver(JHB[0] + 0.004, JHB[1], first_name="John")
    booking.ride_book(**trip(sarah))
    deliver_all()
    (sent,) = [t for t in texts(settings) if t["to"] == emily.phone_number]
    assert sent["message"].startswith("Care Connect: John sal Sarah ry.")


def test_a_driver_with_no_plate_yet_is_named_without_a_dangling_stop(
    family, make_driver, monkeypatch, settings
):
    """A driver whose profile has no plate: "Dave will drive Sarah.", in every language."""
    at_noon(monkeypatch)
    sarah, emily, _ = family
    dave = make_driver(JHB[0] + 0.004, JHB[1], first_name="Dave")
    dave.driver_profile.vehicle_registration = ""
    dave.driver_profile.save()
    booking.ride_book(**trip(sarah))
    deliver_all()
    (sent,) = [t for t in texts(settings) if t["to"] == emily.phone_number]
    assert sent["message"] == "Care Connect: Dave will drive Sarah."
    ride = Ride.objects.with_people().get(passenger=sarah)
    for language in Language.values:
        text = notice_text(Topic.DRIVER_ASSIGNED, ride, {}, language)
        assert text.endswith(".") and ". ." not in text and " ." not in text, (language, text)


def test_every_text_in_every_language_fits_one_sms_part_and_names_no_needs(
    family, make_driver, monkeypatch
):
    """With 15-letter names and a long plate, each text is one GSM-7 part."""
    at_noon(monkeypatch)
    sarah, _, _ = family
    sarah.first_name = "Sarah-Elizabeth"
    sarah.save()
    sarah.passenger_profile.needs_wheelchair = True
    sarah.passenger_profile.notes = "Dialysis on Tuesdays"
    sarah.passenger_profile.save()
    make_driver(JHB[0] + 0.004, JHB[1], first_name="Bartholomew-Jon")
    ride = Ride.objects.with_people().get(pk=booking.ride_book(**trip(sarah)).ride.pk)
    assert set(TEXTS) == set(Topic.values)
    # Booked ahead, its texts say the day and time too ("Wed 29 Sep 10:00").
    ahead = Ride.objects.with_people().get(pk=ride.pk)
    ahead.service_date = timezone.localdate()
    ahead.pickup_at = timezone.make_aware(datetime(2027, 9, 29, 10, 0))
    for language in Language.values:
        for topic in Topic.values:
            for one in (ride, ahead):
                text = notice_text(topic, one, {"minutes": 45}, language)
                assert sms.sms_parts(text) == 1, (language, topic, len(text), text)
                assert "Dialysis" not in text and "heelchair" not in text
    for language in Language.values:
        for topic in (Topic.BOOKED, Topic.CANCELLED, Topic.DELAYED):
            assert "29" in notice_text(topic, ahead, {"minutes": 45}, language), (language, topic)
    assert notice_text(Topic.DROPPED_OFF, ride, {}, "zu") != notice_text(
        Topic.DROPPED_OFF, ride, {}, "en"
    )


def test_sms_parts_counts_gsm7_and_unicode():
    assert sms.sms_parts("a" * 160) == 1
    assert sms.sms_parts("a" * 161) == 2
    assert sms.sms_parts("ê" + "a" * 69) == 1
    assert sms.sms_parts("ê" + "a" * 70) == 2


def test_every_mapped_event_has_a_text():
    assert {notice.topic for notice in NOTICES.values()} <= set(TEXTS)


# --- limits, retries, push --------------------------------------------------------


def test_a_number_gets_at_most_the_daily_cap_of_texts(family, make_driver, monkeypatch, settings):
    at_noon(monkeypatch)
    settings.NOTIFY_SMS_MAX_PER_DAY = 2
    sarah, emily, link = family
    notices.preference_set(
        actor=emily,
        link=link,
        topics=[Topic.DRIVER_ASSIGNED, Topic.ARRIVED, Topic.ON_BOARD, Topic.DROPPED_OFF],
    )
    driver = make_driver(JHB[0] + 0.004, JHB[1])
    ride = Ride.objects.with_people().get(pk=booking.ride_book(**trip(sarah)).ride.pk)
    trips.ride_driver_arrived(ride=ride, driver=driver)
    trips.ride_start(ride=ride, driver=driver)
    trips.ride_complete(ride=ride, driver=driver)
    deliver_all()
    assert len([t for t in texts(settings) if t["to"] == emily.phone_number]) == 2
    skipped = notifications().get(recipient=emily, status=N.SKIPPED, topic=Topic.ON_BOARD)
    assert "NOTIFY_SMS_MAX_PER_DAY" in skipped.last_error


def test_an_urgent_text_is_sent_past_the_daily_cap(family, make_driver, monkeypatch, settings):
    """
    The day's cost cap skips routine texts only: a caregiver who has had
    their day's texts is still texted the passenger's SOS.
    """
    at_noon(monkeypatch)
    settings.NOTIFY_SMS_MAX_PER_DAY = 1
    sarah, emily, _ = family
    make_driver(JHB[0] + 0.004, JHB[1])
    ride = booking.ride_book(**trip(sarah)).ride
    deliver_all()
    assert len([t for t in texts(settings) if t["to"] == emily.phone_number]) == 1
    alarms.alarm_sos(ride=Ride.objects.with_people().get(pk=ride.pk), passenger=sarah)
    deliver_all()
    to_emily = [t["message"] for t in texts(settings) if t["to"] == emily.phone_number]
    assert len(to_emily) == 2
    alarm = notifications().get(recipient=emily, topic=Topic.ALARM)
    assert alarm.status == N.SENT, alarm.last_error


def test_the_global_sms_ceiling_postpones_a_text_without_spending_a_try(
    family, make_driver, monkeypatch, settings
):
    at_noon(monkeypatch)
    settings.SMS_MAX_PER_MINUTE = 0
    sarah, emily, _ = family
    make_driver(JHB[0] + 0.004, JHB[1])
    booking.ride_book(**trip(sarah))
    deliver_all()
    row = notifications().get(recipient=emily)
    assert (row.status, row.attempts) == (N.PENDING, 0)
    assert row.next_attempt_at > timezone.now() and "SMS_MAX_PER_MINUTE" in row.last_error
    assert texts(settings) == []


def test_a_failed_text_is_retried_with_doubling_waits_then_given_up(
    family, make_driver, monkeypatch, settings, caplog
):
    at_noon(monkeypatch)
    now = timezone.now()
    monkeypatch.setattr(timezone, "now", lambda: now)
    settings.NOTIFY_MAX_ATTEMPTS = 3
    settings.NOTIFY_RETRY_BASE_S = 30
    sarah, emily, _ = family
    make_driver(JHB[0] + 0.004, JHB[1])
    booking.ride_book(**trip(sarah))

    def refuse(**kwargs):
        raise sms.SMSDeliveryError("SMS Portal answered HTTP 503.")

    monkeypatch.setattr(sms, "sms_send", refuse)
    waits = []
    for _ in range(3):
        with caplog.at_level(logging.WARNING):
            deliver_all()
        row = notifications().get(recipient=emily)
        waits.append((row.next_attempt_at - now).total_seconds())
        now = row.next_attempt_at
        monkeypatch.setattr(timezone, "now", lambda now=now: now)
    assert waits == [30, 60, 120]
    assert (row.status, row.attempts, row.last_error) == (
        N.FAILED,
        3,
        "SMS Portal answered HTTP 503.",
    )
    monkeypatch.setattr(timezone, "now", lambda: now + timedelta(days=1))
    assert deliver_all() == 0


def test_push_that_no_longer_reaches_falls_back_to_sms_and_says_push_is_off_once(
    family, make_driver, monkeypatch, caplog, settings
):
    """
    Push chosen while it reached her, then the server's credentials went:
    said once in the log, and she is texted instead; likewise after her
    only device was unregistered (the app uninstalled).
    """
    at_noon(monkeypatch)
    sarah, emily, link = family
    settings.FCM_CREDENTIALS_FILE = "/etc/care-connect/fcm.json"
    notices.device_token_register(
        session=session_issue(user=emily).session, token="fcm-token-1", platform="android"
    )
    notices.preference_set(actor=emily, link=link, channel=NoticeChannel.PUSH)
    settings.FCM_CREDENTIALS_FILE = ""
    push._announced.clear()
    make_driver(JHB[0] + 0.004, JHB[1], first_name="John")
    booking.ride_book(**trip(sarah))
    with caplog.at_level(logging.INFO, logger="people.push"):
        deliver_all()
        deliver_all()
        assert push.push_enabled() is False
    said = [r for r in caplog.records if "Push notifications are off" in r.getMessage()]
    assert len(said) == 1
    row = notifications().get(recipient=emily)
    assert (row.channel, row.status) == (NoticeChannel.SMS, N.SENT)
    assert [t["message"] for t in texts(settings) if t["to"] == emily.phone_number] == [row.body]

    settings.FCM_CREDENTIALS_FILE = "/etc/care-connect/fcm.json"
    monkeypatch.setattr(push, "push_send", lambda **kwargs: [])
    notices.device_token_unregister(user=emily, token="fcm-token-1")
    ride = Ride.objects.with_people().get(ride_id="n1")
    trips.ride_driver_arrived(ride=ride, driver=ride.driver)
    trips.ride_start(ride=ride, driver=ride.driver)
    trips.ride_complete(ride=ride, driver=ride.driver)
    deliver_all()
    dropped = notifications().get(recipient=emily, topic=Topic.DROPPED_OFF)
    assert (dropped.channel, dropped.status) == (NoticeChannel.SMS, N.SENT)


def test_push_with_credentials_goes_to_every_device_and_forgets_dead_ones(
    family, make_driver, monkeypatch, settings
):
    at_noon(monkeypatch)
    settings.FCM_CREDENTIALS_FILE = "/etc/care-connect/fcm.json"
    sarah, emily, link = family
    for token in ("live", "dead"):
        notices.device_token_register(
            session=session_issue(user=emily).session, token=token, platform="android"
        )
    notices.preference_set(actor=emily, link=link, channel=NoticeChannel.PUSH)
    pushed = []

    def fake_push(*, tokens, title, body, data):
        pushed.append((sorted(tokens), body, data["topic"]))
        return ["dead"]

    monkeypatch.setattr(push, "push_send", fake_push)
    make_driver(JHB[0] + 0.004, JHB[1], first_name="John")
    booking.ride_book(**trip(sarah))
    deliver_all()
    assert pushed == [(["dead", "live"], pushed[0][1], Topic.DRIVER_ASSIGNED)]
    assert "John" in pushed[0][1]
    assert list(emily.device_tokens.values_list("token", flat=True)) == ["live"]
    assert notifications().get(recipient=emily).status == N.SENT


def test_preferences_without_a_row_are_the_defaults(family):
    sarah, emily, link = family
    assert notices.preference_of(link=link)["topics"] == list(notices.CAREGIVER_DEFAULT)
    assert notices.preference_of(passenger=sarah)["customised"] is False
    assert not NoticePreference.objects.exists()


def test_the_admin_lists_notifications_with_status_and_error_and_sends_again(
    family, make_driver, make_user, client, monkeypatch
):
    """
    Support sees what is owed before the worker fans it out (the booking's
    events not read yet, an arrival's notices owed), each row's fate, and
    resends.
    """
    import re

    from tests.conftest import staff_login

    def unread() -> int:
        page = client.get("/admin/dispatch/noticelogmark/")
        assert page.status_code == 200
        return int(re.search(rb'class="field-unread[^"]*">(\d+)<', page.content)[1])

    at_noon(monkeypatch)
    sarah, emily, _ = family
    notifications()  # the worker has run before
    make_driver(JHB[0] + 0.004, JHB[1])
    ride = booking.ride_book(**trip(sarah)).ride
    admin = make_user("", is_staff=True, is_superuser=True)
    staff_login(client, admin)
    # requested, searching, assigned
    assert unread() == 3
    ride = Ride.objects.with_people().get(pk=ride.pk)
    trips.ride_driver_arrived(ride=ride, driver=ride.driver)
    owed = client.get("/admin/dispatch/noticedue/")
    assert owed.status_code == 200 and b"n1" in owed.content
    row = notifications().get(recipient=emily, event="assigned")
    assert unread() == 0
    row.status, row.last_error = N.FAILED, "SMS Portal answered HTTP 503."
    row.save()
    assert b"n1" not in client.get("/admin/dispatch/noticedue/").content
    page = client.get("/admin/dispatch/notification/")
    assert page.status_code == 200
    assert b"SMS Portal answered HTTP 503." in page.content and b"Failed" in page.content
    client.post(
        "/admin/dispatch/notification/",
        {"action": "send_again", "_selected_action": [row.pk]},
    )
    row.refresh_from_db()
    assert (row.status, row.attempts, row.last_error) == (N.PENDING, 0, "")


def test_the_committed_catalogues_are_compiled_from_their_po_files(tmp_path):
    """A fresh clone translates without running msgfmt: each .mo matches its .po."""
    import shutil
    import subprocess
    from pathlib import Path

    msgfmt = shutil.which("msgfmt") or "/usr/bin/msgfmt"
    if not Path(msgfmt).exists():
        cannot_run("needs gettext's msgfmt (apt-get install gettext)")
    locale = Path(__file__).resolve().parents[2] / "dispatch" / "locale"
    for language in Language.values:
        folder = locale / language / "LC_MESSAGES"
        fresh = tmp_path / f"{language}.mo"
        subprocess.run(
            [msgfmt, "-o", str(fresh), str(folder / "django.po")], check=True, timeout=30
        )
        assert fresh.read_bytes() == (folder / "django.mo").read_bytes(), language


def test_a_pickup_planned_later_than_asked_is_told_as_delayed_with_its_minutes(
    family, monkeypatch, settings
):
    from dispatch import broadcast

    at_noon(monkeypatch)
    settings.NOTIFY_DELAY_MIN = 10
    sarah, emily, link = family
    notices.preference_set(actor=emily, link=link, channel=NoticeChannel.IN_APP)
    asked = timezone.now() + timedelta(days=1)
    ride = Ride.objects.create(
        ride_id="late-1",
        passenger=sarah,
        booked_by=sarah,
        status=RideStatus.SCHEDULED,
        version=2,
        pickup_at=asked,
        confirmed_pickup_at=asked + timedelta(minutes=8),
        pickup_latitude=JHB[0],
        pickup_longitude=JHB[1],
        dropoff_latitude=JHB[0] + 0.05,
        dropoff_longitude=JHB[1] + 0.05,
    )
    with transaction.atomic():
        broadcast.pickup_window_told(ride, changed=True)
    assert not notifications().exists()
    ride.confirmed_pickup_at, ride.version = asked + timedelta(minutes=25), 3
    with transaction.atomic():
        broadcast.pickup_window_told(ride, changed=True)
    row = notifications().get(recipient=emily)
    assert (row.topic, row.channel, row.params) == (Topic.DELAYED, "in_app", {"minutes": 25})
    # Its window told, the ride is taken on: Sarah's default text goes too.
    texted = notifications().get(recipient=sarah)
    assert (texted.topic, texted.channel) == (Topic.DELAYED, NoticeChannel.SMS)


def test_fcm_is_asked_once_for_every_device_and_names_the_uninstalled_ones(monkeypatch, settings):
    from types import SimpleNamespace

    import firebase_admin
    from firebase_admin import credentials, messaging

    settings.FCM_CREDENTIALS_FILE = "/etc/care-connect/fcm.json"
    monkeypatch.setattr(push, "_app", [])
    monkeypatch.setattr(credentials, "Certificate", lambda path: ("cert", path))
    monkeypatch.setattr(firebase_admin, "initialize_app", lambda cred, name: ("app", cred, name))
    asked = []

    def send(message, app):
        asked.append((message.tokens, message.notification.body, message.data, app[0]))
        gone = messaging.UnregisteredError("Requested entity was not found.")
        return SimpleNamespace(
            success_count=1,
            responses=[
                SimpleNamespace(success=True, exception=None),
                SimpleNamespace(success=False, exception=gone),
            ],
        )

    monkeypatch.setattr(messaging, "send_each_for_multicast", send)
    dead = push.push_send(
        tokens=["live", "dead"], title="Care Connect", body="Hello", data={"topic": "x"}
    )
    assert dead == ["dead"]
    assert asked == [(["live", "dead"], "Hello", {"topic": "x"}, "app")]


# --- the escalation's and the watchdog's events (dispatch.watch, dispatch.alarms) ---------


def test_at_night_the_rider_hears_the_arrival_and_the_caregivers_the_door_wait(
    family, make_driver, monkeypatch, settings
):
    """
    At 23:30 the passenger is texted that the driver arrived (their own ride
    knows no quiet hours); N minutes on, the caregivers that the driver
    waits at the door, urgent through their quiet hours.
    """
    settings.NO_SHOW_CAREGIVERS_AFTER_MIN = 2
    night = timezone.make_aware(datetime.combine(timezone.localdate(), time(23, 30)))
    monkeypatch.setattr(outbox, "event_time", lambda at: night)
    sarah, emily, _ = family
    make_driver(JHB[0] + 0.004, JHB[1], first_name="John")
    ride = booking.ride_book(**trip(sarah)).ride
    notifications().all().delete()
    ride = Ride.objects.with_people().get(pk=ride.pk)
    trips.ride_driver_arrived(ride=ride, driver=ride.driver)
    told = notifications().order_by("pk")
    assert list(told.values_list("recipient_id", "topic")) == [(sarah.pk, Topic.ARRIVED)]
    watch.waiting_escalate(now=timezone.now() + timedelta(minutes=2, seconds=1))
    told = notifications().order_by("pk")
    assert list(told.values_list("recipient_id", "topic", "event")) == [
        (sarah.pk, Topic.ARRIVED, "driver_arrived"),
        (emily.pk, Topic.DOOR_WAIT, "waiting_caregivers_told"),
    ]
    deliver_all()
    sent = {t["to"]: t["message"] for t in texts(settings)}
    assert "waiting at the door" in sent[emily.phone_number]


def test_an_sos_alarm_texts_the_caregivers_who_receive_notifications(
    family, make_driver, make_user, make_link, monkeypatch, settings
):
    """The passenger's sos: an urgent notice to caregivers who may receive them, nobody else."""
    at_noon(monkeypatch)
    sarah, emily, _ = family
    tom = make_user("caregiver", first_name="Tom")
    make_link(sarah, tom, can_receive_notifications=False)
    make_driver(JHB[0] + 0.004, JHB[1])
    ride = booking.ride_book(**trip(sarah)).ride
    alarms.alarm_sos(ride=Ride.objects.with_people().get(pk=ride.pk), passenger=sarah)
    assert list(notifications().filter(topic=Topic.ALARM).values_list("recipient_id", "event")) == [
        (emily.pk, "alarm_raised")
    ]


@pytest.mark.postgres
def test_the_one_statement_booking_runs_the_same_statements_with_notifications_on_or_off(
    family, make_driver, monkeypatch, settings
):
    """Its events are its notices' debt: with notifications on it writes and runs nothing more."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    at_noon(monkeypatch)
    sarah, emily, link = family
    monkeypatch.setattr(booking, "ONE_STATEMENT", True)
    make_driver(JHB[0] + 0.004, JHB[1])
    make_driver(JHB[0] + 0.005, JHB[1])
    statements = {}
    for on in (False, True):
        settings.NOTIFY_ENABLED = on
        with CaptureQueriesContext(connection) as captured:
            ride = booking.ride_book(**trip(sarah, ride_id=f"n{int(on)}")).ride
        statements[on] = [q["sql"].split()[0] for q in captured.captured_queries]
        rides.ride_cancel(ride=Ride.objects.get(pk=ride.pk), actor=sarah, cancelled_by="passenger")
    assert statements[True] == statements[False]
    assert not NoticeDue.objects.filter(event__in=["searching", "assigned"]).exists()
    assert set(
        notifications().filter(recipient=emily, event="assigned").values_list("ride__ride_id")
    ) == {("n0",), ("n1",)}
