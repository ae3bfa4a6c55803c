"""HTTP requests and the database connections they open (project.common.db)."""

from __future__ import annotations

import pytest
from django.db import connection

from tests.conftest import token_for


# SQLite's in-memory test database ignores close().
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_request_leaves_no_database_connection_open(client, passenger):
    """
    Under ASGI each request's thread ends with it: a connection left open
    there is never reused, and 100 of them exhaust PostgreSQL.
    """
    token = token_for(passenger)
    response = client.get("/api/auth/profile/", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert connection.connection is None


@pytest.mark.django_db
def test_a_request_inside_a_transaction_keeps_it(client, passenger):
    """A test's transaction (an atomic block) is not closed under it."""
    token = token_for(passenger)
    client.get("/api/auth/profile/", headers={"Authorization": f"Bearer {token}"})
    assert connection.connection is not None and connection.in_atomic_block
