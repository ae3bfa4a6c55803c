"""
Hostile REST calls for every operation of the API, read from its OpenAPI
schema (so an endpoint added later is fuzzed too), plus /healthz and the
schema and docs pages. As for the sockets (tests/fuzz/strategies.py), each
call that could write carries a poison the server must refuse.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from hypothesis import strategies as st

from project.api import api
from tests.fuzz.strategies import (
    CONTAINERS,
    JUNK,
    TIMES,
    nul_text,
    text,
    too_deep,
    unstorable_text,
)

DEEP = "__deep__"


@dataclass(frozen=True)
class Endpoint:
    method: str
    template: str
    path_params: tuple[tuple[str, str], ...]  # (name, "integer" | "string")
    query: tuple[str, ...]
    body: dict | None  # the JSON schema of the body, references resolved
    operation: bool = True  # an API operation (not the schema, docs or /healthz)

    @property
    def writes(self) -> bool:
        return self.method != "GET"


def _resolve(schema: Any, components: dict) -> Any:
    if isinstance(schema, dict):
        if "$ref" in schema:
            return _resolve(components[schema["$ref"].rsplit("/", 1)[1]], components)
        return {k: _resolve(v, components) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_resolve(v, components) for v in schema]
    return schema


@functools.cache
def endpoints() -> tuple[Endpoint, ...]:
    """Every operation of the API, and the pages served beside it."""
    schema = api.get_openapi_schema()
    components = schema["components"]["schemas"]
    found = []
    for template, operations in schema["paths"].items():
        for method, op in operations.items():
            params = op.get("parameters", [])
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
            found.append(
                Endpoint(
                    method=method.upper(),
                    template=template,
                    path_params=tuple(
                        (p["name"], p["schema"].get("type", "string"))
                        for p in params
                        if p["in"] == "path"
                    ),
                    query=tuple(p["name"] for p in params if p["in"] == "query"),
                    body=_resolve(body.get("schema"), components) if body else None,
                )
            )
    for extra in ("/api/openapi.json", "/api/docs", "/healthz", "/api/no-such-endpoint/"):
        found.append(Endpoint("GET", extra, (), (), None, operation=False))
    return tuple(found)


# --- bodies from their schema ------------------------------------------------------


def _options(schema: dict) -> list[dict]:
    if "anyOf" in schema:
        return [o for s in schema["anyOf"] for o in _options(s)]
    if "allOf" in schema:
        return _options(schema["allOf"][0])
    return [schema]


def plausible(schema: dict) -> st.SearchStrategy:
    """Values of the right type, not all of them valid."""
    options = [o for o in _options(schema) if o.get("type") != "null"]
    if not options:
        return st.none()
    kind = options[0]
    if "enum" in kind:
        return st.sampled_from(kind["enum"])
    match kind.get("type"):
        case "string" if kind.get("format") in ("date", "time", "date-time"):
            return st.sampled_from([*TIMES, "2031-02-30", "25:61"])
        case "string":
            return st.sampled_from(["", "x", "0821234567", "+27 82 123 4567", "\u00e9\U0001f600"])
        case "integer":
            return st.sampled_from([0, 1, 3, 7, -1, 2**63, 10**30])
        case "number":
            return st.sampled_from([0, -26.2, 28.04, 90, -180, math.nan, math.inf, 1e308])
        case "boolean":
            return st.sampled_from([True, False, None, 0, 1, "true"])
        case "array":
            return st.lists(plausible(kind.get("items", {})), max_size=3)
        case "object":
            props = kind.get("properties", {})
            return st.fixed_dictionaries({}, optional={k: plausible(v) for k, v in props.items()})
    return st.sampled_from(JUNK)


def refused(schema: dict) -> list:
    """Values the schema must refuse: the wrong type, or past its bounds."""
    types = {o.get("type") for o in _options(schema)}
    bad: list = []
    if types & {"object", "array"}:
        bad += ["x", 1, True]
        bad += [{"a": 1}] if "object" not in types else [[1]]
        return bad
    bad += CONTAINERS
    for o in _options(schema):
        if o.get("maxLength"):
            bad.append("x" * (o["maxLength"] + 1))
        if o.get("type") in ("integer", "number"):
            # A boolean is no number (pydantic alone would read it as 1 or 0).
            bad += ["many", 1.5 if o["type"] == "integer" else "1,5", True, False]
            if "maximum" in o:
                bad.append(o["maximum"] + 1)
            if "minimum" in o:
                bad.append(o["minimum"] - 1)
        if o.get("type") == "string" and o.get("format"):
            bad += ["not a time", 12]
    return bad


def _fields(schema: dict, prefix: tuple = ()) -> list[tuple[tuple, dict]]:
    """Every field of a body, nested ones included, with its schema."""
    found = []
    for name, prop in schema.get("properties", {}).items():
        found.append(((*prefix, name), prop))
        for option in _options(prop):
            if option.get("type") == "object":
                found += _fields(option, (*prefix, name))
    return found


def _put(body: dict, path: tuple, value) -> None:
    for key in path[:-1]:
        if not isinstance(body.get(key), dict):
            body[key] = {}
        body = body[key]
    body[path[-1]] = value


# --- whole calls ---------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    endpoint: Endpoint
    path: str
    query: str
    body: bytes
    content_type: str
    token: str  # "passenger", "caregiver", "none", or a forged token
    poison: str

    def __repr__(self) -> str:
        return (
            f"Call({self.endpoint.method} {self.path}?{self.query[:200]} "
            f"body={self.body[:300]!r} ({len(self.body)} bytes) token={self.token!r} "
            f"poison={self.poison})"
        )


def _quote(value: str) -> str:
    return quote(value.encode("utf-8", "surrogatepass"), safe="")


TOKENS = st.sampled_from(["passenger", "passenger", "caregiver", "none", "x.y.z", "Bearer"])
KEYS = st.one_of(text, unstorable_text)
QUERY_VALUES = st.one_of(
    st.sampled_from(["0", "-1", "abc", "9" * 30, "1e3", "", "1.5", "NaN", "2"]), text
)


@functools.cache
def calls(not_theirs: tuple[tuple[str, str], ...]) -> st.SearchStrategy[Call]:
    """
    Calls to every endpoint. `not_theirs` maps a path parameter to values
    that exist but are not the caller's (another passenger's ride, say).
    """
    theirs_not = dict(not_theirs)
    per_endpoint = [_calls(e, theirs_not.get) for e in endpoints()]
    return st.one_of(per_endpoint)


def _calls(endpoint: Endpoint, not_theirs) -> st.SearchStrategy[Call]:
    body_fields = _fields(endpoint.body) if endpoint.body else []
    field_of = st.sampled_from(body_fields) if body_fields else st.nothing()
    body_of = plausible(endpoint.body) if endpoint.body else st.none()
    # Poisons sure to be refused, whatever the operation reads.
    hows = ["query", "json_anywhere", "deep"]
    if endpoint.body:
        hows += ["invalid_json", "top_level", "content_type", "field", "field", "field"]
    hows += ["path", "path"] if endpoint.path_params else []
    if not endpoint.writes:
        # A read may be called with anything at all.
        hows += ["invalid_json", "content_type", "read", "read", "read"]
    how_of = st.sampled_from(hows)
    query_names = st.sampled_from([*endpoint.query, "page", "q", "\x00"])

    def path_value(name: str, kind: str, poisoned: bool):
        others = list(not_theirs(name) or [])
        if kind == "integer":
            good = ["1", "2", "0"]
            bad = ["9" * 30, "9223372036854775808", *others]
        else:
            good = ["fz-none", "x"]
            bad = [*others, "a\x00b", "\x00", "r" * 300, "\ud800x", "%00", ".."]
        return st.sampled_from(bad if poisoned else good + bad)

    @st.composite
    def one(draw) -> Call:
        how = draw(how_of)
        path_poisoned = how == "path"
        path = endpoint.template
        for name, kind in endpoint.path_params:
            value = draw(path_value(name, kind, path_poisoned))
            path = path.replace("{" + name + "}", _quote(value))
        query: dict[str, str] = {}
        if draw(st.booleans()) or how == "query":
            query[draw(query_names)] = draw(QUERY_VALUES)
        if how == "query":
            # A lone surrogate cannot travel in a URL (it is not UTF-8): NUL can.
            query[draw(query_names)] = draw(nul_text)
        body: Any = draw(body_of)
        raw: bytes | None = None
        content_type = "application/json"
        if how == "field":
            field, schema = draw(field_of)
            body = body if isinstance(body, dict) else {}
            _put(body, field, draw(st.sampled_from(refused(schema))))
        elif how == "json_anywhere":
            body = body if isinstance(body, dict) else {}
            key = draw(st.one_of(text, unstorable_text))
            body[key] = (
                draw(unstorable_text) if draw(st.booleans()) else {"n": [draw(unstorable_text)]}
            )
        elif how == "deep":
            body = body if isinstance(body, dict) else {}
            body[draw(text)] = DEEP
            raw = json.dumps(body).replace(json.dumps(DEEP), draw(too_deep), 1).encode()
        elif how == "invalid_json":
            raw = draw(st.sampled_from([b"{", b'{"a": }', b"\xff\xfe", b"[1,]", b"nul"]))
            raw += draw(text).encode("utf-8", "surrogatepass")
        elif how == "top_level":
            body = draw(st.sampled_from([[], [body], "x", 1, None, True]))
        elif how == "content_type":
            content_type = draw(
                st.sampled_from(["text/plain", "application/x-www-form-urlencoded", "", "a/b"])
            )
            raw = draw(st.sampled_from([b"phone_number=\x00", b"\x00\x01", b"a=1&b=%00"]))
        if raw is None:
            raw = b"" if body is None else json.dumps(body).encode()
        return Call(
            endpoint=endpoint,
            path=path,
            query="&".join(f"{_quote(k)}={_quote(v)}" for k, v in query.items()),
            body=raw,
            content_type=content_type,
            token=draw(TOKENS),
            poison=how,
        )

    return one()
