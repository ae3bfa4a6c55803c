"""
ws://HOST/ws/console/: the live board.

Every dispatch change reaches the `console.board` group, from whichever
worker made it. This socket turns those events into what the page needs:

* board regions re-rendered as htmx out-of-band fragments (the htmx `ws`
  extension swaps them by id), coalesced so a burst of events costs one
  render;
* JSON for the map script: every marker once on connect ("map.snapshot"),
  then only the rides and drivers that changed ("map.rides",
  "map.drivers"), and driver positions at most once per
  CONSOLE_MAP_BATCH_S, each driver at most once ("map.positions"), read
  from the live location store (memory, or Redis shared by every worker)
  rather than fanned out report by report: 2,000 drivers reporting every
  4 s would otherwise be 500 channel-layer messages a second per console.

It only reads; every change goes through the views and their services.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.template.loader import render_to_string

from console import selectors
from dispatch.events import CONSOLE_GROUP
from dispatch.locations import location_store
from project.db import NoConnectionSweepPerMessage, db_async
from project.sockets import QuietWhenClientLeft, per_event_loop

log = logging.getLogger(__name__)

CLOSE_FORBIDDEN = 4403
TEMPLATE = "console/board.html"
# Drivers per map message: Daphne refuses frames over 1 MiB, which a
# snapshot of a few thousand markers passes (about 300 bytes each).
MAP_CHUNK = 1000
# A burst of events (a booking writes two or three) becomes one render.
RENDER_DEBOUNCE_S = 0.15
# Under a steady stream of changes, re-render no more often than this.
RENDER_MIN_GAP_S = 0.5

RIDE_DIRTY = frozenset({"pending-rides", "active-rides", "events", "drivers"})
DRIVER_DIRTY = frozenset({"drivers"})
LINKS_DIRTY = frozenset({"links", "pending-rides", "active-rides"})
EVERYTHING = frozenset({*selectors.REGIONS, "map"})
# Renders only read, so they run beside (not on) the one thread the app
# sockets' writes share; two threads bound the database connections they use.
_RENDER_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="console-render")


class ConsoleConsumer(QuietWhenClientLeft, NoConnectionSweepPerMessage, AsyncWebsocketConsumer):
    async def connect(self):
        self.joined = False
        self._dirty: set[str] = set()
        self._rides: dict[int, dict[str, Any]] = {}
        self._drivers: set[int] = set()
        self._render_task: asyncio.Task | None = None
        self._last_render = 0.0
        user = self.scope.get("user")
        allowed = user is not None and await db_async(selectors.can_use_board)(user)
        # Accept, then close with 4403: a browser sees the code (a refused
        # handshake would only show 1006) and htmx does not retry it.
        await self.accept()
        if not allowed:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        await self.channel_layer.group_add(CONSOLE_GROUP, self.channel_name)
        self.joined = True
        # Whatever changed between the page render and this subscription.
        self._mark(EVERYTHING)
        map_feed().add(self)

    async def disconnect(self, code):
        if self._render_task is not None:
            self._render_task.cancel()
        map_feed().discard(self)
        if self.joined:
            self.joined = False
            await self.channel_layer.group_discard(CONSOLE_GROUP, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None):
        # The page only listens; htmx's ws extension sends nothing here.
        return

    # --- group events -----------------------------------------------------------

    async def console_ride(self, event):
        self._rides[event["ride_pk"]] = {
            "ride_pk": event["ride_pk"],
            "ride_id": event["ride_id"],
            "status": event["status"],
            "version": event["version"],
        }
        self._mark(RIDE_DIRTY)

    async def console_driver(self, event):
        self._drivers.add(event["driver_id"])
        self._mark(DRIVER_DIRTY)

    async def console_links(self, event):
        self._mark(LINKS_DIRTY)

    # --- re-rendering the board ---------------------------------------------------

    def _mark(self, regions: frozenset[str]) -> None:
        self._dirty |= regions
        if self._render_task is None:
            self._render_task = asyncio.create_task(self._render_loop())

    async def _render_loop(self) -> None:
        loop = asyncio.get_running_loop()
        render = database_sync_to_async(self._render, thread_sensitive=False, executor=_RENDER_POOL)
        try:
            while self._dirty:
                wait = max(RENDER_DEBOUNCE_S, self._last_render + RENDER_MIN_GAP_S - loop.time())
                await asyncio.sleep(wait)
                dirty, self._dirty = self._dirty, set()
                rides, self._rides = self._rides, {}
                drivers, self._drivers = self._drivers, set()
                self._last_render = loop.time()
                try:
                    html, maps = await render(dirty, set(rides), drivers)
                except Exception:
                    log.exception("console render failed")
                    continue
                if html:
                    await self.send(text_data=html)
                for message in maps:
                    for part in map_parts(message):
                        await self.send(text_data=json.dumps(part))
                if rides:
                    changed = {"type": "rides.changed", "rides": list(rides.values())}
                    await self.send(text_data=json.dumps(changed))
        finally:
            self._render_task = None

    def _render(
        self, dirty: set[str], ride_pks: set[int], driver_ids: set[int]
    ) -> tuple[str, list[dict]]:
        regions = [name for name in selectors.REGIONS if name in dirty]
        ctx = selectors.board_context(regions)
        ctx.update(oob=True, can_manage_links=True)
        html = "".join(render_to_string(f"{TEMPLATE}#{name}", ctx) for name in regions)
        if "map" in dirty:
            return html, [selectors.map_snapshot(drivers=ctx.get("drivers"))]
        maps = []
        if ride_pks:
            maps.append(selectors.map_rides_update(ride_pks))
        if driver_ids:
            maps.append(selectors.map_drivers_update(driver_ids))
        return html, maps


def map_parts(message: dict) -> list[dict]:
    """
    A map message in frames of at most MAP_CHUNK drivers: a snapshot's
    first part replaces the map, the rest add markers ("map.drivers").
    """
    drivers = message.get("drivers") or []
    if len(drivers) <= MAP_CHUNK:
        return [message]
    parts = [{**message, "drivers": drivers[:MAP_CHUNK]}]
    kind = "map.drivers" if message["type"] == "map.snapshot" else message["type"]
    for start in range(MAP_CHUNK, len(drivers), MAP_CHUNK):
        part = {
            "type": kind,
            "server_now": message.get("server_now"),
            "drivers": drivers[start : start + MAP_CHUNK],
        }
        if kind == "map.drivers":
            part["removed"] = []
        if "full" in message:
            part["full"] = message["full"]
        parts.append(part)
    return parts


class MapFeed:
    """
    Live positions for the consoles of one worker: one read of the location
    store per CONSOLE_MAP_BATCH_S, turned into one "map.positions" message
    of the drivers whose report changed, serialised once and sent to every
    console. A console's first message holds every known position.
    """

    def __init__(self) -> None:
        self.consoles: set[ConsoleConsumer] = set()
        # Consoles that have not had every position yet.
        self.fresh: set[ConsoleConsumer] = set()
        self.seen: dict[int, float] = {}
        self.task: asyncio.Task | None = None

    def add(self, console: ConsoleConsumer) -> None:
        self.consoles.add(console)
        self.fresh.add(console)
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._run())

    def discard(self, console: ConsoleConsumer) -> None:
        self.consoles.discard(console)
        self.fresh.discard(console)

    @staticmethod
    def _message(points: dict, *, full: bool) -> list[str]:
        drivers = [
            {"id": driver_id, "lat": p.lat, "lng": p.lng, "heading": p.heading, "ts": p.seen}
            for driver_id, p in points.items()
        ]
        # `full`: every known position (a console's first), not just changes.
        message = {
            "type": "map.positions",
            "server_now": time.time(),
            "full": full,
            "drivers": drivers,
        }
        return [json.dumps(part) for part in map_parts(message)]

    async def _run(self) -> None:
        read = database_sync_to_async(
            lambda: location_store().all(), thread_sensitive=False, executor=_RENDER_POOL
        )
        while self.consoles:
            await asyncio.sleep(settings.CONSOLE_MAP_BATCH_S)
            try:
                points = await read()
            except Exception:
                log.exception("reading live positions failed")
                continue
            moved = {d: p for d, p in points.items() if self.seen.get(d) != p.seen}
            self.seen = {d: p.seen for d, p in points.items()}
            changes = self._message(moved, full=False) if moved else []
            everything: list[str] | None = None
            for console in list(self.consoles):
                if console in self.fresh:
                    self.fresh.discard(console)
                    if everything is None:
                        everything = self._message(points, full=True) if points else []
                    texts = everything
                else:
                    texts = changes
                try:
                    for text in texts:
                        await console.send(text_data=text)
                except Exception:
                    log.debug("console left while positions were sent", exc_info=True)
        self.seen = {}


# This event loop's feed.
map_feed = per_event_loop(MapFeed)
