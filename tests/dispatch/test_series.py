"""
Recurring series: the calendar (weekdays, exception dates, pauses, the
horizon, time zones with and without daylight saving), materialising rides,
and what an edit, a pause and an end do to rides planned or not; who may
change a series.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from django.utils import timezone

from dispatch import rides, series_calendar
from dispatch import series as S
from dispatch.errors import DispatchError, NotAllowed
from dispatch.models import DayPlan, DriverShift, Ride, RideSeries, RideStatus, Run, SeriesPause
from dispatch.planning import services
from dispatch.scheduling import Needs, Place
from people.models import AuditEvent

pytestmark = pytest.mark.django_db

HOME = Place(-26.2041, 28.0473, "12 Main Rd")
CLINIC = Place(-26.1715, 28.0746, "Dialysis centre")


def make_series(**fields) -> RideSeries:
    defaults = dict(
        passenger_id=1,
        booked_by_id=1,
        weekdays=[0, 2, 4],
        pickup_time=time(7, 30),
        start_date=date(2027, 3, 1),
        pickup_latitude=HOME.latitude,
        pickup_longitude=HOME.longitude,
        dropoff_latitude=CLINIC.latitude,
        dropoff_longitude=CLINIC.longitude,
    )
    defaults.update(fields)
    return RideSeries(**defaults)


# --- the calendar -------------------------------------------------------------------


def test_mon_wed_fri_from_start_to_end():
    s = make_series(start_date=date(2027, 3, 3), end_date=date(2027, 3, 12))
    days = series_calendar.series_dates(s, date(2027, 3, 1), date(2027, 3, 31), pauses=[])
    assert days == [date(2027, 3, d) for d in (3, 5, 8, 10, 12)]


def test_exception_dates_and_pauses_have_no_ride():
    s = make_series(except_dates=["2027-03-03"])
    pause = SeriesPause(start_date=date(2027, 3, 8), end_date=date(2027, 3, 12))
    days = series_calendar.series_dates(s, date(2027, 3, 1), date(2027, 3, 19), pauses=[pause])
    assert days == [date(2027, 3, d) for d in (1, 5, 15, 17, 19)]


def test_pauses_reaching_past_the_days_asked_for_pause_only_those_days():
    """A pause begun long ago, one without end, and one across the last day asked for."""
    s = make_series()
    pauses = [
        SeriesPause(start_date=date(1, 1, 1), end_date=date(2027, 3, 3)),
        SeriesPause(start_date=date(2027, 3, 17), end_date=date(9999, 12, 31)),
        SeriesPause(start_date=date(2027, 3, 10), end_date=date(2027, 3, 10)),
    ]
    days = series_calendar.series_dates(s, date(2027, 3, 1), date(2027, 3, 19), pauses=pauses)
    assert days == [date(2027, 3, d) for d in (5, 8, 12, 15)]
    assert series_calendar.series_dates(
        s, date(2027, 3, 1), date(2027, 3, 19), pauses=pauses[2:]
    ) == [date(2027, 3, d) for d in (1, 3, 5, 8, 12, 15, 17, 19)]


def test_a_time_in_johannesburg_is_two_hours_before_utc_all_year(settings):
    settings.TIME_ZONE = "Africa/Johannesburg"
    for day in (date(2027, 1, 4), date(2027, 7, 5)):
        assert series_calendar.local_instant(day, time(7, 30)) == datetime.combine(
            day, time(5, 30), UTC
        )


def test_a_series_keeps_its_wall_clock_time_across_a_daylight_saving_change(settings):
    settings.TIME_ZONE = "Europe/London"
    before = series_calendar.local_instant(date(2027, 3, 26), time(7, 30))
    after = series_calendar.local_instant(date(2027, 3, 29), time(7, 30))
    assert (before.hour, after.hour) == (7, 6)
    assert timezone.localtime(after).time() == time(7, 30)


def test_a_time_the_clocks_skip_lands_after_the_gap_and_a_doubled_one_is_the_first(settings):
    settings.TIME_ZONE = "Europe/London"
    # 28 March 2027: 01:00 GMT becomes 02:00 BST; 31 October 2027: 02:00 BST becomes 01:00 GMT.
    skipped = series_calendar.local_instant(date(2027, 3, 28), time(1, 30))
    assert timezone.localtime(skipped).time() == time(2, 30)
    doubled = series_calendar.local_instant(date(2027, 10, 31), time(1, 30))
    assert doubled == datetime(2027, 10, 31, 0, 30, tzinfo=UTC)


# --- services ----------------------------------------------------------------------


@pytest.fixture
def caregiver(make_user, make_link, passenger):
    emily = make_user("caregiver", first_name="Emily", last_name="Davis")
    make_link(passenger, emily, can_book_rides=True)
    return emily


def create(passenger, booked_by, **extra):
    fields = dict(
        passenger=passenger,
        booked_by=booked_by,
        weekdays=[0, 2, 4],
        start_date=timezone.localdate() + timedelta(days=1),
        pickup=HOME,
        dropoff=CLINIC,
        pickup_time=time(7, 30),
        return_time=time(12, 0),
    )
    fields.update(extra)
    return S.series_create(**fields)


def test_a_caregiver_who_may_book_creates_a_series_and_its_rides_appear(
    passenger, caregiver, settings
):
    settings.BOOKING_HORIZON_DAYS = 14
    change = create(passenger, caregiver)
    rides = Ride.objects.filter(series=change.series)
    outbound = rides.filter(leg="outbound")
    expected = series_calendar.series_dates(
        change.series, timezone.localdate(), timezone.localdate() + timedelta(days=14)
    )
    assert sorted(outbound.values_list("service_date", flat=True)) == expected
    assert rides.filter(leg="return").count() == len(expected)
    first = outbound.order_by("service_date").first()
    assert first.status == RideStatus.SCHEDULED and first.booked_by == caregiver
    assert timezone.localtime(first.pickup_at).time() == time(7, 30)
    assert first.returns.get().pickup_at.date() == first.pickup_at.date()
    # Materialising again makes nothing new.
    assert S.series_materialise() == 0


def test_a_caregiver_without_the_booking_permission_may_not_change_it(
    passenger, caregiver, make_user, make_link
):
    change = create(passenger, passenger)
    onlooker = make_user("caregiver")
    make_link(passenger, onlooker, can_book_rides=False)
    with pytest.raises(NotAllowed):
        S.series_pause(
            series=change.series, actor=onlooker, start_date=date.today(), end_date=date.today()
        )
    S.series_update(series=change.series, actor=caregiver, notes="Bring the blue bag")


def test_an_edit_changes_unplanned_rides_and_names_the_planned_ones_it_left(passenger, make_driver):
    change = create(passenger, passenger, weekdays=[0, 1, 2, 3, 4])
    rides = list(Ride.objects.filter(series=change.series, leg="outbound").order_by("service_date"))
    planned, free = rides[0], rides[1]
    _put_on_a_run(planned, make_driver)
    edit = S.series_update(series=change.series, actor=passenger, pickup_time=time(8, 15))
    assert planned.ride_id in edit.kept_planned
    assert free.ride_id in edit.changed
    free.refresh_from_db()
    planned.refresh_from_db()
    assert timezone.localtime(free.pickup_at).time() == time(8, 15)
    assert timezone.localtime(planned.pickup_at).time() == time(7, 30)
    assert free.version == 2 and free.events.last().kind == "series_changed"


def test_dropping_a_weekday_cancels_its_unplanned_rides(passenger):
    change = create(passenger, passenger, weekdays=[0, 1, 2, 3, 4])
    edit = S.series_update(series=change.series, actor=passenger, weekdays=[1])
    left = Ride.objects.filter(series=change.series, leg="outbound", status=RideStatus.SCHEDULED)
    assert {r.service_date.weekday() for r in left} == {1}
    assert edit.cancelled
    cancelled = Ride.objects.get(ride_id=edit.cancelled[0])
    assert (cancelled.status, cancelled.cancel_reason) == (RideStatus.CANCELLED, "series_changed")


def test_a_pause_cancels_its_days_and_taking_it_back_books_them_again(passenger):
    change = create(passenger, passenger, weekdays=[0, 1, 2, 3, 4, 5, 6], return_time=None)
    start = timezone.localdate() + timedelta(days=3)
    end = start + timedelta(days=2)
    paused = S.series_pause(
        series=change.series, actor=passenger, start_date=start, end_date=end, reason="hospital"
    )
    assert len(paused.cancelled) == 3
    active = Ride.objects.filter(series=change.series, status=RideStatus.SCHEDULED)
    assert not active.filter(service_date__range=(start, end)).exists()
    pause = change.series.pauses.get()
    # What the pause withdrew comes back when it is taken back.
    resumed = S.series_resume(series=change.series, actor=passenger, pause=pause)
    assert len(resumed.created) == 3


def test_taking_a_pause_back_keeps_a_return_its_rider_cancelled(passenger):
    """The paused day's outbound is booked again; the return the rider cancelled stays so."""
    change = create(passenger, passenger, weekdays=[0, 1, 2, 3, 4, 5, 6])
    day = timezone.localdate() + timedelta(days=3)
    back = Ride.objects.get(series=change.series, service_date=day, leg="return")
    rides.ride_cancel(ride=back, actor=passenger, cancelled_by="passenger", reason="fetched")
    S.series_pause(series=change.series, actor=passenger, start_date=day, end_date=day)
    resumed = S.series_resume(
        series=change.series, actor=passenger, pause=change.series.pauses.get()
    )
    (outbound,) = Ride.objects.filter(series=change.series, service_date=day, status="scheduled")
    assert outbound.leg == "outbound" and resumed.created == [outbound.ride_id]
    back.refresh_from_db()
    assert back.status == RideStatus.CANCELLED and back.cancel_reason == "fetched"


