"""
The ride event log as the outbox of the notices its rows say all of (the
booking's): the notify worker reads it by id from a mark
(dispatch.notify.outbox), and finds every event that owes a notice once,
however the transactions that wrote them commit: later than a higher id,
never (rolled back), or while the reading worker fails half-way.
"""

from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction
from django.db.models import Max

from dispatch import booking, matching
from dispatch.models import NoticeLogMark, Notification, Ride, RideEvent
from dispatch.notify import delivery, outbox
from people import notices
from people.models import NoticeChannel
from people.notices import Topic
from tests.dispatch.test_notify import (  # noqa: F401
    JHB,
    _gateway,  # noqa: F401
    at_noon,
    family,
    texts,
    trip,
)

pytestmark = pytest.mark.django_db(transaction=True)


def told(event: str) -> set[tuple[str, str]]:
    """(ride id, recipient's first name) of the notifications of `event` made so far."""
    return set(
        Notification.objects.filter(event=event).values_list(
            "ride__ride_id", "recipient__first_name"
        )
    )


def fan_out_all() -> None:
    while outbox.fan_out():
        pass


@pytest.fixture
def tom(make_user, make_link):
    """Another passenger, whose caregiver Kim receives notifications."""
    tom = make_user("passenger", first_name="Tom")
    make_link(tom, make_user("caregiver", first_name="Kim"), can_receive_notifications=True)
    return tom


def test_a_run_of_missing_ids_splits_as_its_ids_come():
    gaps = [[10, 20, 1.0], [30, 30, 2.0]]
    assert outbox._gaps_without(gaps, {10, 14, 15, 20, 30}) == [[11, 13, 1.0], [16, 19, 1.0]]
    assert outbox._gaps_without(gaps, set()) == gaps


@pytest.mark.postgres
def test_an_event_committed_after_a_higher_id_is_still_read(family, tom, make_driver, monkeypatch):
    """
    Sarah's booking takes its ids first and commits last (its transaction
    still open); Tom's, taken after and committed first, is read at once.
    Sarah's is read when it commits: Emily is told too, once.
    """
    at_noon(monkeypatch)
    sarah, emily, _ = family
    make_driver(JHB[0] + 0.004, JHB[1])
    make_driver(JHB[0] + 0.005, JHB[1])
    booked, commit = threading.Event(), threading.Event()

    def slow() -> None:
        try:
            with transaction.atomic():
                booking.ride_book(**trip(sarah, "slow"))
                booked.set()
                assert commit.wait(10)
        finally:
            connection.close()

    thread = threading.Thread(target=slow)
    thread.start()
    try:
        assert booked.wait(10)
        booking.ride_book(**trip(tom, "quick"))
        fan_out_all()
        assert told("assigned") == {("quick", "Tom"), ("quick", "Kim")}
        slow_ids = set(RideEvent.objects.filter(ride__ride_id="quick").values_list("pk", flat=True))
        mark = NoticeLogMark.objects.get()
        assert mark.read_to == max(slow_ids)
        assert mark.gaps, "the slow booking's ids are looked for"
    finally:
        commit.set()
        thread.join(10)
    fan_out_all()
    assert told("assigned") == {
        ("quick", "Tom"),
        ("quick", "Kim"),
        ("slow", "Sarah"),
        ("slow", "Emily"),
    }
    slow_first = RideEvent.objects.filter(ride__ride_id="slow").aggregate(m=Max("pk"))["m"]
    assert not any(
        first <= slow_first <= last for first, last, _ in NoticeLogMark.objects.get().gaps
    )
    fan_out_all()
    assert Notification.objects.filter(event="assigned").count() == 4


