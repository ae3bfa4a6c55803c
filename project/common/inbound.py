"""
What any input from outside may hold, checked once before anything reads
it: every socket message (project.common.sockets.JsonSocket) and every REST
call's path, query and JSON body (project.api). Two rules:

* Text every database can store: no NUL character (PostgreSQL refuses it
  in any text, so it would fail deep inside a query as a server error) and
  no lone UTF-16 surrogate (it cannot be encoded as UTF-8 at all). Keys are
  text too, and ids are checked like everything else.
* Structures at most MAX_DEPTH levels deep. No message of the protocol
  nests more than three; anything deeper is refused at once rather than
  handed to validation and handlers, whose cost and recursion it would
  drive.

A refusal is a ServiceError, rendered as every other refusal is.
"""

from __future__ import annotations

import json
from typing import Any

from project.common.errors import ServiceError

MAX_DEPTH = 32


class UnstorableText(ServiceError):
    """Text with a NUL character or a lone surrogate."""

    code = "invalid_request"


class TooDeep(ServiceError):
    """A structure nested deeper than MAX_DEPTH."""

    code = "message_too_deep"


class InvalidJson(ServiceError):
    code = "invalid_json"


def _too_deep(where: str) -> TooDeep:
    return TooDeep(
        f"Messages may nest at most {MAX_DEPTH} levels; this one nests deeper at {where}."
    )


def inbound_parse(raw: str | bytes, what: str = "The message") -> Any:
    """
    JSON text (or UTF-8 bytes) parsed and checked (inbound_check). Nesting
    so deep that the parser itself gives up is refused as TooDeep too, so a
    client is told the same whatever the depth.
    """
    try:
        value = json.loads(raw)
    except RecursionError:
        raise _too_deep("message") from None
    except ValueError:  # UnicodeDecodeError too
        raise InvalidJson(f"{what} is not valid JSON.") from None
    inbound_check(value)
    return value


def _storable(text: str) -> bool:
    if "\x00" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _name(path: tuple) -> str:
    return ".".join(str(p) for p in path) or "message"


def _unstorable(path: tuple) -> UnstorableText:
    name = _name(path)
    problem = "Text may not hold NUL characters (\\u0000) or lone surrogates."
    return UnstorableText(f"Invalid fields: {name}.", fields={name: problem})


def inbound_check(value: Any) -> None:
    """
    Raise UnstorableText or TooDeep unless `value` (parsed JSON, or a dict
    of path or query parameters) keeps both rules; the refusal names the
    field by its path (`stops.0.address`).
    """
    # Iterative, so no depth of input costs this check a Python frame.
    stack: list[tuple[Any, tuple, int]] = [(value, (), 0)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, str):
            if not _storable(item):
                raise _unstorable(path)
            continue
        if not isinstance(item, dict | list | tuple):
            continue
        if depth >= MAX_DEPTH:
            raise _too_deep(_name(path))
        if isinstance(item, dict):
            for key, child in item.items():
                if isinstance(key, str) and not _storable(key):
                    raise _unstorable((*path, repr(key)[1:-1]))
                stack.append((child, (*path, key), depth + 1))
        else:
            stack.extend((child, (*path, i), depth + 1) for i, child in enumerate(item))
