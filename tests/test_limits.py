"""Caps counted in the shared cache: sliding windows, all or nothing."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from project.common import limits
from project.common.limits import (
    Cap,
    Ceiling,
    Claim,
    caps_take,
    holders_renew,
    holds_release,
    holds_take,
    wait_in_words,
)

HOUR = Cap(name="test.hour", limit=3, window_s=3600)


class Clock:
    def __init__(self) -> None:
        # On a slot boundary, so the arithmetic below reads plainly.
        self.now = datetime.fromtimestamp(1_800_000_000 // 300 * 300, tz=timezone.UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock(monkeypatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(timezone, "now", c)
    return c


def take(*claims: Claim):
    return caps_take(list(claims))


def test_a_cap_lets_its_limit_through_then_says_how_long_to_wait(clock):
    """Three hits an hour pass; the fourth waits until the first has aged an hour."""
    for _ in range(3):
        assert take(Claim(HOUR, "a")) is None
        clock.advance(minutes=10)
    refusal = take(Claim(HOUR, "a"))
    assert refusal.cap == HOUR
    # The first hit fell in the slot 0:00-0:05: counted until 1:05, as a hit
    # at 0:04:59 would be. It is 0:30 now.
    assert refusal.retry_after == 35 * 60


def test_a_hit_is_never_forgotten_before_its_window_has_passed(clock):
    """However the hits fall on the slots, no hour ever holds more than the limit."""
    clock.advance(minutes=4, seconds=59)  # the end of the first 5-minute slot
    for _ in range(3):
        assert take(Claim(HOUR, "a")) is None
    clock.advance(minutes=59, seconds=59)
    assert take(Claim(HOUR, "a")) is not None
    clock.advance(seconds=2)
    assert take(Claim(HOUR, "a")) is None


def test_refusing_counts_nothing(clock):
    """Hammering a full cap does not push the wait further out."""
    for _ in range(3):
        take(Claim(HOUR, "a"))
    first = take(Claim(HOUR, "a")).retry_after
    for _ in range(20):
        take(Claim(HOUR, "a"))
    assert take(Claim(HOUR, "a")).retry_after == first


def test_subjects_are_counted_apart(clock):
    """One subject's hits leave another's room alone."""
    for _ in range(3):
        take(Claim(HOUR, "a"))
    assert take(Claim(HOUR, "b")) is None


def test_several_caps_are_taken_all_or_nothing(clock):
    """A claim refused by a later cap leaves the earlier caps as they were."""
    tight = Cap(name="test.tight", limit=1, window_s=60)
    assert take(Claim(HOUR, "a"), Claim(tight, "all")) is None
    refusal = take(Claim(HOUR, "a"), Claim(tight, "all"))
    assert refusal.cap == tight
    clock.advance(minutes=2)
    # Two of three hours' hits are left: the refused claim took none.
    assert take(Claim(HOUR, "a")) is None
    assert take(Claim(HOUR, "a")) is None
    assert take(Claim(HOUR, "a")) is not None


def test_members_are_counted_once_per_window(clock):
    """With a member, a cap counts different members, not hits."""
    for phone in ("p1", "p2", "p3"):
        assert take(Claim(HOUR, "client", member=phone)) is None
    assert take(Claim(HOUR, "client", member="p1")) is None
    assert take(Claim(HOUR, "client", member="p4")) is not None


def test_a_refused_member_is_not_remembered(clock):
    """A member refused by another cap counts when it is asked for again."""
    tight = Cap(name="test.tight", limit=0, window_s=60)
    assert take(Claim(HOUR, "client", member="p1"), Claim(tight, "all")) is not None
    for phone in ("p2", "p3", "p4"):
        assert take(Claim(HOUR, "client", member=phone)) is None
    assert take(Claim(HOUR, "client", member="p1")) is not None


@pytest.mark.parametrize(
    ("seconds", "words"),
    [(1, "1 second"), (20, "20 seconds"), (89, "89 seconds"), (90, "2 minutes"),
     (42 * 60, "42 minutes"), (3600, "60 minutes"), (5400, "2 hours"), (86399, "24 hours")],
)  # fmt: skip
def test_waits_are_said_in_words(seconds, words):
    """Seconds under a minute and a half, then minutes, then hours."""
    assert wait_in_words(seconds) == words


def test_a_ceiling_counts_what_is_held_until_it_is_released():
    """Two holds fit under a ceiling of two; the third waits for a release, not for time."""
    two = Ceiling(name="test.open", limit=2, ttl_s=3600)
    assert holds_take([(two, "a")]) is None
    assert holds_take([(two, "a")]) is None
    assert holds_take([(two, "a")]) == two
    assert holds_take([(two, "b")]) is None
    holds_release([(two, "a")])
    assert holds_take([(two, "a")]) is None
    assert holds_take([(two, "a")]) == two


def test_holds_are_taken_all_or_nothing():
    """A take refused by its second ceiling leaves the first as it was."""
    roomy = Ceiling(name="test.roomy", limit=2, ttl_s=3600)
    full = Ceiling(name="test.full", limit=0, ttl_s=3600)
    for _ in range(3):
        assert holds_take([(roomy, "ip"), (full, "user")]) == full
    assert holds_take([(roomy, "ip")]) is None
    assert holds_take([(roomy, "ip")]) is None
    assert holds_take([(roomy, "ip")]) == roomy


def test_holds_of_other_processes_count_until_their_lease_runs_out():
    """Another worker's holds count while it is listed; a dead one's stop counting."""
    two = Ceiling(name="test.open", limit=2, ttl_s=3600)
    cache = limits._long_lived_cache()
    holders_renew()
    cache.set("holder:63", "deadworker01", timeout=limits.HOLDER_LEASE_S)
    cache.set("hold:test.open:a:deadworker01", 2, timeout=3600)
    assert holds_take([(two, "a")]) == two
    # Its lease ran out (killed without giving its sockets back).
    cache.delete("holder:63")
    assert holds_take([(two, "a")]) is None
    assert holds_take([(two, "a")]) is None
    assert holds_take([(two, "a")]) == two


def test_a_process_keeps_one_holder_slot():
    """Renewing the lease keeps this process's slot; it never takes a second one."""
    holders_renew()
    holders_renew()
    listed = limits._long_lived_cache().get_many(
        [f"holder:{i}" for i in range(limits.HOLDER_SLOTS)]
    )
    assert list(listed.values()) == [limits.HOLDER]
