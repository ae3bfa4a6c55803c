"""
The driver socket's manifest: sent on connect when the driver has a
published run today, on `get_manifest`, and as `manifest_updated` whenever
a nudge (dispatch.broadcast.manifests_changed, or a ride of the run
changing) finds it different from what the app was last sent. Nudges that
arrive while one is being read fold into one more read, so a publish that
tells every rider of a run costs the driver's socket two reads, not one per
rider.
"""

from __future__ import annotations

import asyncio
from datetime import date, timedelta

from django.utils import timezone

from dispatch import scheduling
from dispatch.planning import day
from dispatch.socket_schemas import GetManifest
from project.common.db import db_async


class ManifestFeed:
    """A mixin for the driver's socket (`self.user`, `self.send_json`)."""

    def manifest_start(self) -> dict | None:
        """(On the database thread, at connect) today's manifest, if there is a run."""
        self.manifests_sent: dict[date, list] = {}
        self.manifest_dirty: set[date] = set()
        self.manifest_reader: asyncio.Task | None = None
        today = timezone.localdate()
        manifest = day.manifest_for(self.user, today)
        if not manifest["stops"]:
            return None
        self._sent(today, manifest["stops"])
        return manifest

    async def on_get_manifest(self, content):
        request = GetManifest.model_validate(content)
        service_date = request.service_date or timezone.localdate()
        manifest = await db_async(day.manifest_for)(self.user, service_date)
        self._sent(service_date, manifest["stops"])
        await self.send_json(manifest)

    def _sent(self, service_date: date, stops: list) -> None:
        """
        Remember what the app was sent for a day, so that a nudge that
        changes nothing sends nothing: only for the days a nudge may come
        for (yesterday, for a run ending after midnight, to the booking
        horizon), so that an app asking for any number of days does not
        grow the worker. A day outside them is sent, not remembered; nor is
        a day without stops, which is what a day never sent reads as.
        """
        first = timezone.localdate() - timedelta(days=1)
        last = scheduling.last_bookable_date()
        for gone in [d for d in self.manifests_sent if not first <= d <= last]:
            del self.manifests_sent[gone]
        if stops and first <= service_date <= last:
            self.manifests_sent[service_date] = stops
        else:
            self.manifests_sent.pop(service_date, None)

    async def disconnect(self, code):
        reader = getattr(self, "manifest_reader", None)
        if reader is not None:
            reader.cancel()
        await super().disconnect(code)

    async def driver_manifest(self, event):
        self.manifest_dirty.add(date.fromisoformat(event["service_date"]))
        if self.manifest_reader is None or self.manifest_reader.done():
            self.manifest_reader = asyncio.create_task(self._read_manifests())

    async def _read_manifests(self) -> None:
        while self.manifest_dirty:
            service_date = self.manifest_dirty.pop()
            manifest = await db_async(day.manifest_for)(self.user, service_date, updated=True)
            if manifest["stops"] != self.manifests_sent.get(service_date, []):
                self._sent(service_date, manifest["stops"])
                await self.send_json(manifest)
