"""The ride socket, /ws/ride/<ride_id>/: booking, following and changing one ride."""

from __future__ import annotations

from typing import ClassVar

from dispatch import (
    access,
    alarms,
    booking,
    broadcast,
    matching,
    payloads,
    rides,
    scheduling,
)
from dispatch.access import Viewer
from dispatch.consumers.base import AppSocket
from dispatch.errors import NotAllowed, NotFound, RideConflict
from dispatch.models import (
    Ride,
    RideStatus,
)
from dispatch.socket_schemas import CancelRide, FindDriver
from project.common.db import db_async
from project.common.sockets import CLOSE_FORBIDDEN


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

    def _read(self, *, snapshot: bool = True) -> tuple[bool, Viewer | None, dict | None]:
        """Whether the ride exists, this user's relation to it, and its snapshot (if asked)."""
        rides = Ride.objects.with_people() if snapshot else Ride.objects.all()
        ride = rides.filter(ride_id=self.ride_id).first()
        if ride is None:
            return False, None, None
        viewer = access.viewer_of(self.user, ride)
        return True, viewer, broadcast.snapshot(ride) if viewer and snapshot else None

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
            # Read again once in the group, as on connect.
            _, viewer, snapshot = await db_async(self._read)()
        self.viewer = self._kept(viewer)
        await self._show(snapshot)

    def _kept(self, viewer: Viewer | None) -> Viewer | None:
        """
        `viewer`, read again, as this socket holds it: one who asked here
        (`ready`) keeps hearing what follows, while they may see the ride.
        """
        if viewer is not None and self.viewer is not None and self.viewer.asked:
            return access.asking(viewer)
        return viewer

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
        viewer, ride = await db_async(self._cancel)(user, request)
        if self.viewer is None:
            await self._watch(viewer)
        # The canceller's answer, whether or not this viewer hears the ride's
        # news (a caregiver without notifications); the news' copy, of the
        # same version, is then dropped.
        await self._show(payloads.ride_cancelled(ride))

    def _the_ride(self) -> Ride:
        """This socket's ride, read afresh (on a database thread)."""
        ride = Ride.objects.filter(ride_id=self.ride_id).first()
        if ride is None:
            raise NotFound(f"There is no ride {self.ride_id}.")
        return ride

    def _cancel(self, user, request: CancelRide) -> tuple[Viewer, Ride]:
        ride = self._the_ride()
        viewer = access.viewer_of(user, ride)
        if viewer is None:
            raise NotAllowed("You may not cancel this ride.")
        rides.ride_cancel(
            ride=ride,
            actor=user,
            cancelled_by=viewer.cancels_as(),
            reason=request.reason,
            keep_return=request.keep_return,
        )
        return viewer, ride

    async def on_ready(self, content):
        """A will-call return: the rider is ready to be picked up."""
        user = self.require_user()

        def viewer():
            ride = self._the_ride()
            return access.viewer_of(user, ride)

        # In the group before the answer is news; told it once ready is taken
        # (the news waits for this handler).
        asker = await db_async(viewer)()
        if asker is not None and self.viewer is None:
            await self._watch(asker)

        def ready():
            scheduling.ride_ready(ride=self._the_ride(), actor=user)

        await db_async(ready)()
        self.viewer = access.asking(self.viewer)

    async def on_sos(self, content):
        """The passenger asks for help: an alarm to the consoles and caregivers."""
        user = self.require_user()

        def sos():
            ride = self._the_ride()
            return alarms.alarm_sos(ride=ride, passenger=user)

        alarm = await db_async(sos)()
        reply = {"type": "sos_received", "ride_id": self.ride_id, "alarm_id": alarm.pk}
        await self.send_json({**reply, "message": "A dispatcher has been alerted."})

    # --- group messages ------------------------------------------------------------

    async def ride_news(self, event):
        # Nothing reaches a socket before its access is decided, and news
        # no newer than what it has shown (a snapshot, say) is dropped.
        if self.viewer is None or event["version"] <= self.version:
            return
        if self.viewer.role == access.DRIVER and not await self._still_sees():
            return
        heard = self.viewer.hears_news and (
            self.viewer.role != access.CAREGIVER or broadcast.caregivers_hear(event["kind"])
        )
        if heard:
            await self._show(event["message"], event["status"])
        else:
            # Not told of it; but what positions it sees follows the status.
            self.status, self.version = event["status"], event["version"]

    async def ride_location(self, event):
        await self._show(event["message"])

    async def links_changed(self, event):
        # A caregiver's link changed; or a dispatcher's, whose link, once
        # active, comes before the staff role (dispatch.access).
        if self.viewer is not None and self.viewer.role in (access.CAREGIVER, access.STAFF):
            await self._still_sees()

    async def roles_changed(self, event):
        if self.viewer is not None and self.viewer.role == access.STAFF:
            await self._still_sees()

    async def _still_sees(self) -> bool:
        """
        Access asked again, where a change may end it (a caregiver's link, a
        driver taken off the ride, a staff role): a socket that may no longer
        watch closes.
        """
        _, viewer, _ = await db_async(self._read)(snapshot=False)
        self.viewer = self._kept(viewer)
        if self.viewer is None:
            await self.close(code=CLOSE_FORBIDDEN)
            return False
        return True
