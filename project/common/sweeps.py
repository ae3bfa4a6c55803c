"""
A job every worker runs on its event loop, every so often, from the first
socket that asks (the offer sweep, the trip sweep): one task per loop, its
work on the database threads, a failure logged and the next round kept.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from project.common.db import db_async

log = logging.getLogger(__name__)


class Sweep:
    def __init__(self, name: str, work: Callable[[], Any]) -> None:
        self.name = name
        self.work = work
        self._task: asyncio.Task | None = None

    def ensure_running(self, every_s: float) -> None:
        """Start the sweep on this loop unless it runs there already."""
        loop = asyncio.get_running_loop()
        task = self._task
        if task is not None and not task.done() and task.get_loop() is loop:
            return

        async def rounds() -> None:
            while True:
                await asyncio.sleep(every_s)
                try:
                    await db_async(self.work)()
                except Exception:
                    log.exception("%s failed", self.name)

        self._task = loop.create_task(rounds())
