"""
Phone numbers: the identity of every Care Connect user, and where texts go.

Two rules, for two uses:

- normalize_phone: any number of the right length, written any usual way.
  It finds people who already exist (staff sign-in, caregiver invites,
  booking for someone, admin search) and names new accounts: a passenger
  whose only phone is a landline still has an account that support made.
- textable_phone: a number that Care Connect may send an SMS to, a valid
  mobile in one of PHONE_ALLOWED_REGIONS. Everything that texts asks it
  (sign-in codes; people.sms refuses any other number), so a premium-rate
  or foreign number costs nothing.
"""

from __future__ import annotations

import unicodedata

import phonenumbers
import pycountry
from django.conf import settings
from django.core.exceptions import ValidationError
from phonenumbers import PhoneNumberType

# FIXED_LINE_OR_MOBILE: countries whose numbering does not tell them apart
# (the United States, for one); a text to such a number may well arrive.
TEXTABLE_TYPES = frozenset({PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE})


class InvalidPhoneNumber(ValidationError):
    pass


def normalize_phone(raw: object) -> str:
    """
    Return the number as digits with country code ("27821234567").

    Accepts "+27 82 123 4567", "27821234567" and "0821234567", with any
    spaces, dashes, dots, slashes or brackets between the digits. Anything
    that does not normalise raises InvalidPhoneNumber.
    """
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidPhoneNumber("Enter a phone number.", code="invalid_phone")
    # NFKC reads full-width digits as digits and odd spaces as spaces; a
    # number pasted from a contact card carries those, and invisible
    # direction marks (format characters), none of which the person sees.
    text = unicodedata.normalize("NFKC", raw)
    compact = "".join(
        ch for ch in text if not (ch.isspace() or ch in "-()./" or unicodedata.category(ch) == "Cf")
    )
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    if not (compact.lstrip("+").isdigit() and compact.isascii()):
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


def textable_phone(raw: object) -> str:
    """
    normalize_phone, for a number that may be sent an SMS: a valid mobile
    number of one of PHONE_ALLOWED_REGIONS. Anything else (premium rate,
    toll free, landline, another country, a number no operator issued)
    raises InvalidPhoneNumber.
    """
    phone = normalize_phone(raw)
    if not is_textable(phone):
        raise InvalidPhoneNumber(
            f"'{raw}' is not a mobile number we can send a code to. "
            f"Use a mobile number from {_allowed_places()}, e.g. {_example()}.",
            code="not_textable",
        )
    return phone


def is_textable(normalized: str) -> bool:
    """Whether Care Connect may text this normalised number."""
    try:
        parsed = phonenumbers.parse("+" + normalized, None)
    except phonenumbers.NumberParseException:
        return False
    return (
        phonenumbers.is_valid_number(parsed)
        and phonenumbers.number_type(parsed) in TEXTABLE_TYPES
        and phonenumbers.region_code_for_number(parsed) in settings.PHONE_ALLOWED_REGIONS
    )


def _allowed_places() -> str:
    names = []
    for region in settings.PHONE_ALLOWED_REGIONS:
        country = pycountry.countries.get(alpha_2=region)
        names.append(country.name if country else region)
    return " or ".join(names)


def _example() -> str:
    region = settings.PHONE_ALLOWED_REGIONS[0]
    example = phonenumbers.example_number_for_type(region, PhoneNumberType.MOBILE)
    if example is None:
        return "+27 82 123 4567"
    return phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def display_phone(normalized: str) -> str:
    """ "27821234567" -> "+27 82 123 4567", for people to read."""
    try:
        parsed = phonenumbers.parse("+" + normalized, None)
    except phonenumbers.NumberParseException:
        return normalized
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
