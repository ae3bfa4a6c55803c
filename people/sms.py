"""
SMS gateways. settings.SMS_BACKEND picks one at call time:

- ``console``: writes the message to the log, for development. It is the only
  backend that ever logs a message body, and so the only one that logs codes.
- ``file``: appends each message as a JSON line to SMS_FILE_PATH, for
  development and tests (a recording gateway another process can read).
- ``smsportal``: SMS Portal's legacy HTTP API (one form POST, XML reply).
- ``smsportal-rest``: SMS Portal's REST API v1 (a bearer token from
  /Authentication, then /BulkMessages).

Every failure raises SMSDeliveryError with a message fit for an operator;
credentials and message bodies never appear in it or in the log.

Every text counts against one ceiling, SMS_MAX_PER_MINUTE across all
workers: a sender calls sms_ceiling_take (or puts sms_ceiling_claim among
its own caps) before sms_send.
"""

from __future__ import annotations

import json
import logging
import math
import os
import stat
import threading
import time
import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass

import requests
from django.conf import settings

from people.phones import is_textable
from project.common.errors import Throttled
from project.common.limits import Cap, Claim, caps_take, wait_in_words

logger = logging.getLogger(__name__)

# A reply larger than this is not SMS Portal talking.
MAX_REPLY_BYTES = 64 * 1024
# A cached REST token is dropped this long before SMS Portal says it expires,
# so a send never starts with a token that dies on the way.
TOKEN_SAFETY_MARGIN_S = 60.0
# Token expiry runs on the monotonic clock; tests move this one alone.
_clock = time.monotonic


class SMSDeliveryError(Exception):
    """The gateway did not accept the message."""


class SmsBusy(Throttled):
    """SMS_MAX_PER_MINUTE texts have gone out in the last minute."""

    code = "sms_busy"


def sms_ceiling_claim() -> Claim:
    """One text against SMS_MAX_PER_MINUTE, for a sender's own caps_take."""
    cap = Cap(name="sms.minute", limit=settings.SMS_MAX_PER_MINUTE, window_s=60)
    return Claim(cap=cap, subject="all")


def sms_ceiling_take() -> None:
    """
    Count one text against the ceiling, before sending it. Raises SmsBusy,
    with retry_after, when the last minute is full.
    """
    refusal = caps_take([sms_ceiling_claim()])
    if refusal is not None:
        raise sms_busy(refusal.retry_after)


def sms_daily_claim(phone_number: str) -> Claim:
    """One notification text to this number against NOTIFY_SMS_MAX_PER_DAY (its cost cap)."""
    cap = Cap(name="sms.notify.day", limit=settings.NOTIFY_SMS_MAX_PER_DAY, window_s=86400)
    return Claim(cap=cap, subject=_digits(phone_number))


# GSM 03.38's basic set: a text of these alone fits 160 characters a part;
# any other character makes the whole text UCS-2, 70 a part.
GSM7 = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENDED = set("^{}\\[~]|€")


def gsm7(text: str) -> str:
    """
    The text in GSM-7's letters, for a name in a text: one letter outside
    them makes the whole text UCS-2, at 70 characters a part. Letters lose
    accents GSM-7 lacks (Daniël, Zoë: Daniel, Zoe); what has no plain form
    is left out.
    """
    if all(ch in GSM7 for ch in text):
        return text
    plain = (ch if ch in GSM7 else unicodedata.normalize("NFKD", ch)[0] for ch in text)
    return "".join(ch for ch in plain if ch in GSM7)


