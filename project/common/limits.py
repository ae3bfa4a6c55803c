"""
Caps on how often something may happen, counted in the Django cache so
that every worker shares them: Redis when REDIS_URL is set, local memory
when embedded (one process).

A cap counts hits in a window that slides in steps: the window is cut into
`slots` slots and a hit stays counted until a whole window has passed it
(up to one slot longer), so no stretch of `window_s` seconds ever holds
more than `limit` hits. Each count is one atomic increment; when hits race
at the limit, both may be refused, never both let through.

caps_take counts one hit on several caps at once, all or nothing: a
request refused by one cap has used up none of the others.

A ceiling counts what is held now rather than hits in a window (open
sockets): holds_take takes one of each, all or nothing, and holds_release
gives them back. Each process counts its own holds and is listed under a
lease (holders_renew): the holds of a process that died without giving
them back stop counting when its lease runs out.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import caches
from django.utils import timezone

CACHE_ALIAS = "default"
_shared: dict[str, object] = {}


@dataclass(frozen=True)
class Cap:
    """At most ``limit`` hits per ``window_s`` seconds for one subject."""

    name: str
    limit: int
    window_s: int
    slots: int = 12

    @property
    def slot_s(self) -> int:
        return max(1, math.ceil(self.window_s / self.slots))


@dataclass(frozen=True)
class Claim:
    """
    One hit on ``cap`` for ``subject``. With ``member``, a member already
    counted for the subject within the window is not counted again
    ("at most 10 different phones").
    """

    cap: Cap
    subject: str
    member: str = ""


@dataclass(frozen=True)
class Refusal:
    cap: Cap
    retry_after: int


def caps_take(claims: Sequence[Claim], now: float | None = None) -> Refusal | None:
    """
    Count every claim, or none: None when each cap had room; otherwise the
    first full cap and the seconds until it would have. `now`: the time
    counted (a timestamp), for a later caps_give_back.
    """
    cache = caches[CACHE_ALIAS]
    now = timezone.now().timestamp() if now is None else now
    counted: list[str] = []
    members: list[str] = []
    for claim in claims:
        cap = claim.cap
        if claim.member:
            member_key = _key(cap, claim.subject, f"m:{claim.member}")
            if not cache.add(member_key, 1, timeout=cap.window_s + cap.slot_s):
                continue
            members.append(member_key)
        wait = _hit(cache, cap, claim.subject, now, counted)
        if wait:
            for key in counted:
                cache.decr(key)
            cache.delete_many(members)
            return Refusal(cap=cap, retry_after=wait)
    return None


def caps_give_back(claims: Sequence[Claim], taken_at: float) -> None:
    """
    Uncount claims (without members) that caps_take counted at `taken_at`:
    what they were counted for did not happen.
    """
    cache = caches[CACHE_ALIAS]
    for claim in claims:
        _decr(cache, _key(claim.cap, claim.subject, int(taken_at // claim.cap.slot_s)))


@dataclass(frozen=True)
class Ceiling:
    """At most ``limit`` held at once by one subject."""

    name: str
    limit: int
    ttl_s: int


# Who holds: one id per process. Each process counts its own holds under its
# id, and lists the id in one of HOLDER_SLOTS slots of the cache, leased for
# HOLDER_LEASE_S and renewed by holders_renew. A subject's holds are the sum
# over the listed holders: a process that died (SIGKILL, a crash, a restart
# that could not release every socket in its grace) drops out of the sum
# when its lease runs out, instead of leaving its counts behind for a day.
HOLDER = uuid.uuid4().hex[:12]
HOLDER_SLOTS = 64
HOLDER_LEASE_S = 30


def holders_renew() -> None:
    """List this process among the holders for another lease (every lease/3)."""
    cache = _long_lived_cache()
    keys = [f"holder:{i}" for i in range(HOLDER_SLOTS)]
    listed = cache.get_many(keys)
    mine = [key for key, holder in listed.items() if holder == HOLDER]
    if mine:
        cache.set(mine[0], HOLDER, timeout=HOLDER_LEASE_S)
        return
    for key in keys:
        if key not in listed and cache.add(key, HOLDER, timeout=HOLDER_LEASE_S):
            return
    raise RuntimeError(f"all {HOLDER_SLOTS} holder slots are taken")


def _holders(cache) -> list[str]:
    listed = cache.get_many([f"holder:{i}" for i in range(HOLDER_SLOTS)])
    return sorted({*listed.values(), HOLDER})


def holds_take(claims: Sequence[tuple[Ceiling, str]]) -> Ceiling | None:
    """
    Take one hold under each (ceiling, subject) for this process, or none:
    None when each had room; otherwise the first ceiling that was full.
    Each take adds its own hold before it reads the others' counts, so two
    processes racing at the limit may both be refused, never both let in;
    only a worker still listing itself as a holder when another read the
    list can let one more socket past a ceiling.
    """
    cache = _long_lived_cache()
    holders = _holders(cache)
    taken: list[str] = []
    for ceiling, subject in claims:
        mine = _hold_key(ceiling, subject, HOLDER)
        cache.add(mine, 0, timeout=ceiling.ttl_s)
        try:
            held = cache.incr(mine)
        except ValueError:
            # It expired between add and incr.
            cache.add(mine, 0, timeout=ceiling.ttl_s)
            held = cache.incr(mine)
        cache.touch(mine, ceiling.ttl_s)
        taken.append(mine)
        others = [_hold_key(ceiling, subject, h) for h in holders if h != HOLDER]
        held += sum(cache.get_many(others).values()) if others else 0
        if held > ceiling.limit:
            for key in taken:
                _decr(cache, key)
            return ceiling
    return None


def holds_release(claims: Sequence[tuple[Ceiling, str]]) -> None:
    """Give back the holds holds_take took for the same claims."""
    cache = _long_lived_cache()
    for ceiling, subject in claims:
        _decr(cache, _hold_key(ceiling, subject, HOLDER))


def _hold_key(ceiling: Ceiling, subject: str, holder: str) -> str:
    return f"hold:{ceiling.name}:{subject}:{holder}"


def _long_lived_cache():
    """
    One cache object per process, for the sockets. Django's `caches[alias]`
    is one per async context, and a socket's context lasts as long as the
    socket: each would keep a cache of its own, with its own Redis
    connection, memory and a connection per idle socket. Redis's client is
    thread-safe.
    """
    config = settings.CACHES[CACHE_ALIAS]
    key = repr(sorted(config.items()))
    if key not in _shared:
        _shared[key] = caches.create_connection(CACHE_ALIAS)
    return _shared[key]


def _decr(cache, key: str) -> None:
    try:
        cache.decr(key)
    except ValueError:
        # Expired: nothing is counted any more.
        pass


def _key(cap: Cap, subject: str, part: object) -> str:
    return f"cap:{cap.name}:{subject}:{part}"


def _window_keys(cap: Cap, subject: str, now: float) -> tuple[list[int], list[str]]:
    current = int(now // cap.slot_s)
    slots = list(range(current - cap.slots, current + 1))
    return slots, [_key(cap, subject, slot) for slot in slots]


def _hit(cache, cap: Cap, subject: str, now: float, counted: list[str]) -> int:
    """Count one hit; 0, or the wait in seconds (and the hit taken back)."""
    slots, keys = _window_keys(cap, subject, now)
    current_key = keys[-1]
    # Long enough for the slot to outlive the window that counts it.
    timeout = cap.window_s + 2 * cap.slot_s
    cache.add(current_key, 0, timeout=timeout)
    try:
        mine = cache.incr(current_key)
    except ValueError:
        # It expired between add and incr.
        cache.add(current_key, 0, timeout=timeout)
        mine = cache.incr(current_key)
    earlier = cache.get_many(keys[:-1])
    total = mine + sum(earlier.values())
    if total <= cap.limit:
        counted.append(current_key)
        return 0
    cache.decr(current_key)
    # Room for one more once `total - limit` of the oldest hits have aged out.
    excess, seen = total - cap.limit, 0
    free_slot = slots[-1]
    for slot, key in zip(slots[:-1], keys[:-1], strict=True):
        seen += earlier.get(key, 0)
        if seen >= excess:
            free_slot = slot
            break
    free_at = (free_slot + cap.slots + 1) * cap.slot_s
    return max(1, math.ceil(free_at - now))


def wait_in_words(seconds: int) -> str:
    """A wait as people say it: "20 seconds", "42 minutes", "3 hours"."""
    if seconds < 90:
        n, unit = max(1, seconds), "second"
    elif seconds < 90 * 60:
        n, unit = math.ceil(seconds / 60), "minute"
    else:
        n, unit = math.ceil(seconds / 3600), "hour"
    return f"1 {unit}" if n == 1 else f"{n} {unit}s"
