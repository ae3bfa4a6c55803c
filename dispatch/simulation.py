"""
A simulated day for demos: drivers, passengers and caregivers use a running
server through its real sockets, exactly as the apps do (`manage.py
simulate`, `make demo`).

- The demo drivers who stand still go off duty meanwhile (and back on, where
  they stood, at the end), so no ride waits on a driver who never moves.
- Drivers (dispatch.demo.seed_simulation) go online, drive straight-line
  legs at city speed (times `speed`), report their position every tick, take
  the rides they are given (accepting offers in offer mode), and drive them
  to the end: arrived, start_trip, complete_trip.
- Passengers, and caregivers for the passenger they look after, book rides
  now and then: most near the drivers, some far out where no driver is near
  (they wait on the board as "No driver found" and are cancelled after a
  while), wheelchair users' rides need an accessible vehicle, and an
  occasional passenger is not there (the driver waits NO_SHOW_WAIT_MIN and
  reports a no-show).

Sessions: the simulator runs in-process with Django and the server's
database, so it mints each simulated app's session with
people.sessions.session_issue instead of signing in by SMS.

Stopping (Ctrl-C, or `duration_s`): nobody books any more, rides still
waiting for a driver are cancelled by their booker, drivers finish the ride
they carry at once and go offline. Anything still live afterwards is
cancelled in the database (reported, never expected).
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from asgiref.sync import sync_to_async
from django.conf import settings
from websockets.asyncio.client import ClientConnection, connect

from dispatch import rides
from dispatch.demo import SIM_CENTRE, SimCast
from dispatch.geo import haversine_km
from dispatch.models import FINAL_STATUSES, Ride
from people.models import User
from people.sessions import session_issue

CITY_KMH = 35.0
RIDE_PREFIX = "sim-"
# Where nobody drives: Vereeniging, about 55 km south of the centre.
FAR_AWAY = (-26.6730, 27.9260)
PENDING = ("requested", "searching")
# How long a booker waits, once stopping, for their ride to end.
STOP_WAIT_S = 30.0


@dataclass
class SimConfig:
    url: str = "ws://127.0.0.1:8067"
    speed: float = 4.0  # how many times faster than city speed drivers move
    tick_s: float = 2.0  # between position reports
    booking_every_s: float = 8.0
    far_share: float = 0.15
    no_show_share: float = 0.05
    unmatched_wait_s: float = 120.0  # before an unmatched booker gives up
    pickup_dwell_s: float = 3.0
    duration_s: float | None = None
    seed: int | None = None


@dataclass
class Stats:
    booked: int = 0
    assigned: int = 0
    completed: int = 0
    no_shows: int = 0
    cancelled: int = 0
    unmatched: int = 0


@dataclass
class Leg:
    lat: float
    lng: float
    target: tuple[float, float] = field(default=(0.0, 0.0))


def _near(point: tuple[float, float], km: float, rng: random.Random) -> tuple[float, float]:
    """A point uniformly within `km` of `point` (flat-earth: city distances)."""
    r = km * math.sqrt(rng.random())
    angle = rng.random() * 2 * math.pi
    lat = point[0] + (r / 111.0) * math.cos(angle)
    lng = point[1] + (r / (111.0 * math.cos(math.radians(point[0])))) * math.sin(angle)
    return round(lat, 6), round(lng, 6)


def _bearing(a: tuple[float, float], b: tuple[float, float]) -> float:
    y = math.sin(math.radians(b[1] - a[1])) * math.cos(math.radians(b[0]))
    x = math.cos(math.radians(a[0])) * math.sin(math.radians(b[0])) - math.sin(
        math.radians(a[0])
    ) * math.cos(math.radians(b[0])) * math.cos(math.radians(b[1] - a[1]))
    return round((math.degrees(math.atan2(y, x)) + 360) % 360, 1)


def step_towards(
    here: tuple[float, float], there: tuple[float, float], km: float
) -> tuple[tuple[float, float], bool]:
    """`km` along the straight line from here to there; True when there."""
    left = haversine_km(here[0], here[1], there[0], there[1])
    if left <= km:
        return there, True
    f = km / left
    return (here[0] + (there[0] - here[0]) * f, here[1] + (there[1] - here[1]) * f), False


class Simulation:
    def __init__(self, config: SimConfig, cast: SimCast, say: Callable[[str], None] = print):
        self.config = config
        self.cast = cast
        self.say = say
        self.rng = random.Random(config.seed)
        self.stats = Stats()
        self.stopping = asyncio.Event()
        self.no_shows: set[str] = set()
        self.riding: set[int] = set()  # passengers with a live simulated ride
        self.ride_tasks: set[asyncio.Task] = set()

    def stop(self) -> None:
        if not self.stopping.is_set():
            self.say("Stopping: open bookings are cancelled, drivers finish and go offline…")
            self.stopping.set()

    # --- sockets -------------------------------------------------------------------

    @asynccontextmanager
    async def socket(self, path: str, user: User) -> AsyncIterator[ClientConnection]:
        """An app's socket for `user`, with a session minted in-process."""
        pair = await sync_to_async(session_issue)(user=user, user_agent="care-connect simulator")
        async with connect(
            f"{self.config.url}{path}",
            additional_headers={"Authorization": f"Bearer {pair.access}"},
            open_timeout=15,
        ) as ws:
            hello = json.loads(await ws.recv())
            if hello.get("type") != "connection_established":
                raise RuntimeError(f"{path}: {hello}")
            yield ws

    @staticmethod
    async def send(ws: ClientConnection, **message) -> None:
        await ws.send(json.dumps(message))

    @staticmethod
    async def receive(ws: ClientConnection, timeout: float) -> dict | None:
        try:
            return json.loads(await asyncio.wait_for(ws.recv(), timeout))
        except TimeoutError:
            return None

    # --- the day -----------------------------------------------------------------------

    async def run(self) -> Stats:
        await asyncio.gather(*(self.stand(user, status="offline") for user in self.cast.standing))
        drivers = [asyncio.create_task(self.driver(user)) for user in self.cast.drivers]
        booking = asyncio.create_task(self.bookings())
        if self.config.duration_s:
            asyncio.get_running_loop().call_later(self.config.duration_s, self.stop)
        await self.stopping.wait()
        booking.cancel()
        # Bookers cancel what still waits; drivers finish what they carry.
        await asyncio.gather(*self.ride_tasks, return_exceptions=True)
        results = await asyncio.gather(*drivers, return_exceptions=True)
        for user, result in zip(self.cast.drivers, results, strict=True):
            if isinstance(result, Exception):
                self.say(f"driver {user} stopped with {result!r}")
        left = await sync_to_async(close_leftovers)()
        if left:
            self.say(f"{left} simulated ride(s) were still live and were cancelled directly.")
        # The demo drivers stand where they stood, available again.
        await asyncio.gather(
            *(self.stand(user, status="available") for user in self.cast.standing),
            return_exceptions=True,
        )
        return self.stats

    async def stand(self, user: User, *, status: str) -> None:
        """
        A demo driver's app going on or off duty. It reports no position: back
        on duty, the driver stands where the demo data placed them, and a
        position that no app reports never turns stale (dispatch.drivers).
        """
        async with self.socket("/ws/driver/", user) as ws:
            await self.send(ws, type="set_status", status=status)
            while (message := await self.receive(ws, 5.0)) is not None:
                if message.get("type") in ("status_updated", "error"):
                    return

    async def bookings(self) -> None:
        while not self.stopping.is_set():
            await asyncio.sleep(self.config.booking_every_s * (0.5 + self.rng.random()))
            choice = self._pick_booker()
            if choice is None:
                continue
            booker, passenger = choice
            task = asyncio.create_task(self.ride(booker, passenger))
            self.ride_tasks.add(task)
            task.add_done_callback(self.ride_tasks.discard)

    def _pick_booker(self) -> tuple[User, User] | None:
        free = [p for p in self.cast.passengers if p.pk not in self.riding]
        if not free:
            return None
        passenger = self.rng.choice(free)
        carers = [c for c, p in self.cast.caregivers.items() if p.pk == passenger.pk]
        if carers and self.rng.random() < 0.5:
            return carers[0], passenger
        return passenger, passenger

    # --- a booking, from the booker's app ----------------------------------------------

    async def ride(self, booker: User, passenger: User) -> None:
        cfg = self.config
        ride_id = f"{RIDE_PREFIX}{uuid.uuid4().hex[:10]}"
        far = self.rng.random() < cfg.far_share
        pickup = _near(FAR_AWAY if far else SIM_CENTRE, 2.0 if far else 6.0, self.rng)
        dropoff = _near(pickup, 5.0, self.rng)
        if self.rng.random() < cfg.no_show_share:
            self.no_shows.add(ride_id)
        self.riding.add(passenger.pk)
        try:
            async with self.socket(f"/ws/ride/{ride_id}/", booker) as ws:
                request = {
                    "type": "find_driver",
                    "pickup_latitude": pickup[0],
                    "pickup_longitude": pickup[1],
                    "pickup_address": f"{passenger.first_name}'s home",
                    "dropoff_latitude": dropoff[0],
                    "dropoff_longitude": dropoff[1],
                    "dropoff_address": self.rng.choice(
                        ["Clinic", "Day centre", "Pharmacy", "Hospital", "Family visit"]
                    ),
                }
                if booker.pk != passenger.pk:
                    request["passenger_id"] = passenger.pk
                await ws.send(json.dumps(request))
                self.stats.booked += 1
                who = "" if booker.pk == passenger.pk else f" (booked by {booker})"
                self.say(f"{ride_id}: {passenger} books a ride{who}{' far out' if far else ''}")
                await self._follow(ws, ride_id)
        finally:
            self.riding.discard(passenger.pk)
            self.no_shows.discard(ride_id)

    async def _follow(self, ws: ClientConnection, ride_id: str) -> None:
        """Listen as the app does, until the ride ends; give up if nobody comes."""
        loop = asyncio.get_running_loop()
        status, since, cancelled = "requested", loop.time(), False
        stopped_at: float | None = None
        while True:
            message = await self.receive(ws, 1.0)
            if message is not None:
                kind = message.get("type")
                status = message.get("status", status)
                if kind == "driver_assigned":
                    self.stats.assigned += 1
                    self.say(f"{ride_id}: {message['driver']['name']} is on the way")
                elif kind == "no_drivers":
                    self.stats.unmatched += 1
                if status in FINAL_STATUSES:
                    if status == "completed":
                        self.stats.completed += 1
                    elif status == "no_show":
                        self.stats.no_shows += 1
                    else:
                        self.stats.cancelled += 1
                    self.say(f"{ride_id}: {status.replace('_', ' ')}")
                    return
            if self.stopping.is_set() and stopped_at is None:
                stopped_at = loop.time()
            if stopped_at is not None and loop.time() - stopped_at > STOP_WAIT_S:
                return  # close_leftovers cancels it
            waited = loop.time() - since
            gave_up = status in PENDING and waited > self.config.unmatched_wait_s
            if not cancelled and status in PENDING and (self.stopping.is_set() or gave_up):
                reason = "simulation stopped" if self.stopping.is_set() else "found another way"
                await self.send(ws, type="cancel_ride", reason=reason)
                cancelled = True

    # --- a driver, from the driver's app -----------------------------------------------

    async def driver(self, user: User) -> None:
        cfg = self.config
        here = _near(SIM_CENTRE, 8.0, self.rng)
        target = _near(SIM_CENTRE, 8.0, self.rng)
        ride: dict | None = None
        phase = "roam"
        wait_until = 0.0
        loop = asyncio.get_running_loop()
        async with self.socket("/ws/driver/", user) as ws:
            await self.send(ws, type="location_update", latitude=here[0], longitude=here[1])
            await self.send(ws, type="set_status", status="available")
            while True:
                # Everything the server said since the last tick.
                while (message := await self.receive(ws, 0.01)) is not None:
                    kind = message.get("type")
                    if kind == "ride_request" and not self.stopping.is_set():
                        await self.send(ws, type="accept_ride", ride_id=message["ride_id"])
                    elif kind == "ride_assigned":
                        ride, phase = message, "to_pickup"
                        target = (message["pickup_latitude"], message["pickup_longitude"])
                    elif (
                        kind == "ride_cancelled" and ride and message["ride_id"] == ride["ride_id"]
                    ):
                        ride, phase = None, "roam"
                if self.stopping.is_set():
                    await self._go_offline(ws, ride, phase)
                    return
                km = CITY_KMH * cfg.speed * cfg.tick_s / 3600
                moved, there = (
                    step_towards(here, target, km)
                    if phase != "at_pickup"
                    else (
                        here,
                        True,
                    )
                )
                heading = _bearing(here, moved) if moved != here else None
                here = moved
                report = {"latitude": round(here[0], 6), "longitude": round(here[1], 6)}
                if heading is not None:
                    report.update(heading=heading, speed=round(CITY_KMH * cfg.speed / 3.6, 1))
                await self.send(ws, type="location_update", **report)
                if there:
                    phase, target, wait_until = await self._next_leg(
                        ws, phase, ride, wait_until, loop.time()
                    )
                    if phase == "roam" and ride is not None:
                        ride = None
                await asyncio.sleep(cfg.tick_s)

    async def _next_leg(
        self, ws: ClientConnection, phase: str, ride: dict | None, wait_until: float, now: float
    ) -> tuple[str, tuple[float, float], float]:
        """What a driver does on reaching the end of a leg."""
        roam = _near(SIM_CENTRE, 8.0, self.rng)
        if phase == "to_pickup" and ride is not None:
            await self.send(ws, type="arrived")
            no_show = ride["ride_id"] in self.no_shows
            # A no-show may be reported only after the server's wait and the
            # caregivers' escalation (trips.no_show_allowed_at), which the
            # trip sweep runs within TRIP_SWEEP_S.
            wait_s = 60 * max(settings.NO_SHOW_WAIT_MIN, settings.NO_SHOW_CAREGIVERS_AFTER_MIN)
            no_show_after = wait_s + settings.TRIP_SWEEP_S + 2
            dwell = no_show_after if no_show else self.config.pickup_dwell_s
            here = (ride["pickup_latitude"], ride["pickup_longitude"])
            return "at_pickup", here, now + dwell
        if phase == "at_pickup" and ride is not None:
            if now < wait_until:
                return phase, (ride["pickup_latitude"], ride["pickup_longitude"]), wait_until
            if ride["ride_id"] in self.no_shows:
                await self.send(ws, type="no_show")
                return "roam", roam, 0.0
            await self.send(ws, type="start_trip")
            return "to_dropoff", (ride["dropoff_latitude"], ride["dropoff_longitude"]), 0.0
        if phase == "to_dropoff" and ride is not None:
            await self.send(ws, type="complete_trip")
            return "roam", roam, 0.0
        return "roam", roam, 0.0

    async def _go_offline(self, ws: ClientConnection, ride: dict | None, phase: str) -> None:
        """Finish the ride in hand at once, then go offline (a ride given meanwhile too)."""
        for _ in range(5):
            while ride is not None:
                # A driver freed by the trip's end may be given a waiting ride at once.
                ride = await self._finish_now(ws, phase)
                phase = "to_pickup"
            await self.send(ws, type="set_status", status="offline")
            while (message := await self.receive(ws, 5.0)) is not None:
                kind = message.get("type")
                if kind == "ride_assigned":
                    ride, phase = message, "to_pickup"
                elif kind == "status_updated" and message.get("status") == "offline":
                    return
                elif kind == "error":
                    break  # the ride assigned just before: finish it, then again
            else:
                return

    async def _finish_now(self, ws: ClientConnection, phase: str) -> dict | None:
        """Drive the ride in hand to its end now; the next ride, if one came meanwhile."""
        steps = {
            "to_pickup": ("arrived", "start_trip", "complete_trip"),
            "at_pickup": ("start_trip", "complete_trip"),
            "to_dropoff": ("complete_trip",),
        }.get(phase, ())
        for step in steps:
            await self.send(ws, type=step)
        following = None
        # Until the server confirms the ride is done, the driver may not go offline.
        for _ in range(20):
            message = await self.receive(ws, 0.5)
            if message is None:
                continue
            if message.get("type") == "ride_assigned":
                following = message
            elif message.get("type") == "ride_status" and message.get("status") in FINAL_STATUSES:
                break
        return following


def close_leftovers() -> int:
    """Simulated rides still live after the simulation: cancelled, counted."""
    left = 0
    for ride in Ride.objects.filter(ride_id__startswith=RIDE_PREFIX).exclude(
        status__in=FINAL_STATUSES
    ):
        rides.ride_cancel(
            ride=ride, actor=None, cancelled_by="dispatcher", reason="simulation stopped"
        )
        left += 1
    return left
