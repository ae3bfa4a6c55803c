"""
Telling everyone who watches a ride. Services call `publish_*` inside their
transaction; delivery waits for the commit (transaction.on_commit), so no app
hears of a change that rolled back.

Groups: `ride.<ride_id>` (every socket on that ride), `driver.<user id>`,
`passenger.<user id>`, `caregiver.<user id>`, `user.<user id>` (permission
changes for any socket of that user) and `console.board`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial

from asgiref.sync import SyncToAsync, async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from django.db.models import Q

from dispatch import messages
from dispatch.models import Ride

log = logging.getLogger(__name__)

CONSOLE_GROUP = "console.board"


def ride_group(ride_id: str) -> str:
    return f"ride.{ride_id}"


def driver_group(user_id: int) -> str:
    return f"driver.{user_id}"


def passenger_group(user_id: int) -> str:
    return f"passenger.{user_id}"


def caregiver_group(user_id: int) -> str:
    return f"caregiver.{user_id}"


def user_group(user_id: int) -> str:
    return f"user.{user_id}"


async def _send_all(sends: list[tuple[str, dict]]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    results = await asyncio.gather(
        *(layer.group_send(group, msg) for group, msg in sends), return_exceptions=True
    )
    for (group, _), result in zip(sends, results, strict=True):
        if isinstance(result, Exception):
            log.error("group_send to %s failed: %r", group, result)


# One ordered outbox per event loop: a service running on the database
# thread hands its notifications to the loop and returns at once, instead of
# holding that thread (which every socket of the worker shares) until Redis
# has answered. One drain task per loop keeps them in commit order.
_outboxes: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _server_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop this sync code was called from, if any."""
    if getattr(SyncToAsync.threadlocal, "main_event_loop_pid", None) != os.getpid():
        return None
    loop = getattr(SyncToAsync.threadlocal, "main_event_loop", None)
    return loop if loop is not None and loop.is_running() else None


def _enqueue(sends: list[tuple[str, dict]]) -> None:
    loop = asyncio.get_running_loop()
    queue = _outboxes.get(loop)
    if queue is None:
        queue = _outboxes[loop] = asyncio.Queue()
        loop.create_task(_drain(queue))
    queue.put_nowait(sends)


async def _drain(queue: asyncio.Queue) -> None:
    while True:
        sends = await queue.get()
        try:
            await _send_all(sends)
        except Exception:
            log.exception("event delivery failed")


def send_now(sends: list[tuple[str, dict]]) -> None:
    if not sends:
        return
    loop = _server_loop()
    if loop is None:
        # A command, a test or a thread of its own: deliver before returning.
        async_to_sync(_send_all)(sends)
    else:
        loop.call_soon_threadsafe(_enqueue, sends)


_captures = threading.local()


@contextmanager
def captured(ride_id: str) -> Iterator[list[dict]]:
    """
    The messages this thread delivers to ride `ride_id`'s group while the
    block runs, in order. The socket that booked sends them itself, at once,
    instead of waiting for their copies to come back through the channel
    layer (RideConsumer drops those copies).
    """
    sent: list[dict] = []
    _captures.active = (ride_id, sent)
    try:
        yield sent
    finally:
        _captures.active = None


def _ride_envelope(ride: Ride, kind: str, message: dict, audience: str = "ride") -> dict:
    return {
        "type": "ride.message",
        "audience": audience,
        "kind": kind,
        "ride_id": ride.ride_id,
        "passenger_id": ride.passenger_id,
        "status": ride.status,
        "message": message,
    }


def publish_ride(ride_pk: int, kind: str, **extra) -> None:
    transaction.on_commit(partial(_deliver_ride, ride_pk, kind, extra))


def _deliver_ride(ride_pk: int, kind: str, extra: dict) -> None:
    ride = Ride.objects.with_people().get(pk=ride_pk)
    send_now(ride_sends(ride, kind, extra, caregiver_watchers(ride.passenger_id)))


def caregiver_watchers_query(passenger_id):
    """
    Caregivers told of every change to the passenger's rides. Those with only
    can_view_location are told too: their socket needs the news to join the
    ride's group for positions, and drops the status itself
    (FollowerConsumer.ride_message).
    """
    from people.models import CaregiverLink

    return (
        CaregiverLink.objects.active()
        .filter(
            Q(can_receive_notifications=True) | Q(can_view_location=True),
            passenger_id=passenger_id,
        )
        .values_list("caregiver_id", flat=True)
    )


