"""The support admin as an agent reads it: pills, the ride timeline, read-only pages, callers."""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from dispatch import matching, rides
from dispatch.models import Ride
from dispatch.scheduling import Place, ride_book_ahead
from people import caregivers, signals
from people.models import AuditEvent
from tests.conftest import staff_login

pytestmark = pytest.mark.django_db

# A tuple's repr as a page prints it: "(False, &#x27;Not verified&#x27;)".
TUPLE = re.compile(r"\(\s*(True|False|(&#x27;|')[a-z_]*(&#x27;|'))\s*,\s*(&#x27;|')")


def text(response) -> str:
    return response.content.decode()


@pytest.fixture
def agent(support) -> Client:
    return staff_login(Client(), support)


def booked(passenger, booked_by=None, ride_id="sa-1"):
    return rides.ride_request(
        ride_id=ride_id,
        passenger=passenger,
        booked_by=booked_by or passenger,
        pickup_latitude=-26.2,
        pickup_longitude=28.04,
        pickup_address="12 Main Rd",
        dropoff_latitude=-26.1,
        dropoff_longitude=28.0,
        dropoff_address="Clinic",
    )


def test_change_pages_show_pills_not_python_tuples(console, make_driver, make_user, make_link):
    """Driver, link and state pages show "Not verified", "Never online", never a tuple's repr."""
    driver = make_driver(verified=False)
    driver.driver_state.delete()
    page = reverse("admin:people_driverprofile_change", args=[driver.driver_profile.pk])
    html = text(console.get(page))
    assert "Not verified" in html and "Never online" in html
    assert not TUPLE.search(html), TUPLE.search(html)
    on_duty = make_driver(-26.2, 28.04)
    state = on_duty.driver_state
    html = text(console.get(reverse("admin:dispatch_driverstate_change", args=[state.pk])))
    assert "Available" in html and not TUPLE.search(html)
    link = make_link(make_user("passenger"), make_user("caregiver"))
    html = text(console.get(reverse("admin:people_caregiverlink_change", args=[link.pk])))
    assert "Active" in html and not TUPLE.search(html)


def test_the_ride_timeline_names_everyone_to_the_second(
    console, make_driver, make_user, make_link, passenger, dispatcher
):
    """Each timeline row has its time to the second with offset, who acted and the driver."""
    daughter = make_user("caregiver", first_name="Emily", last_name="Davis")
    make_link(passenger, daughter)
    ride = booked(passenger, booked_by=daughter)
    matching.ride_match(ride=ride)  # nobody near: no_drivers
    driver = make_driver(-26.2, 28.041, first_name="John", last_name="Doe")
    ride.refresh_from_db()
    matching.ride_assign(ride=ride, driver_id=driver.pk, actor=dispatcher, role="dispatcher")
    ride.refresh_from_db()
    rides.ride_cancel(
        ride=ride, actor=dispatcher, cancelled_by="dispatcher", reason="Family called"
    )
    html = text(console.get(reverse("admin:dispatch_ride_change", args=[ride.pk])))
    table = html[html.index('data-testid="ride-timeline"') :]
    table = table[: table.index("</table>")]
    rows = re.findall(r"<tr data-kind=\"([a-z_]+)\">(.*?)</tr>", table, re.S)
    assert [kind for kind, _ in rows] == [
        "requested",
        "searching",
        "no_drivers",
        "assigned",
        "cancelled",
    ]
    for _kind, row in rows:
        assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+02:00", row), row
    who = {kind: row for kind, row in rows}
    assert "Emily Davis (caregiver)" in who["requested"]
    assert "Dana Dispatcher (dispatcher)" in who["assigned"] and "John Doe" in who["assigned"]
    assert "John Doe" in who["cancelled"] and "Family called" in who["cancelled"]
    assert "Care Connect (automatic)" in who["no_drivers"]
    assert "sa-1 v1" not in html  # no internal captions
    # The ending and the search that found nobody, though a driver came later.
    assert "Family called" in html[html.index("Why it ended") :]
    found = html[html.index("No driver found at") :][:400]
    assert re.search(r"\d\d:\d\d:\d\d \+02:00", found), found