def test_ending_a_series_cancels_its_later_rides(passenger):
    change = create(passenger, passenger, return_time=None)
    last = timezone.localdate() + timedelta(days=4)
    ended = S.series_end(series=change.series, actor=passenger, last_date=last)
    assert ended.cancelled
    assert not Ride.objects.filter(
        series=change.series, status=RideStatus.SCHEDULED, service_date__gt=last
    ).exists()


def test_a_will_call_return_has_no_time(passenger):
    change = create(passenger, passenger, return_time=None, return_will_call=True)
    back = Ride.objects.filter(series=change.series, leg="return").first()
    assert back.will_call and back.pickup_at is None and back.outbound_id


def _put_on_a_run(ride: Ride, make_driver) -> Run:
    driver = make_driver()
    start, end = (timezone.now() + timedelta(days=n) for n in (0, 30))
    shift = DriverShift.objects.create(
        driver=driver, start_at=start, end_at=end, start_latitude=HOME.latitude,
        start_longitude=HOME.longitude, end_latitude=HOME.latitude, end_longitude=HOME.longitude,
    )  # fmt: skip
    plan = DayPlan.objects.create(service_date=ride.service_date)
    run = Run.objects.create(plan=plan, shift=shift, driver=driver)
    Ride.objects.filter(pk=ride.pk).update(run=run)
    return run


