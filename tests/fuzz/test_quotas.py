"""
The fuzz tier's size, as a fact: each fuzz test asserts that it sent its
whole quota (SENT, counted as each message goes out); these quotas add up
to at least 10,000 generated messages over the suite's two passes (SQLite,
then PostgreSQL with the two-worker share).
"""

from __future__ import annotations

from tests.cluster.test_fuzz import REST_QUOTA, SOCKET_QUOTA
from tests.fuzz.test_rest_fuzz import QUOTA as REST_IN_PROCESS
from tests.fuzz.test_socket_fuzz import QUOTAS as SOCKETS_IN_PROCESS


def test_the_fuzz_tier_sends_at_least_ten_thousand_generated_messages():
    per_database = sum(SOCKETS_IN_PROCESS.values()) + REST_IN_PROCESS
    two_workers = SOCKET_QUOTA + REST_QUOTA
    assert 2 * per_database + two_workers >= 10_000
    # Every socket and the REST API carry a real share on each database.
    assert min(SOCKETS_IN_PROCESS.values()) >= 400 and REST_IN_PROCESS >= 2000
