from __future__ import annotations

from ninja import Router

auth_router = Router(tags=["auth"])