def test_ids_that_never_come_are_given_up_after_the_grace(family, tom, make_driver, monkeypatch):
    """
    An id below the highest read that never commits (its transaction rolled
    back; here its row is gone) is looked for at each pass, then given up
    once GAP_GRACE_S has passed: the mark reads on past it.
    """
    at_noon(monkeypatch)
    sarah, _, _ = family
    fan_out_all()
    make_driver(JHB[0] + 0.004, JHB[1])
    make_driver(JHB[0] + 0.005, JHB[1])
    booking.ride_book(**trip(sarah, "first"))
    booking.ride_book(**trip(tom, "second"))
    missing = RideEvent.objects.get(ride__ride_id="first", kind="assigned").pk
    RideEvent.objects.filter(pk=missing).delete()
    fan_out_all()
    mark = NoticeLogMark.objects.get()
    assert [missing, missing] in [gap[:2] for gap in mark.gaps]
    assert told("assigned") == {("second", "Tom"), ("second", "Kim")}
    # Still looked for while the grace lasts...
    fan_out_all()
    assert [missing, missing] in [gap[:2] for gap in NoticeLogMark.objects.get().gaps]
    # ... and given up after it.
    monkeypatch.setattr(outbox, "GAP_GRACE_S", 0)
    outbox.fan_out()
    assert not any(first <= missing <= last for first, last, _ in NoticeLogMark.objects.get().gaps)


def test_a_pass_that_fails_half_way_is_read_again_and_owes_nothing_twice(
    family, make_driver, monkeypatch, settings
):
    """
    The worker fails after writing a pass's notifications (a crash, a lost
    connection): the pass rolls back, rows and mark together, and the next
    reads the same events again. Emily is texted once.
    """
    at_noon(monkeypatch)
    sarah, emily, _ = family
    fan_out_all()
    make_driver(JHB[0] + 0.004, JHB[1], first_name="John")
    booking.ride_book(**trip(sarah))
    read_to = NoticeLogMark.objects.get().read_to
    write = outbox._notifications_write

    def crash(dues):
        write(dues)
        assert Notification.objects.filter(event="assigned").exists()
        raise ConnectionError("worker gone")

    monkeypatch.setattr(outbox, "_notifications_write", crash)
    with pytest.raises(ConnectionError):
        outbox.fan_out()
    assert not Notification.objects.exists()
    assert NoticeLogMark.objects.get().read_to == read_to
    monkeypatch.setattr(outbox, "_notifications_write", write)
    fan_out_all()
    fan_out_all()
    delivery.run(once=True)
    to_emily = [t["message"] for t in texts(settings) if t["to"] == emily.phone_number]
    assert len(to_emily) == 1 and "John will drive Sarah" in to_emily[0], to_emily


def test_with_notifications_off_the_log_is_read_and_owes_nothing(
    family, make_driver, monkeypatch, settings
):
    at_noon(monkeypatch)
    sarah, _, _ = family
    make_driver(JHB[0] + 0.004, JHB[1])
    settings.NOTIFY_ENABLED = False
    booking.ride_book(**trip(sarah))
    fan_out_all()
    assert not Notification.objects.exists()
    assert NoticeLogMark.objects.get().read_to == RideEvent.objects.aggregate(m=Max("pk"))["m"]


def test_a_search_again_is_not_told_as_booked(family, make_driver, monkeypatch):
    """
    Booked is told of a ride's booking event alone: when John gives the
    ride back and it is searched for again, Emily, who hears of bookings in
    the app, is not told it is booked again.
    """
    at_noon(monkeypatch)
    sarah, emily, link = family
    notices.preference_set(
        actor=emily, link=link, topics=[Topic.BOOKED], channel=NoticeChannel.IN_APP
    )
    john = make_driver(JHB[0] + 0.004, JHB[1], first_name="John")
    ride = booking.ride_book(**trip(sarah)).ride
    matching.ride_driver_cancel(ride=Ride.objects.with_people().get(pk=ride.pk), driver=john)
    fan_out_all()
    assert list(
        RideEvent.objects.filter(to_status="searching")
        .order_by("version")
        .values_list("version", "kind")
    ) == [(2, "searching"), (4, "driver_cancelled"), (5, "no_drivers")]
    assert list(Notification.objects.filter(recipient=emily).values_list("event", "version")) == [
        ("searching", 2)
    ]
