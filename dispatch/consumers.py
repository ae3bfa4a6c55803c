"""
The sockets the mobile apps speak to. They stay thin: parse and check the
message, call a service, forward what the groups say. docs/protocol.md is the
reference for every message here.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any, ClassVar

from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.utils import timezone
from pydantic import ValidationError

from dispatch import events, messages, selectors, services
from dispatch.geo import Point
from dispatch.locations import location_store, position_writer
from dispatch.models import DriverState, DriverStatus, OfferStatus, Ride, RideOffer, RideStatus
from dispatch.schemas import CancelRide, FindDriver, LocationUpdate, RideAction, SetStatus
from people.models import CaregiverLink, DriverProfile, LinkStatus, User, UserType
from people.phones import InvalidPhoneNumber, normalize_phone
from project.db import NoConnectionSweepPerMessage, db_async
from project.sockets import QuietWhenClientLeft

log = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403


class ClientError(Exception):
    def __init__(self, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.code = code
        self.extra = extra


def _without_driver_position(message: dict) -> dict:
    """A copy of `message` whose driver card has no coordinates."""
    driver = message.get("driver")
    if not isinstance(driver, dict) or driver.get("latitude") is None:
        return message
    return {**message, "driver": {**driver, "latitude": None, "longitude": None}}


def _fields_of(exc: ValidationError) -> dict[str, str]:
    fields: dict[str, str] = {}
    for error in exc.errors():
        name = ".".join(str(p) for p in error["loc"]) or "message"
        fields.setdefault(name, error["msg"])
    return fields


class AppConsumer(QuietWhenClientLeft, NoConnectionSweepPerMessage, AsyncJsonWebsocketConsumer):
    """
    What every app socket shares: the error envelope, size cap, ping, and
    per-type dispatch. A bad message gets {"type":"error"} and the socket
    stays open.
    """

    handlers: ClassVar[dict[str, str]] = {"ping": "on_ping"}
    groups_joined: set[str]

    @property
    def user(self) -> User:
        return self.scope["user"]

    async def join(self, group: str) -> None:
        if group not in self.groups_joined:
            self.groups_joined.add(group)
            await self.channel_layer.group_add(group, self.channel_name)

    async def leave(self, group: str) -> None:
        if group in self.groups_joined:
            self.groups_joined.discard(group)
            await self.channel_layer.group_discard(group, self.channel_name)

    async def websocket_connect(self, message):
        self.groups_joined = set()
        start_sweeper()
        await super().websocket_connect(message)

    async def disconnect(self, code):
        for group in list(self.groups_joined):
            await self.channel_layer.group_discard(group, self.channel_name)
        self.groups_joined.clear()

    async def send_error(self, code: str, message: str, **extra: Any) -> None:
        await self.send_json(messages.error(code, message, **extra))

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        raw = text_data if text_data is not None else bytes_data
        size = len(raw.encode() if isinstance(raw, str) else raw or b"")
        if size > settings.WS_MAX_MESSAGE_BYTES:
            await self.send_error(
                "message_too_large",
                f"Messages are limited to {settings.WS_MAX_MESSAGE_BYTES} bytes; "
                f"this one has {size}.",
            )
            return
        try:
            content = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            await self.send_error("invalid_json", "The message is not valid JSON.")
            return
        await self.receive_json(content)

    async def receive_json(self, content, **kwargs):
        if not isinstance(content, dict) or not isinstance(content.get("type"), str):
            await self.send_error(
                "invalid_request", "Send a JSON object with a string 'type'.", fields=["type"]
            )
            return
        kind = content["type"]
        handler = self.handlers.get(kind)
        if handler is None:
            await self.send_error(
                "unknown_type",
                f"Unknown message type '{kind[:40]}'.",
                supported=sorted(self.handlers),
            )
            return
        try:
            await getattr(self, handler)(content)
        except ClientError as exc:
            await self.send_error(exc.code, str(exc), **exc.extra)
        except ValidationError as exc:
            fields = _fields_of(exc)
            await self.send_error(
                "invalid_request",
                "Invalid fields: " + ", ".join(sorted(fields)) + ".",
                fields=fields,
            )
        except services.DispatchError as exc:
            await self.send_error(exc.code, str(exc), **exc.extra)
        except Exception:
            log.exception("%s failed on %s", type(self).__name__, kind)
            await self.send_error("internal_error", "Something went wrong; try again.")

    async def on_ping(self, content):
        await self.send_json({"type": "pong", "timestamp": timezone.now().isoformat()})

    def require_user(self) -> User:
        if not self.user.is_authenticated:
            raise ClientError("authentication_required", "Sign in to do this.")
        return self.user

    # --- group handlers shared by every socket --------------------------------

    async def ride_message(self, event):
        await self.send_json(event["message"])

    async def ride_location(self, event):
        await self.send_json(event["message"])

    async def links_changed(self, event):
        pass


class RideConsumer(AppConsumer):
    """ws://HOST/ws/ride/<ride_id>/: the passenger's (and watchers') view of one ride."""

    handlers: ClassVar[dict[str, str]] = {
        "ping": "on_ping",
        "find_driver": "on_find_driver",
        "cancel_ride": "on_cancel_ride",
        "get_status": "on_get_status",
    }

    async def connect(self):
        self.ride_id: str = self.scope["url_route"]["kwargs"]["ride_id"]
        self.role: str | None = None
        self.passenger_id: int | None = None
        self.link_perms: dict[str, bool] | None = None
        # (type, version) of ride messages this socket sent itself; their
        # copies from the ride group are dropped.
        self.sent_directly: set[tuple[str, int]] = set()
        ride, role = await self._load()
        if ride is not None and role is None:
            # An existing ride opens only to those who may see it.
            await self.close(code=CLOSE_FORBIDDEN)
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
            await self.join(events.user_group(self.user.pk))
        if ride is not None:
            await self._watch(ride, role)
            await self.send_json(messages.ride_status(ride))

    @db_async
    def _load(self) -> tuple[Ride | None, str | None]:
        ride = Ride.objects.with_people().filter(ride_id=self.ride_id).first()
        if ride is None:
            return None, None
        role = selectors.ride_viewer_role(self.user, ride)
        if role == "caregiver":
            self.link_perms = selectors.caregiver_permissions(self.user.pk).get(ride.passenger_id)
        return ride, role

    async def _watch(self, ride: Ride, role: str) -> None:
        self.role = role
        self.passenger_id = ride.passenger_id
        await self.join(events.ride_group(self.ride_id))

    async def on_get_status(self, content):
        ride, role = await self._load()
        if ride is None:
            raise ClientError("not_found", f"There is no ride {self.ride_id} yet.")
        if role is None:
            raise ClientError("forbidden", "You may not see this ride.")
        await self.send_json(messages.ride_status(ride))

    async def on_find_driver(self, content):
        user = self.require_user()
        request = FindDriver.model_validate(content)
        # Join before booking so this socket hears `searching` and the outcome.
        await self.join(events.ride_group(self.ride_id))
        try:
            nearby = None
            if services.books_in_one_statement():
                # Looked up here, on the event loop: the database thread then
                # makes one round trip less, each of which waits for the GIL
                # while this loop is busy with drivers' reports.
                nearby = await location_store().anearest(
                    request.pickup_latitude,
                    request.pickup_longitude,
                    settings.MATCH_RADIUS_KM,
                    services.BOOK_CANDIDATES,
                )
            outcome, ride, sent = await db_async(self._book)(user, request, nearby)
        except BaseException:
            if self.role is None:
                await self.leave(events.ride_group(self.ride_id))
            raise
        for message in sent:
            # The booking's own news (searching, then driver_assigned or
            # no_drivers), without the round trip through the channel layer.
            self.sent_directly.add((message["type"], message["version"]))
            await self.send_json(message)
        if outcome == "current":
            # A second find_driver on an active ride: its state, no new booking.
            await self.send_json(messages.ride_status(ride))
            if ride.status == RideStatus.SEARCHING:
                await self.send_json(messages.searching(ride))
            elif ride.driver_id and ride.status == RideStatus.ASSIGNED:
                await self.send_json(messages.driver_assigned(ride))

    def _book(
        self, user: User, request: FindDriver, nearby: list | None
    ) -> tuple[str, Ride, list[dict]]:
        with events.captured(self.ride_id) as sent:
            outcome, ride = self._book_ride(user, request, nearby)
        return outcome, ride, sent

    def _book_ride(self, user: User, request: FindDriver, nearby: list | None) -> tuple[str, Ride]:
        try:
            passenger = self._passenger_for(user, request)
            result = services.ride_book(
                ride_id=self.ride_id,
                passenger=passenger,
                booked_by=user,
                nearby=nearby,
                pickup_latitude=request.pickup_latitude,
                pickup_longitude=request.pickup_longitude,
                pickup_address=request.pickup_address,
                dropoff_latitude=request.dropoff_latitude,
                dropoff_longitude=request.dropoff_longitude,
                dropoff_address=request.dropoff_address,
                distance_km=request.distance_km,
                estimated_duration_minutes=(
                    None
                    if request.estimated_duration_minutes is None
                    else round(request.estimated_duration_minutes)
                ),
                fare_amount=request.fare_amount,
                needs_wheelchair=request.needs_wheelchair,
                notes=request.notes,
            )
        except (ClientError, services.DispatchError):
            # A ride with this id already: what this caller may know of it
            # comes first. (Looked up only now: a new booking needs no lookup.)
            current = self._current_ride(user)
            if current is not None:
                return "current", current
            raise
        self.role = "passenger" if passenger.pk == user.pk else "caregiver"
        self.passenger_id = passenger.pk
        if self.role == "caregiver":
            self.link_perms = selectors.caregiver_permissions(user.pk).get(passenger.pk)
        return "booked", result.ride

    def _current_ride(self, user: User) -> Ride | None:
        """This socket's ride if it exists and is active; an error if it ended."""
        existing = Ride.objects.with_people().filter(ride_id=self.ride_id).first()
        if existing is None:
            return None
        role = selectors.ride_viewer_role(user, existing)
        if role is None:
            raise ClientError("forbidden", "You may not see this ride.")
        self.role, self.passenger_id = role, existing.passenger_id
        if existing.is_active:
            return existing
        raise services.RideConflict(
            f"Ride {self.ride_id} has ended ({existing.status}); book with a new ride_id.",
            current_status=existing.status,
        )

    @staticmethod
    def _passenger_for(user: User, request: FindDriver) -> User:
        """Who rides: the caller, or a passenger they may book for."""
        target: User | None = None
        if request.passenger_id is not None and request.passenger_id != user.pk:
            target = User.objects.filter(pk=request.passenger_id).first()
            if target is None:
                raise ClientError(
                    "invalid_request", "Unknown passenger_id.", fields=["passenger_id"]
                )
        elif request.passenger_phone:
            try:
                phone = normalize_phone(request.passenger_phone)
            except InvalidPhoneNumber as exc:
                raise ClientError(
                    "invalid_request", exc.messages[0], fields=["passenger_phone"]
                ) from exc
            if phone != user.phone_number:
                target = User.objects.filter(phone_number=phone).first()
                if target is None:
                    raise ClientError(
                        "invalid_request",
                        "No passenger has that phone number.",
                        fields=["passenger_phone"],
                    )
        if target is None:
            if user.user_type == UserType.DRIVER:
                raise ClientError("forbidden", "Driver accounts cannot book rides.")
            return user
        link = CaregiverLink.objects.filter(
            passenger=target, caregiver=user, status=LinkStatus.ACTIVE
        ).first()
        if link is None or not link.can_book_rides:
            raise ClientError(
                "forbidden",
                "You may book only for passengers who gave you the booking permission.",
            )
        return target

    async def on_cancel_ride(self, content):
        user = self.require_user()
        request = CancelRide.model_validate(content)
        await db_async(self._cancel)(user, request.reason)

    def _cancel(self, user: User, reason: str) -> None:
        ride = Ride.objects.filter(ride_id=self.ride_id).first()
        if ride is None:
            raise ClientError("not_found", f"There is no ride {self.ride_id}.")
        role = selectors.ride_viewer_role(user, ride)
        if role == "caregiver":
            perms = selectors.caregiver_permissions(user.pk).get(ride.passenger_id) or {}
            if not perms.get("can_book_rides"):
                raise ClientError("forbidden", "You may not cancel this passenger's rides.")
        elif role == "driver":
            raise ClientError(
                "forbidden", "Drivers give a ride back on the driver socket (cancel_ride)."
            )
        elif role is None:
            raise ClientError("forbidden", "You may not cancel this ride.")
        cancelled_by = {"staff": "dispatcher"}.get(role, role)
        services.ride_cancel(ride=ride, actor=user, cancelled_by=cancelled_by, reason=reason)

    async def send_json(self, content, close=False):
        # A caregiver without can_view_location sees the driver, not where.
        if self.role == "caregiver" and not (self.link_perms or {}).get("can_view_location"):
            content = _without_driver_position(content)
        await super().send_json(content, close)

    # --- group handlers -----------------------------------------------------------

    async def ride_message(self, event):
        message = event["message"]
        key = (message.get("type"), message.get("version"))
        if key in self.sent_directly:
            self.sent_directly.discard(key)
            return
        if self.role == "caregiver" and not (self.link_perms or {}):
            return
        await self.send_json(event["message"])

    async def ride_location(self, event):
        if self.role == "caregiver" and not (self.link_perms or {}).get("can_view_location"):
            return
        await self.send_json(event["message"])

    async def links_changed(self, event):
        if self.role == "caregiver" and self.passenger_id is not None:
            perms = await db_async(selectors.caregiver_permissions)(self.user.pk)
            self.link_perms = perms.get(self.passenger_id)
            if self.link_perms is None:
                # The link is gone: this socket may no longer watch the ride.
                await self.close(code=CLOSE_FORBIDDEN)


