"""
Delivering the outbox: `manage.py notify` (production), or a thread in the
serving process (`make run`, NOTIFY_IN_PROCESS).

Each pass first fans the events that owe notices out to their recipients
(dispatch.notify.outbox.fan_out), then delivers. A batch is claimed first:
the due rows (pending, their next attempt come, nobody's unexpired claim on
them) get this batch's claim token and NOTIFY_CLAIM_S of lease in one
short transaction; PostgreSQL picks them with FOR UPDATE SKIP LOCKED, so
workers never wait on each other, and on SQLite the conditional UPDATE
itself decides. Then each row's lease is renewed just before it is sent
(a slow gateway can outlast a batch's lease: a row another worker has
claimed meanwhile is left to it), and it is marked sent (or failed, or
rescheduled), only while the claim is still this batch's. A worker killed
mid-batch leaves its claimed rows pending: once the lease runs out, the
next worker sends them; one killed while fanning out leaves its events
owed (that transaction rolls back). A row sent is never claimed again, so
what was marked sent is not sent twice; only a crash in the instant
between a gateway's acceptance and the mark can repeat one text (no
gateway here takes an idempotency key).

Who may hear is asked again as each row goes: a caregiver whose link was
revoked, or no longer receives notifications, since the row was written is
skipped. Failures are retried NOTIFY_MAX_ATTEMPTS times, the waits
doubling from NOTIFY_RETRY_BASE_S; the global SMS_MAX_PER_MINUTE ceiling
postpones a text without counting an attempt; the per-number daily cap
(which counts only texts the gateway took) skips it, with the reason.
Push that no longer reaches the person (turned off, their last device's
app uninstalled, which FCM's answer forgets) goes by SMS instead.
"""

from __future__ import annotations

import logging
import threading
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.db.models import Q
from django.utils import timezone

from dispatch import broadcast
from dispatch.models import Notification, NotificationStatus, Ride
from dispatch.notify.outbox import fan_out, pending, textable
from dispatch.notify.texts import TITLE, notice_text
from people import push, sms
from people.access import notified_links
from people.models import NoticeChannel
from people.notices import (
    URGENT,
    channel_reaching,
    device_tokens_dead,
    device_tokens_reaching,
)
from project.common.limits import caps_give_back, caps_take

log = logging.getLogger(__name__)
N = NotificationStatus


class Skip(Exception):
    """This notification can never be sent as it is: recorded, not retried."""


class Later(Exception):
    """Not now, and not the notification's fault: try again after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def claim_batch(limit: int | None = None) -> tuple[str, list[int]]:
    """Claim up to `limit` due rows for this batch: its token and their ids."""
    token = uuid.uuid4().hex
    now = timezone.now()
    due = Q(status=N.PENDING, next_attempt_at__lte=now) & (
        Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
    )
    with transaction.atomic():
        rows = Notification.objects.filter(due).order_by("next_attempt_at", "pk")
        if connection.vendor == "postgresql":
            rows = rows.select_for_update(skip_locked=True)
        ids = list(rows.values_list("pk", flat=True)[: limit or settings.NOTIFY_BATCH])
        if not ids:
            return token, []
        Notification.objects.filter(due, pk__in=ids).update(
            claim_token=token, claimed_until=now + timedelta(seconds=settings.NOTIFY_CLAIM_S)
        )
    claimed = Notification.objects.filter(pk__in=ids, claim_token=token)
    return token, sorted(claimed.values_list("pk", flat=True))


def deliver_due(limit: int | None = None) -> int:
    """Claim one batch and deliver it; how many rows it held."""
    token, ids = claim_batch(limit)
    rows = (
        Notification.objects.filter(pk__in=ids, claim_token=token)
        .select_related("recipient")
        .order_by("pk")
    )
    rides = Ride.objects.with_people().in_bulk({n.ride_id for n in rows})
    for notification in rows:
        deliver(notification, rides[notification.ride_id], token)
    return len(ids)


def _settle(notification: Notification, token: str, **fields) -> bool:
    """Record the outcome, only while the claim is still this batch's."""
    fields.update(claim_token="", claimed_until=None)
    return bool(Notification.objects.filter(pk=notification.pk, claim_token=token).update(**fields))


def _renewed(notification: Notification, token: str, now) -> bool:
    """The claim's lease renewed, if the claim is still this batch's."""
    lease = now + timedelta(seconds=settings.NOTIFY_CLAIM_S)
    claimed = Notification.objects.filter(pk=notification.pk, claim_token=token)
    return bool(claimed.update(claimed_until=lease))


def deliver(notification: Notification, ride: Ride, token: str) -> None:
    """Send one claimed notification and record what happened."""
    now = timezone.now()
    if not _renewed(notification, token, now):
        return
    recipient = notification.recipient
    try:
        link = notification.link_id
        if link is not None and not notified_links(ride.passenger_id).filter(pk=link).exists():
            raise Skip("The caregiver's link no longer receives notifications.")
        channel = _channel(notification, ride)
        body = notice_text(
            notification.topic,
            ride,
            notification.params,
            recipient.language,
            for_sms=channel == NoticeChannel.SMS,
        )
        _send(notification, body, channel)
    except Later as exc:
        _settle(
            notification,
            token,
            next_attempt_at=now + timedelta(seconds=exc.retry_after),
            last_error=str(exc)[:255],
        )
    except Skip as exc:
        _settle(notification, token, status=N.SKIPPED, last_error=str(exc)[:255])
    except (sms.SMSDeliveryError, push.PushDeliveryError, OSError) as exc:
        _failed(notification, token, now, str(exc))
    except Exception as exc:
        # No refusal a gateway here is known to raise: a fault, ours or a
        # library's. A failed try like any other, so that it ends failed
        # with its error, rather than halting its batch (the rows claimed
        # after it unsent) each time its lease runs out.
        log.exception("notification %s could not be sent", notification.pk)
        _failed(notification, token, now, f"{type(exc).__name__}: {exc}")
    else:
        _settle(
            notification,
            token,
            channel=channel,
            status=N.SENT,
            attempts=notification.attempts + 1,
            sent_at=timezone.now(),
            body=body,
            last_error="",
        )


