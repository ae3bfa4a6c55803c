"""Phone numbers normalise to digits with their country code."""

from __future__ import annotations

import pytest

from people.phones import InvalidPhoneNumber, display_phone, normalize_phone


@pytest.mark.parametrize(
    "raw",
    [
        "+27 82 123 4567",
        "+27821234567",
        "27821234567",
        "0821234567",
        "082 123 4567",
        "(082) 123-4567",
        "0027 82 123 4567",
        "  +27-82-123-4567  ",
    ],
)
def test_every_way_of_writing_a_number_normalises_the_same(raw):
    """Local, international and gateway spellings give one identity."""
    assert normalize_phone(raw) == "27821234567"


def test_local_numbers_use_the_default_region(settings):
    """A number with a leading 0 takes PHONE_DEFAULT_REGION's country code."""
    settings.PHONE_DEFAULT_REGION = "GB"
    assert normalize_phone("07700 900123") == "447700900123"


@pytest.mark.parametrize(
    "raw",
    ["", "   ", None, 27821234567, "phone", "082-CALL-NOW", "123", "+27 82 123 4567 8901"],
)
def test_what_is_not_a_phone_number_is_refused(raw):
    """Empty, non-digit, too short and too long input raise InvalidPhoneNumber."""
    with pytest.raises(InvalidPhoneNumber):
        normalize_phone(raw)


def test_normalised_numbers_display_internationally():
    """The stored form reads back as "+27 82 123 4567"."""
    assert display_phone("27821234567") == "+27 82 123 4567"
