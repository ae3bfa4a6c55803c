"""The console's live socket. Replaced by the console's own implementation."""

from __future__ import annotations

from channels.generic.websocket import AsyncJsonWebsocketConsumer


class ConsoleConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        await self.close(code=4403)
