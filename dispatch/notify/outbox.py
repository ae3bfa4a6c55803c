"""
The notification outbox, in two steps:

1. What a ride event owes is written in the transaction of the ride change
   itself, so a change that rolls back owes nothing and one that commits
   cannot lose its notices. Either:
   - the event row says all its notice needs (`logged` in NOTICES: the
     booking's `searching` and `assigned`): the row is the debt, and the
     change writes nothing more, so notifications cost a booking nothing;
   - or `notices_write` writes one NoticeDue row, with what its texts need
     from that moment (`due_of`: the ride's version, its params, whether it
     may be texted: `textable`).
2. `fan_out`, in the notify worker: each event's due becomes one
   Notification per recipient and channel, as each recipient chose
   (people.notices): the topic, the channel, quiet hours at the event's
   time (urgent topics go out in them too), nothing texted before a driver
   has accepted (but the end of a ride booked ahead). The rows are
   written, and the NoticeDue deleted or the log read further
   (NoticeLogMark), in one transaction; the rows' key is unique, so doing
   it twice writes nothing twice.

The log is read by id. PostgreSQL hands out ids in one order and commits
them in another, so an id below the highest read may still commit: the
mark keeps the ids not seen yet (gaps) and looks for them again at each
pass until GAP_GRACE_S has passed, beyond any transaction that writes ride
events (a rolled-back one leaves its ids unused for good).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import NamedTuple

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max, Q
from django.utils import timezone

from dispatch.models import (
    SERIES_WITHDREW,
    NoticeDue,
    NoticeLogMark,
    Notification,
    Ride,
    RideEvent,
    RideStatus,
)
from dispatch.notify.events import GIVES_DRIVER, NOTICES, ONCE_PER_DRIVER, To, logged
from dispatch.notify.texts import driver_words, ride_driver
from people.models import NoticeChannel, User
from people.notices import Recipient, notice_recipients

log = logging.getLogger(__name__)

# How long an id missing below the highest read is looked for (seconds).
GAP_GRACE_S = 600
# How many runs of missing ids the mark keeps; the oldest go first.
GAPS_MAX = 500


def event_time(at: datetime) -> datetime:
    """When an event happened, as quiet hours judge it: its own time (tests move it alone)."""
    return at


# Set when notices commit: an in-process deliverer wakes at once instead of
# at its next poll.
pending = threading.Event()


class Due(NamedTuple):
    """What an event owes, as of the change: a NoticeDue's values but its ride."""

    event: str
    version: int
    params: dict
    # Texts may go, as of the event (`textable`; the column's name is from
    # when only a driver's acceptance let them).
    accepted: bool
    at: datetime


def due_of(ride: Ride, kind: str, **said) -> Due | None:
    """
    What `kind` on `ride`, as it stands now, owes as a NoticeDue; None for
    an event NOTICES does not name, one read from the log (`logged_due`),
    or nothing to tell this time. `said`: what the caller knows for the
    text (the live ETA's minutes).
    """
    notice = NOTICES.get(kind)
    if notice is None or logged(kind) or not settings.NOTIFY_ENABLED:
        return None
    params = notice.params(ride)
    if params is None:
        return None
    return Due(
        event=kind,
        version=assignment_version(ride) if kind in ONCE_PER_DRIVER else ride.version,
        # The driver as the event found them.
        params=driver_words(ride_driver(ride)) | params | said,
        accepted=textable(ride, kind),
        at=event_time(timezone.now()),
    )


def assignment_version(ride: Ride) -> int:
    """The version of the event that gave `ride` its driver (0: none has)."""
    return (
        ride.events.filter(kind__in=GIVES_DRIVER)
        .order_by("-version")
        .values_list("version", flat=True)
        .first()
        or 0
    )


