from __future__ import annotations

import pytest
from django.conf import settings

from dispatch import booking

ON_POSTGRES = settings.DATABASES["default"]["ENGINE"].endswith("postgresql")

# On PostgreSQL (make test-services) both ways of booking run, side by side.
PATHS = (
    [pytest.param(way, marks=pytest.mark.postgres) for way in ("one statement", "orm")]
    if ON_POSTGRES
    else ["orm"]
)


@pytest.fixture(params=PATHS)
def path(request, monkeypatch):
    """Which way PostgreSQL books (dispatch.booking); SQLite has only the ORM's."""
    monkeypatch.setattr(booking, "ONE_STATEMENT", request.param == "one statement")
    return request.param
