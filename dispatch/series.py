"""
Recurring rides: a series' calendar, and what its passenger (or a caregiver
who may book, or a dispatcher) does with it: create, edit, pause, end. Its
rides are made BOOKING_HORIZON_DAYS ahead by `series_materialise`, which a
timer runs (manage.py materialise_series), and a serving process too under
`make run` (SERIES_MATERIALISE_EVERY_S).

Its calendar (which days, at what instant) is dispatch.series_calendar's.

An edit changes the series' future rides that no plan has placed on a run
yet, and says which planned ones it left alone: a dispatcher decides those.
"""

from __future__ import annotations

import logging
import threading
import time as clock
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time

from django.db import close_old_connections, transaction
from django.utils import timezone

from dispatch import access, rides, scheduling
from dispatch.errors import DispatchError, NotAllowed
from dispatch.models import (
    ACTIVE_STATUSES,
    SERIES_WITHDREW,
    CancelledBy,
    Leg,
    Ride,
    RideSeries,
    RideStatus,
    SeriesPause,
    SeriesStatus,
)
from dispatch.scheduling import Needs, Place
from dispatch.series_calendar import local_instant, series_dates
from people.audit import audit_event_record
from people.models import User

log = logging.getLogger(__name__)


# --- what a change did ----------------------------------------------------------------


@dataclass
class SeriesChange:
    """What a change to a series did to its rides."""

    series: RideSeries
    created: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    # Planned rides the change did not touch: a dispatcher's to decide.
    kept_planned: list[str] = field(default_factory=list)


# --- services ------------------------------------------------------------------------


# A year of skipped days; a longer break is a pause.
MAX_EXCEPT_DATES = 366


def _check(series: RideSeries, *, today: date) -> None:
    weekdays = series.weekdays
    if (
        not isinstance(weekdays, list)
        or not weekdays
        or any(not isinstance(d, int) or not 0 <= d <= 6 for d in weekdays)
    ):
        raise DispatchError(
            "Choose weekdays, 0 (Monday) to 6 (Sunday).", fields={"weekdays": "0-6"}
        )
    if (series.pickup_time is None) == (series.appointment_time is None):
        raise DispatchError(
            "Give a pickup time or an appointment time, not both.",
            fields={"pickup_time": "one of", "appointment_time": "one of"},
        )
    if series.end_date and series.end_date < series.start_date:
        raise DispatchError("The series ends before it starts.", fields={"end_date": "too early"})
    if series.return_time and series.return_will_call:
        raise DispatchError("A return is at a time or will-call.", fields={"return_time": "both"})
    if series.return_time and series.return_time <= (series.pickup_time or series.appointment_time):
        raise DispatchError(
            "The return is before the outbound trip.", fields={"return_time": "too early"}
        )
    if len(series.except_dates) > MAX_EXCEPT_DATES:
        raise DispatchError(
            f"At most {MAX_EXCEPT_DATES} exception dates; pause the series for a long break.",
            fields={"except_dates": f"at most {MAX_EXCEPT_DATES}"},
        )
    for day in series.except_dates:
        try:
            date.fromisoformat(day)
        except (TypeError, ValueError) as exc:
            raise DispatchError(
                "Exception dates are YYYY-MM-DD.", fields={"except_dates": str(day)}
            ) from exc


def series_create(
    *,
    passenger: User,
    booked_by: User,
    weekdays: list[int],
    start_date: date,
    pickup: Place,
    dropoff: Place,
    pickup_time: time | None = None,
    appointment_time: time | None = None,
    end_date: date | None = None,
    return_time: time | None = None,
    return_will_call: bool = False,
    except_dates: list[str] = (),
    needs: Needs | None = None,
    notes: str = "",
) -> SeriesChange:
    """A new series (the caller decided who rides); its rides within the horizon are made."""
    needs = needs or Needs()
    today = timezone.localdate()
    if start_date < today:
        raise DispatchError("A series starts today or later.", fields={"start_date": "in the past"})
    series = RideSeries(
        passenger=passenger,
        booked_by=booked_by,
        weekdays=sorted(set(weekdays)),
        pickup_time=pickup_time,
        appointment_time=appointment_time,
        return_time=return_time,
        return_will_call=return_will_call,
        start_date=start_date,
        end_date=end_date,
        except_dates=list(except_dates),
        **scheduling.place_fields("pickup", pickup),
        **scheduling.place_fields("dropoff", dropoff),
        **scheduling.needs_fields(passenger, needs),
        notes=notes,
    )
    _check(series, today=today)
    with transaction.atomic():
        series.save()
        audit_event_record(actor=booked_by, action="series.created", subject=series)
        change = SeriesChange(series)
        change.created = _materialise(series)
    return change


