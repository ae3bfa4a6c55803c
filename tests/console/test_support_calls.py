"""A support agent's day on the phone: the caller lookup, the lists' actions."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from dispatch import rides
from dispatch.admin.timeline import stamp
from dispatch.locations import live_position
from dispatch.scheduling import Place, ride_book_ahead
from people.sessions import session_issue
from tests.conftest import staff_login
from tests.console.test_support_admin import booked

pytestmark = pytest.mark.django_db


def text(response) -> str:
    return response.content.decode()


@pytest.fixture
def agent(support) -> Client:
    return staff_login(Client(), support)


def said(page) -> list[tuple[str, str]]:
    """The messages a page shows: (level, words)."""
    return [(m.level_tag, str(m)) for m in page.context["messages"]]


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


def test_cancelling_rides_that_had_ended_says_so_and_claims_no_success(
    console, passenger, dispatcher
):
    """
    Rides already ended are left as they were, and the dispatcher is told
    which: no green "0 ride(s) cancelled", and a live ride selected with
    them is counted alone.
    """
    ended = booked(passenger, ride_id="end-1")
    rides.ride_mark_unfulfilled(ride=ended, actor=dispatcher, reason="No van")
    url = reverse("admin:dispatch_ride_changelist")
    page = console.post(
        url, {"action": "cancel_rides", "_selected_action": [ended.pk]}, follow=True
    )
    messages = said(page)
    assert not any(level == "success" for level, _ in messages), messages
    assert any(level == "warning" and "end-1" in words for level, words in messages), messages
    ended.refresh_from_db()
    assert ended.status == "unfulfilled" and ended.cancel_reason == "No van"

    live = booked(passenger, ride_id="live-1")
    page = console.post(
        url, {"action": "cancel_rides", "_selected_action": [ended.pk, live.pk]}, follow=True
    )
    messages = said(page)
    assert ("success", "1 ride(s) cancelled.") in messages, messages
    assert any(level == "warning" and "end-1" in words for level, words in messages), messages


@pytest.mark.logs_errors  # Django logs each refused filter as a security error
@pytest.mark.parametrize("field", ["refresh_hash", "previous_refresh_hash"])
def test_support_cannot_read_a_sessions_refresh_hash_through_list_filters(
    agent, passenger, make_user, field
):
    """
    A session's refresh-token hash is never shown, and a filter in the
    list's address (?refresh_hash__startswith=, a digit at a time) is
    refused like the column: it narrows nothing.
    """
    pair = session_issue(user=passenger)
    session = pair.session
    if field == "previous_refresh_hash":
        session.previous_refresh_hash = "ab" * 32
        session.save(update_fields=["previous_refresh_hash"])
    other = make_user("passenger", first_name="Other", last_name="Rider")
    session_issue(user=other)
    digit = getattr(session, field)[0]
    wrong = next(d for d in "0123456789abcdef" if d != digit)
    url = reverse("admin:people_apisession_changelist")
    right_page = agent.get(url, {f"{field}__startswith": digit})
    wrong_page = agent.get(url, {f"{field}__startswith": wrong})
    shown = passenger.display_phone
    tells = (
        right_page.status_code == 200
        and shown in text(right_page)
        and (wrong_page.status_code != 200 or shown not in text(wrong_page))
    )
    assert not tells, f"the list's answers tell the {field}'s first digit"


def test_a_drivers_position_and_last_seen_read_in_local_time_to_the_second(console, make_driver):
    """
    The driver's page gives when their position was taken and when they
    were last seen as every other time in the admin reads: to the second in
    TIME_ZONE with its offset, never in UTC beside local times.
    """
    driver = make_driver(-26.2041, 28.0473)
    seen = datetime.fromtimestamp(live_position(driver.pk).seen, tz=UTC)
    html = text(
        console.get(reverse("admin:people_driverprofile_change", args=[driver.driver_profile.pk]))
    )
    assert "UTC" not in html
    assert f"-26.20410, 28.04730 (as of {stamp(seen)})" in html
    last_seen = html[html.index("Last seen") :][:600]
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+02:00", last_seen), last_seen
