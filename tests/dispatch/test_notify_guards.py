"""
What the notify worker checks again as each row goes: the caregiver still
hears, the claim is still its own, the daily cap counts texts taken, push
still reaches; and what the texts say and when: never the passenger's
needs, the driver as at the event, one SMS part for any name, a delay once
the plan told the window, `booked` once.
"""

from __future__ import annotations

from datetime import time, timedelta
from types import SimpleNamespace

import pytest
from django.db import transaction
from django.utils import formats, timezone, translation

from dispatch import booking, broadcast, matching, rides, series, trips
from dispatch.models import NotificationStatus, Ride, RideStatus
from dispatch.notify import delivery
from dispatch.notify.texts import notice_text
from dispatch.scheduling import Place, ride_book_ahead, ride_ready
from people import caregivers, notices, sms
from people.models import Language, NoticeChannel, VehicleType
from people.notices import Topic
from people.sessions import session_issue
from tests.conftest import notifications
from tests.dispatch.test_notify import (  # noqa: F401  (the autouse gateway fixture)
    JHB,
    _gateway,
    at_noon,
    deliver_all,
    family,
    texts,
    trip,
)

pytestmark = pytest.mark.django_db(transaction=True)
N = NotificationStatus


def test_a_caregiver_whose_link_is_revoked_is_not_texted_what_was_pending(
    family, make_driver, monkeypatch, settings
):
    """
    The passenger revokes Emily's link ("loses every permission at once")
    while her driver_assigned text waits to be sent (a retry, the SMS
    ceiling, or just the worker's next pass): it must not go to her.
    """
    at_noon(monkeypatch)
    sarah, emily, link = family
    make_driver(JHB[0] + 0.004, JHB[1], first_name="John")
    booking.ride_book(**trip(sarah))
    assert notifications().filter(recipient=emily, status=N.PENDING).exists()
    caregivers.caregiver_link_revoke(link=link, actor=sarah)
    deliver_all()
    assert [t for t in texts(settings) if t["to"] == emily.phone_number] == []


def test_a_caregiver_whose_notification_permission_is_withdrawn_is_not_texted(
    family, make_driver, monkeypatch, settings
):
    at_noon(monkeypatch)
    sarah, emily, link = family
    make_driver(JHB[0] + 0.004, JHB[1], first_name="John")
    booking.ride_book(**trip(sarah))
    assert notifications().filter(recipient=emily, status=N.PENDING).exists()
    caregivers.caregiver_link_update(link=link, actor=sarah, can_receive_notifications=False)
    deliver_all()
    assert [t for t in texts(settings) if t["to"] == emily.phone_number] == []


@pytest.mark.parametrize("change", ["switched_off", "made_a_driver"])
def test_a_caregiver_whose_account_can_no_longer_care_is_not_texted(
    family, make_driver, monkeypatch, settings, change
):
    """
    Support switches Emily's account off (or makes it a driver's, which
    cares for nobody): her link grants nothing from then on, so neither
    the text waiting to be sent nor the ride's later news reaches her phone.
    """
    at_noon(monkeypatch)
    sarah, emily, link = family
    driver = make_driver(JHB[0] + 0.004, JHB[1], first_name="John")
    ride = booking.ride_book(**trip(sarah)).ride
    assert notifications().filter(recipient=emily, status=N.PENDING).exists()
    if change == "switched_off":
        emily.is_active = False
    else:
        emily.user_type = "driver"
    emily.save()
    trips.ride_driver_arrived(ride=ride, driver=driver)
    trips.ride_start(ride=ride, driver=driver)
    trips.ride_complete(ride=ride, driver=driver)
    deliver_all()
    assert not notifications().filter(recipient=emily, status=N.PENDING).exists()
    assert [t for t in texts(settings) if t["to"] == emily.phone_number] == []


