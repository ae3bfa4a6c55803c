"""
The notification outbox: the rows a ride event owes its recipients, written
inside the transaction of the change itself, so a change that rolls back
owes nothing and one that commits cannot lose its notices.

One row per recipient, event and channel, as each recipient chose
(people.notices): the topic, the channel, quiet hours (urgent topics go out
in them too). Nothing is texted before a driver has accepted the ride.
"""

from __future__ import annotations

import threading

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from dispatch.models import Notification, Ride
from dispatch.notify.events import NOTICES, ONCE_PER_RIDE, To
from people.models import NoticeChannel
from people.notices import Recipient, notice_recipients
from project.common.sql import insert_ignoring_conflicts

# What time it is for quiet hours; tests move this clock alone.
clock = timezone.now

# Set when rows commit: an in-process deliverer wakes at once instead of
# at its next poll.
pending = threading.Event()


def recipients_known(ride: Ride, recipients: list[Recipient]) -> None:
    """
    The ride's recipients as read in the current transaction: its changes
    there share them (a booking's searching and assigned events; the
    booking reads them in its own statement). Forgotten when the
    transaction commits, so the next change reads the choices afresh.
    """
    ride.__dict__["_notice_recipients"] = recipients
    transaction.on_commit(lambda: ride.__dict__.pop("_notice_recipients", None))


def _recipients(ride: Ride) -> list[Recipient]:
    if "_notice_recipients" not in ride.__dict__:
        recipients_known(ride, notice_recipients(ride.passenger_id))
    return ride.__dict__["_notice_recipients"]


def notices_write(ride: Ride, kind: str, **said) -> int:
    """
    Write the notices `kind` on `ride` owes, inside the caller's transaction;
    how many rows. An event NOTICES does not name owes none. `said`: what
    the caller knows for the text (the live ETA's minutes).
    """
    notice = NOTICES.get(kind)
    if notice is None or not settings.NOTIFY_ENABLED:
        return 0
    params = notice.params(ride)
    if params is None:
        return 0
    params = {**params, **said}
    now = timezone.now()
    local = clock()
    accepted = ride.driver_id is not None and ride.assigned_at is not None
    version = 0 if kind in ONCE_PER_RIDE else ride.version
    rows = []
    for recipient in _recipients(ride):
        if notice.to == To.PASSENGER and recipient.link_id is not None:
            continue
        if notice.to == To.CAREGIVERS and recipient.link_id is None:
            continue
        if not recipient.wants(notice.topic, local):
            continue
        if recipient.channel == NoticeChannel.SMS and not accepted:
            continue
        rows.append(
            Notification(
                ride=ride,
                event=kind,
                version=version,
                topic=notice.topic,
                recipient_id=recipient.user_id,
                link_id=recipient.link_id,
                channel=recipient.channel,
                params=params,
                next_attempt_at=now,
                created_at=now,
            )
        )
    if rows:
        insert_ignoring_conflicts(rows)
        transaction.on_commit(pending.set)
    return len(rows)
