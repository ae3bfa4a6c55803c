"""Phone numbers normalise to digits with their country code."""

from __future__ import annotations

import pytest

from people.phones import (
    InvalidPhoneNumber,
    display_phone,
    is_textable,
    normalize_phone,
    textable_phone,
)


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


@pytest.mark.parametrize(
    "raw",
    [
        "082\u00a0123\u00a04567",  # no-break spaces, as a contact card copies
        "\u202a+27 82 123 4567\u202c",  # direction marks, as Android copies
        "\u200e082 123 4567",
        "082\u2009123\u20094567",  # thin spaces
        "\uff10\uff18\uff12 \uff11\uff12\uff13 \uff14\uff15\uff16\uff17",  # full width
        "082/123/4567",
    ],
)
def test_a_number_pasted_from_a_contact_card_normalises_too(raw):
    """Invisible marks, odd spaces and full-width digits of a pasted number are read through."""
    assert normalize_phone(raw) == "27821234567"
    assert textable_phone(raw) == "27821234567"


def test_digits_of_another_script_are_refused_in_words():
    """Arabic-Indic digits are not taken for a number's: the refusal asks for digits."""
    with pytest.raises(InvalidPhoneNumber, match="use digits"):
        normalize_phone("\u0660\u0668\u0662\u0661\u0662\u0663\u0664\u0665\u0666\u0667")


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


# --- numbers that may be texted -------------------------------------------------


# The demo's app users (dispatch.demo), the sign-in tests' phone, both ends
# of the numbers tests/conftest.py's make_user hands out, and the e2e users.
SIGN_IN_NUMBERS = [
    "27821234567",
    "27821234568",
    "27821234569",
    "27829990001",
    "27829990002",
    "27820001000",
    "27820009999",
    "27830000000",
]


@pytest.mark.parametrize("phone", SIGN_IN_NUMBERS)
def test_demo_and_test_numbers_may_be_texted(phone):
    """The numbers the demo and the tests sign in with are South African mobiles."""
    assert textable_phone(phone) == phone


@pytest.mark.parametrize(
    "raw",
    [
        "+1 900 555 0123",  # United States premium rate
        "+44 909 876 5432",  # United Kingdom premium rate
        "+882 1234 5678",  # international network, no country
        "+27 99 123 4567",  # South Africa, no such range
        "+27 86 123 4567",  # South Africa, shared cost
        "+27 80 000 0001",  # South Africa, toll free
        "+27 12 345 6789",  # South Africa, a Pretoria landline
        "+44 7911 123456",  # a real mobile, but not in South Africa
    ],
)
def test_only_mobiles_of_the_allowed_regions_may_be_texted(raw):
    """Premium, toll-free, landline, foreign and unissued numbers raise InvalidPhoneNumber."""
    with pytest.raises(InvalidPhoneNumber) as info:
        textable_phone(raw)
    assert info.value.code == "not_textable"
    assert "mobile number from South Africa" in info.value.messages[0]


def test_allowed_regions_come_from_the_settings(settings):
    """PHONE_ALLOWED_REGIONS widens the rule; US numbers are 'fixed line or mobile'."""
    settings.PHONE_ALLOWED_REGIONS = ["ZA", "US"]
    assert textable_phone("+1 650 253 0000") == "16502530000"
    with pytest.raises(InvalidPhoneNumber):
        textable_phone("+1 900 555 0123")


def test_a_landline_still_names_an_account():
    """normalize_phone keeps accepting numbers that are not textable."""
    assert normalize_phone("012 345 6789") == "27123456789"
    assert not is_textable("27123456789")