def test_a_ride_closed_as_unfulfilled_shows_the_dispatchers_reason(console, passenger, dispatcher):
    """The admin shows why a dispatcher gave up, not "Cancel reason: –"."""
    ride = booked(passenger)
    rides.ride_mark_unfulfilled(ride=ride, actor=dispatcher, reason="No wheelchair van free")
    html = text(console.get(reverse("admin:dispatch_ride_change", args=[ride.pk])))
    ending = html[html.index("Why it ended") :]
    assert "No wheelchair van free" in ending[:600]
    row = re.search(r'<tr data-kind="unfulfilled">(.*?)</tr>', html, re.S).group(1)
    assert "Closed unfulfilled" in row and "bg-red-100" in row  # a red pill, not bare words


def test_a_ride_page_is_read_only_with_no_save_buttons(console, passenger, dispatcher):
    """A ride that has ended (and any ride: they change through services) has no Save."""
    ride = booked(passenger)
    rides.ride_cancel(ride=ride, actor=dispatcher, cancelled_by="dispatcher", reason="x")
    html = text(console.get(reverse("admin:dispatch_ride_change", args=[ride.pk])))
    assert 'name="_save"' not in html and 'name="_continue"' not in html
    listing = console.get(reverse("admin:dispatch_ride_changelist"))
    assert b"cancel_rides" in listing.content  # the list's action stays


def test_link_and_session_pages_are_read_only(agent, make_user, make_link):
    """Records whose fields are all read-only show no Save buttons."""
    link = make_link(make_user("passenger"), make_user("caregiver"))
    html = text(agent.get(reverse("admin:people_caregiverlink_change", args=[link.pk])))
    assert 'name="_save"' not in html


@pytest.mark.parametrize("spelling", ["0821234567", "+27 82 123 4567", "27821234567"])
def test_the_caller_lookup_finds_a_person_by_any_phone_spelling(
    agent, make_user, make_link, dispatcher, spelling
):
    """From the daughter's number: her mother, the ride she booked, and why it was cancelled."""
    mother = make_user("passenger", first_name="Rose", last_name="Mokoena")
    daughter = make_user("caregiver", phone="27821234567", first_name="Thandi", last_name="M")
    make_link(mother, daughter)
    ride = booked(mother, booked_by=daughter, ride_id="call-1")
    rides.ride_cancel(ride=ride, actor=dispatcher, cancelled_by="dispatcher", reason="Clinic shut")
    html = text(agent.get(reverse("admin:dispatch_caller_lookup"), {"q": spelling}))
    card = html[html.index('data-testid="person-card"') :]
    assert "Thandi M" in card and "Cares for" in card and "Rose Mokoena" in card
    assert "Thandi M for Rose Mokoena" in card  # who booked it
    assert "Clinic shut" in card  # why it ended
    assert 'data-testid="ride-timeline"' in card  # its timeline, on the same page
    assert reverse("admin:dispatch_ride_change", args=[ride.pk]) in card


def test_the_caller_lookup_shows_a_passengers_caregivers(agent, passenger, make_user, make_link):
    """From the passenger's number: their caregivers with what each may do."""
    make_link(
        passenger,
        make_user("caregiver", first_name="Emily", last_name="Davis"),
        can_view_location=False,
    )
    html = text(agent.get(reverse("admin:dispatch_caller_lookup"), {"q": passenger.phone_number}))
    assert "Caregivers" in html and "Emily Davis" in html
    assert "Books rides, Notified" in html


def test_the_caller_lookup_says_when_nobody_matches(agent):
    """An unknown number says so, and a name search lists who matches."""
    html = text(agent.get(reverse("admin:dispatch_caller_lookup"), {"q": "0829999999"}))
    assert 'data-testid="lookup-none"' in html


def test_the_caller_lookup_is_in_the_sidebar(agent):
    """The admin's sidebar links to the caller lookup."""
    html = text(agent.get(reverse("admin:index")))
    assert reverse("admin:dispatch_caller_lookup") in html


def test_app_users_cannot_open_the_caller_lookup(make_user):
    """The lookup is staff-only, like the rest of the admin."""
    client = staff_login(Client(), make_user("passenger"))
    response = client.get(reverse("admin:dispatch_caller_lookup"), {"q": "0821234567"})
    assert response.status_code == 302