def sms_parts(message: str) -> int:
    """How many SMS parts `message` takes (GSM-7 160/153, else UCS-2 70/67)."""
    if all(ch in GSM7 or ch in GSM7_EXTENDED for ch in message):
        units = sum(2 if ch in GSM7_EXTENDED else 1 for ch in message)
        single, part = 160, 153
    else:
        units = len(message.encode("utf-16-le")) // 2
        single, part = 70, 67
    return 1 if units <= single else -(-units // part)


def sms_busy(retry_after: int) -> SmsBusy:
    return SmsBusy(
        "We are sending a great many text messages right now. "
        f"Please try again in {wait_in_words(retry_after)}.",
        retry_after=retry_after,
    )


def sms_send(*, phone_number: str, message: str) -> None:
    """
    Send ``message`` to ``phone_number`` (normalised digits, "27821234567")
    through settings.SMS_BACKEND. Raises SMSDeliveryError when the gateway
    does not accept it, or without asking it when the number is not one
    Care Connect texts (people.phones.is_textable): an account may carry a
    landline or an old foreign number, and a premium-rate one must never
    cost a cent.
    """
    backend = settings.SMS_BACKEND
    sender = _BACKENDS.get(backend)
    if sender is None:
        raise SMSDeliveryError(
            f"Unknown SMS_BACKEND {backend!r}: use one of {', '.join(sorted(_BACKENDS))}."
        )
    digits = _digits(phone_number)
    if not is_textable(digits):
        raise SMSDeliveryError(
            f"Not sent: {_masked(digits)} is not a mobile number in PHONE_ALLOWED_REGIONS."
        )
    sender(digits, message)


def _digits(phone_number: str) -> str:
    return "".join(ch for ch in phone_number if ch.isdigit())


def _masked(digits: str) -> str:
    return f"{digits[:4]}***{digits[-3:]}" if len(digits) > 7 else "***"


def _credentials() -> tuple[str, str]:
    username = getattr(settings, "SMS_PORTAL_USERNAME", "") or ""
    password = getattr(settings, "SMS_PORTAL_PASSWORD", "") or ""
    if not username or not password:
        raise SMSDeliveryError(
            "SMS Portal credentials are missing: set SMS_PORTAL_USERNAME and SMS_PORTAL_PASSWORD."
        )
    return username, password


def _transport_error(exc: requests.RequestException) -> SMSDeliveryError:
    # str(exc) can carry the URL; the class name says enough.
    if isinstance(exc, requests.Timeout):
        return SMSDeliveryError("SMS Portal did not answer in time.")
    if isinstance(exc, requests.ConnectionError):
        return SMSDeliveryError("Could not connect to SMS Portal.")
    return SMSDeliveryError(f"SMS Portal request failed ({type(exc).__name__}).")


# --- console -----------------------------------------------------------------


def _send_console(digits: str, message: str) -> None:
    logger.info("SMS to +%s (console backend, not sent): %s", digits, message)


# --- file ----------------------------------------------------------------------

_file_lock = threading.Lock()


def _send_file(digits: str, message: str) -> None:
    path = settings.SMS_FILE_PATH
    if not path:
        raise SMSDeliveryError("SMS_BACKEND=file needs SMS_FILE_PATH.")
    line = json.dumps({"to": digits, "message": message}, ensure_ascii=False) + "\n"
    with _file_lock, open(path, "a", encoding="utf-8") as out:
        out.write(line)
        out.flush()
        if stat.S_ISREG(os.fstat(out.fileno()).st_mode):
            # On disk before the send counts as accepted (a pipe has no disk).
            os.fsync(out.fileno())


# --- smsportal (legacy HTTP API) ---------------------------------------------


def _send_smsportal(digits: str, message: str) -> None:
    username, password = _credentials()
    endpoint = settings.SMS_PORTAL_ENDPOINT
    # A form POST rather than GET keeps the password out of URLs, and so out
    # of proxy logs, urllib3's debug log and exception messages.
    try:
        response = requests.post(
            endpoint,
            data={
                "Type": "sendparam",
                "username": username,
                "password": password,
                "numto": digits,
                "data1": message,
            },
            timeout=settings.SMS_TIMEOUT_S,
            stream=True,
        )
    except requests.RequestException as exc:
        raise _transport_error(exc) from exc
    status, body = response.status_code, _reply_body(response)
    if status != 200:
        raise SMSDeliveryError(f"SMS Portal answered HTTP {status}.")
    ok, error = _parse_legacy_reply(body)
    if not ok:
        raise SMSDeliveryError(f"SMS Portal refused the message: {error}")
    logger.info("SMS to %s accepted by SMS Portal (legacy API).", _masked(digits))


def _reply_body(response: requests.Response) -> bytes | None:
    """
    The reply's body, read no further than MAX_REPLY_BYTES (None past it),
    so a broken or hostile gateway cannot fill the worker's memory; the
    connection is closed either way.
    """
    body = bytearray()
    try:
        with response:
            for chunk in response.iter_content(chunk_size=8192):
                body += chunk
                if len(body) > MAX_REPLY_BYTES:
                    return None
    except requests.RequestException as exc:
        raise _transport_error(exc) from exc
    return bytes(body)


def _parse_legacy_reply(body: bytes | None) -> tuple[bool, str]:
    """
    Read ``<api_result><call_result><result>True</result><error/>...``.
    Returns (accepted, error text). None: a reply past MAX_REPLY_BYTES.
    """
    if body is None or len(body) > MAX_REPLY_BYTES:
        return False, "reply too large"
    # SMS Portal never sends a DTD; refusing one rules out entity expansion
    # whatever the expat version.
    if b"<!DOCTYPE" in body.upper() or b"<!ENTITY" in body.upper():
        return False, "unexpected reply (DTD)"
    try:
        root = ET.fromstring(body)
    except (ET.ParseError, ValueError, LookupError):
        # ValueError, LookupError: a declared encoding expat cannot read
        # (multi-byte, or no text codec at all), as a proxy's page may name.
        return False, "unreadable reply (not XML)"
    call_result = root.find(".//call_result")
    if root.tag != "api_result" or call_result is None:
        return False, "unexpected reply (no api_result/call_result)"
    result = (call_result.findtext("result") or "").strip()
    error = (call_result.findtext("error") or "").strip()
    if result.lower() == "true":
        return True, ""
    return False, error or f"result was {result or 'empty'}"


# --- smsportal-rest (REST API v1) --------------------------------------------


@dataclass
class _CachedToken:
    token: str
    expires_at: float  # on _clock()


_token_cache: dict[tuple[str, str], _CachedToken] = {}
_token_lock = threading.Lock()


def sms_token_cache_clear() -> None:
    """Forget every cached REST token (tests, credential changes)."""
    with _token_lock:
        _token_cache.clear()


def _forget_token(base: str, username: str) -> None:
    with _token_lock:
        _token_cache.pop((base, username), None)


def _rest_token(base: str, username: str, password: str, *, fresh: bool) -> str:
    key = (base, username)
    with _token_lock:
        cached = _token_cache.get(key)
        if not fresh and cached and cached.expires_at > _clock():
            return cached.token
        _token_cache.pop(key, None)
    try:
        response = requests.get(
            f"{base}/Authentication",
            auth=(username, password),
            timeout=settings.SMS_TIMEOUT_S,
            stream=True,
        )
    except requests.RequestException as exc:
        raise _transport_error(exc) from exc
    status, data = response.status_code, _rest_json(response)
    if status in (401, 403):
        raise SMSDeliveryError(f"SMS Portal refused the credentials (HTTP {status}).")
    if status != 200:
        raise SMSDeliveryError(f"SMS Portal authentication answered HTTP {status}.")
    if data is None:
        raise SMSDeliveryError("SMS Portal authentication reply was unreadable.")
    token, minutes = data.get("token"), data.get("expiresInMinutes")
    if not isinstance(token, str) or not token:
        raise SMSDeliveryError("SMS Portal authentication reply had no token.")
    try:
        minutes = 0.0 if minutes is None else float(minutes)
    except (TypeError, ValueError, OverflowError) as exc:
        raise SMSDeliveryError("SMS Portal authentication reply was unreadable.") from exc
    if not math.isfinite(minutes):
        raise SMSDeliveryError("SMS Portal authentication reply was unreadable.")
    lifetime = minutes * 60 - TOKEN_SAFETY_MARGIN_S
    if lifetime > 0:
        with _token_lock:
            _token_cache[key] = _CachedToken(token, _clock() + lifetime)
    return token


def _send_smsportal_rest(digits: str, message: str) -> None:
    username, password = _credentials()
    base = settings.SMS_PORTAL_REST_URL.rstrip("/")
    body = {"Messages": [{"Content": message, "Destination": digits}]}
    token = _rest_token(base, username, password, fresh=False)
    status, reply = _post_bulk(base, token, body)
    if status == 401:
        # The token died early (revoked, or SMS Portal restarted): one new
        # token and one retry, never a loop.
        token = _rest_token(base, username, password, fresh=True)
        status, reply = _post_bulk(base, token, body)
        if status == 401:
            _forget_token(base, username)
            raise SMSDeliveryError("SMS Portal refused a fresh token (HTTP 401).")
    if not 200 <= status < 300:
        raise SMSDeliveryError(f"SMS Portal answered HTTP {status}{_rest_error_detail(reply)}.")
    faults = _rest_faults(reply)
    if faults:
        raise SMSDeliveryError(f"SMS Portal refused the message: {faults}")
    logger.info("SMS to %s accepted by SMS Portal (REST API).", _masked(digits))


def _post_bulk(base: str, token: str, body: dict) -> tuple[int, dict | None]:
    """BulkMessages' HTTP status, and its reply (`_rest_json`)."""
    try:
        response = requests.post(
            f"{base}/BulkMessages",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=settings.SMS_TIMEOUT_S,
            stream=True,
        )
    except requests.RequestException as exc:
        raise _transport_error(exc) from exc
    return response.status_code, _rest_json(response)


def _rest_json(response: requests.Response) -> dict | None:
    """
    The reply's JSON object; None when it is none (too large, not JSON,
    not UTF-8, nested deeper than the parser goes, not an object).
    """
    body = _reply_body(response)
    if body is None:
        return None
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def _rest_error_detail(data: dict | None) -> str:
    if not data:
        return ""
    for key in ("errorMessage", "message", "error"):
        value = data.get(key)
        if isinstance(value, str) and value:
            return f": {value[:200]}"
    return ""


def _rest_faults(data: dict | None) -> str:
    # SMS Portal lists destinations it would not send to in
    # errorReport.faults; with one destination, any fault means no SMS.
    report = (data or {}).get("errorReport")
    if not isinstance(report, dict):
        return ""
    faults = report.get("faults")
    if not faults:
        return ""
    if isinstance(faults, list):
        texts = []
        for fault in faults:
            if isinstance(fault, dict):
                texts.append(str(fault.get("errorMessage") or fault.get("status") or "fault"))
            else:
                texts.append(str(fault))
        return "; ".join(texts)[:200] or "fault"
    return str(faults)[:200]


_BACKENDS: dict[str, Callable[[str, str], None]] = {
    "console": _send_console,
    "file": _send_file,
    "smsportal": _send_smsportal,
    "smsportal-rest": _send_smsportal_rest,
}