class DriverConsumer(AppConsumer):
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
    }

    async def connect(self):
        user = self.user
        wanted = self.scope["url_route"]["kwargs"].get("driver_id")
        if not user.is_authenticated:
            await self.accept()
            await self.send_error("authentication_required", "Sign in as a driver to connect.")
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        snapshot = await db_async(self._snapshot)()
        if snapshot is None or (wanted is not None and int(wanted) != user.pk):
            await self.close(code=CLOSE_FORBIDDEN)
            return
        state, ride, offer = snapshot
        self.active_ride: tuple[str, int] | None = (
            (ride.ride_id, ride.passenger_id) if ride else None
        )
        # Waiting rides are offered when the driver goes online (set_status),
        # not on every reconnect: after a worker restart thousands of drivers
        # reconnect at once, and each look would queue on the database thread.
        self.match_waiting = False
        await self.accept()
        await self.join(events.driver_group(user.pk))
        await self.join(events.user_group(user.pk))
        await self.send_json(
            {
                "type": "connection_established",
                "message": "Connected to driver service",
                "driver_id": user.pk,
                "status": state.status,
            }
        )
        if ride is not None:
            await self.send_json(messages.ride_assigned(ride))
        if offer is not None:
            await self.send_json(
                messages.ride_request(offer.ride, offer.distance_km, offer.expires_at)
            )

    def _snapshot(self):
        if not DriverProfile.objects.filter(user=self.user).exists():
            return None
        state = services.driver_state_for(self.user)
        ride = selectors.active_ride_for_driver(self.user.pk)
        offer = (
            RideOffer.objects.select_related("ride__passenger", "ride__booked_by")
            .filter(driver=self.user, status=OfferStatus.OFFERED)
            .first()
        )
        return state, ride, offer

    async def on_set_status(self, content):
        request = SetStatus.model_validate(content)
        state, point = await db_async(self._set_status)(request.status)
        await self.send_json({"type": "status_updated", "status": state.status})
        # Rides that found nobody get this driver once their position is known.
        self.match_waiting = state.status == DriverStatus.AVAILABLE
        if self.match_waiting and point is not None and point.seen:
            await self._match_waiting(point.lat, point.lng)

    def _set_status(self, status: str) -> tuple[DriverState, Point | None]:
        state = services.driver_set_status(driver=self.user, status=status)
        # Here, not on the event loop: a store that is not warm yet fills
        # itself from the database first (and Redis's `get` blocks).
        return state, location_store().get(self.user.pk)

    async def _match_waiting(self, lat: float, lng: float) -> None:
        self.match_waiting = False
        await db_async(services.rides_match_near_driver)(
            driver_id=self.user.pk, latitude=lat, longitude=lng
        )

    async def on_location_update(self, content):
        request = LocationUpdate.model_validate(content)
        now = time.time()
        point = Point(request.latitude, request.longitude, now, request.heading, request.speed)
        store = location_store()
        store.note(self.user.pk, point)
        layer = self.channel_layer
        if self.active_ride is not None:
            ride_id, passenger_id = self.active_ride
            await layer.group_send(
                events.ride_group(ride_id),
                {
                    "type": "ride.location",
                    "passenger_id": passenger_id,
                    "message": messages.driver_location(
                        ride_id,
                        self.user.pk,
                        request.latitude,
                        request.longitude,
                        request.heading,
                        request.speed,
                    ),
                },
            )
        if self.match_waiting and self.active_ride is None:
            await store.flushed()  # the matcher must find this driver here
            await self._match_waiting(request.latitude, request.longitude)
        position_writer().note(self.user.pk, point)

    def _my_ride(self, request: RideAction) -> Ride:
        ride = selectors.active_ride_for_driver(self.user.pk)
        if ride is None:
            raise ClientError("invalid_state", "You have no active ride.")
        if request.ride_id and request.ride_id != ride.ride_id:
            raise ClientError(
                "invalid_request",
                f"Your active ride is {ride.ride_id}, not {request.ride_id}.",
                fields=["ride_id"],
            )
        return ride

    async def _progress(self, content, service) -> None:
        request = RideAction.model_validate(content)

        def run():
            return service(ride=self._my_ride(request), driver=self.user)

        await db_async(run)()

    async def on_arrived(self, content):
        await self._progress(content, services.ride_driver_arrived)

    async def on_start_trip(self, content):
        await self._progress(content, services.ride_start)

    async def on_complete_trip(self, content):
        await self._progress(content, services.ride_complete)

    async def on_no_show(self, content):
        await self._progress(content, services.ride_no_show)

    async def on_cancel_ride(self, content):
        request = RideAction.model_validate(content)

        def run():
            return services.ride_driver_cancel(
                ride=self._my_ride(request), driver=self.user, reason=request.reason
            )

        await db_async(run)()

    def _offered_ride(self, request: RideAction) -> Ride:
        offers = RideOffer.objects.select_related("ride").filter(
            driver=self.user, status=OfferStatus.OFFERED
        )
        if request.ride_id:
            offers = offers.filter(ride__ride_id=request.ride_id)
        offer = offers.first()
        if offer is None:
            raise ClientError("invalid_state", "You have no open ride offer.")
        return offer.ride

    async def on_accept_ride(self, content):
        request = RideAction.model_validate(content)

        def run():
            return services.ride_offer_accept(ride=self._offered_ride(request), driver=self.user)

        await db_async(run)()

    async def on_decline_ride(self, content):
        request = RideAction.model_validate(content)

        def run():
            return services.ride_offer_decline(
                ride=self._offered_ride(request), driver=self.user, reason=request.reason
            )

        await db_async(run)()
        await self.send_json({"type": "ride_declined", "ride_id": request.ride_id})

    async def ride_message(self, event):
        kind = event["kind"]
        if kind in ("assigned", "reassigned") and event["message"]["type"] == "ride_assigned":
            self.active_ride = (event["ride_id"], event["passenger_id"])
        elif (
            self.active_ride is not None
            and self.active_ride[0] == event["ride_id"]
            and (
                kind == "released"
                or event["status"]
                in (RideStatus.COMPLETED, RideStatus.CANCELLED, RideStatus.NO_SHOW)
            )
        ):
            self.active_ride = None
        await self.send_json(event["message"])