def test_failed_gateway_attempts_do_not_use_up_the_daily_cost_cap(
    family, make_driver, monkeypatch, settings
):
    """
    NOTIFY_SMS_MAX_PER_DAY counts texts to a number; a gateway that refused
    (nothing sent, nothing paid) counts none. The gateway refuses twice,
    then works: Emily's next notice is sent, not skipped as over the cap.
    """
    at_noon(monkeypatch)
    now = timezone.now()
    monkeypatch.setattr(timezone, "now", lambda: now)
    settings.NOTIFY_SMS_MAX_PER_DAY = 2
    settings.NOTIFY_MAX_ATTEMPTS = 2
    sarah, emily, link = family
    notices.preference_set(actor=emily, link=link, topics=[Topic.DRIVER_ASSIGNED, Topic.ARRIVED])
    notices.preference_set(actor=sarah, passenger=sarah, topics=[])
    make_driver(JHB[0] + 0.004, JHB[1], first_name="John")
    ride = Ride.objects.with_people().get(pk=booking.ride_book(**trip(sarah)).ride.pk)
    real_send = sms.sms_send

    def refuse(**kwargs):
        raise sms.SMSDeliveryError("SMS Portal answered HTTP 503.")

    monkeypatch.setattr(sms, "sms_send", refuse)
    deliver_all()
    later = now + timedelta(minutes=5)
    monkeypatch.setattr(timezone, "now", lambda: later)
    deliver_all()
    assert notifications().get(recipient=emily, topic=Topic.DRIVER_ASSIGNED).status == N.FAILED
    assert texts(settings) == []
    monkeypatch.setattr(sms, "sms_send", real_send)
    trips.ride_driver_arrived(ride=ride, driver=ride.driver)
    deliver_all()
    arrived = notifications().get(recipient=emily, topic=Topic.ARRIVED)
    assert (arrived.status, arrived.last_error) == (N.SENT, "")


@pytest.mark.logs_errors
def test_a_text_the_gateway_fails_on_unexpectedly_holds_up_no_other(
    family, make_driver, monkeypatch, settings
):
    """
    The gateway breaks on Sarah's text with an error of no known kind:
    Emily's, claimed in the same batch, still goes in that pass, and
    Sarah's counts a failed try, retried later, not a batch halted at
    every lease.
    """
    at_noon(monkeypatch)
    sarah, emily, _ = family
    make_driver(JHB[0] + 0.004, JHB[1], first_name="John")
    booking.ride_book(**trip(sarah))
    real_send = sms.sms_send

    def gateway(*, phone_number, message):
        if phone_number == sarah.phone_number:
            raise RuntimeError("gateway client fault")
        real_send(phone_number=phone_number, message=message)

    monkeypatch.setattr(sms, "sms_send", gateway)
    deliver_all()
    assert [t["to"] for t in texts(settings)] == [emily.phone_number]
    failed = notifications().get(recipient=sarah)
    assert (failed.status, failed.attempts, failed.claim_token) == (N.PENDING, 1, "")
    assert "gateway client fault" in failed.last_error


def test_a_batch_that_outlasts_its_lease_sends_nothing_twice(
    family, make_user, make_link, make_driver, monkeypatch, settings
):
    """
    A slow gateway (25 s a text) keeps a worker in its batch past the
    batch's 60 s lease; each row's lease is renewed as it goes, so another
    worker's pass meanwhile takes none of them.
    """
    at_noon(monkeypatch)
    settings.NOTIFY_CLAIM_S = 60
    sarah, emily, _ = family
    tom = make_user("caregiver", first_name="Tom")
    make_link(sarah, tom, can_receive_notifications=True)
    make_driver(JHB[0] + 0.004, JHB[1], first_name="John")
    booking.ride_book(**trip(sarah))
    assert notifications().count() == 3  # fanned out: Sarah, Emily, Tom each owe one text
    real_send = sms.sms_send
    clock = {"now": timezone.now()}
    monkeypatch.setattr(timezone, "now", lambda: clock["now"])

    def slow_gateway(**kwargs):
        real_send(**kwargs)
        clock["now"] += timedelta(seconds=25)
        if len(texts(settings)) == 3:
            # 75 s into the batch: another worker's pass.
            assert delivery.deliver_due() == 0

    monkeypatch.setattr(sms, "sms_send", slow_gateway)
    assert delivery.deliver_due() == 3
    sent = [t["to"] for t in texts(settings)]
    assert sorted(sent) == sorted({sarah.phone_number, emily.phone_number, tom.phone_number})
    assert set(notifications().values_list("status", flat=True)) == {N.SENT}