# The fields of a series an edit may change, and what each is on its rides.
EDITABLE = {
    "weekdays", "pickup_time", "appointment_time", "return_time", "return_will_call",
    "end_date", "except_dates", "pickup_latitude", "pickup_longitude", "pickup_address",
    "dropoff_latitude", "dropoff_longitude", "dropoff_address", "needs_wheelchair",
    "needs_walker", "service_animal", "companions", "attendant", "notes",
}  # fmt: skip
RIDE_FIELDS = (
    "needs_wheelchair", "needs_walker", "service_animal", "companions", "attendant", "notes",
)  # fmt: skip


def _future_rides(series: RideSeries, *, after: date):
    return Ride.objects.filter(
        series=series, service_date__gte=after, status=RideStatus.SCHEDULED
    ).select_related("run")


def series_update(*, series: RideSeries, actor: User, **changes) -> SeriesChange:
    """
    Change a series. Its future rides not yet on a run follow (a date no
    longer in it is cancelled, a new one is made); planned ones are listed
    in `kept_planned`, unchanged.
    """
    _may_change(actor, series)
    _still_running(series)
    unknown = set(changes) - EDITABLE
    if unknown:
        raise DispatchError(
            "These fields cannot be changed.", fields={f: "unknown" for f in unknown}
        )
    for name, value in changes.items():
        setattr(series, name, sorted(set(value)) if name == "weekdays" else value)
    today = timezone.localdate()
    _check(series, today=today)
    with transaction.atomic():
        series.version += 1
        series.save()
        audit_event_record(
            actor=actor,
            action="series.updated",
            subject=series,
            payload={"fields": sorted(changes)},
        )
        change = _follow(series, actor, reason="series_changed", today=today)
        change.created += _materialise(series)
    return change


def series_pause(
    *, series: RideSeries, actor: User, start_date: date, end_date: date, reason: str = ""
) -> SeriesChange:
    """No rides from `start_date` to `end_date` (a hospital stay, a holiday)."""
    _may_change(actor, series)
    _still_running(series)
    if end_date < start_date:
        raise DispatchError("The pause ends before it starts.", fields={"end_date": "too early"})
    with transaction.atomic():
        pause = SeriesPause.objects.create(
            series=series, start_date=start_date, end_date=end_date, reason=reason[:255],
            created_by=actor,
        )  # fmt: skip
        series.version += 1
        series.save(update_fields=["version", "updated_at"])
        audit_event_record(
            actor=actor,
            action="series.paused",
            subject=series,
            payload={"pause": pause.pk, "from": start_date.isoformat(), "to": end_date.isoformat()},
        )
        return _follow(series, actor, reason="series_paused", today=timezone.localdate())


def series_resume(*, series: RideSeries, actor: User, pause: SeriesPause) -> SeriesChange:
    """Take a pause back: its days get their rides again."""
    _may_change(actor, series)
    _still_running(series)
    with transaction.atomic():
        pause.delete()
        series.version += 1
        series.save(update_fields=["version", "updated_at"])
        audit_event_record(actor=actor, action="series.resumed", subject=series)
        change = SeriesChange(series)
        change.created = _materialise(series)
    return change


def series_end(*, series: RideSeries, actor: User, last_date: date | None = None) -> SeriesChange:
    """
    The series ends after `last_date` (default: today); later rides not
    planned are cancelled. Ended before it starts, it ends with no day.
    """
    _may_change(actor, series)
    _still_running(series)
    today = timezone.localdate()
    last = last_date or today
    if series.end_date is None or last < series.end_date:
        series.end_date = max(last, series.start_date)
    with transaction.atomic():
        if series.end_date <= today or last < series.start_date:
            series.status = SeriesStatus.ENDED
        series.version += 1
        series.save()
        audit_event_record(
            actor=actor, action="series.ended", subject=series,
            payload={"end_date": series.end_date.isoformat()},
        )  # fmt: skip
        before_start = last < series.start_date
        return _follow(series, actor, reason="series_ended", today=today, no_days=before_start)


def _may_change(actor: User, series: RideSeries) -> None:
    if not access.may_change_series(actor, series):
        raise NotAllowed("You may not change this passenger's series.")


