"""The driver socket, /ws/driver/: status, positions, offers, trip steps, the manifest."""

from __future__ import annotations

import time
from typing import ClassVar

from dispatch import (
    access,
    broadcast,
    drivers,
    matching,
    offers,
    payloads,
    rides,
)
from dispatch.access import Viewer
from dispatch.consumers.base import AppSocket
from dispatch.geo import Point
from dispatch.manifest_feed import ManifestFeed
from dispatch.models import (
    FINAL_STATUSES,
    DriverStatus,
    OfferStatus,
    Ride,
    RideOffer,
)
from dispatch.planning import day as on_the_day
from dispatch.socket_schemas import LocationUpdate, RideAction, SetStatus
from people.models import DriverProfile
from project.common.db import db_async
from project.common.sockets import CLOSE_FORBIDDEN, CLOSE_UNAUTHENTICATED


class DriverConsumer(ManifestFeed, AppSocket):
    """ws://HOST/ws/driver/ (or /ws/driver/<driver_id>/): the driver's app."""

    handlers: ClassVar[dict[str, str]] = {
        "ping": "on_ping",
        "set_status": "on_set_status",
        "location_update": "on_location_update",
        "arrived": "on_arrived",
        "start_trip": "on_start_trip",
        "complete_trip": "on_complete_trip",
        "cancel_ride": "on_cancel_ride",
        "no_show": "on_no_show",
        "accept_ride": "on_accept_ride",
        "decline_ride": "on_decline_ride",
        "get_manifest": "on_get_manifest",
    }
    viewer = Viewer(access.DRIVER)

    async def connect(self):
        if not self.user.is_authenticated:
            await self.refuse(
                CLOSE_UNAUTHENTICATED, "authentication_required", "Sign in as a driver to connect."
            )
            return
        wanted = self.scope["url_route"]["kwargs"].get("driver_id")
        start = await db_async(self._start)()
        if start is None or (wanted is not None and int(wanted) != self.user.pk):
            await self.refuse(CLOSE_FORBIDDEN, "forbidden", "This socket is for the driver only.")
            return
        # (ride_id, passenger_id) of the ride this driver holds, and what the app is told first.
        self.active_ride, greeting = start
        # Rides left waiting near this driver are matched once, after they
        # go online (not on every reconnect: after a restart thousands of
        # drivers reconnect at once).
        self.matching_waiting = False
        await self.accept()
        await self.join(broadcast.driver_group(self.user.pk))
        await self.join(broadcast.user_group(self.user.pk))
        for message in greeting:
            await self.send_json(message)

    def _start(self) -> tuple[tuple[str, int] | None, list[dict]] | None:
        """None for a user who is not a driver; else their ride and the greeting."""
        if not DriverProfile.objects.filter(user=self.user).exists():
            return None
        state = drivers.driver_state_for(self.user)
        ride = Ride.objects.with_people().held_by(self.user.pk).first()
        offer = (
            RideOffer.objects.select_related("ride__passenger", "ride__booked_by")
            .filter(driver=self.user, status=OfferStatus.OFFERED)
            .first()
        )
        greeting = [
            {
                "type": "connection_established",
                "message": "Connected to driver service",
                "driver_id": self.user.pk,
                "status": state.status,
            }
        ]
        if ride is not None:
            greeting.append(payloads.ride_assigned(ride))
        if offer is not None:
            greeting.append(payloads.ride_request(offer.ride, offer.distance_km, offer.expires_at))
        greeting += [m for m in [self.manifest_start()] if m]
        return ((ride.ride_id, ride.passenger_id) if ride else None), greeting

    async def on_set_status(self, content):
        request = SetStatus.model_validate(content)
        state = await db_async(drivers.driver_set_status)(driver=self.user, status=request.status)
        await self.send_json({"type": "status_updated", "status": state.status})
        self.matching_waiting = state.status == DriverStatus.AVAILABLE
        await self._match_waiting()

    async def on_location_update(self, content):
        request = LocationUpdate.model_validate(content)
        point = Point(
            request.latitude, request.longitude, time.time(), request.heading, request.speed
        )
        await drivers.report_position(self.user.pk, point, self.active_ride)
        await self._match_waiting()

    async def _match_waiting(self) -> None:
        if self.matching_waiting and self.active_ride is None:
            if await matching.amatch_waiting_near(self.user.pk) is not None:
                self.matching_waiting = False

    async def _trip_step(self, content, service) -> None:
        """One step of a trip; on a run, its next pickup is reached (the manifest moves on)."""
        request = RideAction.model_validate(content)

        def step():
            ride = service(
                ride=on_the_day.trip_ride(driver=self.user, ride_id=request.ride_id),
                driver=self.user,
            )
            on_the_day.run_moved_on(driver=self.user, ride=ride)

        await db_async(step)()

    async def on_arrived(self, content):
        await self._trip_step(content, rides.ride_driver_arrived)

    async def on_start_trip(self, content):
        await self._trip_step(content, rides.ride_start)

    async def on_complete_trip(self, content):
        await self._trip_step(content, rides.ride_complete)

    async def on_no_show(self, content):
        await self._trip_step(content, rides.ride_no_show)

    async def on_cancel_ride(self, content):
        request = RideAction.model_validate(content)

        def give_back():
            ride = rides.drivers_active_ride(driver=self.user, ride_id=request.ride_id)
            return matching.ride_driver_cancel(ride=ride, driver=self.user, reason=request.reason)

        await db_async(give_back)()

    async def _answer_offer(self, request: RideAction, service, **extra) -> None:
        """The driver's answer to the ride offered to them now."""

        def answer():
            ride = offers.offered_ride(driver=self.user, ride_id=request.ride_id)
            return service(ride=ride, driver=self.user, **extra)

        await db_async(answer)()

    async def on_accept_ride(self, content):
        request = RideAction.model_validate(content)
        await self._answer_offer(request, offers.ride_offer_accept)

    async def on_decline_ride(self, content):
        request = RideAction.model_validate(content)
        await self._answer_offer(request, offers.ride_offer_decline, reason=request.reason)
        await self.send_json({"type": "ride_declined", "ride_id": request.ride_id})

    async def ride_news(self, event):
        ride = (event["ride_id"], event["passenger_id"])
        if event["message"]["type"] == "ride_assigned":
            self.active_ride = ride
        elif self.active_ride == ride and (
            event["kind"] == "released" or event["status"] in FINAL_STATUSES
        ):
            self.active_ride = None
        shown = access.shown_to(self.viewer, event["message"], event["status"])
        if shown is not None:
            await self.send_json(shown)
