"""The passenger's and caregiver's sockets: every ride of the people they follow."""

from __future__ import annotations

from dispatch import (
    access,
    broadcast,
)
from dispatch.access import Viewer
from dispatch.consumers.base import AppSocket
from dispatch.models import (
    Ride,
)
from people import access as people_access
from project.common.db import db_async
from project.common.sockets import CLOSE_UNAUTHENTICATED


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
        # ride_id -> status, and the newest version shown, of the rides followed
        self.statuses: dict[str, str] = {}
        self.versions: dict[str, int] = {}
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
        await self._show_snapshots(snapshots, set())

    async def _show_snapshots(self, snapshots: list[tuple[int, dict]], heard: set[int]) -> None:
        """The rides of passengers this socket now hears and did not (`heard`), as they stand."""
        for passenger_id, snapshot in snapshots:
            viewer = self.viewers[passenger_id]
            if viewer.hears_news and passenger_id not in heard:
                self.versions[snapshot["ride_id"]] = snapshot["version"]
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
        # What each ride was last shown at; a snapshot shown moves it on.
        self.versions = {ride_id: self.versions.get(ride_id, 0) for _, ride_id, _ in rides_now}
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
        ride_id = event["ride_id"]
        if event["version"] <= self.versions.get(ride_id, 0):
            # No newer than what this socket has shown (a snapshot read after
            # it committed, another worker's news late): the app would go
            # back, or hear the same change twice.
            return
        self.versions[ride_id] = event["version"]
        group = broadcast.ride_group(ride_id)
        self.statuses[ride_id] = event["status"]
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
        heard = {pid for pid, viewer in self.viewers.items() if viewer.hears_news}
        snapshots = await self._refresh()
        await self.send_json({"type": "links_updated", "passengers": self._passengers()})
        # A passenger newly followed (an accepted link, news switched on):
        # their rides under way, as a fresh connect would show them.
        await self._show_snapshots(snapshots, heard)


_ALL_PERMISSIONS = {
    "can_book_rides": True,
    "can_view_location": True,
    "can_receive_notifications": True,
}