def textable(ride: Ride, kind: str) -> bool:
    """
    Whether `kind` on `ride` may go by SMS: once someone has taken the ride
    on (a driver accepted it, even one who gave it back since: its people
    were texted who would drive; or, booked ahead, the published plan told
    its rider when it comes); before that, only what NOTICES says is texted
    for a ride booked ahead (that it will not come), but not for the rides a
    change to its series withdrew: whoever changed it hears them in the
    change's answer, and a text each would spend the day's texts.
    """
    if (ride.driver_id is not None and ride.assigned_at is not None) or (
        ride.confirmed_pickup_at is not None
    ):
        return True
    notice = NOTICES.get(kind)
    if (
        ride.is_booked_ahead
        and notice is not None
        and notice.texted_if_booked_ahead
        and ride.cancel_reason not in SERIES_WITHDREW
    ):
        return True
    return ride.events.filter(kind__in=GIVES_DRIVER).exists()


def logged_due(event: RideEvent, driver: User | None) -> Due | None:
    """
    What a logged event owes, from its row; None if nothing. `driver`: the
    one its payload names (`driver_id`), with their profile.
    """
    if not logged(event.kind) or not settings.NOTIFY_ENABLED:
        return None
    return Due(
        event=event.kind,
        version=event.version,
        params=driver_words(driver),
        accepted=driver is not None and event.to_status == RideStatus.ASSIGNED,
        at=event_time(event.created_at),
    )


def notices_write(ride: Ride, kind: str, **said) -> NoticeDue | None:
    """
    Write what `kind` on `ride` owes (`due_of`), inside the caller's
    transaction; a logged event's row is its debt already, and only wakes
    the deliverer.
    """
    if logged(kind):
        if settings.NOTIFY_ENABLED:
            notices_committing()
        return None
    due = due_of(ride, kind, **said)
    if due is None:
        return None
    row = NoticeDue.objects.create(ride=ride, **due._asdict())
    notices_committing()
    return row


def notices_committing() -> None:
    """Notices were written in this transaction: wake the deliverer when it commits."""
    transaction.on_commit(pending.set)


def owed(ride_id: int, due: Due, recipients: list[Recipient]) -> list[Notification]:
    """The rows `due` on ride `ride_id` owes these recipients, as each chose (not saved)."""
    notice = NOTICES.get(due.event)
    if notice is None:
        # Owed by a release whose NOTICES named the event; this one does not.
        return []
    now = timezone.now()
    rows = []
    for recipient in recipients:
        if notice.to == To.PASSENGER and recipient.link_id is not None:
            continue
        if notice.to == To.CAREGIVERS and recipient.link_id is None:
            continue
        if not recipient.wants(notice.topic, due.at):
            continue
        if recipient.channel == NoticeChannel.SMS and not due.accepted:
            continue
        rows.append(
            Notification(
                ride_id=ride_id,
                event=due.event,
                version=due.version,
                topic=notice.topic,
                recipient_id=recipient.user_id,
                link_id=recipient.link_id,
                channel=recipient.channel,
                # The driver kept with the text's params, so a text sent
                # late (a retry, the ceiling) still names who was assigned.
                params=due.params,
                next_attempt_at=now,
                created_at=due.at,
            )
        )
    return rows


def _notifications_write(dues: Iterable[tuple[int, int, Due]]) -> None:
    """The Notifications of (ride id, passenger id, due)s, each recipient's read once."""
    recipients: dict[int, list[Recipient]] = {}
    rows = []
    for ride_id, passenger_id, due in dues:
        if passenger_id not in recipients:
            recipients[passenger_id] = notice_recipients(passenger_id)
        rows += owed(ride_id, due, recipients[passenger_id])
    Notification.objects.bulk_create(rows, ignore_conflicts=True)


def fan_out(limit: int | None = None) -> int:
    """
    One step of the worker: up to `limit` events of the log read, and up to
    `limit` NoticeDue rows, oldest first, turned into Notifications, each in
    one transaction; how many it took.
    """
    return _log_fan_out(limit or settings.NOTIFY_BATCH) + _dues_fan_out(
        limit or settings.NOTIFY_BATCH
    )