def test_the_dashboard_counts_today_and_offers_the_lookup(
    console, passenger, make_user, make_driver, dispatcher
):
    """The front page counts waiting rides, drivers online and no-shows, with a lookup box."""
    booked(passenger, ride_id="dash-1")
    ended = booked(make_user("passenger"), ride_id="dash-2")
    rides.ride_cancel(ride=ended, actor=dispatcher, cancelled_by="dispatcher", reason="x")
    make_driver(-26.2, 28.04)
    html = text(console.get(reverse("admin:index")))
    tiles = dict(
        re.findall(r'data-tile="([^"]+)">\s*<span[^>]*>[^<]*</span>\s*<span[^>]*>(\d+)', html)
    )
    assert tiles == {
        "Waiting for a driver now": "1",
        "Drivers online": "1",
        "Rides booked today": "2",
        "No-shows today": "0",
    }
    assert 'data-status="Cancelled">Cancelled: 1' in html
    assert f'action="{reverse("admin:dispatch_caller_lookup")}"' in html


def test_the_rides_list_filters_by_date_range_and_status(console, passenger):
    """unfold's date range and status filters narrow the rides list."""
    booked(passenger, ride_id="flt-1")
    url = reverse("admin:dispatch_ride_changelist")
    today = timezone.localdate().isoformat()
    found = console.get(url, {"created_at_from": today, "status__exact": "searching"})
    assert found.status_code == 200 and b"flt-1" in found.content
    none = console.get(url, {"created_at_from": "2999-01-01"})
    assert none.status_code == 200 and b"flt-1" not in none.content


def test_the_caller_lookup_gives_a_booked_ahead_rides_pickup_time(agent, passenger):
    """A ride booked for tomorrow says when it is booked for, to the second."""
    pickup_at = timezone.make_aware(
        datetime.combine(timezone.localdate() + timedelta(days=1), time(9, 30))
    )
    ride_book_ahead(
        passenger=passenger,
        booked_by=passenger,
        pickup=Place(-26.2, 28.04, "Home"),
        dropoff=Place(-26.1, 28.0, "Clinic"),
        pickup_at=pickup_at,
    )
    html = text(agent.get(reverse("admin:dispatch_caller_lookup"), {"q": passenger.phone_number}))
    assert f"for {pickup_at.astimezone(timezone.get_current_timezone()):%Y-%m-%d} 09:30:00" in html


@pytest.mark.parametrize("first", ["outbound", "return"])
def test_cancelling_both_legs_in_the_admin_cancels_each_once(console, passenger, first):
    """Selecting an outbound trip and its return: both cancelled, no "changed meanwhile"."""
    pickup_at = timezone.make_aware(
        datetime.combine(timezone.localdate() + timedelta(days=1), time(9, 30))
    )
    outbound = ride_book_ahead(
        passenger=passenger,
        booked_by=passenger,
        pickup=Place(-26.2, 28.04, "Home"),
        dropoff=Place(-26.1, 28.0, "Clinic"),
        pickup_at=pickup_at,
        return_will_call=True,
    )
    back = outbound.returns.get()
    # The action takes them newest first: either leg may come first.
    older = back if first == "outbound" else outbound
    Ride.objects.filter(pk=older.pk).update(created_at=timezone.now() - timedelta(hours=1))
    page = console.post(
        reverse("admin:dispatch_ride_changelist"),
        {"action": "cancel_rides", "_selected_action": [outbound.pk, back.pk]},
        follow=True,
    )
    html = text(page)
    assert "changed meanwhile" not in html and "2 ride(s) cancelled" in html
    outbound.refresh_from_db()
    back.refresh_from_db()
    assert (outbound.status, back.status) == ("cancelled", "cancelled")
    assert back.events.filter(kind="cancelled").count() == 1


def test_a_passengers_page_lists_what_each_caregiver_may_do(agent, passenger, make_user):
    """Live links say what they allow in words; a revoked one allows nothing."""
    from people.models import CaregiverLink

    CaregiverLink.objects.create(
        passenger=passenger,
        caregiver=make_user("caregiver", first_name="Live", last_name="One"),
        status="active",
        can_view_location=False,
    )
    CaregiverLink.objects.create(
        passenger=passenger,
        caregiver=make_user("caregiver", first_name="Gone", last_name="One"),
        status="revoked",
    )
    html = text(agent.get(reverse("admin:people_user_change", args=[passenger.pk])))
    assert "Books rides, Notified" in html
    # Newest first: the revoked link's rows end where the live one's begin.
    gone = html[html.index("Gone One") : html.index("Live One")]
    assert "Revoked" in gone and "Books rides" not in gone
    assert not TUPLE.search(html)