def test_the_driver_assigned_text_does_not_say_the_passenger_needs_a_wheelchair(
    family, make_driver, monkeypatch, settings
):
    """
    A passenger who needs a wheelchair is only ever driven in a
    wheelchair-accessible vehicle, so the text names its plate, not its kind,
    which would tell every recipient (and the gateway, and a locked phone's
    screen) the passenger's need.
    """
    at_noon(monkeypatch)
    sarah, emily, _ = family
    sarah.passenger_profile.needs_wheelchair = True
    sarah.passenger_profile.save()
    make_driver(
        JHB[0] + 0.004, JHB[1], first_name="John", vehicle_type=VehicleType.WHEELCHAIR_ACCESSIBLE
    )
    booking.ride_book(**trip(sarah))
    deliver_all()
    sent = {t["to"]: t["message"] for t in texts(settings)}
    assert emily.phone_number in sent
    assert "heelchair" not in sent[emily.phone_number], sent[emily.phone_number]


def _every_app_uninstalled(monkeypatch, settings) -> None:
    """Push on, and FCM answering every token UnregisteredError (the app uninstalled)."""
    import firebase_admin
    from firebase_admin import credentials, messaging

    from people import push

    settings.FCM_CREDENTIALS_FILE = "/etc/care-connect/fcm.json"
    monkeypatch.setattr(push, "_app", [])
    monkeypatch.setattr(credentials, "Certificate", lambda path: ("cert", path))
    monkeypatch.setattr(firebase_admin, "initialize_app", lambda cred, name: ("app", cred, name))

    def send(message, app):
        gone = messaging.UnregisteredError("Requested entity was not found.")
        return SimpleNamespace(
            success_count=0,
            responses=[SimpleNamespace(success=False, exception=gone) for _ in message.tokens],
        )

    monkeypatch.setattr(messaging, "send_each_for_multicast", send)


def test_a_caregiver_whose_only_device_was_uninstalled_is_texted_instead(
    family, make_driver, monkeypatch, settings
):
    """
    Emily chose push, then uninstalled the app (her one device): the token
    FCM calls gone is forgotten even though no device took the push, so her
    later notices (an SOS alarm here) go by SMS, as documented.
    """
    from dispatch import alarms

    at_noon(monkeypatch)
    _every_app_uninstalled(monkeypatch, settings)
    sarah, emily, link = family
    notices.device_token_register(
        session=session_issue(user=emily).session, token="uninstalled", platform="android"
    )
    notices.preference_set(actor=emily, link=link, channel=NoticeChannel.PUSH)
    make_driver(JHB[0] + 0.004, JHB[1], first_name="John")
    ride = booking.ride_book(**trip(sarah)).ride
    deliver_all()
    alarms.alarm_sos(ride=Ride.objects.with_people().get(pk=ride.pk), passenger=sarah)
    alarm = notifications().get(recipient=emily, topic=Topic.ALARM)
    assert alarm.channel == NoticeChannel.SMS, (
        f"alarm by {alarm.channel}; tokens kept: "
        f"{list(emily.device_tokens.values_list('token', flat=True))}"
    )


# --- what the texts say, and when --------------------------------------------


def _scheduled(sarah, *, late_by_min: int, version: int = 2) -> Ride:
    asked = timezone.now() + timedelta(days=1)
    return Ride.objects.create(
        ride_id="late-r",
        passenger=sarah,
        booked_by=sarah,
        status=RideStatus.SCHEDULED,
        version=version,
        pickup_at=asked,
        confirmed_pickup_at=asked + timedelta(minutes=late_by_min),
        pickup_latitude=JHB[0],
        pickup_longitude=JHB[1],
        dropoff_latitude=JHB[0] + 0.05,
        dropoff_longitude=JHB[1] + 0.05,
    )


def _link(sarah, emily):
    from people.models import CaregiverLink

    return CaregiverLink.objects.get(passenger=sarah, caregiver=emily)


def test_delayed_reaches_a_caregiver_on_the_defaults(family, monkeypatch, settings):
    at_noon(monkeypatch)
    sarah, emily, _ = family
    assert Topic.DELAYED in notices.preference_of(link=_link(sarah, emily))["topics"]
    ride = _scheduled(sarah, late_by_min=40)
    with transaction.atomic():
        broadcast.pickup_window_told(ride, changed=True)
    deliver_all()
    assert [t for t in texts(settings) if t["to"] == emily.phone_number], (
        "a pickup 40 min later than asked was told to nobody on the default (SMS) channel"
    )