def _still_running(series: RideSeries) -> None:
    """
    An ended series makes no more rides, so an edit, a pause, taking one
    back or ending it again would be answered as done while nothing could
    follow (and move its end, its version and its audit trail): refused.
    """
    if series.status == SeriesStatus.ENDED:
        raise DispatchError(
            "This series has ended; start a new one for more rides.",
            code="invalid_state",
            status=409,
        )


def _follow(
    series: RideSeries, actor: User, *, reason: str, today: date, no_days: bool = False
) -> SeriesChange:
    """
    Bring the series' future rides not yet on a run in line with it, a day
    at a time. A day's return goes with its outbound: kept while the
    outbound is planned, under way or done (its rider must get home),
    cancelled when the series loses its return, booked when it gains one.
    `no_days`: the series ended before it started.
    """
    change = SeriesChange(series)
    role = access.booker_role(actor, series.passenger)
    cancelled_by = {"passenger": CancelledBy.PASSENGER, "caregiver": CancelledBy.CAREGIVER}.get(
        role, CancelledBy.DISPATCHER
    )
    days: dict[date, dict[str, Ride]] = defaultdict(dict)
    for ride in _future_rides(series, after=today):
        days[ride.service_date][ride.leg] = ride
    last = max(days, default=today)
    keep = set() if no_days else set(series_dates(series, today, last))
    returns = series.return_time is not None or series.return_will_call
    now = timezone.now()
    for day, legs in sorted(days.items()):
        outbound, back = legs.get(Leg.OUTBOUND), legs.get(Leg.RETURN)
        # An outbound no longer scheduled is not among the future rides.
        planned = _takes_its_rider(outbound or (back.outbound if back else None))
        for ride in legs.values():
            if ride.run_id is not None or (ride is back and planned):
                change.kept_planned.append(ride.ride_id)
            elif day not in keep or (ride is back and not returns):
                # The series rules on each day's return itself (above).
                rides.ride_cancel(
                    ride=ride,
                    actor=actor,
                    cancelled_by=cancelled_by,
                    reason=reason,
                    keep_return=True,
                )
                change.cancelled.append(ride.ride_id)
            elif _moved(series, ride, actor=actor, role=role, reason=reason, now=now):
                change.changed.append(ride.ride_id)
        if day in keep and returns and outbound is not None and back is None and not planned:
            fields = _ride_fields(series, Ride(service_date=day, leg=Leg.RETURN))
            gone_by = fields["pickup_at"] is not None and fields["pickup_at"] <= now
            # None yet, or only returns the series itself withdrew (a rider's
            # own cancel stands).
            kept = Ride.objects.filter(outbound=outbound).exclude(cancel_reason__in=SERIES_WITHDREW)
            if not gone_by and not kept.exists():
                made = scheduling.return_leg_book(
                    outbound=outbound,
                    return_at=fields["pickup_at"],
                    will_call=fields["will_call"],
                    role=role,
                )
                change.created.append(made.ride_id)
    return change


def _takes_its_rider(outbound: Ride | None) -> bool:
    """Whether an outbound takes its rider out (on a run, under way, done): a return must stay."""
    if outbound is None or outbound.status == RideStatus.SCHEDULED:
        return outbound is not None and outbound.run_id is not None
    return outbound.status in (*ACTIVE_STATUSES, RideStatus.COMPLETED)


def _moved(series: RideSeries, ride: Ride, *, actor, role, reason, now) -> bool:
    """The ride brought in line with the series, unless its time has passed; whether it changed."""
    fields = _ride_fields(series, ride)
    if all(getattr(ride, k) == v for k, v in fields.items()):
        return False
    if (fields.get("pickup_at") or fields.get("appointment_at") or now) < now:
        return False
    rides.record(
        ride, "series_changed", actor=actor, role=role, payload={"reason": reason}, **fields
    )
    return True


def _ride_fields(series: RideSeries, ride: Ride) -> dict:
    """What a ride of the series on its date is now."""
    fields = {name: getattr(series, name) for name in RIDE_FIELDS}
    outbound = ride.leg == "outbound"
    ends = ("pickup", "dropoff") if outbound else ("dropoff", "pickup")
    for mine, theirs in zip(("pickup", "dropoff"), ends, strict=True):
        fields.update(scheduling.place_fields(mine, scheduling.place_of(series, theirs)))
    if outbound:
        fields["pickup_at"] = (
            local_instant(ride.service_date, series.pickup_time) if series.pickup_time else None
        )
        fields["appointment_at"] = (
            local_instant(ride.service_date, series.appointment_time)
            if series.appointment_time
            else None
        )
    else:
        fields["will_call"] = series.return_will_call
        fields["pickup_at"] = (
            local_instant(ride.service_date, series.return_time) if series.return_time else None
        )
    return fields


