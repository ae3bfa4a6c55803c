"""The app sockets' common ground: who is connected, and refusing them in words."""

from __future__ import annotations

from dispatch import (
    broadcast,
    offers,
    watch,
)
from people.tokens import session_signs_in
from project.common.db import db_async
from project.common.sockets import CLOSE_UNAUTHENTICATED, JsonSocket


class AppSocket(JsonSocket):
    """What the app sockets share: offers time out, trips are swept, while any is open."""

    async def websocket_connect(self, message):
        offers.start_sweeper()
        watch.start_trip_sweeper()
        await super().websocket_connect(message)
        await self._closed_if_signed_out()

    async def _closed_if_signed_out(self) -> None:
        """
        Once in its user's group, the socket's app session is read again:
        a logout that committed after the handshake's token was read, but
        before the join, sent its close (access_ended) to no socket.
        """
        session_id = self.scope.get("api_session_id")
        if session_id is None or broadcast.user_group(self.user.pk) not in self.groups_joined:
            return
        if not await db_async(session_signs_in)(session_id):
            await self.send_error("authentication_required", "You were signed out. Sign in again.")
            await self.close(code=CLOSE_UNAUTHENTICATED)

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
