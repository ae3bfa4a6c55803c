"""
Hypothesis strategies for hostile input: socket frames and REST calls.

Every frame or call drawn here carries at least one *poison*, something the
server must refuse: text no database can store (a NUL or a lone surrogate,
in any string, keys and ids included), nesting past the limit, a value of
the wrong type or out of range where the message's schema validates it,
invalid JSON, binary garbage, an oversized frame, an unknown type, or an id
that is not the caller's. Around the poison, the rest is as hostile as it
can be without being sure to be refused (NaN, Infinity, huge numbers, junk
fields), so refusals are tested against everything a client could send.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

DEEP = '"__deep__"'
MAX_DEPTH = 32

# --- values ---------------------------------------------------------------------

# Text from an alphabet of the awkward: quotes, backslashes, control and
# format characters, right-to-left, combining marks, emoji, astral planes.
# NUL and lone surrogates are poisons and come only from `unstorable_text`.
# (Drawing from a fixed alphabet keeps generation cheap: thousands of frames
# per test.)
ALPHABET = (
    "aZ09 _-.:/'\"\\\t\n\r\x01\x1f\x7f"
    "\u00e9\u00df\u0301\u200b\u202e\ufeff\uffff\u4e2d\U0001f600\U0010ffff"
)
text = st.text(ALPHABET, max_size=12)
nul_text = st.tuples(text, text).map(lambda p: p[0] + "\x00" + p[1])
surrogate_text = st.tuples(text, st.sampled_from([0xD800, 0xDBFF, 0xDC00, 0xDFFF]), text).map(
    lambda p: p[0] + chr(p[1]) + p[2]
)
unstorable_text = st.one_of(nul_text, surrogate_text)
HUGE_INTS = [2**31, 2**63 - 1, 2**63, -(2**63) - 1, 10**30, -(10**30), 10**400]
huge_int = st.sampled_from(HUGE_INTS)
ODD_FLOATS = [math.nan, math.inf, -math.inf, 1e308, -1e308, 5e-324, -0.0, 1e-7, 0.1 + 0.2]
odd_float = st.one_of(st.sampled_from(ODD_FLOATS), st.floats(allow_nan=True, allow_infinity=True))
# Hostile JSON values, built once: drawing one is cheap.
JUNK = [
    None,
    True,
    False,
    0,
    -1,
    *HUGE_INTS,
    *ODD_FLOATS,
    "",
    " ",
    "null",
    "NaN",
    "1e999",
    "0x10",
    "\u202egnp.exe",
    "<script>alert(1)</script>",
    "' OR 1=1 --",
    "\U0001f600" * 50,
    "x" * 5000,
    [],
    {},
    [None],
    [[[]]],
    {"": ""},
    {"type": "ping"},
    {"a": {"b": {"c": [1, 2, {"d": None}]}}},
    [1, "2", 3.0, [4], {"5": 6}],
    list(range(200)),
    {str(i): i for i in range(100)},
]
CONTAINERS = [j for j in JUNK if isinstance(j, list | dict)]
junk = st.one_of(st.sampled_from(JUNK), text, st.integers(), odd_float)
scalar = st.one_of(
    st.sampled_from([j for j in JUNK if not isinstance(j, list | dict)]), text, st.integers()
)


def nested(depth: int, kind: str) -> str:
    """JSON text nested `depth` levels deep."""
    if kind == "list":
        return "[" * depth + "]" * depth
    if kind == "object":
        return '{"a":' * depth + "1" + "}" * depth
    return '[{"a":' * (depth // 2) + "1" + "}]" * (depth // 2)


# Past the limit; the deepest still fit in a 64 KiB frame. The very deepest
# are past what the JSON parser itself will read, and answer invalid_json.
too_deep = st.tuples(
    st.one_of(st.integers(MAX_DEPTH + 1, 200), st.sampled_from([999, 1001, 5_000, 20_000, 30_000])),
    st.sampled_from(["list", "object", "mixed"]),
).map(lambda p: nested(*p))


@dataclass
class Poisoned:
    """A message as a dict, with raw JSON text to put where DEEP stands."""

    message: Any
    deep: str | None = None
    notes: list[str] = field(default_factory=list)

    def text(self) -> str:
        raw = json.dumps(self.message, allow_nan=True)
        if self.deep is not None:
            raw = raw.replace(DEEP, self.deep, 1)
        return raw


def _place_anywhere(draw, message: dict, value) -> None:
    """Put `value` at a new key, or inside a new nested junk object, of `message`."""
    key = draw(text)
    while key in message or key == "type":
        key += "_"
    if draw(st.booleans()):
        message[key] = value
    else:
        message[key] = {draw(text): [value]}


POISON_HOWS = st.sampled_from(["value", "key", "type", "deep", "existing"])


def anywhere_poison(draw, message: dict) -> Poisoned:
    """A poison any message is refused for, wherever it stands: text, depth, keys."""
    how = draw(POISON_HOWS)
    if how == "value":
        _place_anywhere(draw, message, draw(unstorable_text))
    elif how == "key":
        message[draw(unstorable_text)] = draw(junk)
    elif how == "type":
        message["type"] = message.get("type", "") + draw(unstorable_text)
    elif how == "existing" and [k for k in message if k != "type"]:
        keys = sorted(k for k in message if k != "type")
        key = keys[draw(st.integers(0, len(keys) - 1))]
        message[key] = draw(unstorable_text)
    else:
        _place_anywhere(draw, message, DEEP.strip('"'))
        return Poisoned(message, deep=draw(too_deep), notes=[how])
    return Poisoned(message, notes=[how])


# --- socket frames ---------------------------------------------------------------

# Each known field: plausible values, and values its schema must refuse.
# Lists, not strategies: one draw picks one, which keeps thousands of
# frames per test affordable.
BAD_COORDINATES = [math.nan, math.inf, -math.inf, 180.0001, -180.0001, 1e308, -1e308, 10**30]
BAD_COORDINATES += ["north", "-26,2041", "26\u00b012\u2032S", "", True, False, *CONTAINERS]
LATITUDES = [-90, -26.2041, -0.0, 0, 45.123456789, 90, "-26.2041", 1e-300]
LONGITUDES = [-180, 28.0473, 0, 179.9999, 180, "28.0473"]
TEXTS = ["", "12 Main Rd", "\u00e9\u4e2d\U0001f600", "<b>x</b>", "a\tb\nc", "\u202e", "x" * 60]
TIMES = ["2031-03-04T09:30:00+02:00", "2031-03-04", "09:30", "2020-01-01T00:00:00Z", ""]
FIELDS: dict[str, tuple[list, list]] = {
    "pickup_latitude": (LATITUDES, BAD_COORDINATES),
    "pickup_longitude": (LONGITUDES, BAD_COORDINATES),
    "dropoff_latitude": (LATITUDES, BAD_COORDINATES),
    "dropoff_longitude": (LONGITUDES, BAD_COORDINATES),
    "latitude": (LATITUDES, BAD_COORDINATES),
    "longitude": (LONGITUDES, BAD_COORDINATES),
    "heading": ([0, 359.9, 360, None], [361, -1, math.nan, math.inf, True, *CONTAINERS]),
    "speed": ([0, 27.7, 100, None], [101, -1, math.inf, 1e308, False, *CONTAINERS]),
    "pickup_address": (TEXTS, ["x" * 256, "\u00e9" * 300, *CONTAINERS]),
    "dropoff_address": (TEXTS, CONTAINERS),
    "notes": (TEXTS, ["x" * 1001, *CONTAINERS]),
    "reason": (TEXTS, ["r" * 65, 12, *CONTAINERS]),
    "passenger_phone": (["", "0821234567", "+27 82 123 4567", "+1 900 555 0100"], ["9" * 33]),
    "passenger_id": ([None, "", 1, 2**63 - 1, 10**30, -5], [0, "one", 1.5, True, *CONTAINERS]),
    "distance_km": ([None, 0, 12.345, math.nan, "7"], [-1, 10**6, "x", math.inf, *CONTAINERS]),
    "estimated_duration_minutes": ([None, 0, 30.5], [-1, 1e9, math.nan, True, *CONTAINERS]),
    "fare_amount": ([None, 0, 99.999], [-5, 10**9, "free", *CONTAINERS]),
    "needs_wheelchair": ([None, True, False], ["maybe", 2, *CONTAINERS]),
    "pickup_at": (TIMES, ["tomorrow", "2031-13-45T99:99", 10**30, *CONTAINERS]),
    "appointment_at": (TIMES, ["soon", math.nan, *CONTAINERS]),
    "return_at": (TIMES, ["later", *CONTAINERS]),
    "companions": ([0, 6, "2"], [7, -1, 10**30, 2.5, True, *CONTAINERS]),
    "status": (["available", "offline"], ["on_trip", "AVAILABLE", "", None, 1, *CONTAINERS]),
    "ride_id": ([None, "fz-ride", ""], ["r" * 65, 7, *CONTAINERS]),
}
# Built once: a strategy made inside a draw is validated on every draw.
PLAUSIBLE = {name: st.sampled_from(values) for name, (values, _) in FIELDS.items()}
REFUSED = {name: st.sampled_from(values) for name, (_, values) in FIELDS.items()}
SCHEMA_FIELDS: dict[str, list[str]] = {
    "find_driver": [
        "pickup_latitude",
        "pickup_longitude",
        "dropoff_latitude",
        "dropoff_longitude",
        "pickup_address",
        "dropoff_address",
        "notes",
        "passenger_phone",
        "passenger_id",
        "distance_km",
        "estimated_duration_minutes",
        "fare_amount",
        "needs_wheelchair",
        "pickup_at",
        "appointment_at",
        "return_at",
        "companions",
    ],
    "location_update": ["latitude", "longitude", "heading", "speed"],
    "set_status": ["status"],
    "ride_socket:cancel_ride": ["reason"],
    "ride_action": ["ride_id", "reason"],
}
DRIVER_ACTIONS = [
    "arrived",
    "start_trip",
    "complete_trip",
    "no_show",
    "cancel_ride",
    "accept_ride",
    "decline_ride",
]


def schema_of(socket: str, kind: str) -> list[str]:
    if kind in ("find_driver", "location_update", "set_status"):
        return SCHEMA_FIELDS[kind]
    if socket == "ride" and kind == "cancel_ride":
        return SCHEMA_FIELDS["ride_socket:cancel_ride"]
    if socket == "driver" and kind in DRIVER_ACTIONS:
        return SCHEMA_FIELDS["ride_action"]
    return []


@st.composite
def known_message(draw, socket: str, kinds: list[str], not_theirs: list[str]) -> Poisoned:
    return draw(_known(socket, tuple(kinds), tuple(not_theirs)))


@functools.cache
def _known(socket: str, kinds: tuple[str, ...], not_theirs: tuple[str, ...]):
    """The strategy for known_message, built once per socket."""
    by_kind = {kind: schema_of(socket, kind) for kind in kinds}
    kind_of = st.sampled_from(kinds)
    masks = {kind: st.integers(0, 2 ** len(names) - 1) for kind, names in by_kind.items()}
    names_of = {kind: st.sampled_from(names) for kind, names in by_kind.items() if names}
    hows = {
        kind: st.sampled_from(
            ["anywhere"]
            + (["field", "field"] if names else [])
            + (["not_theirs"] if "ride_id" in names and not_theirs else [])
        )
        for kind, names in by_kind.items()
    }
    theirs_not = st.sampled_from(not_theirs) if not_theirs else st.nothing()

    @st.composite
    def known(draw) -> Poisoned:
        """
        A message of a type this socket handles, with a poison: a schema
        field given a value it must refuse, a poison anywhere, or (for the
        driver's trip steps) a ride that is not this driver's.
        """
        kind = draw(kind_of)
        names = by_kind[kind]
        message: dict[str, Any] = {"type": kind}
        present = draw(masks[kind])
        for i, name in enumerate(names):
            if present >> i & 1:
                message[name] = draw(PLAUSIBLE[name])
        if draw(st.booleans()):
            message.setdefault(draw(text), draw(junk))
        how = draw(hows[kind])
        if how == "field":
            name = draw(names_of[kind])
            message[name] = draw(REFUSED[name])
            return Poisoned(message, notes=["field"])
        if how == "not_theirs":
            message["ride_id"] = draw(theirs_not)
            return Poisoned(message, notes=["not_theirs"])
        return anywhere_poison(draw, message)

    return known()


UNKNOWN_KINDS = st.one_of(text, st.sampled_from(["PING", "find-driver", "pong", "error", ""]))
FEW_FIELDS = st.dictionaries(text, junk, max_size=3)


@st.composite
def unknown_message(draw, kinds: list[str]) -> Poisoned:
    kind = draw(UNKNOWN_KINDS)
    if kind in kinds:
        kind += "?"
    return Poisoned({**draw(FEW_FIELDS), "type": kind}, notes=["unknown_type"])


SHAPES = st.sampled_from(["scalar", "list", "no_type", "type_not_text", "object_in_type"])
JUNK_LIST = st.lists(junk, max_size=4)
NOT_TEXT = st.one_of(st.none(), st.integers(), odd_float, st.lists(text, max_size=2), st.booleans())


@st.composite
def shapeless_message(draw) -> Poisoned:
    """Valid JSON that is not an object with a string `type`."""
    shape = draw(SHAPES)
    if shape == "scalar":
        return Poisoned(draw(scalar))
    if shape == "list":
        return Poisoned(draw(JUNK_LIST))
    if shape == "no_type":
        return Poisoned({k: v for k, v in draw(FEW_FIELDS).items() if k != "type"})
    bad = draw(NOT_TEXT)
    return Poisoned({"type": bad if shape == "type_not_text" else {"type": "ping"}})


BROKEN_STARTS = st.sampled_from(
    ['{"type": "ping"', '{"type": ', "[", '{"a":1,}', "{'type': 'ping'}", "\ufeff{}"]
)


@st.composite
def invalid_json(draw) -> str:
    cut = draw(BROKEN_STARTS)
    raw = cut + draw(text)
    try:
        json.loads(raw)
    except (ValueError, RecursionError):
        return raw
    return "{" + raw


@dataclass(frozen=True)
class Frame:
    """What goes on the wire: text or bytes."""

    text: str | None = None
    data: bytes | None = None
    kind: str = ""

    @property
    def size(self) -> int:
        return len(self.text.encode("utf-8", "surrogatepass")) if self.text else len(self.data)


def socket_frames(
    socket: str, kinds: list[str], not_theirs: list[str] = (), cap: int = 64 * 1024
) -> st.SearchStrategy[Frame]:
    """Every frame a socket must refuse, in the proportions a fuzz run wants."""
    message = st.one_of(
        known_message(socket, kinds, list(not_theirs)),
        known_message(socket, kinds, list(not_theirs)),
        known_message(socket, kinds, list(not_theirs)),
        unknown_message(kinds),
        shapeless_message(),
    )
    as_text = message.map(lambda p: Frame(text=p.text(), kind="message"))
    # Browsers and apps may send binary frames: JSON bytes, or garbage.
    as_bytes = st.one_of(
        message.map(lambda p: Frame(data=p.text().encode("utf-8", "surrogatepass"), kind="binary")),
        st.binary(min_size=1, max_size=200).map(lambda b: Frame(data=b, kind="binary")),
    )
    oversized = st.integers(cap + 1, cap + 4096).map(
        lambda n: Frame(text='{"type": "ping", "pad": "' + "x" * n + '"}', kind="oversized")
    )
    deep_only = too_deep.map(lambda raw: Frame(text=raw, kind="deep"))
    return st.one_of(
        as_text,
        as_text,
        as_text,
        as_text,
        as_bytes,
        invalid_json().map(lambda raw: Frame(text=raw, kind="invalid_json")),
        deep_only,
        oversized,
    )
