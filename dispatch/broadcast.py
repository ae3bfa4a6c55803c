"""
The one way news leaves the server: every group message is built and sent
here, and nothing else calls the channel layer.

Groups, and who is in each:

- `ride.<ride_id>`: every socket open on that ride, once its access is
  decided (passenger, caregivers, driver, staff), and the caregiver sockets
  that follow the ride's driver position;
- `passenger.<id>`: the passenger's own socket, for all their rides;
- `caregiver.<id>`: a caregiver's socket, for all their passengers' rides;
- `driver.<id>`: the driver's app on each of their phones (its rides,
  offers, the status they set, and a nudge when its manifest may have
  changed: the socket reads it again);
- `user.<id>`: every socket of a user (their links changed, their in-app
  notifications);
- `console.board`: the dispatchers' consoles.

Services call the `ride_changed`, `driver_changed` and `links_changed`
senders inside their transaction. The messages are built at once, from the
ride as the transaction left it, and sent when it commits, in commit order
(a per-loop outbox), so nobody hears of a change that rolled back, and
every message carries the version it describes. A driver's position report
has no transaction: `driver_moved` sends it at once to the ride, and
batches it for the consoles. The sockets decide what each viewer may see
of a message (dispatch.access).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Mapping
from functools import partial
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction

from dispatch import payloads
from dispatch.geo import Point
from dispatch.group_messages import (
    AccessEnded,
    ConsoleDriver,
    ConsoleLinks,
    ConsolePositions,
    ConsoleRide,
    DriverStatusNews,
    LinksChanged,
    ManifestChanged,
    NoticeNews,
    RideLocation,
    RideNews,
    RolesChanged,
)
from dispatch.locations import live_position
from dispatch.models import Alarm, Ride
from dispatch.notify.outbox import notices_write
from people.access import caregivers_following
from project.common.batching import LatestPerKey
from project.common.db import calling_loop
from project.common.sockets import per_event_loop

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


# --- the group messages ----------------------------------------------------------


# News of a plan to the riders: their confirmed pickup window, when a plan is
# published and whenever it changes after.
PICKUP_WINDOW = "pickup_window"
# The no-show escalation's steps (dispatch.rides, dispatch.watch): the driver
# waits at the door, told to the passenger, then to their caregivers too.
WAITING_PASSENGER_TOLD = "waiting_passenger_told"
WAITING_CAREGIVERS_TOLD = "waiting_caregivers_told"
# Alarms on a trip (dispatch.alarms): to the caregivers who hear news, and
# the consoles; never to the passenger's or the driver's app.
ALARM_RAISED = "alarm_raised"
ALARM_ACKNOWLEDGED = "alarm_acknowledged"
# An offer closed by these events reaches its driver's sockets (all of them:
# a driver may be signed in on two phones) as ride_cancelled with this
# reason; any other close is "offer_withdrawn".
OFFER_CLOSED = {"offer_expired": "offer_expired", "offer_declined": "offer_declined"}
# Events the caregivers do not hear of.
_NOT_FOR_CAREGIVERS = ("offered", "needs_updated", WAITING_PASSENGER_TOLD)


def caregivers_hear(kind: str) -> bool:
    """
    Whether caregivers hear of this ride event at all, on any socket (the
    caregiver's, and a ride socket a caregiver watches): not of the driver
    at the door before the escalation reaches them, say.
    """
    return kind not in _NOT_FOR_CAREGIVERS


Send = tuple[str, dict[str, Any]]


# --- rides -----------------------------------------------------------------------


def ride_changed(
    ride: Ride,
    kind: str,
    *,
    released_driver_id: int | None = None,
    released_by: str = "dispatcher",
    released_reason: str = "",
    withdrawn_driver_ids: list[int] = (),
    offered_driver_id: int | None = None,
    offer_distance_km: float | None = None,
    offer_expires_at=None,
    watchers: list[int] | None = None,
    driver_at: Point | None = None,
    alarm: Alarm | None = None,
) -> None:
    """
    Tell everyone of `kind` on `ride` once the transaction commits. The ride
    is read again with its people unless it carries them already
    (`Ride.objects.with_people()`). `watchers`: the caregivers following the
    passenger, and `driver_at`: where its driver is, if the caller has read
    them already. `alarm`: the alarm an ALARM_RAISED or ALARM_ACKNOWLEDGED
    is about.

    Every ride event passes here inside its transaction, so here too it
    writes the notices it owes (dispatch.notify.outbox), in the same
    transaction.
    """
    ride = _with_people(ride)
    notices_write(ride, kind)
    if watchers is None:
        watchers = caregivers_following(ride.passenger_id)
    sends = _ride_sends(
        ride,
        kind,
        watchers,
        released=(released_driver_id, released_by, released_reason or kind),
        withdrawn=withdrawn_driver_ids,
        offer=(offered_driver_id, offer_distance_km, offer_expires_at),
        point=driver_at or driver_point(ride),
        alarm=alarm,
    )
    if ride.run_id is not None and ride.service_date is not None and not told_window(kind):
        # Any change to a ride on a run changes its driver's manifest (a
        # window told comes with a plan's change, which nudges its drivers).
        sends.append(_manifest_nudge(ride.run.driver_id, ride.service_date, kind))
    _after_commit(sends)


def manifests_changed(service_date, driver_ids, reason: str) -> None:
    """The runs of these drivers on `service_date` changed (planned, moved, published)."""
    _after_commit([_manifest_nudge(d, service_date, reason) for d in sorted(set(driver_ids))])


def _manifest_nudge(driver_id: int, service_date, reason: str) -> Send:
    news = ManifestChanged(
        type="driver.manifest", service_date=service_date.isoformat(), reason=reason
    )
    return driver_group(driver_id), news


def pickup_window_told(ride: Ride, *, changed: bool) -> None:
    """The rider and their caregivers hear the ride's confirmed pickup window."""
    ride_changed(ride, PICKUP_WINDOW + "_changed" if changed else PICKUP_WINDOW)


def told_window(kind: str) -> bool:
    return kind in (PICKUP_WINDOW, PICKUP_WINDOW + "_changed")


def _with_people(ride: Ride) -> Ride:
    """The ride with everyone its messages name loaded (read again only if they are not)."""
    named = ["passenger", "booked_by", *(["driver"] if ride.driver_id else [])]
    if all(Ride._meta.get_field(name).is_cached(ride) for name in named):
        return ride
    return Ride.objects.with_people().get(pk=ride.pk)


def _news(ride: Ride, kind: str, audience: str, message: dict[str, Any]) -> RideNews:
    return RideNews(
        type="ride.news",
        kind=kind,
        audience=audience,
        ride_id=ride.ride_id,
        passenger_id=ride.passenger_id,
        status=ride.status,
        version=ride.version,
        message=message,
    )


def driver_point(ride: Ride) -> Point | None:
    """Where the ride's driver is now, if it has one."""
    if not ride.driver_id:
        return None
    return live_position(ride.driver_id, getattr(ride.driver, "driver_state", None))


def snapshot(ride: Ride) -> dict[str, Any]:
    """The ride as it stands, with its driver's live position (before any viewer's cut)."""
    return payloads.ride_status(ride, driver_point(ride))


def _ride_sends(
    ride: Ride, kind: str, watchers, *, released, withdrawn, offer, point, alarm=None
) -> list[Send]:
    """Who hears what of one ride event."""
    snapshot = payloads.ride_status(ride, point)
    to_ride: dict | None = snapshot
    to_driver: dict | None = snapshot if ride.driver_id else None
    sends: list[Send] = []
    told_caregivers: dict | None = None
    if kind == "searching":
        to_ride = payloads.searching(ride)
    elif kind == "scheduled":
        to_ride = payloads.ride_scheduled(ride)
    elif told_window(kind):
        # Not a status change: the passenger and their caregivers hear the
        # window itself (only this ride's: no other rider of the run).
        to_ride = payloads.pickup_window(ride, changed=kind != PICKUP_WINDOW)
        to_driver = None
        told_caregivers = {**to_ride, "event": kind}
    elif kind in ("assigned", "reassigned"):
        to_ride = payloads.driver_assigned(ride, point)
        to_driver = payloads.ride_assigned(ride)
    elif kind == "no_drivers":
        to_ride = payloads.no_drivers(ride)
    elif kind == "cancelled":
        to_ride = payloads.ride_cancelled(ride)
        to_driver = to_ride if ride.driver_id else None
    elif kind in (WAITING_PASSENGER_TOLD, WAITING_CAREGIVERS_TOLD):
        to_ride = payloads.driver_waiting(ride, caregivers_told=kind == WAITING_CAREGIVERS_TOLD)
        to_driver = None
        told_caregivers = {**to_ride, "event": kind}
    elif kind in (ALARM_RAISED, ALARM_ACKNOWLEDGED):
        to_ride = to_driver = None
        told_caregivers = {**payloads.alarm(ride, alarm), "event": kind}
    elif kind == "needs_updated":
        # Not a ride event: the driver's card changed; the version stays.
        to_ride, to_driver = None, payloads.ride_updated(ride)
    elif kind == "offered":
        driver_id, distance_km, expires_at = offer
        request = payloads.ride_request(ride, distance_km, expires_at)
        sends.append((driver_group(driver_id), _news(ride, kind, "driver", request)))
        to_ride = to_driver = None

    if to_ride is not None:
        sends.append((ride_group(ride.ride_id), _news(ride, kind, "ride", to_ride)))
        # The passenger's own app hears of every ride, including those a
        # caregiver booked for them.
        sends.append((passenger_group(ride.passenger_id), _news(ride, kind, "passenger", to_ride)))
    if to_driver is not None and ride.driver_id:
        sends.append((driver_group(ride.driver_id), _news(ride, kind, "driver", to_driver)))

    released_id, released_by, released_reason = released
    if released_id and released_id != ride.driver_id:
        # A driver taken off the ride (reassigned, or who gave it back).
        gone = {**payloads.ride_cancelled(ride), "cancelled_by": released_by}
        gone["reason"] = released_reason
        sends.append((driver_group(released_id), _news(ride, "released", "driver", gone)))
    sends += _withdrawn_sends(ride, withdrawn, OFFER_CLOSED.get(kind, "offer_withdrawn"))

    if caregivers_hear(kind):
        told = _news(ride, kind, "caregiver", told_caregivers or {**snapshot, "event": kind})
        sends += [(caregiver_group(caregiver_id), told) for caregiver_id in watchers]
    # The consoles hear every ride event: an offer (its card's countdown, and
    # the version an open panel assigns against) as much as a status change.
    sends.append((CONSOLE_GROUP, _console_ride(ride, kind)))
    return sends


def _withdrawn_sends(ride: Ride, driver_ids, reason: str) -> list[Send]:
    """Offers that are no longer open: each driver's app stops showing its offer."""
    gone = {
        **payloads.ride_cancelled(ride),
        "cancelled_by": ride.cancelled_by or "system",
        "reason": reason,
    }
    return [(driver_group(d), _news(ride, "withdrawn", "driver", gone)) for d in driver_ids]


def offer_closed(ride: Ride, driver_id: int, kind: str) -> None:
    """
    An offer expired or declined (`kind`) that the ride's log could not
    take (the ride changed at that moment): its driver alone is told, once
    the transaction commits.
    """
    _after_commit(_withdrawn_sends(_with_people(ride), [driver_id], OFFER_CLOSED[kind]))


def _console_ride(ride: Ride, kind: str) -> ConsoleRide:
    return ConsoleRide(
        type="console.ride",
        kind=kind,
        ride_pk=ride.pk,
        ride_id=ride.ride_id,
        status=ride.status,
        version=ride.version,
    )


# --- drivers -------------------------------------------------------------------


def driver_changed(driver_id: int, kind: str) -> None:
    """A driver's status changed (available, on_trip, offline)."""
    news = ConsoleDriver(type="console.driver", kind=kind, driver_id=driver_id)
    _after_commit([(CONSOLE_GROUP, news)])


def driver_status_set(driver_id: int, status: str) -> None:
    """
    A driver set their status (online or offline): every socket of the
    driver hears it, the one that asked included, so a second phone never
    shows a status the driver left.
    """
    _after_commit(
        [(driver_group(driver_id), DriverStatusNews(type="driver.status", status=status))]
    )


async def driver_moved(driver_id: int, point: Point, held: Mapping[str, int]) -> None:
    """
    A driver's position report: at once to the sockets on each ride the
    driver holds (`held`: ride_id -> passenger id), and within
    CONSOLE_MAP_BATCH_S to the consoles, batched per worker.
    """
    if held:
        await _send_all(
            [
                (
                    ride_group(ride_id),
                    RideLocation(
                        type="ride.location",
                        ride_id=ride_id,
                        passenger_id=passenger_id,
                        message=payloads.driver_location(ride_id, driver_id, point),
                    ),
                )
                for ride_id, passenger_id in held.items()
            ]
        )
    _console_positions().note(driver_id, point)


async def _to_consoles(batch: dict[int, Point]) -> None:
    message = ConsolePositions(
        type="console.positions",
        drivers=[
            [driver_id, p.lat, p.lng, p.heading, p.seen, p.reported]
            for driver_id, p in batch.items()
        ],
    )
    await _send_all([(CONSOLE_GROUP, message)])


# This worker's reports for the consoles: the latest of each driver, once per
# CONSOLE_MAP_BATCH_S.
_console_positions = per_event_loop(
    lambda: LatestPerKey(lambda: settings.CONSOLE_MAP_BATCH_S, _to_consoles, "console positions")
)


# --- people --------------------------------------------------------------------


def notice_sent(user_id: int, message: dict[str, Any]) -> None:
    """An in-app notification, to every open socket of its recipient, now."""
    _deliver([(user_group(user_id), NoticeNews(type="notice.news", message=message))])


def links_changed(*user_ids: int) -> None:
    """Sockets of these users re-read their caregiver links at once."""
    sends: list[Send] = [(user_group(uid), LinksChanged(type="links.changed")) for uid in user_ids]
    sends.append((CONSOLE_GROUP, ConsoleLinks(type="console.links")))
    _after_commit(sends)


def roles_changed(user_id: int) -> None:
    """The user's staff roles changed: their sockets opened on a role ask again."""
    _after_commit([(user_group(user_id), RolesChanged(type="roles.changed"))])


def access_ended(
    user_id: int,
    *,
    code: int,
    error: str,
    message: str,
    api_session_id: int | None = None,
    console_session_key: str | None = None,
) -> None:
    """Close the user's open sockets (or one session's) once the change commits."""
    news = AccessEnded(
        type="access.ended",
        api_session_id=api_session_id,
        console_session_key=console_session_key,
        code=code,
        error=error,
        message=message,
    )
    _after_commit([(user_group(user_id), news)])


# --- delivery ------------------------------------------------------------------


def _after_commit(sends: list[Send]) -> None:
    transaction.on_commit(partial(_deliver, sends))


def _deliver(sends: list[Send]) -> None:
    """
    Hand the sends to the event loop that called this code (a socket's
    service call) and return at once, instead of holding the database
    thread until the channel layer has answered; without a loop (a command,
    the admin, a test), send before returning.
    """
    loop = calling_loop()
    if loop is None:
        async_to_sync(_send_all)(sends)
    else:
        loop.call_soon_threadsafe(_enqueue, sends)


# One ordered outbox per event loop: one drain task keeps them in commit order.
_outboxes: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _enqueue(sends: list[Send]) -> None:
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
            log.exception("news delivery failed")


async def _send_all(sends: list[Send]) -> None:
    layer = get_channel_layer()
    if layer is None or not sends:
        return
    results = await asyncio.gather(
        *(layer.group_send(group, message) for group, message in sends), return_exceptions=True
    )
    for (group, _), result in zip(sends, results, strict=True):
        if isinstance(result, Exception):
            log.error("group_send to %s failed: %r", group, result)