def test_status_filters_narrow_links_and_driver_states(console, make_user, make_link, make_driver):
    """The links and driver-state lists filter by status from unfold's dropdowns."""
    make_link(make_user("passenger"), make_user("caregiver", first_name="Kept"))
    url = reverse("admin:people_caregiverlink_changelist")
    assert b"Kept" in console.get(url, {"status__exact": "active"}).content
    assert b"Kept" not in console.get(url, {"status__exact": "revoked"}).content
    make_driver(-26.2, 28.04, first_name="Zebedee")
    url = reverse("admin:dispatch_driverstate_changelist")
    assert b"Zebedee" in console.get(url, {"status__exact": "available"}).content
    assert b"Zebedee" not in console.get(url, {"status__exact": "offline"}).content


def test_the_sidebar_and_dashboard_link_only_to_pages_one_may_open(agent, console):
    """
    With the permissions the groups' migrations grant: support read driver
    states (without positions) and app sessions; dispatchers no sessions.
    """
    states = reverse("admin:dispatch_driverstate_changelist")
    sessions = reverse("admin:people_apisession_changelist")
    as_support = text(agent.get(reverse("admin:index")))
    assert states in as_support and sessions in as_support
    assert agent.get(states).status_code == 200
    assert agent.get(sessions).status_code == 200
    as_dispatcher = text(console.get(reverse("admin:index")))
    assert states in as_dispatcher and sessions not in as_dispatcher
    assert console.get(sessions).status_code == 403


def _user_form(passenger, **profile):
    data = {
        "phone_number": passenger.phone_number,
        "first_name": passenger.first_name,
        "last_name": passenger.last_name,
        "user_type": "passenger",
        "is_active": "on",
        "date_joined_0": "2026-01-01",
        "date_joined_1": "10:00:00",
        "passenger_profile-TOTAL_FORMS": "1",
        "passenger_profile-INITIAL_FORMS": "1",
        "passenger_profile-MIN_NUM_FORMS": "0",
        "passenger_profile-MAX_NUM_FORMS": "1",
        "passenger_profile-0-id": str(passenger.passenger_profile.pk),
        "passenger_profile-0-user": str(passenger.pk),
        "passenger_profile-0-notes": "",
        **{f"passenger_profile-0-{k}": v for k, v in profile.items()},
    }
    for prefix in ("caregiver_links", "api_sessions"):
        data[f"{prefix}-TOTAL_FORMS"] = "0"
        data[f"{prefix}-INITIAL_FORMS"] = "0"
    return data


def test_support_changing_needs_in_users_admin_is_audited_and_tells_the_driver(support, passenger):
    """
    Support ticking "needs wheelchair" on the passenger's admin page must go
    through people.profiles.profile_update: a profile.updated audit row, and
    needs_changed so a driver on the way is told.
    """
    client = staff_login(Client(), support)
    heard = []

    def listener(sender, passenger_id, **kw):
        heard.append(passenger_id)

    signals.needs_changed.connect(listener, dispatch_uid="needs-listener")
    try:
        response = client.post(
            reverse("admin:people_user_change", args=[passenger.pk]),
            _user_form(passenger, needs_wheelchair="on"),
        )
    finally:
        signals.needs_changed.disconnect(dispatch_uid="needs-listener")
    assert response.status_code == 302, response.content.decode()[-3000:]
    passenger.passenger_profile.refresh_from_db()
    changed = passenger.passenger_profile.needs_wheelchair
    assert changed
    audit = AuditEvent.objects.get(action="profile.updated", subject_id=str(passenger.pk))
    assert audit.actor == support and heard == [passenger.pk]