@pytest.mark.parametrize(
    ("language", "said"),
    [
        (
            Language.ENGLISH,
            "Care Connect: Sarah's pickup on {when} is about 40 min later than asked.",
        ),
        (
            Language.AFRIKAANS,
            "Care Connect: Sarah se oplaai op {when} is omtrent 40 min later as gevra.",
        ),
        (
            Language.ZULU,
            "Care Connect: Ukulandwa kuka-Sarah kwango-{when} kuzoba sekwephuzile"
            " cishe ngemizuzu engu-40.",
        ),
    ],
)
def test_a_delay_text_names_the_day_and_time_of_the_ride_it_is_about(
    family, monkeypatch, settings, language, said
):
    """
    Sarah rides to the clinic three times a week: the text that her pickup
    is later than asked says which one, by its day and its planned time.
    """
    at_noon(monkeypatch)
    sarah, emily, _ = family
    emily.language = language
    emily.save()
    ride = _scheduled(sarah, late_by_min=40)
    ride.service_date = timezone.localdate(ride.pickup_at)
    ride.save()
    with transaction.atomic():
        broadcast.pickup_window_told(ride, changed=True)
    deliver_all()
    planned = timezone.localtime(ride.confirmed_pickup_at)
    with translation.override(language):
        when = formats.date_format(planned, "D j M H:i")
    told = [t["message"] for t in texts(settings) if t["to"] == emily.phone_number]
    assert told == [said.format(when=when)]


def test_a_first_plan_far_later_than_asked_is_told_as_delayed(family, monkeypatch):
    at_noon(monkeypatch)
    sarah, emily, link = family
    notices.preference_set(actor=emily, link=link, channel=NoticeChannel.IN_APP)
    ride = _scheduled(sarah, late_by_min=40)
    with transaction.atomic():
        broadcast.pickup_window_told(ride, changed=False)
    assert notifications().filter(topic=Topic.DELAYED, recipient=emily).exists()


def test_a_pending_assigned_text_still_names_the_driver_who_was_assigned(
    family, make_driver, monkeypatch, settings
):
    at_noon(monkeypatch)
    sarah, _, _ = family
    john = make_driver(JHB[0] + 0.004, JHB[1], first_name="John")
    ride = booking.ride_book(**trip(sarah)).ride
    notifications()  # fanned out, not yet sent (gateway slow / ceiling / retry)
    ride = Ride.objects.with_people().get(pk=ride.pk)
    matching.ride_driver_cancel(ride=ride, driver=john)
    deliver_all()
    (sent,) = [
        t for t in texts(settings) if t["to"] == sarah.phone_number and "will drive" in t["message"]
    ]
    assert "John will drive Sarah" in sent["message"], sent["message"]


def test_texts_with_a_driver_called_daniel_fit_one_part(family, make_driver, monkeypatch, settings):
    """A name outside GSM-7 (Daniël, Zoë) loses its accent in a text: one part, not two."""
    at_noon(monkeypatch)
    sarah, _, _ = family
    sarah.first_name = "Zoë"
    sarah.save()
    make_driver(JHB[0] + 0.004, JHB[1], first_name="Daniël")
    ride = Ride.objects.with_people().get(pk=booking.ride_book(**trip(sarah)).ride.pk)
    over = [
        (language, topic, sms.sms_parts(text))
        for language in Language.values
        for topic in Topic.values
        if sms.sms_parts(text := notice_text(topic, ride, {"minutes": 5}, language, for_sms=True))
        > 1
    ]
    assert over == [], repr(over)
    deliver_all()
    sent = [t["message"] for t in texts(settings) if t["to"] == sarah.phone_number]
    assert sent == [
        "Care Connect: Daniel will drive Zoe. "
        + ride.driver.driver_profile.vehicle_registration
        + "."
    ]
    # In the app, the names stay as they are written.
    assert "Daniël" in notice_text(Topic.DRIVER_ASSIGNED, ride, {}, "en")