class FollowerConsumer(AppConsumer):
    """
    ws://HOST/ws/caregiver/ and ws://HOST/ws/passenger/: every ride of the
    passengers a user follows (a caregiver's linked passengers, or a
    passenger's own rides, including those booked for them).
    """

    async def connect(self):
        if not self.user.is_authenticated:
            await self.accept()
            await self.send_error("authentication_required", "Sign in to follow rides.")
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.as_caregiver = self.scope["url_route"]["kwargs"].get("role") == "caregiver"
        self.perms: dict[int, dict[str, bool]] = {}
        await self.accept()
        await self.join(events.user_group(self.user.pk))
        if self.as_caregiver:
            await self.join(events.caregiver_group(self.user.pk))
        else:
            await self.join(events.passenger_group(self.user.pk))
        rides = await self._refresh()
        await self.send_json(
            {
                "type": "connection_established",
                "message": "Connected to ride updates",
                "user_id": self.user.pk,
                "role": "caregiver" if self.as_caregiver else "passenger",
                "passengers": [{"passenger_id": pid, **perms} for pid, perms in self.perms.items()],
            }
        )
        for ride in rides:
            await self.send_json(self._visible(ride.passenger_id, messages.ride_status(ride)))

    def _visible(self, passenger_id: int, message: dict) -> dict:
        if self.perms.get(passenger_id, {}).get("can_view_location"):
            return message
        return _without_driver_position(message)

    async def _refresh(self) -> list[Ride]:
        """Re-read links and join the ride groups this user may follow."""

        def load():
            if self.as_caregiver:
                perms = selectors.caregiver_permissions(self.user.pk)
            else:
                perms = {
                    self.user.pk: {"can_view_location": True, "can_receive_notifications": True}
                }
            rides = list(Ride.objects.with_people().active().filter(passenger_id__in=list(perms)))
            return perms, rides

        self.perms, rides = await db_async(load)()
        wanted = {
            events.ride_group(r.ride_id)
            for r in rides
            if self.perms.get(r.passenger_id, {}).get("can_view_location")
        }
        for group in [g for g in self.groups_joined if g.startswith("ride.")]:
            if group not in wanted:
                await self.leave(group)
        for group in wanted:
            await self.join(group)
        return [
            r for r in rides if self.perms.get(r.passenger_id, {}).get("can_receive_notifications")
        ]

    async def ride_message(self, event):
        perms = self.perms.get(event["passenger_id"])
        if perms is None:
            return
        # Ride groups are joined for location; status comes on the user's own
        # group, so the ride group's copy is dropped.
        if event.get("audience") == "ride":
            return
        if perms.get("can_view_location"):
            group = events.ride_group(event["ride_id"])
            if event["status"] in (
                RideStatus.COMPLETED,
                RideStatus.CANCELLED,
                RideStatus.NO_SHOW,
                RideStatus.UNFULFILLED,
            ):
                await self.leave(group)
            else:
                await self.join(group)
        if perms.get("can_receive_notifications"):
            await self.send_json(self._visible(event["passenger_id"], event["message"]))

    async def ride_location(self, event):
        perms = self.perms.get(event["passenger_id"])
        if perms and perms.get("can_view_location"):
            await self.send_json(event["message"])

    async def links_changed(self, event):
        await self._refresh()
        await self.send_json(
            {
                "type": "links_updated",
                "passengers": [{"passenger_id": pid, **perms} for pid, perms in self.perms.items()],
            }
        )


_sweeper: asyncio.Task | None = None


def start_sweeper() -> None:
    """
    In offer mode, every worker expires overdue offers once a second, so a
    timeout fires even if the worker that made the offer has died.
    """
    global _sweeper
    if settings.DISPATCH_MODE != "offer":
        return
    loop = asyncio.get_running_loop()
    if _sweeper is not None and not _sweeper.done() and _sweeper.get_loop() is loop:
        return

    async def sweep():
        while True:
            try:
                await db_async(services.ride_offers_expire)()
            except Exception:
                log.exception("offer sweep failed")
            await asyncio.sleep(1.0)

    _sweeper = loop.create_task(sweep())
