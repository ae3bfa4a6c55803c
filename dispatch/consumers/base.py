"""The app sockets' common ground: who is connected, and refusing them in words."""

from __future__ import annotations

from dispatch import (
    offers,
    watch,
)
from project.common.sockets import JsonSocket


class AppSocket(JsonSocket):
    """What the app sockets share: offers time out, trips are swept, while any is open."""

    async def websocket_connect(self, message):
        offers.start_sweeper()
        watch.start_trip_sweeper()
        await super().websocket_connect(message)

    async def refuse(self, code: int, error: str = "", message: str = "") -> None:
        """Accept, say why (if `error`), and close with `code`: apps see the code."""
        await self.accept()
        if error:
            await self.send_error(error, message)
        await self.close(code=code)

    async def links_changed(self, event):
        pass

    async def roles_changed(self, event):
        pass

    async def notice_news(self, event):
        """An in-app notification for this socket's user (dispatch.notify)."""
        await self.send_json(event["message"])

    async def access_ended(self, event):
        """The user's access ended: this socket closes if it was theirs (or its session's)."""
        session = event["api_session_id"]
        if session is None or session == self.scope.get("api_session_id"):
            await self.send_error(event["error"], event["message"])
            await self.close(code=event["code"])
