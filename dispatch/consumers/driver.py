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
    trips,
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
from dispatch.notify import near
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
        is_driver = await db_async(DriverProfile.objects.filter(user=self.user).exists)()
        if not is_driver or (wanted is not None and int(wanted) != self.user.pk):
            await self.refuse(CLOSE_FORBIDDEN, "forbidden", "This socket is for the driver only.")
            return
        # Rides left waiting near this driver are matched once after they go
        # online, and once after their last ride ends, also when it ended
        # while no socket was open (not on every reconnect: after a restart
        # thousands of drivers reconnect at once; set in _start).
        self.matching_waiting = False
        await self.accept()
        # In its groups before reading what it holds, so that a ride assigned
        # meanwhile is not lost; its news, already in the greeting, is dropped.
        await self.join(broadcast.driver_group(self.user.pk))
        await self.join(broadcast.user_group(self.user.pk))
        greeting = await db_async(self._start)()
        # ride_id -> passenger id of each ride this driver holds (a run's
        # driver may hold several): their sockets hear its positions.
        self.held: dict[str, int] = {}
        # ride_id -> (version, type) of what the greeting told of it.
        self.greeted: dict[str, tuple[int, str]] = {}
        for message in greeting:
            if message["type"] == "ride_assigned":
                self.held[message["ride_id"]] = message["passenger"]["id"]
            if "version" in message:
                self.greeted[message["ride_id"]] = (message["version"], message["type"])
            await self.send_json(message)

    def _start(self) -> list[dict]:
        """What the app is told first: the rides it holds, an open offer, today's manifest."""
        state = drivers.driver_state_for(self.user)
        self.matching_waiting = drivers.freed_while_away(state)
        held = Ride.objects.with_people().held_by(self.user.pk)
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
        greeting += [payloads.ride_assigned(ride) for ride in held]
        if offer is not None:
            greeting.append(payloads.ride_request(offer.ride, offer.distance_km, offer.expires_at))
        greeting += [m for m in [self.manifest_start()] if m]
        return greeting

    async def on_set_status(self, content):
        request = SetStatus.model_validate(content)
        # Answered on every socket of the driver, this one too (driver_status).
        await db_async(drivers.driver_set_status)(driver=self.user, status=request.status)

    async def driver_status(self, event):
        """The driver set their status, on this phone or another."""
        await self.send_json({"type": "status_updated", "status": event["status"]})
        self.matching_waiting = event["status"] == DriverStatus.AVAILABLE
        await self._match_waiting()

    async def on_location_update(self, content):
        request = LocationUpdate.model_validate(content)
        point = Point(
            request.latitude, request.longitude, time.time(), request.heading, request.speed
        )
        await drivers.report_position(self.user.pk, point, self.held)
        await self._match_waiting()

    async def _match_waiting(self) -> None:
        if self.matching_waiting and not self.held:
            if await matching.amatch_waiting_near(self.user.pk) is not None:
                self.matching_waiting = False

    async def _trip_step(self, content, service) -> None:
        """One step of a trip; on a run, its next pickup is reached (the manifest moves on)."""
        request = RideAction.model_validate(content)
        await db_async(on_the_day.trip_step)(
            driver=self.user, ride_id=request.ride_id, step=service, told=set(self.held)
        )

    async def on_arrived(self, content):
        await self._trip_step(content, trips.ride_driver_arrived)

    async def on_start_trip(self, content):
        await self._trip_step(content, trips.ride_start)

    async def on_complete_trip(self, content):
        await self._trip_step(content, trips.ride_complete)

    async def on_no_show(self, content):
        await self._trip_step(content, trips.ride_no_show)

    async def on_cancel_ride(self, content):
        request = RideAction.model_validate(content)

        def give_back():
            ride = trips.drivers_active_ride(driver=self.user, ride_id=request.ride_id)
            return matching.ride_driver_cancel(ride=ride, driver=self.user, reason=request.reason)

        await db_async(give_back)()

    async def _answer_offer(self, request: RideAction, service, **extra) -> str:
        """The driver's answer to the ride offered to them now; that ride's id."""

        def answer():
            ride = offers.offered_ride(driver=self.user, ride_id=request.ride_id)
            service(ride=ride, driver=self.user, **extra)
            return ride.ride_id

        return await db_async(answer)()

    async def on_accept_ride(self, content):
        request = RideAction.model_validate(content)
        await self._answer_offer(request, offers.ride_offer_accept)

    async def on_decline_ride(self, content):
        request = RideAction.model_validate(content)
        # The ride let go, also when the app named none (ride_id is optional).
        ride_id = await self._answer_offer(
            request, offers.ride_offer_decline, reason=request.reason
        )
        await self.send_json({"type": "ride_declined", "ride_id": ride_id})

    async def ride_news(self, event):
        ride_id = event["ride_id"]
        message = event["message"]
        if ride_id in self.greeted:
            # Committed while the socket opened: the greeting told it already.
            version, kind = self.greeted[ride_id]
            if event["version"] < version or (version, kind) == (event["version"], message["type"]):
                return
        if message["type"] == "ride_assigned":
            self.held[ride_id] = event["passenger_id"]
            near.driver_given(ride_id, self.user.pk)
        elif event["kind"] == "released" or event["status"] in FINAL_STATUSES:
            if self.held.pop(ride_id, None) is not None and not self.held:
                # Free for waiting rides (matching.match_waiting_near says
                # whether they are theirs to take).
                self.matching_waiting = True
        shown = access.shown_to(self.viewer, message, event["status"])
        if shown is not None:
            await self.send_json(shown)
        await self._match_waiting()
