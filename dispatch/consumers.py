"""
The sockets the mobile apps speak to (docs/protocol.md is the reference for
every message). Each handler parses the message, asks dispatch.access,
calls one service, and sends; news reaches every socket through its groups
(dispatch.broadcast), and each socket shows it as dispatch.access allows.
"""

from __future__ import annotations

import time
from typing import ClassVar

from dispatch import (
    access,
    alarms,
    booking,
    broadcast,
    drivers,
    matching,
    offers,
    payloads,
    rides,
    scheduling,
    watch,
)
from dispatch.access import Viewer
from dispatch.errors import NotAllowed, NotFound, RideConflict
from dispatch.geo import Point
from dispatch.manifest_feed import ManifestFeed
from dispatch.models import (
    FINAL_STATUSES,
    DriverStatus,
    OfferStatus,
    Ride,
    RideOffer,
    RideStatus,
)
from dispatch.planning import day as on_the_day
from dispatch.socket_schemas import CancelRide, FindDriver, LocationUpdate, RideAction, SetStatus
from people import access as people_access
from people.models import DriverProfile
from project.common.db import db_async
from project.common.sockets import CLOSE_FORBIDDEN, CLOSE_UNAUTHENTICATED, JsonSocket


class AppSocket(JsonSocket):
    """What the app sockets share: offers time out, trips are swept, while any is open."""

    async def websocket_connect(self, message):
        offers.start_sweeper()
        watch.start_trip_sweeper()
        await super().websocket_connect(message)

    async def refuse(self, code: int, error: str = "", message: str = "") -> None:
        """Accept, say why (if `error`), and close with `code`: apps see the code."""
        await self.accept()
        if error:
            await self.send_error(error, message)
        await self.close(code=code)

    async def links_changed(self, event):
        pass

    async def notice_news(self, event):
        """An in-app notification for this socket's user (dispatch.notify)."""
        await self.send_json(event["message"])

    async def access_ended(self, event):
        """The user's access ended: this socket closes if it was theirs (or its session's)."""
        session = event["api_session_id"]
        if session is None or session == self.scope.get("api_session_id"):
            await self.send_error(event["error"], event["message"])
            await self.close(code=event["code"])


