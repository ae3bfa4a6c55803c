"""
A driver's answer to an offer (DISPATCH_MODE=offer), and offers that time
out. Making an offer is the matcher's (dispatch.matching.ride_offer); an
offer past its time is treated the same whether the driver accepts or
declines it: refused, and passed to the next driver.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from dispatch import broadcast, drivers, matching, rides
from dispatch.errors import DispatchError, IllegalTransition
from dispatch.models import DriverState, DriverStatus, OfferStatus, Ride, RideOffer, RideStatus
from people.models import User
from project.common.sweeps import Sweep

log = logging.getLogger(__name__)


def offered_ride(*, driver: User, ride_id: str | None) -> Ride:
    """The ride of the driver's open offer (that ride's, if `ride_id` names one)."""
    offers = RideOffer.objects.select_related("ride").filter(driver=driver)
    if ride_id:
        offers = offers.filter(ride__ride_id=ride_id)
    offer = offers.filter(status=OfferStatus.OFFERED).first()
    if offer is not None:
        return offer.ride
    past = offers.order_by("-created_at").first() if ride_id else None
    if past is not None:
        raise _no_longer_open(past.ride, "The offer is no longer open.")
    raise DispatchError("You have no open ride offer.", code="invalid_state", status=409)


def _no_longer_open(ride: Ride, message: str) -> IllegalTransition:
    """
    An answer to an offer that has closed (expired, withdrawn, answered):
    invalid_state, saying where the ride is now (docs/protocol.md).
    """
    ride.refresh_from_db(fields=["status", "version"])
    return IllegalTransition(ride, RideStatus.ASSIGNED, message)


def _open_offer(ride: Ride, driver: User) -> RideOffer:
    offer = RideOffer.objects.filter(ride=ride, driver=driver, status=OfferStatus.OFFERED).first()
    if offer is None:
        raise _no_longer_open(ride, f"There is no open offer of ride {ride.ride_id} to you.")
    if offer.expires_at <= timezone.now():
        ride_offers_expire()
        raise _no_longer_open(ride, "The offer has expired.")
    return offer


def _ride_locked(ride_id: int) -> Ride:
    """
    The ride's row, locked until the transaction ends and read afresh.
    An answer and the sweep take it before they close the offer, in the
    order every writer of a ride takes its rows: a driver's status row
    (drivers.lock_status, a claim), then the ride's, then its offers'.
    Cancelling and assigning write the ride and then withdraw its offers
    (rides.withdraw_offers): an answer that closed its offer first would
    wait for them as they wait for it, and PostgreSQL would abort one.
    """
    return Ride.objects.select_for_update().get(pk=ride_id)


def _close(offer: RideOffer, status: str) -> None:
    if not RideOffer.objects.filter(pk=offer.pk, status=OfferStatus.OFFERED).update(
        status=status, responded_at=timezone.now()
    ):
        raise _no_longer_open(offer.ride, "The offer is no longer open.")


def ride_offer_accept(*, ride: Ride, driver: User) -> Ride:
    """The driver takes the ride, if the hard rules still allow it."""
    offer = _open_offer(ride, driver)
    with transaction.atomic():
        # The claim's row before the ride's (_ride_locked).
        drivers.lock_status(driver.pk)
        ride = _ride_locked(ride.pk)
        _close(offer, OfferStatus.ACCEPTED)
        matching.ride_assign(
            ride=ride, driver_id=driver.pk, actor=driver, role="driver", confirmed=True
        )
    return ride


def ride_offer_decline(*, ride: Ride, driver: User, reason: str = "") -> matching.MatchResult:
    """
    The driver lets the ride go: it is offered to the next one, and each of
    the driver's sockets stops showing the offer.
    """
    offer = _open_offer(ride, driver)
    with transaction.atomic():
        ride = _ride_locked(ride.pk)
        _close(offer, OfferStatus.DECLINED)
        if rides.record(
            ride,
            "offer_declined",
            actor=driver,
            role="driver",
            payload={"driver_id": driver.pk, "reason": reason},
        ):
            broadcast.ride_changed(ride, "offer_declined", withdrawn_driver_ids=[driver.pk])
        else:
            broadcast.offer_closed(ride, driver.pk, "offer_declined")
    return matching.ride_match(ride=ride)


def ride_offers_expire(*, now: datetime | None = None) -> int:
    """
    Expire offers past their time, and those whose driver can no longer take
    them (gone offline, busy, or no longer allowed to drive: their passenger should
    not wait out the timeout), and offer each ride to the next driver.
    Every worker runs this periodically, so a timeout fires even when the
    process that made the offer is gone; the conditional update makes sure
    only one of them acts on each offer.
    """
    now = now or timezone.now()
    expired = 0
    still_able = DriverState.objects.may_drive().filter(status=DriverStatus.AVAILABLE)
    for offer in RideOffer.objects.filter(status=OfferStatus.OFFERED).filter(
        Q(expires_at__lte=now) | ~Q(driver_id__in=still_able.values("driver_id"))
    ):
        with transaction.atomic():
            ride = _ride_locked(offer.ride_id)
            if not RideOffer.objects.filter(pk=offer.pk, status=OfferStatus.OFFERED).update(
                status=OfferStatus.EXPIRED, responded_at=now
            ):
                continue
            if rides.record(ride, "offer_expired", payload={"driver_id": offer.driver_id}):
                broadcast.ride_changed(
                    ride, "offer_expired", withdrawn_driver_ids=[offer.driver_id]
                )
            else:
                # The ride changed as it was read: the offer has expired all
                # the same, and the driver's app must stop showing it.
                ride = Ride.objects.get(pk=offer.ride_id)
                broadcast.offer_closed(ride, offer.driver_id, "offer_expired")
        expired += 1
        if ride.status == RideStatus.SEARCHING:
            matching.ride_match(ride=ride)
    return expired


_offer_sweep = Sweep("offer sweep", ride_offers_expire)


def start_sweeper() -> None:
    """
    In offer mode, every worker that serves an app socket expires overdue
    offers once a second (started by the first socket), so a timeout fires
    even if the worker that made the offer has died. The sweep_offers timer
    (deploy/systemd) covers a worker no app has reached yet.
    """
    if settings.DISPATCH_MODE == "offer":
        _offer_sweep.ensure_running(1.0)
