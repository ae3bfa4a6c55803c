"""
A recurring series' calendar, with python-dateutil's rrule: weekly on the
chosen weekdays from the start date to the end date, less exception dates
and paused days. A ride's time is the series' local time (TIME_ZONE) on
that date: on a day whose clocks spring forward past it, the same moment an
hour later on the wall; on a day whose clocks fall back over it, the first
of the two.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time

from dateutil.rrule import DAILY, FR, MO, SA, SU, TH, TU, WE, WEEKLY, rrule, rruleset
from django.utils import timezone

from dispatch.models import RideSeries, SeriesPause

WEEKDAYS = (MO, TU, WE, TH, FR, SA, SU)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min)


def series_dates(
    series: RideSeries, start: date, end: date, pauses: list[SeriesPause] | None = None
) -> list[date]:
    """The dates from `start` to `end` (both included) the series has a ride on."""
    last = min(end, series.end_date) if series.end_date else end
    first = max(start, series.start_date)
    if last < first or not series.weekdays:
        return []
    calendar = rruleset()
    calendar.rrule(
        rrule(
            WEEKLY,
            byweekday=[WEEKDAYS[d] for d in sorted(set(series.weekdays))],
            dtstart=_midnight(series.start_date),
            until=_midnight(last),
        )
    )
    for day in series.except_dates:
        calendar.exdate(_midnight(date.fromisoformat(day)))
    for pause in series.pauses.all() if pauses is None else pauses:
        # Only the paused days between first and last: a pause from year 1
        # would have the calendar step through every day since.
        paused_from, paused_to = max(pause.start_date, first), min(pause.end_date, last)
        if paused_from <= paused_to:
            calendar.exrule(
                rrule(DAILY, dtstart=_midnight(paused_from), until=_midnight(paused_to))
            )
    return [d.date() for d in calendar.between(_midnight(first), _midnight(last), inc=True)]


def local_instant(day: date, at: time) -> datetime:
    """`at` o'clock on `day` in TIME_ZONE, as an aware instant (see the module on DST)."""
    zone = timezone.get_current_timezone()
    # fold=0: the offset before a change, so a time in a spring-forward gap
    # lands after it and a time that happens twice is the first.
    return datetime.combine(day, at).replace(tzinfo=zone, fold=0).astimezone(UTC)