class RideConsumer(AppSocket):
    """ws://HOST/ws/ride/<ride_id>/: one ride, for everyone who may see it."""

    handlers: ClassVar[dict[str, str]] = {
        "ping": "on_ping",
        "find_driver": "on_find_driver",
        "cancel_ride": "on_cancel_ride",
        "get_status": "on_get_status",
        "ready": "on_ready",
        "sos": "on_sos",
    }

    async def connect(self):
        self.ride_id: str = self.scope["url_route"]["kwargs"]["ride_id"]
        # How this socket's user relates to the ride; None until decided.
        self.viewer: Viewer | None = None
        self.status = ""
        self.version = 0
        exists, viewer, snapshot = await db_async(self._read)()
        if exists and viewer is None:
            # An existing ride opens only to those who may see it.
            await self.refuse(CLOSE_FORBIDDEN, "forbidden", "You may not see this ride.")
            return
        await self.accept()
        await self.send_json(
            {
                "type": "connection_established",
                "message": "Connected to ride matching service",
                "ride_id": self.ride_id,
            }
        )
        if self.user.is_authenticated:
            await self.join(broadcast.user_group(self.user.pk))
        if viewer is not None:
            await self._watch(viewer)
            # Read again once in the group, so nothing committed in between is lost.
            _, self.viewer, snapshot = await db_async(self._read)()
            await self._show(snapshot)

    def _read(self) -> tuple[bool, Viewer | None, dict | None]:
        """Whether the ride exists, this user's relation to it, and its snapshot."""
        ride = Ride.objects.with_people().filter(ride_id=self.ride_id).first()
        if ride is None:
            return False, None, None
        viewer = access.viewer_of(self.user, ride)
        return True, viewer, broadcast.snapshot(ride) if viewer else None

    async def _watch(self, viewer: Viewer) -> None:
        self.viewer = viewer
        await self.join(broadcast.ride_group(self.ride_id))

    async def _show(self, message: dict | None, status: str | None = None) -> None:
        """Send a ride message as this socket's viewer may see it."""
        if message is None or self.viewer is None:
            return
        status = status or message.get("status") or self.status
        if "version" in message:
            self.status, self.version = status, max(self.version, message["version"])
        shown = access.shown_to(self.viewer, message, status)
        if shown is not None:
            await self.send_json(shown)

    async def on_get_status(self, content):
        exists, viewer, snapshot = await db_async(self._read)()
        if not exists:
            raise NotFound(f"There is no ride {self.ride_id} yet.")
        if viewer is None:
            raise NotAllowed("You may not see this ride.")
        if self.viewer is None:
            await self._watch(viewer)
        self.viewer = viewer
        await self._show(snapshot)

    async def on_find_driver(self, content):
        user = self.require_user()
        request = FindDriver.model_validate(content)
        # In the group before booking, so the booking's own news reaches this
        # socket as it reaches every other; shown only once access is decided.
        await self.join(broadcast.ride_group(self.ride_id))
        try:
            nearby = await matching.anearby(request.pickup_latitude, request.pickup_longitude)
            self.viewer, current = await db_async(self._book)(user, request, nearby)
        finally:
            if self.viewer is None:
                await self.leave(broadcast.ride_group(self.ride_id))
        for message in current:
            await self._show(message)

    def _book(self, user, request: FindDriver, nearby) -> tuple[Viewer | None, list[dict]]:
        """This user's relation to the booked ride, and the replies besides the news."""
        try:
            if request.books_ahead:
                passenger = access.passenger_to_book_ahead_for(
                    user, request.passenger_id, request.passenger_phone
                )
                ride = scheduling.ride_book_ahead(
                    ride_id=self.ride_id,
                    passenger=passenger,
                    booked_by=user,
                    **request.ahead_details(),
                )
                return access.viewer_of(user, ride), []
            passenger = access.passenger_to_book_for(
                user, request.passenger_id, request.passenger_phone
            )
            booked = booking.ride_book(
                ride_id=self.ride_id,
                passenger=passenger,
                booked_by=user,
                nearby_drivers=nearby,
                **request.ride_details(),
            )
            return access.viewer_of(user, booked.ride), []
        except RideConflict as conflict:
            return self._already_booked(user, conflict)

    def _already_booked(self, user, conflict: RideConflict) -> tuple[Viewer, list[dict]]:
        """A second find_driver on an active ride books nothing: its state instead."""
        ride = Ride.objects.with_people().filter(ride_id=self.ride_id).first()
        viewer = access.viewer_of(user, ride) if ride is not None else None
        if ride is None or viewer is None:
            raise conflict
        if ride.status == RideStatus.SCHEDULED:
            return viewer, [broadcast.snapshot(ride), payloads.ride_scheduled(ride)]
        if not ride.is_active:
            raise RideConflict(
                f"Ride {self.ride_id} has ended ({ride.status}); book with a new ride_id.",
                current_status=ride.status,
            )
        replies = [broadcast.snapshot(ride)]
        if ride.is_pending:
            replies.append(payloads.searching(ride))
        elif ride.status == RideStatus.ASSIGNED:
            replies.append(payloads.driver_assigned(ride, broadcast.driver_point(ride)))
        return viewer, replies

    async def on_cancel_ride(self, content):
        user = self.require_user()
        request = CancelRide.model_validate(content)
        await db_async(self._cancel)(user, request.reason)

    def _cancel(self, user, reason: str) -> None:
        ride = Ride.objects.filter(ride_id=self.ride_id).first()
        if ride is None:
            raise NotFound(f"There is no ride {self.ride_id}.")
        viewer = access.viewer_of(user, ride)
        if viewer is None:
            raise NotAllowed("You may not cancel this ride.")
        rides.ride_cancel(ride=ride, actor=user, cancelled_by=viewer.cancels_as(), reason=reason)

    async def on_ready(self, content):
        """A will-call return: the rider is ready to be picked up."""
        user = self.require_user()

        def ready():
            ride = Ride.objects.filter(ride_id=self.ride_id).first()
            if ride is None:
                raise NotFound(f"There is no ride {self.ride_id}.")
            scheduling.ride_ready(ride=ride, actor=user)

        await db_async(ready)()

    async def on_sos(self, content):
        """The passenger asks for help: an alarm to the consoles and caregivers."""
        user = self.require_user()

        def sos():
            ride = Ride.objects.filter(ride_id=self.ride_id).first()
            if ride is None:
                raise NotFound(f"There is no ride {self.ride_id}.")
            return alarms.alarm_sos(ride=ride, passenger=user)

        alarm = await db_async(sos)()
        reply = {"type": "sos_received", "ride_id": self.ride_id, "alarm_id": alarm.pk}
        await self.send_json({**reply, "message": "A dispatcher has been alerted."})

    # --- group messages ------------------------------------------------------------

    async def ride_news(self, event):
        # Nothing reaches a socket before its access is decided, and news
        # no newer than what it has shown (a snapshot, say) is dropped.
        if self.viewer is None or not self.viewer.hears_news or event["version"] <= self.version:
            return
        await self._show(event["message"], event["status"])

    async def ride_location(self, event):
        await self._show(event["message"])

    async def links_changed(self, event):
        if self.viewer is not None and self.viewer.role == access.CAREGIVER:
            _, self.viewer, _ = await db_async(self._read)()
            if self.viewer is None:
                # The link is gone: this socket may no longer watch the ride.
                await self.close(code=CLOSE_FORBIDDEN)


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

    async def on_accept_ride(self, content):
        request = RideAction.model_validate(content)

        def accept():
            ride = offers.offered_ride(driver=self.user, ride_id=request.ride_id)
            return offers.ride_offer_accept(ride=ride, driver=self.user)

        await db_async(accept)()

    async def on_decline_ride(self, content):
        request = RideAction.model_validate(content)

        def decline():
            ride = offers.offered_ride(driver=self.user, ride_id=request.ride_id)
            return offers.ride_offer_decline(ride=ride, driver=self.user, reason=request.reason)

        await db_async(decline)()
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


