"""Batching what arrives often into one piece of work per interval."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)


class LatestPerKey:
    """
    The latest value noted for each key, handed to `flush` as one dict once
    per `interval()` seconds by a task of its own, so whoever notes never
    waits for the work. The task runs while anything is pending. A failed
    flush is logged; the next interval goes on.
    """

    def __init__(
        self, interval: Callable[[], float], flush: Callable[[dict], Awaitable[Any]], what: str
    ) -> None:
        self.interval, self.flush, self.what = interval, flush, what
        self.pending: dict = {}
        self.task: asyncio.Task | None = None

    def note(self, key, value) -> None:
        self.pending[key] = value
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while self.pending:
            await asyncio.sleep(self.interval())
            batch, self.pending = self.pending, {}
            try:
                await self.flush(batch)
            except Exception:
                log.exception("%s: %d failed", self.what, len(batch))
