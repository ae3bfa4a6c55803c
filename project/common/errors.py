"""
One error type for every refused request. A service raises a ServiceError
subclass; REST renders it as {"code", "message", ...} with its HTTP status,
and the sockets as {"type": "error", "code", "message", ...}. The extra
keywords become fields of both bodies.
"""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """A request refused; `code` is the clients' machine-readable reason."""

    code = "invalid_request"
    status = 400

    def __init__(
        self, message: str, *, code: str | None = None, status: int | None = None, **extra: Any
    ) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "message": str(self), **self.extra}


class Throttled(ServiceError):
    """
    Refused for now, not for good: `retry_after` says in how many seconds
    to ask again (REST also sends it as Retry-After).
    """

    status = 429

    def __init__(self, message: str, *, retry_after: int, **extra: Any) -> None:
        super().__init__(message, retry_after=retry_after, **extra)


class ApiError(ServiceError):
    """An error a REST view raises itself: ApiError(404, "not_found", "...")."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message, code=code, status=status, **extra)