class FollowerConsumer(AppSocket):
    """
    ws://HOST/ws/caregiver/ and ws://HOST/ws/passenger/: every ride of the
    passengers a user follows (a caregiver's linked passengers, or a
    passenger's own rides, including those booked for them).
    """

    async def connect(self):
        if not self.user.is_authenticated:
            await self.refuse(
                CLOSE_UNAUTHENTICATED, "authentication_required", "Sign in to follow rides."
            )
            return
        self.as_caregiver = self.scope["url_route"]["kwargs"].get("role") == "caregiver"
        # passenger id -> this user's relation to that passenger's rides
        self.viewers: dict[int, Viewer] = {}
        # ride_id -> status, of the rides followed
        self.statuses: dict[str, str] = {}
        await self.accept()
        await self.join(broadcast.user_group(self.user.pk))
        if self.as_caregiver:
            await self.join(broadcast.caregiver_group(self.user.pk))
        else:
            await self.join(broadcast.passenger_group(self.user.pk))
        snapshots = await self._refresh()
        await self.send_json(
            {
                "type": "connection_established",
                "message": "Connected to ride updates",
                "user_id": self.user.pk,
                "role": "caregiver" if self.as_caregiver else "passenger",
                "passengers": self._passengers(),
            }
        )
        for passenger_id, snapshot in snapshots:
            viewer = self.viewers[passenger_id]
            if viewer.hears_news:
                await self.send_json(access.shown_to(viewer, snapshot, snapshot["status"]))

    def _passengers(self) -> list[dict]:
        return [
            {"passenger_id": pid, **(v.link.as_dict() if v.link else _ALL_PERMISSIONS)}
            for pid, v in self.viewers.items()
        ]

    async def _refresh(self) -> list[tuple[int, dict]]:
        """Re-read who this user follows, and follow the positions they may see."""

        def load():
            if self.as_caregiver:
                links = people_access.links_of_caregiver(self.user.pk)
            else:
                links = {self.user.pk: None}
            viewers = {pid: access.follower(self.user, pid, link) for pid, link in links.items()}
            active = Ride.objects.with_people().active().filter(passenger_id__in=list(viewers))
            return viewers, [(r.passenger_id, r.ride_id, broadcast.snapshot(r)) for r in active]

        self.viewers, rides_now = await db_async(load)()
        self.statuses = {ride_id: snapshot["status"] for _, ride_id, snapshot in rides_now}
        wanted = {
            broadcast.ride_group(ride_id)
            for pid, ride_id, snapshot in rides_now
            if self.viewers[pid].sees_position(snapshot["status"])
        }
        for group in [g for g in self.groups_joined if g.startswith("ride.")]:
            if group not in wanted:
                await self.leave(group)
        for group in wanted:
            await self.join(group)
        return [(pid, snapshot) for pid, _, snapshot in rides_now]

    async def ride_news(self, event):
        viewer = self.viewers.get(event["passenger_id"])
        # Ride groups are joined for positions; news comes on the user's own
        # group, so the ride group's copy is dropped.
        if viewer is None or event["audience"] == "ride":
            return
        group = broadcast.ride_group(event["ride_id"])
        self.statuses[event["ride_id"]] = event["status"]
        if viewer.sees_position(event["status"]):
            await self.join(group)
        else:
            await self.leave(group)
        if viewer.hears_news:
            await self.send_json(access.shown_to(viewer, event["message"], event["status"]))

    async def ride_location(self, event):
        viewer = self.viewers.get(event["passenger_id"])
        status = self.statuses.get(event["ride_id"], "")
        if viewer is not None and viewer.sees_position(status):
            await self.send_json(event["message"])

    async def links_changed(self, event):
        await self._refresh()
        await self.send_json({"type": "links_updated", "passengers": self._passengers()})


_ALL_PERMISSIONS = {
    "can_book_rides": True,
    "can_view_location": True,
    "can_receive_notifications": True,
}