def _dues_fan_out(limit: int) -> int:
    """
    NoticeDue rows into Notifications, and the rows deleted. PostgreSQL
    skips rows another worker holds; on SQLite the unique key keeps a row
    from being written twice.
    """
    with transaction.atomic():
        dues = NoticeDue.objects.select_related("ride").order_by("pk")
        if connection.vendor == "postgresql":
            dues = dues.select_for_update(skip_locked=True, of=("self",))
        dues = list(dues[:limit])
        if not dues:
            return 0
        _notifications_write(
            (
                due.ride_id,
                due.ride.passenger_id,
                Due(due.event, due.version, due.params, due.accepted, due.at),
            )
            for due in dues
        )
        NoticeDue.objects.filter(pk__in=[due.pk for due in dues]).delete()
    return len(dues)


def _log_fan_out(limit: int) -> int:
    """
    The log read on from the mark: the events that came in its gaps, then up
    to `limit` past the highest read; what logged events owe made into
    Notifications, and the mark moved, together. One worker at a time reads
    (the mark's row lock); another waits for it, then reads on from there.
    """
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # Lost in a crash, this pass's rows go with its mark: the events
            # are read again, so it need not wait for the disk.
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
        mark = _mark()
        now = time.time()
        gaps = [gap for gap in mark.gaps if now - gap[2] < GAP_GRACE_S]
        came = []
        if gaps:
            within = Q()
            for first, last, _ in gaps:
                within |= Q(pk__range=(first, last))
            came = list(RideEvent.objects.filter(within).order_by("pk"))
            gaps = _gaps_without(gaps, {event.pk for event in came})
        fresh = list(RideEvent.objects.filter(pk__gt=mark.read_to).order_by("pk")[:limit])
        following = mark.read_to + 1
        for event in fresh:
            if event.pk > following:
                gaps.append([following, event.pk - 1, now])
            following = event.pk + 1
        if len(gaps) > GAPS_MAX:
            log.warning("event log: %d runs of ids missing, the oldest given up", len(gaps))
            gaps = gaps[-GAPS_MAX:]
        events = came + fresh
        if not events and gaps == mark.gaps:
            return 0
        _notifications_write(_logged_dues(events))
        mark.read_to, mark.gaps = following - 1, gaps
        mark.save(update_fields=["read_to", "gaps"])
    return len(events)


def _mark() -> NoticeLogMark:
    """The log's mark, locked until the transaction ends."""
    mark = NoticeLogMark.objects.select_for_update().order_by("pk").first()
    if mark is None:
        # Made by migration 0007. Gone (emptied by hand): the last
        # GAP_GRACE_S of the log is read again, which can owe nothing twice,
        # and what is older is taken as told.
        since = timezone.now() - timedelta(seconds=GAP_GRACE_S)
        last = RideEvent.objects.filter(created_at__lt=since).aggregate(last=Max("pk"))["last"]
        log.warning("event log mark missing: reading on from event %d", last or 0)
        mark = NoticeLogMark.objects.create(read_to=last or 0)
    return mark


def _gaps_without(gaps: list[list], came: set[int]) -> list[list]:
    """The runs of missing ids, less the ids that came (a run may split)."""
    left = []
    for first, last, since in gaps:
        start = first
        for pk in sorted(pk for pk in came if first <= pk <= last):
            if pk > start:
                left.append([start, pk - 1, since])
            start = pk + 1
        if start <= last:
            left.append([start, last, since])
    return left


def _logged_dues(events: list[RideEvent]) -> list[tuple[int, int, Due]]:
    """(ride id, passenger id, due) of each event that owes a logged notice."""
    owing = [event for event in events if logged(event.kind)]
    if not owing:
        return []
    passengers = dict(
        Ride.objects.filter(pk__in={event.ride_id for event in owing}).values_list(
            "pk", "passenger_id"
        )
    )
    drivers = User.objects.select_related("driver_profile").in_bulk(
        {event.payload.get("driver_id") for event in owing} - {None}
    )
    dues = []
    for event in owing:
        due = logged_due(event, drivers.get(event.payload.get("driver_id")))
        if due is not None and event.ride_id in passengers:
            dues.append((event.ride_id, passengers[event.ride_id], due))
    return dues