def test_a_will_call_return_is_not_told_booked_again_on_ready(family, monkeypatch, settings):
    at_noon(monkeypatch)
    sarah, emily, link = family
    notices.preference_set(
        actor=emily, link=link, topics=[Topic.BOOKED], channel=NoticeChannel.IN_APP
    )
    now = timezone.now()
    outbound = ride_book_ahead(
        passenger=sarah,
        booked_by=sarah,
        pickup=Place(JHB[0] + 0.01, JHB[1], "Home"),
        dropoff=Place(JHB[0] + 0.03, JHB[1] + 0.01, "Clinic"),
        pickup_at=now + timedelta(hours=2),
        return_will_call=True,
    )
    back = outbound.returns.get()
    before = notifications().filter(ride=back, topic=Topic.BOOKED, recipient=emily).count()
    assert before == 1
    # Dropped off at the clinic: the return may be said ready.
    Ride.objects.filter(pk=outbound.pk).update(status=RideStatus.COMPLETED)
    ride_ready(ride=back, actor=sarah)
    assert notifications().filter(ride=back, topic=Topic.BOOKED, recipient=emily).count() == 1


def test_booked_is_never_texted_before_a_driver_accepted(family, monkeypatch, settings):
    """
    Push that stops reaching its chooser falls back to SMS only once the
    ride is taken on: a `booked` whose push found the app uninstalled is
    not texted while no driver has accepted.
    """
    at_noon(monkeypatch)
    settings.NOTIFY_RETRY_BASE_S = 0
    _every_app_uninstalled(monkeypatch, settings)
    sarah, emily, link = family
    notices.device_token_register(
        session=session_issue(user=sarah).session, token="uninstalled", platform="android"
    )
    notices.preference_set(
        actor=sarah, passenger=sarah, channel=NoticeChannel.PUSH, topics=["booked", "cancelled"]
    )
    booking.ride_book(**trip(sarah))  # no driver anywhere: searching, then no_drivers
    deliver_all()
    for _ in range(3):
        deliver_all()
    booked = notifications().get(recipient=sarah, topic=Topic.BOOKED)
    sent_to_sarah = [t for t in texts(settings) if t["to"] == sarah.phone_number]
    assert sent_to_sarah == [], (booked.channel, booked.status, sent_to_sarah)
    assert not (booked.channel == NoticeChannel.SMS and booked.status == NotificationStatus.SENT)


def test_an_assigned_text_names_the_driver_assigned_even_if_fanned_out_after_a_give_back(
    family, make_driver, monkeypatch, settings
):
    """
    The driver is kept with the notice owed, as the event found them: fanned
    out after John gave the ride back (a worker busy or restarting), the
    text still names John.
    """
    at_noon(monkeypatch)
    sarah, _, _ = family
    john = make_driver(JHB[0] + 0.004, JHB[1], first_name="John")
    ride = booking.ride_book(**trip(sarah)).ride
    assert ride.driver_id == john.pk
    # Not fanned out yet: the NoticeDue rows wait for the worker.
    make_driver(JHB[0] + 0.005, JHB[1], first_name="Mike")
    matching.ride_driver_cancel(ride=Ride.objects.with_people().get(pk=ride.pk), driver=john)
    deliver_all()
    told = [t["message"] for t in texts(settings) if t["to"] == sarah.phone_number]
    assert any("John will drive Sarah" in m for m in told), told


def clinic_trip_tomorrow(sarah, **extra):
    """Sarah's clinic trip tomorrow at 09:30, booked ahead by her (the ride, its pickup)."""
    pickup_at = (timezone.localtime() + timedelta(days=1)).replace(hour=9, minute=30)
    ahead = ride_book_ahead(
        passenger=sarah,
        booked_by=sarah,
        pickup=Place(JHB[0] + 0.01, JHB[1], "Home"),
        dropoff=Place(JHB[0] + 0.03, JHB[1] + 0.01, "Clinic"),
        pickup_at=pickup_at,
        **extra,
    )
    return ahead, pickup_at


