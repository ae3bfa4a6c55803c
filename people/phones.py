"""Phone numbers: the identity of every Care Connect user."""

from __future__ import annotations

import phonenumbers
from django.conf import settings
from django.core.exceptions import ValidationError


class InvalidPhoneNumber(ValidationError):
    pass


def normalize_phone(raw: object) -> str:
    """
    Return the number as digits with country code ("27821234567").

    Accepts "+27 82 123 4567", "27821234567" and "0821234567". Anything that
    does not normalise raises InvalidPhoneNumber.
    """
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidPhoneNumber("Enter a phone number.", code="invalid_phone")
    text = raw.strip()
    compact = "".join(ch for ch in text if ch not in " -().")
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    if not compact.lstrip("+").isdigit():
        raise InvalidPhoneNumber(
            f"'{raw}' is not a phone number: use digits, e.g. +27 82 123 4567.",
            code="invalid_phone",
        )
    if compact.startswith("+"):
        candidate, region = compact, None
    elif compact.startswith("0"):
        candidate, region = compact, settings.PHONE_DEFAULT_REGION
    else:
        # Digits with their country code but no "+", as SMS gateways write them.
        candidate, region = "+" + compact, None
    try:
        parsed = phonenumbers.parse(candidate, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhoneNumber(f"'{raw}' is not a phone number.", code="invalid_phone") from exc
    if not phonenumbers.is_possible_number(parsed):
        raise InvalidPhoneNumber(
            f"'{raw}' has the wrong number of digits for its country.",
            code="invalid_phone",
        )
    return f"{parsed.country_code}{parsed.national_number}"


def display_phone(normalized: str) -> str:
    """ "27821234567" -> "+27 82 123 4567", for people to read."""
    try:
        parsed = phonenumbers.parse("+" + normalized, None)
    except phonenumbers.NumberParseException:
        return normalized
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
