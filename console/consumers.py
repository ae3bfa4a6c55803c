"""
ws://HOST/ws/console/: the live board.

Every dispatch change reaches the `console.board` group, from whichever
worker made it (dispatch.broadcast). This socket turns that news into what
the page needs:

* board regions re-rendered as htmx out-of-band fragments (the htmx `ws`
  extension swaps them by id), coalesced so a burst of news costs one
  render;
* JSON for the map script: every marker once on connect ("map.snapshot"),
  then only the rides and drivers that changed ("map.rides",
  "map.drivers"), and drivers' positions as each worker batches them
  ("map.positions").

It only reads; every change goes through the views and their services.
"""

from __future__ import annotations

import asyncio
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.template.loader import render_to_string

from console import live_map, regions
from dispatch import watch
from dispatch.broadcast import CONSOLE_GROUP, user_group
from people.access import is_dispatcher
from people.models import User
from project.common.adapters import QuietWhenClientLeft, SkipConnectionSweep
from project.common.db import db_async
from project.common.socket_limits import SocketLimits
from project.common.sockets import CLOSE_FORBIDDEN

log = logging.getLogger(__name__)

TEMPLATE = "console/board.html"
# A burst of news (a booking makes two or three) becomes one render.
RENDER_DEBOUNCE_S = 0.15
# Under a steady stream of changes, re-render no more often than this.
RENDER_MIN_GAP_S = 0.5

RIDE_DIRTY = frozenset({"alerts", "pending-rides", "trouble", "active-rides", "events", "drivers"})
# A driver who loses or regains the signal moves a ride in or out of trouble.
DRIVER_DIRTY = frozenset({"drivers", "trouble"})
# Ride cards name the passengers' caregivers (the links page has no socket).
LINKS_DIRTY = frozenset({"pending-rides", "trouble", "active-rides"})
EVERYTHING = frozenset({*regions.REGIONS, "map"})
# Renders only read, so they run beside (not on) the database threads the
# app sockets' writes use; two threads bound the connections they take.
_RENDER_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="console-render")


class ConsoleConsumer(
    SocketLimits, QuietWhenClientLeft, SkipConnectionSweep, AsyncWebsocketConsumer
):
    async def connect(self):
        self.joined = False
        self._dirty: set[str] = set()
        self._rides: dict[int, dict[str, Any]] = {}
        self._drivers: set[int] = set()
        self._render_task: asyncio.Task | None = None
        self._last_render = 0.0
        user = self.scope.get("user")
        # A console session only: an app's token (SMS sign-in) opens no console.
        # A session still owing its authenticator code arrives anonymous
        # (project.routing.SecondFactorGate).
        by_session = "api_session_id" not in self.scope and "session" in self.scope
        allowed = by_session and user is not None and await db_async(is_dispatcher)(user)
        # Accept, then close with 4403: a browser sees the code (a refused
        # handshake would only show 1006) and htmx does not retry it.
        await self.accept()
        if not allowed:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        await self.channel_layer.group_add(CONSOLE_GROUP, self.channel_name)
        await self.channel_layer.group_add(user_group(user.pk), self.channel_name)
        self.joined = True
        # Alarms and escalations reach the board even when no app is connected.
        watch.start_trip_sweeper()
        # Whatever changed between the page render and this subscription.
        self._mark(EVERYTHING)

    async def disconnect(self, code):
        if self._render_task is not None:
            self._render_task.cancel()
        if self.joined:
            self.joined = False
            await self.channel_layer.group_discard(CONSOLE_GROUP, self.channel_name)
            await self.channel_layer.group_discard(
                user_group(self.scope["user"].pk), self.channel_name
            )

    async def receive(self, text_data=None, bytes_data=None):
        # The page only listens; htmx's ws extension sends nothing here.
        return

    # --- group messages -----------------------------------------------------------

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

    async def access_ended(self, event):
        """Signed out (this console session), or the account was switched off."""
        key = event["console_session_key"]
        if event["api_session_id"] is None and key in (None, self.scope["session"].session_key):
            await self.close(code=event["code"])

    async def links_changed(self, event):
        pass

    async def roles_changed(self, event):
        """The user's staff roles changed: the board is for dispatchers only."""
        user = await db_async(User.objects.filter(pk=self.scope["user"].pk, is_active=True).first)()
        if user is None or not await db_async(is_dispatcher)(user):
            await self.close(code=CLOSE_FORBIDDEN)

    async def notice_news(self, event):
        # In-app notifications are the apps'; the console shows none.
        pass

    async def console_positions(self, event):
        for part in live_map.map_parts(live_map.positions_update(event["drivers"])):
            await self.send(text_data=json.dumps(part))

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
                    for part in live_map.map_parts(message):
                        await self.send(text_data=json.dumps(part))
                if rides:
                    changed = {"type": "rides.changed", "rides": list(rides.values())}
                    await self.send(text_data=json.dumps(changed))
        finally:
            self._render_task = None

    def _render(
        self, dirty: set[str], ride_pks: set[int], driver_ids: set[int]
    ) -> tuple[str, list[dict]]:
        names = [name for name in regions.REGIONS if name in dirty]
        ctx = regions.board_context(names)
        ctx.update(oob=True)
        html = "".join(render_to_string(regions.region_template(name), ctx) for name in names)
        if "map" in dirty:
            return html, [live_map.map_snapshot(drivers=ctx.get("drivers"))]
        maps = []
        if ride_pks:
            maps.append(live_map.map_rides_update(ride_pks))
        if driver_ids:
            maps.append(live_map.map_drivers_update(driver_ids))
        return html, maps
