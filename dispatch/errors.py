"""The ways a dispatch request is refused; `code` goes to the client."""

from __future__ import annotations

from project.common.errors import ServiceError


class DispatchError(ServiceError):
    code = "invalid_request"
    status = 400


class NotAllowed(DispatchError):
    code = "forbidden"
    status = 403


class NotFound(DispatchError):
    code = "not_found"
    status = 404


class IllegalTransition(DispatchError):
    """The ride cannot do that now; says where it is."""

    code = "invalid_state"
    status = 409

    def __init__(self, ride, to_status: str, message: str | None = None, **extra) -> None:
        super().__init__(
            message or f"Ride {ride.ride_id} is {ride.status}; it cannot become {to_status}.",
            current_status=ride.status,
            version=ride.version,
            **extra,
        )


class ChangedMeanwhile(IllegalTransition):
    """The ride was written between its read and this change."""


class RideConflict(DispatchError):
    code = "conflict"
    status = 409


class DriverUnavailable(DispatchError):
    code = "driver_unavailable"
    status = 409


class NeedsConfirmation(DispatchError):
    """A manual assignment that breaks a soft rule: asked again with confirm."""

    code = "confirmation_required"
    status = 409


class NotWaitingForReady(IllegalTransition):
    """`ready` for a ride that is no will-call return waiting for it (said already, say)."""

    def __init__(self, ride) -> None:
        super().__init__(ride, "searching", f"Ride {ride.ride_id} is not waiting for 'ready'.")


class NoShowTooEarly(IllegalTransition):
    """A no-show recorded before the wait and the escalation: says how long is left."""

    def __init__(self, ride, seconds_left: int, message: str) -> None:
        super().__init__(ride, "no_show", message, seconds_left=seconds_left)
