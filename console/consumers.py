"""
ws://HOST/ws/console/: the live board.

Every dispatch change reaches the `console.board` group, from whichever
worker made it. This socket turns those events into what the page needs:

* board regions re-rendered as htmx out-of-band fragments (the htmx `ws`
  extension swaps them by id), coalesced so a burst of events costs one
  render;
* JSON for the map script: a marker snapshot after ride and driver changes,
  and driver positions batched to at most one message per
  CONSOLE_MAP_BATCH_S, carrying each driver at most once.

It only reads; every change goes through the views and their services.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.template.loader import render_to_string

from console import selectors
from dispatch.events import CONSOLE_GROUP

log = logging.getLogger(__name__)

CLOSE_FORBIDDEN = 4403
TEMPLATE = "console/board.html"
# A burst of events (a booking writes two or three) becomes one render.
RENDER_DEBOUNCE_S = 0.15
# Under a steady stream of changes, re-render no more often than this.
RENDER_MIN_GAP_S = 0.5

RIDE_DIRTY = frozenset({"pending-rides", "active-rides", "events", "drivers", "map"})
DRIVER_DIRTY = frozenset({"drivers", "map"})
LINKS_DIRTY = frozenset({"links", "pending-rides", "active-rides"})
EVERYTHING = frozenset({*selectors.REGIONS, "map"})


class ConsoleConsumer(AsyncWebsocketConsumer):
    async def connect(self):
        self.joined = False
        self._dirty: set[str] = set()
        self._rides: dict[int, dict[str, Any]] = {}
        self._render_task: asyncio.Task | None = None
        self._last_render = 0.0
        self._positions: dict[int, dict[str, Any]] = {}
        self._map_task: asyncio.Task | None = None
        self._last_map_flush = float("-inf")
        user = self.scope.get("user")
        allowed = user is not None and await database_sync_to_async(selectors.can_use_board)(user)
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

    async def disconnect(self, code):
        for task in (self._render_task, self._map_task):
            if task is not None:
                task.cancel()
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
        self._mark(DRIVER_DIRTY)

    async def console_links(self, event):
        self._mark(LINKS_DIRTY)

    async def console_location(self, event):
        self._positions[event["driver_id"]] = {
            "id": event["driver_id"],
            "lat": event["latitude"],
            "lng": event["longitude"],
            "heading": event.get("heading"),
            "ts": event.get("ts"),
        }
        if self._map_task is None:
            self._schedule_positions()

    async def server_shutdown(self, event):
        # 1012 (service restart): htmx's ws extension reconnects after it.
        await self.close(code=1012)

    # --- re-rendering the board ---------------------------------------------------

    def _mark(self, regions: frozenset[str]) -> None:
        self._dirty |= regions
        if self._render_task is None:
            self._render_task = asyncio.create_task(self._render_loop())

    async def _render_loop(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._dirty:
                wait = max(RENDER_DEBOUNCE_S, self._last_render + RENDER_MIN_GAP_S - loop.time())
                await asyncio.sleep(wait)
                dirty, self._dirty = self._dirty, set()
                rides, self._rides = self._rides, {}
                self._last_render = loop.time()
                try:
                    html, snapshot = await database_sync_to_async(self._render)(dirty)
                except Exception:
                    log.exception("console render failed")
                    continue
                if html:
                    await self.send(text_data=html)
                if snapshot is not None:
                    await self.send(text_data=json.dumps(snapshot))
                if rides:
                    await self.send(
                        text_data=json.dumps(
                            {"type": "rides.changed", "rides": list(rides.values())}
                        )
                    )
        finally:
            self._render_task = None

    def _render(self, dirty: set[str]) -> tuple[str, dict | None]:
        regions = [name for name in selectors.REGIONS if name in dirty]
        needed = set(regions)
        if "map" in dirty:
            needed |= {"drivers", "pending-rides", "active-rides"}
        ctx = selectors.board_context(needed)
        ctx.update(oob=True, can_manage_links=True)
        html = "".join(render_to_string(f"{TEMPLATE}#{name}", ctx) for name in regions)
        snapshot = None
        if "map" in dirty:
            snapshot = selectors.map_snapshot(
                drivers=ctx["drivers"], pending=ctx["pending_rides"], active=ctx["active_rides"]
            )
        return html, snapshot

    # --- batching positions for the map ---------------------------------------------

    def _schedule_positions(self) -> None:
        loop = asyncio.get_running_loop()
        delay = max(0.0, self._last_map_flush + settings.CONSOLE_MAP_BATCH_S - loop.time())
        self._map_task = asyncio.create_task(self._flush_positions(delay))

    async def _flush_positions(self, delay: float) -> None:
        try:
            await asyncio.sleep(delay)
            positions, self._positions = self._positions, {}
            self._last_map_flush = asyncio.get_running_loop().time()
            if positions:
                await self.send(
                    text_data=json.dumps(
                        {
                            "type": "map.positions",
                            "server_now": time.time(),
                            "drivers": list(positions.values()),
                        }
                    )
                )
        finally:
            self._map_task = None
        if self._positions:
            # Reports that came in while this batch was being sent.
            self._schedule_positions()