def test_needs_of_a_series_reach_its_rides(passenger):
    change = create(passenger, passenger, needs=Needs(wheelchair=True, companions=1))
    ride = Ride.objects.filter(series=change.series).first()
    assert ride.needs_wheelchair and ride.companions == 1 and ride.seats == 1


def test_the_materialise_command_makes_what_is_missing(passenger, capsys):
    from django.core.management import call_command

    change = create(passenger, passenger)
    Ride.objects.filter(series=change.series).delete()
    call_command("materialise_series")
    assert "ride(s) made" in capsys.readouterr().out
    assert Ride.objects.filter(series=change.series).exists()


def test_adding_a_return_to_a_series_books_return_legs_for_its_rides(passenger):
    change = create(passenger, passenger, weekdays=[0, 1, 2, 3, 4, 5, 6], return_time=None)
    outbound = Ride.objects.filter(series=change.series, leg="outbound", status="scheduled")
    assert outbound.exists()
    S.series_update(series=change.series, actor=passenger, return_time=time(12, 0))

    # Every unplanned future outbound ride now has a return leg; dropping it
    # again cancels them, and adding it again books them once more.
    def returns():
        return Ride.objects.filter(series=change.series, leg="return", status="scheduled")

    assert returns().count() == outbound.count()
    assert {r.outbound_id for r in returns()} == set(outbound.values_list("pk", flat=True))
    S.series_update(series=change.series, actor=passenger, return_time=None)
    assert not returns().exists()
    again = S.series_update(series=change.series, actor=passenger, return_will_call=True)
    assert returns().count() == outbound.count() and all(r.will_call for r in returns())
    assert sorted(again.created) == sorted(r.ride_id for r in returns())


def test_dropping_the_return_from_a_series_leaves_no_timeless_return_legs(passenger):
    change = create(passenger, passenger, weekdays=[0, 1, 2, 3, 4, 5, 6])
    S.series_update(series=change.series, actor=passenger, return_time=None)
    orphans = Ride.objects.filter(
        series=change.series,
        leg="return",
        status=RideStatus.SCHEDULED,
        pickup_at__isnull=True,
        appointment_at__isnull=True,
        will_call=False,
    )
    assert not orphans.exists(), [(r.ride_id, r.service_date) for r in orphans]