@pytest.mark.logs_errors  # Django logs each refused filter as a security error
def test_support_cannot_locate_drivers_by_filtering_driver_states(support, make_driver):
    """
    Positions are for dispatchers (people.access.may_see_live_positions):
    a filter on latitude in the list's URL, which would tell support where
    each driver stands a degree at a time, is refused like the column.
    """
    client = staff_login(Client(), support)
    north = make_driver(-26.10, 28.04, first_name="Northy", last_name="North")
    south = make_driver(-26.30, 28.04, first_name="Southy", last_name="South")
    from dispatch.models import DriverState

    DriverState.objects.filter(driver=north).update(latitude=-26.10, longitude=28.04)
    DriverState.objects.filter(driver=south).update(latitude=-26.30, longitude=28.04)
    url = "/admin/dispatch/driverstate/"
    whole = client.get(url)
    assert whole.status_code == 200 and "-26.1" not in whole.content.decode()
    narrowed = client.get(url, {"latitude__gte": "-26.2"})
    html = narrowed.content.decode()
    # The filter must be refused (Django answers an unknown filter with ?e=1),
    # not applied: applied, it says Northy is north of -26.2 and Southy is not.
    applied = narrowed.status_code == 200 and "North" in html and "South" not in html
    assert not applied, "support located a driver by filtering on latitude"


def test_caller_lookup_does_not_send_a_nul_to_the_database(support):
    """
    A NUL in the caller lookup's ?q= reaches no query (PostgreSQL refuses NUL
    in any text: a 500 there). SQLite would store it, so this test looks at
    the parameters the queries were sent with.
    """
    from django.db import connection

    sent = []

    def spy(execute, sql, params, many, context):
        sent.extend(p for p in (params or ()) if isinstance(p, str) and "\x00" in p)
        return execute(sql, params, many, context)

    client = staff_login(Client(), support)
    with connection.execute_wrapper(spy):
        response = client.get("/admin/dispatch/ride/callers/", {"q": "Sar\x00ah"}, follow=True)
    assert response.status_code == 200 and "NUL character" in response.content.decode()
    assert not sent, f"sent to the database: {sent!r}"


@pytest.mark.logs_errors  # Django logs each refused filter as a security error
def test_support_cannot_read_a_waiting_sms_code_through_list_filters(support, passenger):
    """
    A waiting SMS code is never shown, not even to a filter in the list's URL
    (?token__startswith=, digit by digit): support cannot read it and sign
    in as the passenger.
    """
    from people import signin

    signin.otp_send(phone_number=passenger.phone_number)  # anyone may ask (public API)
    client = staff_login(Client(), support)
    url = "/admin/people/phoneotpdevice/"
    shown = passenger.display_phone
    code = ""
    for _ in range(6):
        for digit in "0123456789":
            page = client.get(url, {"token__startswith": code + digit})
            if page.status_code == 200 and shown in page.content.decode():
                code += digit
                break
        else:
            break
    result = None
    if len(code) == 6:
        result = signin.otp_verify(phone_number=passenger.phone_number, code=code)
    assert result is None, f"support read the code {code} and signed in as {result.user}"


def test_the_caller_lookup_shows_no_rides_of_someone_the_caller_no_longer_cares_for(
    agent, make_user, make_link
):
    """A revoked (or declined) caregiver's lookup lists the link, never that passenger's rides."""
    mother = make_user("passenger", first_name="Rose", last_name="Mokoena")
    former = make_user("caregiver", first_name="Ex", last_name="Partner")
    link = make_link(mother, former)
    caregivers.caregiver_link_revoke(link=link, actor=mother)
    booked(mother, ride_id="after-revoke")
    html = text(agent.get(reverse("admin:dispatch_caller_lookup"), {"q": former.phone_number}))
    card = html[html.index('data-testid="person-card"') :]
    assert "Rose Mokoena" in card and "Revoked" in card  # the ended link, as such
    assert "after-revoke" not in card and "12 Main Rd" not in card


def test_changing_a_passengers_role_and_needs_at_once_is_refused_on_the_page(support, passenger):
    """A passenger made a caregiver with needs ticked: the page says why, no 500, nothing saved."""
    client = staff_login(Client(), support)
    form = {**_user_form(passenger, needs_wheelchair="on"), "user_type": "caregiver"}
    response = client.post(reverse("admin:people_user_change", args=[passenger.pk]), form)
    assert response.status_code == 200
    assert "Only passengers have travel needs." in text(response)
    passenger.refresh_from_db()
    passenger.passenger_profile.refresh_from_db()
    assert passenger.user_type == "passenger" and not passenger.passenger_profile.needs_wheelchair