def caregiver_watchers(passenger_id: int) -> list[int]:
    return list(caregiver_watchers_query(passenger_id))


def ride_sends(ride: Ride, kind: str, extra: dict, watchers: list[int]) -> list[tuple[str, dict]]:
    """
    The group messages that tell everyone of `kind` on `ride`, built now from
    the ride as given (loaded with its people: `Ride.objects.with_people()`).
    """
    snapshot = messages.ride_status(ride)
    sends: list[tuple[str, dict]] = []

    to_ride: dict
    to_driver: dict | None = None
    if kind == "searching":
        to_ride = messages.searching(ride)
    elif kind in ("assigned", "reassigned"):
        to_ride = messages.driver_assigned(ride)
        to_driver = messages.ride_assigned(ride)
    elif kind == "no_drivers":
        to_ride = messages.no_drivers(ride)
    elif kind == "cancelled":
        to_ride = messages.ride_cancelled(ride)
        to_driver = to_ride if ride.driver_id else None
    elif kind == "needs_updated":
        to_ride = None
        to_driver = messages.ride_updated(ride)
    elif kind == "offered":
        to_ride = None
        to_driver = messages.ride_request(ride, extra.get("distance_km"), extra["expires_at"])
        sends.append((driver_group(extra["driver_id"]), _ride_envelope(ride, kind, to_driver)))
        to_driver = None
    else:
        to_ride = snapshot
        to_driver = snapshot if ride.driver_id else None

    if to_ride is not None:
        capture = getattr(_captures, "active", None)
        if capture is not None and capture[0] == ride.ride_id:
            capture[1].append(to_ride)
        sends.append((ride_group(ride.ride_id), _ride_envelope(ride, kind, to_ride)))
        # The passenger's own app hears of every ride, including those a
        # caregiver booked for them.
        sends.append(
            (passenger_group(ride.passenger_id), _ride_envelope(ride, kind, to_ride, "passenger"))
        )
    if to_driver is not None and ride.driver_id:
        sends.append((driver_group(ride.driver_id), _ride_envelope(ride, kind, to_driver)))
    released = extra.get("released_driver_id")
    if released and released != ride.driver_id:
        # A driver taken off the ride (reassigned, or who cancelled) is told.
        gone = messages.ride_cancelled(ride)
        gone["cancelled_by"] = extra.get("released_by", "dispatcher")
        gone["reason"] = extra.get("released_reason", kind)
        sends.append((driver_group(released), _ride_envelope(ride, "released", gone)))

    for withdrawn in extra.get("withdrawn_driver_ids") or ():
        # An offer that is no longer open: the driver's app stops showing it.
        gone = messages.ride_cancelled(ride)
        gone["cancelled_by"] = ride.cancelled_by or "system"
        gone["reason"] = "offer_expired" if kind == "offer_expired" else "offer_withdrawn"
        sends.append((driver_group(withdrawn), _ride_envelope(ride, "withdrawn", gone)))

    if kind not in ("offered", "needs_updated"):
        envelope = _ride_envelope(ride, kind, {**snapshot, "event": kind}, "caregiver")
        for caregiver_id in watchers:
            sends.append((caregiver_group(caregiver_id), envelope))

    sends.append(
        (
            CONSOLE_GROUP,
            {
                "type": "console.ride",
                "kind": kind,
                "ride_pk": ride.pk,
                "ride_id": ride.ride_id,
                "status": ride.status,
                "version": ride.version,
            },
        )
    )
    return sends


def driver_sends(driver_id: int, kind: str) -> list[tuple[str, dict]]:
    return [(CONSOLE_GROUP, {"type": "console.driver", "kind": kind, "driver_id": driver_id})]


def publish_driver(driver_id: int, kind: str) -> None:
    transaction.on_commit(partial(send_now, driver_sends(driver_id, kind)))


def publish_links_changed(*user_ids: int) -> None:
    """Sockets of these users re-read their caregiver links at once."""
    sends = [(user_group(uid), {"type": "links.changed"}) for uid in user_ids]
    sends.append((CONSOLE_GROUP, {"type": "console.links", "kind": "links"}))
    transaction.on_commit(partial(send_now, sends))
