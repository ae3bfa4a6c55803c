"""
The notification outbox, in two steps:

1. `notices_write`: inside the transaction of a ride change, the event that
   owes notices is written as one NoticeDue row, with what its texts need
   from that moment (`due_of`: the ride's version, its params, whether a
   driver had accepted). A change that rolls back owes nothing; one that
   commits cannot lose its notices. The booking's one statement writes its own
   (dispatch.booking), so a booking pays for no recipient's choices.
2. `fan_out`, in the notify worker: each NoticeDue becomes one Notification
   per recipient and channel, as each recipient chose (people.notices): the
   topic, the channel, quiet hours at the event's time (urgent topics go
   out in them too), nothing texted before a driver has accepted. The rows
   are written and the NoticeDue deleted in one transaction; the rows' key
   is unique, so doing it twice writes nothing twice.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import NamedTuple

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from dispatch.models import NoticeDue, Notification, Ride
from dispatch.notify.events import NOTICES, ONCE_PER_RIDE, To
from dispatch.notify.texts import driver_words
from people.models import NoticeChannel
from people.notices import Recipient, notice_recipients

# What time it is for quiet hours; tests move this clock alone.
clock = timezone.now

# Set when notices commit: an in-process deliverer wakes at once instead of
# at its next poll.
pending = threading.Event()


class Due(NamedTuple):
    """What an event owes, as of the change: a NoticeDue's values but its ride."""

    event: str
    version: int
    params: dict
    # Taken on at the event (a driver accepted it, or a published plan told
    # its rider when): texts may go.
    accepted: bool
    at: datetime


def due_of(ride: Ride, kind: str, **said) -> Due | None:
    """
    What `kind` on `ride`, as it stands now, owes; None for an event NOTICES
    does not name, or nothing to tell this time. `said`: what the caller
    knows for the text (the live ETA's minutes). Cheap: the booking's one
    statement asks it twice per booking and writes the values itself.
    """
    notice = NOTICES.get(kind)
    if notice is None or not settings.NOTIFY_ENABLED:
        return None
    params = notice.params(ride)
    if params is None:
        return None
    return Due(
        event=kind,
        version=0 if kind in ONCE_PER_RIDE else ride.version,
        # The driver as the event found them (the booking's one statement
        # picks its driver itself: its rows get them at fan-out).
        params=driver_words(ride) | params | said,
        accepted=accepted(ride),
        at=clock(),
    )


def accepted(ride: Ride) -> bool:
    """
    Someone has taken the ride on, so texts may go: a driver accepted it, or
    (booked ahead) the published plan told its rider when it comes.
    """
    return (ride.driver_id is not None and ride.assigned_at is not None) or (
        ride.confirmed_pickup_at is not None
    )


def notices_write(ride: Ride, kind: str, **said) -> NoticeDue | None:
    """Write what `kind` on `ride` owes (`due_of`), inside the caller's transaction."""
    due = due_of(ride, kind, **said)
    if due is None:
        return None
    row = NoticeDue.objects.create(ride=ride, **due._asdict())
    notices_committing()
    return row


def notices_committing() -> None:
    """Notices were written in this transaction: wake the deliverer when it commits."""
    transaction.on_commit(pending.set)


def owed(due: NoticeDue, recipients: list[Recipient]) -> list[Notification]:
    """The rows `due` owes these recipients, as each chose (not saved)."""
    notice = NOTICES.get(due.event)
    if notice is None:
        # Owed by a release whose NOTICES named the event; this one does not.
        return []
    now = timezone.now()
    # The driver kept with the text's params, so a text sent late (a retry,
    # the ceiling) still names who was assigned; the due's own, else the
    # ride's at fan-out (the one-statement booking's).
    params = driver_words(due.ride) | due.params
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
                ride_id=due.ride_id,
                event=due.event,
                version=due.version,
                topic=notice.topic,
                recipient_id=recipient.user_id,
                link_id=recipient.link_id,
                channel=recipient.channel,
                params=params,
                next_attempt_at=now,
                created_at=due.at,
            )
        )
    return rows


def fan_out(limit: int | None = None) -> int:
    """
    Turn up to `limit` NoticeDue rows, oldest first, into Notifications, in
    one transaction; how many it took. PostgreSQL skips rows another worker
    holds; on SQLite the unique key keeps a row from being written twice.
    """
    with transaction.atomic():
        dues = NoticeDue.objects.select_related("ride__driver__driver_profile").order_by("pk")
        if connection.vendor == "postgresql":
            dues = dues.select_for_update(skip_locked=True, of=("self",))
        dues = list(dues[: limit or settings.NOTIFY_BATCH])
        if not dues:
            return 0
        recipients: dict[int, list[Recipient]] = {}
        rows = []
        for due in dues:
            passenger_id = due.ride.passenger_id
            if passenger_id not in recipients:
                recipients[passenger_id] = notice_recipients(passenger_id)
            rows += owed(due, recipients[passenger_id])
        Notification.objects.bulk_create(rows, ignore_conflicts=True)
        NoticeDue.objects.filter(pk__in=[due.pk for due in dues]).delete()
    return len(dues)
