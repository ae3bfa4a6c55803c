"""A support agent's day on the phone: the caller lookup, the lists' actions."""

from __future__ import annotations

from datetime import datetime, time, timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from dispatch.scheduling import Place, ride_book_ahead
from tests.conftest import staff_login

pytestmark = pytest.mark.django_db


def text(response) -> str:
    return response.content.decode()


@pytest.fixture
def agent(support) -> Client:
    return staff_login(Client(), support)


def tomorrow_at(hour: int, minute: int = 0) -> datetime:
    day = timezone.localdate() + timedelta(days=1)
    return timezone.make_aware(datetime.combine(day, time(hour, minute)))


def test_the_caller_lookup_gives_a_will_call_returns_day(agent, passenger):
    """A will-call return has no time: the lookup gives its day and says will-call, not "—"."""
    outbound = ride_book_ahead(
        passenger=passenger,
        booked_by=passenger,
        pickup=Place(-26.2, 28.04, "Home"),
        dropoff=Place(-26.1, 28.0, "Clinic"),
        pickup_at=tomorrow_at(9, 30),
        return_will_call=True,
    )
    back = outbound.returns.get()
    html = text(agent.get(reverse("admin:dispatch_caller_lookup"), {"q": passenger.phone_number}))
    card = html[html.index(f'data-testid="ride-{back.ride_id}"') :]
    card = card[: card.index("</details>")]
    assert "for —" not in card and 'Booked for</dt> <dd class="inline">—' not in card
    assert f"for {back.service_date:%Y-%m-%d}, will-call" in card