# --- materialising -------------------------------------------------------------------


def _booker(series: RideSeries) -> User:
    """
    Who books the rides made now: the series' booker while they may book for
    its passenger, else (a caregiver's link ended or lost the permission,
    their account off) the passenger, to whom the series passes, audited.
    """
    booker = series.booked_by
    if access.may_change_series(booker, series):
        return booker
    series.booked_by = series.passenger
    RideSeries.objects.filter(pk=series.pk).update(
        booked_by=series.passenger, updated_at=timezone.now()
    )
    audit_event_record(
        actor=None,
        action="series.booker_changed",
        subject=series,
        payload={"from": booker.pk, "to": series.passenger_id},
    )
    return series.passenger


def _materialise(series: RideSeries, *, now: datetime | None = None) -> list[str]:
    """Make the series' rides up to the horizon that do not exist yet; their ride ids."""
    if series.status != SeriesStatus.ACTIVE:
        return []
    booked_by = _booker(series)
    now = now or timezone.now()
    today = timezone.localtime(now).date()
    until = scheduling.last_bookable_date(now)
    standing = list(
        Ride.objects.filter(series=series, service_date__gte=today)
        .exclude(cancel_reason__in=SERIES_WITHDREW)
        .values_list("service_date", "leg")
    )
    made = {day for day, leg in standing if leg == Leg.OUTBOUND}
    # A day's return that stands (one its rider cancelled stays cancelled)
    # is not booked again with its outbound.
    returns = {day for day, leg in standing if leg == Leg.RETURN}
    created = []
    for day in series_dates(series, today, until):
        if day in made:
            continue
        at = series.pickup_time or series.appointment_time
        when = local_instant(day, at)
        if when <= now:
            continue
        back = day not in returns
        return_at = local_instant(day, series.return_time) if back and series.return_time else None
        ride = scheduling.ride_book_ahead(
            passenger=series.passenger,
            booked_by=booked_by,
            role="system",
            series=series,
            service_date=day,
            ride_id=f"s{series.pk}-{day:%Y%m%d}-v{series.version}",
            pickup=scheduling.place_of(series, "pickup"),
            dropoff=scheduling.place_of(series, "dropoff"),
            pickup_at=when if series.pickup_time else None,
            appointment_at=when if series.appointment_time else None,
            return_at=return_at,
            return_will_call=back and series.return_will_call,
            needs=scheduling.needs_of(series),
            notes=series.notes,
        )
        created.append(ride.ride_id)
    RideSeries.objects.filter(pk=series.pk).update(materialised_until=until)
    return created


def series_materialise(*, now: datetime | None = None) -> int:
    """Every active series' rides up to BOOKING_HORIZON_DAYS ahead; how many were made."""
    made = 0
    for series in RideSeries.objects.filter(status=SeriesStatus.ACTIVE).select_related(
        "passenger__passenger_profile", "booked_by"
    ):
        try:
            with transaction.atomic():
                made += len(_materialise(series, now=now))
        except Exception:
            # One broken series must not stop the others' rides being made.
            log.exception("materialising series %s failed", series.pk)
    # A series past its end date is over.
    today = timezone.localtime(now or timezone.now()).date()
    RideSeries.objects.filter(status=SeriesStatus.ACTIVE, end_date__lt=today).update(
        status=SeriesStatus.ENDED
    )
    return made


def start_materialising(every_s: float) -> threading.Thread | None:
    """
    In a serving process (make run): materialise every `every_s` seconds on
    a daemon thread, so a developer's series fill up without a timer; 0:
    never (production runs manage.py materialise_series from a timer). Two
    processes doing it at once make each ride once: a day's ride is unique.
    """
    if every_s <= 0:
        return None

    def loop() -> None:
        while True:
            try:
                series_materialise()
            except Exception:
                log.exception("materialising series failed")
            finally:
                close_old_connections()
            clock.sleep(every_s)

    thread = threading.Thread(target=loop, name="materialise-series", daemon=True)
    thread.start()
    return thread