def test_planning_a_day_after_a_series_dropped_its_return_does_not_crash(passenger, settings):
    settings.PLAN_EXPLORATION = 0
    change = create(passenger, passenger, weekdays=[0, 1, 2, 3, 4, 5, 6])
    S.series_update(series=change.series, actor=passenger, return_time=None)
    day = timezone.localdate() + timedelta(days=2)
    services.plan_day(service_date=day, timeout_s=5)


def test_pausing_a_planned_day_keeps_its_will_call_return(passenger, make_driver):
    change = create(
        passenger,
        passenger,
        weekdays=[0, 1, 2, 3, 4, 5, 6],
        return_time=None,
        return_will_call=True,
    )
    out = Ride.objects.filter(series=change.series, leg="outbound").order_by("service_date")[1]
    _put_on_a_run(out, make_driver)
    paused = S.series_pause(
        series=change.series,
        actor=passenger,
        start_date=out.service_date,
        end_date=out.service_date,
    )
    assert out.ride_id in paused.kept_planned
    back = out.returns.get()
    # The outbound still runs (planned): its rider must still get home.
    assert back.status == RideStatus.SCHEDULED, (back.status, back.cancel_reason)


def test_ending_a_series_that_has_not_started_leaves_no_ride(passenger):
    start = timezone.localdate() + timedelta(days=3)
    change = create(passenger, passenger, weekdays=[0, 1, 2, 3, 4, 5, 6], start_date=start)
    S.series_end(series=change.series, actor=passenger)
    left = Ride.objects.filter(series=change.series, status=RideStatus.SCHEDULED)
    assert not left.exists(), list(left.values_list("ride_id", "service_date"))


def test_ending_a_series_today_keeps_todays_ride_and_cancels_the_later(passenger, monkeypatch):
    """The series ends after its last date (today by default): today's ride stays."""
    eight = timezone.make_aware(datetime.combine(timezone.localdate(), time(8, 0)))
    monkeypatch.setattr(timezone, "now", lambda: eight)
    today = timezone.localdate()
    change = create(
        passenger, passenger, weekdays=list(range(7)), start_date=today,
        pickup_time=time(10, 0), return_time=None,
    )  # fmt: skip
    todays = Ride.objects.get(series=change.series, service_date=today, leg="outbound")
    ended = S.series_end(series=change.series, actor=passenger)
    todays.refresh_from_db()
    assert todays.status == RideStatus.SCHEDULED and todays.ride_id not in ended.cancelled
    later = Ride.objects.filter(series=change.series, service_date__gt=today)
    assert later.exists() and set(later.values_list("status", flat=True)) == {"cancelled"}


# --- who books a series' rides ------------------------------------------------------


def _lose_the_right(how, link, caregiver):
    from people.caregivers import caregiver_link_revoke, caregiver_link_update

    if how == "revoked":
        caregiver_link_revoke(link=link, actor=link.passenger)
    elif how == "declined":
        type(link).objects.filter(pk=link.pk).update(status="declined")
    elif how == "no_booking":
        caregiver_link_update(link=link, actor=link.passenger, can_book_rides=False)
    else:
        caregiver.is_active = False
        caregiver.save()


@pytest.mark.parametrize("how", ["revoked", "declined", "no_booking", "switched_off"])
def test_rides_made_after_the_booker_lost_the_right_are_the_passengers_own(
    passenger, make_user, make_link, settings, how
):
    """
    A caregiver who may no longer book for the passenger is not the booker
    of the series' later rides (the driver's contact): the passenger is,
    and the series says so, audited.
    """
    from people.models import AuditEvent

    settings.BOOKING_HORIZON_DAYS = 7
    emily = make_user("caregiver", first_name="Emily")
    link = make_link(passenger, emily, can_book_rides=True, can_receive_notifications=True)
    change = create(passenger, emily, weekdays=list(range(7)))
    before = set(Ride.objects.filter(series=change.series).values_list("pk", flat=True))
    _lose_the_right(how, link, emily)

    made = S.series_materialise(now=timezone.now() + timedelta(days=3))

    later = Ride.objects.filter(series=change.series).exclude(pk__in=before)
    assert made and later.filter(leg="outbound").count() == made
    assert set(later.values_list("booked_by_id", flat=True)) == {passenger.pk}
    assert not any(r.booked_on_behalf for r in later)
    change.series.refresh_from_db()
    assert change.series.booked_by_id == passenger.pk
    handed = AuditEvent.objects.get(action="series.booker_changed")
    assert handed.subject_id == str(change.series.pk)
    assert handed.payload == {"from": emily.pk, "to": passenger.pk}