def test_a_ride_booked_ahead_and_called_off_before_any_plan_is_texted(
    family, dispatcher, monkeypatch, settings
):
    """
    Sarah's clinic trip tomorrow, booked ahead, no plan published yet: a
    dispatcher cancels it. Nobody has taken it on, but Sarah and Emily wait
    for it, so both are texted. A ride booked now and cancelled before a
    driver accepted is not (its rider is in the app).
    """
    at_noon(monkeypatch)
    sarah, emily, _ = family
    ahead, pickup_at = clinic_trip_tomorrow(sarah)
    rides.ride_cancel(
        ride=ahead, actor=dispatcher, cancelled_by="dispatcher", reason="Clinic closed"
    )
    now = booking.ride_book(**trip(sarah)).ride  # no driver anywhere
    rides.ride_cancel(ride=Ride.objects.get(pk=now.pk), actor=sarah, cancelled_by="passenger")
    deliver_all()

    told = [(t["to"], t["message"]) for t in texts(settings)]
    assert sorted(to for to, _ in told) == sorted([sarah.phone_number, emily.phone_number])
    # Which of her rides: its day and time.
    day = f"{pickup_at:%a} {pickup_at.day} {pickup_at:%b} 09:30"
    assert {message for _, message in told} == {
        f"Care Connect: Sarah's ride on {day} was cancelled."
    }
    cancelled = notifications().filter(topic=Topic.CANCELLED)
    assert set(cancelled.values_list("ride_id", flat=True)) == {ahead.pk}


def test_a_will_call_returns_cancel_text_names_its_day(family, dispatcher, monkeypatch, settings):
    """
    Cancelling tomorrow's clinic trip takes its will-call return with it;
    the return has no time, so its text names the day, not just "a ride".
    """
    at_noon(monkeypatch)
    sarah, emily, _ = family
    ahead, pickup_at = clinic_trip_tomorrow(sarah, return_will_call=True)
    rides.ride_cancel(ride=ahead, actor=dispatcher, cancelled_by="dispatcher", reason="Closed")
    deliver_all()
    told = sorted(t["message"] for t in texts(settings) if t["to"] == emily.phone_number)
    day = f"{pickup_at:%a} {pickup_at.day} {pickup_at:%b}"
    assert told == [
        f"Care Connect: Sarah's ride on {day} 09:30 was cancelled.",
        f"Care Connect: Sarah's ride on {day} was cancelled.",
    ]


def test_a_ride_given_back_then_cancelled_is_texted_to_those_told_its_driver(
    family, make_driver, monkeypatch, settings
):
    """Emily was texted that John would drive Sarah; she is texted that the ride is off too."""
    at_noon(monkeypatch)
    sarah, emily, _ = family
    john = make_driver(JHB[0] + 0.004, JHB[1], first_name="John")
    ride = booking.ride_book(**trip(sarah)).ride
    assert ride.driver_id == john.pk
    # John gives it back; nobody else is near, so it searches again.
    matching.ride_driver_cancel(ride=Ride.objects.with_people().get(pk=ride.pk), driver=john)
    ride = Ride.objects.get(pk=ride.pk)
    assert (ride.status, ride.driver_id) == (RideStatus.SEARCHING, None)
    rides.ride_cancel(ride=ride, actor=sarah, cancelled_by="passenger")
    deliver_all()
    told = [t["message"] for t in texts(settings) if t["to"] == emily.phone_number]
    assert told == [
        "Care Connect: John will drive Sarah. " + john.driver_profile.vehicle_registration + ".",
        "Care Connect: Sarah's ride was cancelled.",
    ]


def test_rides_a_series_withdraws_are_not_texted_one_by_one(family, monkeypatch, settings):
    """
    Sarah pauses her daily clinic series for a week (a hospital stay): the
    week's rides, never taken on, are withdrawn. She and Emily made or know
    of the change; a text for each ride would spend their daily texts.
    """
    at_noon(monkeypatch)
    sarah, emily, _ = family
    start = timezone.localdate() + timedelta(days=1)
    made = series.series_create(
        passenger=sarah,
        booked_by=sarah,
        weekdays=list(range(7)),
        start_date=start,
        pickup=Place(JHB[0] + 0.01, JHB[1], "Home"),
        dropoff=Place(JHB[0] + 0.03, JHB[1] + 0.01, "Clinic"),
        pickup_time=time(9, 0),
    )
    change = series.series_pause(
        series=made.series, actor=sarah, start_date=start, end_date=start + timedelta(days=6)
    )
    assert len(change.cancelled) == 7
    deliver_all()
    assert texts(settings) == []
