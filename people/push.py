"""
Push notifications through Firebase Cloud Messaging (firebase-admin), when
FCM_CREDENTIALS_FILE names a service account's key file. Without it push is
off: `push_enabled` says so, once, in the log of the process that asks.

Every failure raises PushDeliveryError with a message fit for an operator;
tokens and message bodies never appear in it or in the log.
"""

from __future__ import annotations

import logging
import threading
import warnings
from typing import Any

from django.conf import settings

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_app: list[Any] = []
_announced: list[bool] = []


class PushDeliveryError(Exception):
    """FCM did not accept the message; `gone`: tokens it says no longer exist."""

    def __init__(self, message: str, gone: list[str] | None = None) -> None:
        super().__init__(message)
        self.gone = gone or []


def push_enabled() -> bool:
    """Whether push is on; the first call in a process logs which."""
    enabled = bool(settings.FCM_CREDENTIALS_FILE)
    with _lock:
        if not _announced:
            _announced.append(True)
            if enabled:
                logger.info("Push notifications go through FCM.")
            else:
                logger.warning(
                    "Push notifications are off: FCM_CREDENTIALS_FILE is not set. "
                    "Recipients who chose push are texted instead until it is."
                )
    return enabled


def _firebase():
    # Imported on the first push, not by every socket worker: firebase-admin
    # brings Google's API clients with it.
    import firebase_admin
    from firebase_admin import credentials, messaging

    with _lock:
        if not _app:
            try:
                cred = credentials.Certificate(settings.FCM_CREDENTIALS_FILE)
            except (OSError, ValueError) as exc:
                raise PushDeliveryError(
                    f"FCM_CREDENTIALS_FILE could not be read ({type(exc).__name__})."
                ) from exc
            _app.append(firebase_admin.initialize_app(cred, name="care-connect"))
    return _app[0], messaging


def push_send(*, tokens: list[str], title: str, body: str, data: dict[str, str]) -> list[str]:
    """
    Send one notification to every token; returns the tokens FCM says are
    gone (uninstalled apps), for the caller to forget. Raises
    PushDeliveryError when push is off or no token took it (with the gone
    tokens too: an app uninstalled from the one device is no failure to
    retry).
    """
    if not push_enabled():
        raise PushDeliveryError("Push is off: FCM_CREDENTIALS_FILE is not set.")
    app, messaging = _firebase()
    # The apps register FCM registration tokens; firebase-admin 7.7 marks
    # `tokens` deprecated in favour of installation ids (`fids`), which the
    # apps do not send. It silences the same warning in its own use of them.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        message = messaging.MulticastMessage(
            tokens=tokens,
            notification=messaging.Notification(title=title, body=body),
            data=data,
        )
    try:
        reply = messaging.send_each_for_multicast(message, app=app)
    except Exception as exc:  # firebase-admin raises its own and google-auth's
        raise PushDeliveryError(f"FCM refused the request ({type(exc).__name__}).") from exc
    gone = [
        token
        for token, result in zip(tokens, reply.responses, strict=True)
        if not result.success and isinstance(result.exception, messaging.UnregisteredError)
    ]
    if reply.success_count == 0:
        raise PushDeliveryError(f"FCM delivered to none of {len(tokens)} device(s).", gone)
    return gone