def test_a_caregiver_who_still_may_book_stays_the_booker_of_later_rides(
    passenger, caregiver, settings
):
    settings.BOOKING_HORIZON_DAYS = 7
    change = create(passenger, caregiver, weekdays=list(range(7)))
    assert S.series_materialise(now=timezone.now() + timedelta(days=3))
    assert set(
        Ride.objects.filter(series=change.series).values_list("booked_by_id", flat=True)
    ) == {caregiver.pk}
    change.series.refresh_from_db()
    assert change.series.booked_by_id == caregiver.pk


def test_a_series_a_dispatcher_booked_keeps_its_booker(passenger, dispatcher, settings):
    settings.BOOKING_HORIZON_DAYS = 7
    change = create(passenger, dispatcher, weekdays=list(range(7)))
    assert S.series_materialise(now=timezone.now() + timedelta(days=3))
    change.series.refresh_from_db()
    assert change.series.booked_by_id == dispatcher.pk


@pytest.mark.parametrize("edit", ["pause", "weekdays", "no_return"])
def test_a_change_today_keeps_the_return_of_a_rider_already_taken_there(
    passenger, monkeypatch, edit
):
    """
    Sarah was taken to dialysis this morning and waits to say ready; her
    daughter pauses the series from today for a hospital stay (or drops
    today's weekday, or the return): today's return stays, listed for a
    dispatcher, or Sarah is left at the clinic with no ride home.
    """
    seven = timezone.make_aware(datetime.combine(timezone.localdate(), time(7, 0)))
    monkeypatch.setattr(timezone, "now", lambda: seven)
    today = timezone.localdate()
    change = create(
        passenger, passenger, weekdays=list(range(7)), start_date=today,
        pickup_time=time(8, 0), return_time=None, return_will_call=True,
    )  # fmt: skip
    outbound = Ride.objects.get(series=change.series, service_date=today, leg="outbound")
    # Taken there and dropped off by eleven.
    Ride.objects.filter(pk=outbound.pk).update(status=RideStatus.COMPLETED)
    eleven = seven + timedelta(hours=4)
    monkeypatch.setattr(timezone, "now", lambda: eleven)
    if edit == "pause":
        done = S.series_pause(
            series=change.series,
            actor=passenger,
            start_date=today,
            end_date=today + timedelta(days=7),
        )
    elif edit == "weekdays":
        others = [d for d in range(7) if d != today.weekday()]
        done = S.series_update(series=change.series, actor=passenger, weekdays=others)
    else:
        done = S.series_update(series=change.series, actor=passenger, return_will_call=False)
    back = outbound.returns.get()
    assert back.status == RideStatus.SCHEDULED and back.is_waiting_for_ready
    assert back.ride_id in done.kept_planned and back.ride_id not in done.cancelled


# --- an ended series ----------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        lambda s, who: S.series_update(
            series=s, actor=who, end_date=timezone.localdate() + timedelta(days=30)
        ),
        lambda s, who: S.series_pause(
            series=s, actor=who, start_date=date(2030, 1, 1), end_date=date(2030, 1, 2)
        ),
        # An app that sends `end` again (a retry, a second tap), with an
        # earlier last day or none.
        lambda s, who: S.series_end(series=s, actor=who, last_date=date(2020, 1, 1)),
        lambda s, who: S.series_end(series=s, actor=who),
    ],
    ids=["extended", "paused", "ended_earlier", "ended_again"],
)
def test_an_ended_series_refuses_a_change_rather_than_seem_to_take_it(passenger, change):
    """
    An ended series makes no more rides: an edit that would seem to extend
    it is refused, and nothing of it changes.
    """
    ended = S.series_end(series=create(passenger, passenger).series, actor=passenger).series
    before = RideSeries.objects.filter(pk=ended.pk).values().get()
    with pytest.raises(DispatchError) as refused:
        change(RideSeries.objects.get(pk=ended.pk), passenger)
    assert (refused.value.status, refused.value.code) == (409, "invalid_state")
    assert RideSeries.objects.filter(pk=ended.pk).values().get() == before
    assert not SeriesPause.objects.filter(series=ended).exists()
    ends = AuditEvent.objects.filter(action="series.ended", subject_id=str(ended.pk))
    assert ends.count() == 1