def _failed(notification: Notification, token: str, now, error: str) -> None:
    """A failed try: again after a doubling wait, or given up after the last."""
    attempts = notification.attempts + 1
    final = attempts >= settings.NOTIFY_MAX_ATTEMPTS
    wait = settings.NOTIFY_RETRY_BASE_S * 2 ** (attempts - 1)
    _settle(
        notification,
        token,
        attempts=attempts,
        status=N.FAILED if final else N.PENDING,
        next_attempt_at=now + timedelta(seconds=wait),
        last_error=error[:255],
    )
    log.warning(
        "notification %s by %s failed (attempt %s%s): %s",
        notification.pk,
        notification.channel,
        attempts,
        ", giving up" if final else f", again in {wait:.0f} s",
        error,
    )


def _channel(notification: Notification, ride: Ride) -> str:
    """
    The row's channel; SMS for push that stopped reaching them since it was
    written (turned off here, the app uninstalled), as a new row would go,
    when it may be texted (outbox.textable).
    """
    channel = channel_reaching(notification.channel, notification.recipient_id)
    if channel != notification.channel and not textable(ride, notification.event):
        raise Skip("Push no longer reaches them, and no text goes before a driver accepts.")
    return channel


def _send(notification: Notification, body: str, channel: str) -> None:
    recipient = notification.recipient
    if channel == NoticeChannel.SMS:
        if not sms.is_textable(recipient.phone_number):
            raise Skip("Not a number Care Connect texts.")
        # The day's cost cap skips texts, so an urgent one (an SOS, a no-show,
        # the driver waiting at the door) neither meets it nor counts to it.
        daily = (
            [] if notification.topic in URGENT else [sms.sms_daily_claim(recipient.phone_number)]
        )
        taken_at = timezone.now().timestamp()
        refusal = caps_take([sms.sms_ceiling_claim(), *daily], now=taken_at)
        if refusal is not None and daily and refusal.cap == daily[0].cap:
            raise Skip("NOTIFY_SMS_MAX_PER_DAY reached for this number.")
        if refusal is not None:
            raise Later("SMS_MAX_PER_MINUTE reached; postponed.", refusal.retry_after)
        try:
            sms.sms_send(phone_number=recipient.phone_number, message=body)
        except (sms.SMSDeliveryError, OSError):
            # Not taken, not paid for: the daily cost cap counts it no more.
            caps_give_back(daily, taken_at)
            raise
    elif channel == NoticeChannel.PUSH:
        tokens = device_tokens_reaching(recipient.pk)
        data = {"ride_id": notification.ride.ride_id, "topic": notification.topic}
        try:
            gone = push.push_send(tokens=tokens, title=TITLE, body=body, data=data)
        except push.PushDeliveryError as exc:
            # Forgotten either way: the retry goes by SMS if none is left.
            device_tokens_dead(exc.gone)
            raise
        device_tokens_dead(gone)
    else:
        broadcast.notice_sent(
            recipient.pk,
            {
                "type": "notification",
                "id": notification.pk,
                "ride_id": notification.ride.ride_id,
                "topic": notification.topic,
                "urgent": notification.topic in URGENT,
                "title": TITLE,
                "body": body,
                "created_at": notification.created_at.isoformat(),
            },
        )


def notifications_send_again(notifications) -> int:
    """Failed or skipped notifications (a queryset) go out again, from their first try."""
    return notifications.filter(status__in=[N.FAILED, N.SKIPPED]).update(
        status=N.PENDING, attempts=0, next_attempt_at=timezone.now(), last_error=""
    )


# --- the worker ------------------------------------------------------------------


def run(*, stop: threading.Event | None = None, once: bool = False) -> int:
    """
    Deliver until `stop` is set (or one pass, `once`): batch after batch
    while events owe notices (fanned out to their recipients first) or rows
    are due, then wait NOTIFY_POLL_S or until new notices commit in this
    process. Returns how many rows it handled.
    """
    stop = stop or threading.Event()
    push.push_enabled()
    handled = 0
    while not stop.is_set():
        pending.clear()
        spread = done = 0
        try:
            spread = fan_out()
            done = deliver_due()
        except Exception:
            log.exception("notification delivery failed")
        finally:
            close_old_connections()
        handled += done
        if spread or done:
            continue
        if once:
            return handled
        pending.wait(settings.NOTIFY_POLL_S)
    return handled


def start_delivering() -> threading.Thread | None:
    """In a serving process (make run, NOTIFY_IN_PROCESS): deliver on a daemon thread."""
    if not settings.NOTIFY_IN_PROCESS:
        return None
    thread = threading.Thread(target=run, name="notify", daemon=True)
    thread.start()
    return thread
