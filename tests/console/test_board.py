"""The console's pages: who may see them, what they show, what they change."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from console import regions
from dispatch import matching, rides, trips
from dispatch.geo import Point
from dispatch.locations import location_store
from dispatch.models import DriverState, DriverStatus, Ride, RideEvent, RideStatus
from people.models import CaregiverLink, LinkStatus, VehicleType
from tests.conftest import staff_login

pytestmark = pytest.mark.django_db

CAPE_TOWN = (-33.9249, 18.4241)
BOARD = "/console/"


def book(passenger, *, booked_by=None, at=CAPE_TOWN, ride_id=None, **extra) -> Ride:
    """A ride that searched and found nobody: it waits for a dispatcher."""
    ride = rides.ride_request(
        ride_id=ride_id or f"r-{passenger.pk}",
        passenger=passenger,
        booked_by=booked_by or passenger,
        pickup_latitude=at[0],
        pickup_longitude=at[1],
        pickup_address=extra.pop("pickup_address", "12 Long Street"),
        dropoff_latitude=at[0] + 0.02,
        dropoff_longitude=at[1] + 0.02,
        dropoff_address="Groote Schuur Hospital",
        **extra,
    )
    matching.ride_match(ride=ride)
    ride.refresh_from_db()
    return ride


# --- who may enter ---------------------------------------------------------------


def test_anonymous_visitors_are_sent_to_the_login_page(client):
    """The board is behind the login page, which sends the visitor back after."""
    response = client.get(BOARD)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('console:login')}?next={BOARD}"


def test_htmx_requests_without_a_session_redirect_the_whole_page(client):
    """An htmx request after the session ended sends the whole page to the login."""
    response = client.get("/console/regions/pending-rides/", headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert response["HX-Redirect"].startswith(reverse("console:login"))


def test_staff_outside_the_dispatchers_group_are_refused(make_staff, support):
    """Support staff, other staff and non-staff get 403 on the board."""
    for user in (make_staff(), support, make_staff(staff=False)):
        client = Client()
        staff_login(client, user)
        assert client.get(BOARD).status_code == 403


def test_dispatchers_and_superusers_see_the_board(console, make_staff):
    """Dispatchers and superusers open the board."""
    assert console.get(BOARD).status_code == 200
    boss = Client()
    staff_login(boss, make_staff(superuser=True))
    assert boss.get(BOARD).status_code == 200


def test_root_redirects_to_the_console(client):
    """The site's root leads to the console."""
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == BOARD


def test_login_takes_the_phone_number_in_any_spelling(dispatcher, staff_groups):
    """A dispatcher signs in with their number as displayed, spaces and all."""
    client = Client()
    phone = dispatcher.display_phone  # "+27 82 ..." with spaces
    response = client.post(
        reverse("console:login"),
        {"username": phone, "password": "pw-for-tests-only", "next": BOARD},
    )
    # The password is right: next comes the authenticator code (test_two_factor.py).
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('console:two_factor')}?next=%2Fconsole%2F"


def test_login_refuses_accounts_that_are_not_staff(make_user):
    """An app user with a password still cannot sign in to the console."""
    user = make_user("passenger")
    user.set_password("pw-for-tests-only")
    user.save()
    response = Client().post(
        reverse("console:login"), {"username": user.phone_number, "password": "pw-for-tests-only"}
    )
    assert response.status_code == 200
    assert b"staff account" in response.content


def test_logout_is_a_post(console):
    """Logging out takes a POST (a stray link cannot do it) and ends the session."""
    assert console.get(reverse("console:logout")).status_code == 405
    response = console.post(reverse("console:logout"))
    assert response.status_code == 302
    assert console.get(BOARD).status_code == 302


# --- the page ---------------------------------------------------------------------


def test_the_board_loads_its_scripts_locally_with_the_csp_nonce(console, settings):
    """Scripts are local with the CSP nonce, no inline handlers; the map gets its tiles URL."""
    settings.MAP_TILE_URL = "http://127.0.0.1:9/{z}/{x}/{y}.png"
    response = console.get(BOARD)
    html = response.content.decode()
    scripts = re.findall(r"<script[^>]*>", html)
    sources = [re.search(r'src="([^"]+)"', tag) for tag in scripts]
    assert sources and all(src is None or src.group(1).startswith("/static/") for src in sources)
    nonce = re.search(r"'nonce-([^']+)'", response["Content-Security-Policy"]).group(1)
    for tag in scripts:
        if "src=" in tag:
            assert f'nonce="{nonce}"' in tag
    assert "vendor/leaflet/leaflet.js" in html
    assert "django_htmx/htmx-2.min.js" in html and "django_htmx/ext/hx-ws-2.min.js" in html
    assert 'ws-connect="/ws/console/"' in html
    assert "X-CSRFToken" in re.search(r"<body[^>]*>", html).group(0)
    config = json.loads(re.search(r'id="map-config"[^>]*>(.*?)</script>', html).group(1))
    assert config["tile_url"] == settings.MAP_TILE_URL
    assert " on" not in "".join(re.findall(r"<[^>]+\son[a-z]+=", html))


def test_map_data_lists_online_drivers_by_state_and_pending_pickups(
    console, make_driver, passenger, settings
):
    """The map starts with online drivers by state (demo never stale) and waiting pickups."""
    available = make_driver(-26.2, 28.04)
    stale = make_driver(-26.3, 28.1)
    demo = make_driver(-25.7, 28.2, demo=True)
    offline = make_driver(-26.0, 28.0, available=False)
    book(passenger)  # in Cape Town, where nobody is
    old = timezone.now().timestamp() - settings.DRIVER_STALE_AFTER_S - 5
    location_store().put(stale.pk, Point(-26.3, 28.1, old))
    location_store().put(demo.pk, Point(-25.7, 28.2, old, reported=False))

    rows = {row.driver.pk: row for row in regions.driver_rows()}
    assert [rows[d.pk].map_state for d in (available, stale, demo)] == [
        "available",
        "stale",
        "available",
    ]
    html = console.get(BOARD).content.decode()
    data = json.loads(re.search(r'id="map-data"[^>]*>(.*?)</script>', html).group(1))
    drivers = {d["id"]: d for d in data["drivers"]}
    assert set(drivers) == {available.pk, stale.pk, demo.pk}
    assert offline.pk not in drivers
    assert drivers[stale.pk]["ts"] == pytest.approx(old)
    assert drivers[demo.pk]["demo"] is True
    (pickup,) = data["rides"]
    assert (pickup["ride_id"], pickup["pending"], pickup["no_driver"]) == (
        f"r-{passenger.pk}",
        True,
        True,
    )


def test_htmx_gets_one_region_as_a_partial(htmx, passenger):
    """An htmx request for a region gets that region alone, not the page."""
    book(passenger)
    response = htmx.get("/console/regions/pending-rides/")
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<section id="pending-rides"')
    assert "<html" not in html and "hx-swap-oob" not in html
    assert f"r-{passenger.pk}" in html


def test_regions_without_htmx_send_the_browser_to_the_board(console):
    """A region opened directly redirects to the board; an unknown one is a 404."""
    response = console.get("/console/regions/events/")
    assert response.status_code == 302 and response["Location"] == BOARD
    assert console.get("/console/regions/nope/").status_code == 404


def test_pending_rides_show_oldest_first_with_booker_needs_and_caregivers(
    htmx, make_user, make_link, passenger
):
    """Waiting rides, longest-waiting first, show booker, needs, notes and caregivers."""
    passenger.passenger_profile.needs_walker = True
    passenger.passenger_profile.notes = "Knock loudly"
    passenger.passenger_profile.save()
    daughter = make_user("caregiver", first_name="Emily", last_name="Davis")
    make_link(passenger, daughter)
    other = make_user("passenger", first_name="Thabo", last_name="Nkosi")
    second = book(other, ride_id="second", needs_wheelchair=True)
    first = book(passenger, booked_by=daughter, ride_id="first", notes="Gate code 4411")
    # Written after "second" but requested before it: waiting time decides, not row order.
    Ride.objects.filter(pk=first.pk).update(created_at=second.created_at - timedelta(minutes=5))
    html = htmx.get("/console/regions/pending-rides/").content.decode()
    assert html.index('data-ride-id="first"') < html.index('data-ride-id="second"')
    card = html[html.index('data-ride-id="first"') : html.index('data-ride-id="second"')]
    assert "Booked by caregiver <strong>Emily Davis</strong>" in card
    assert daughter.display_phone in card and f"tel:+{daughter.phone_number}" in card
    assert "Walker" in card and "Knock loudly" in card and "Gate code 4411" in card
    assert "No driver found" in card
    assert "Wheelchair" in html[html.index('data-ride-id="second"') :]


def test_a_driver_waiting_too_long_at_the_pickup_is_flagged(htmx, make_driver, passenger, settings):
    """A driver at the pickup past NO_SHOW_WAIT_MIN is flagged as a possible no-show."""
    driver = make_driver(*CAPE_TOWN)
    ride = book(passenger)
    assert ride.driver_id == driver.pk
    trips.ride_driver_arrived(ride=ride, driver=driver)
    settings.NO_SHOW_WAIT_MIN = 5
    html = htmx.get("/console/regions/active-rides/").content.decode()
    flag = re.search(r'<span class="pill pill-warn"[^>]*>Waiting — possible no-show', html)
    assert flag and "hidden" in flag.group(0)
    Ride.objects.filter(pk=ride.pk).update(arrived_at=timezone.now() - timedelta(minutes=6))
    html = htmx.get("/console/regions/active-rides/").content.decode()
    flag = re.search(r'<span class="pill pill-warn"[^>]*>Waiting — possible no-show', html)
    assert flag and "hidden" not in flag.group(0)
    assert "is-waiting" in html


def test_events_and_drivers_regions_show_who_did_what(htmx, make_driver, passenger, dispatcher):
    """The feed names who assigned the driver; the drivers list shows their ride."""
    driver = make_driver(-26.2, 28.04, first_name="John", last_name="Doe")
    ride = book(passenger)
    matching.ride_assign(
        ride=ride, driver_id=driver.pk, actor=dispatcher, role="dispatcher", confirmed=True
    )
    events = htmx.get("/console/regions/events/").content.decode()
    assert "Driver assigned" in events and "Dana Dispatcher" in events and "(dispatcher)" in events
    drivers = htmx.get("/console/regions/drivers/").content.decode()
    row = drivers[drivers.index(f'id="driver-row-{driver.pk}"') :]
    assert "On trip" in row[:600] and ride.ride_id in row[:800]


def test_the_offline_list_says_when_it_is_cut_short(htmx, make_driver, monkeypatch):
    """Only the most recently seen offline drivers are listed, and the count says there are more."""
    monkeypatch.setattr(regions, "OFFLINE_DRIVERS_SHOWN", 2)
    make_driver(available=False)
    assert "Offline drivers (1)" in htmx.get("/console/regions/drivers/").content.decode()
    make_driver(available=False)
    make_driver(available=False)
    assert "Offline drivers (2+)" in htmx.get("/console/regions/drivers/").content.decode()


# --- assigning ----------------------------------------------------------------------


def test_candidates_are_available_verified_and_nearest_first(htmx, make_driver, passenger):
    """A ride's candidates are the available, verified drivers, nearest first."""
    ride = book(passenger)  # nobody online yet: it waits
    far = make_driver(CAPE_TOWN[0] + 0.2, CAPE_TOWN[1], first_name="Far")
    near = make_driver(CAPE_TOWN[0] + 0.01, CAPE_TOWN[1], first_name="Near")
    make_driver(CAPE_TOWN[0] + 0.005, CAPE_TOWN[1], verified=False, first_name="Unverified")
    make_driver(CAPE_TOWN[0] + 0.005, CAPE_TOWN[1], available=False, first_name="Resting")
    html = htmx.get(f"/console/rides/{ride.pk}/").content.decode()
    assert html.lstrip().startswith('<aside id="ride-panel"')
    assert re.findall(r'data-assign-driver="(\d+)"', html) == [str(near.pk), str(far.pk)]
    assert "1.1 km" in html and "22.2 km" in html
    assert "Unverified" not in html and "Resting" not in html


def test_wheelchair_rides_list_only_accessible_vehicles(htmx, make_driver, passenger):
    """A wheelchair ride offers only wheelchair-accessible vehicles to choose from."""
    ride = book(passenger, ride_id="wc", needs_wheelchair=True, at=(-34.5, 19.5))
    sedan = make_driver(-34.5, 19.51, first_name="Sedan")
    van = make_driver(-34.5, 19.6, vehicle_type=VehicleType.WHEELCHAIR_ACCESSIBLE, first_name="Van")
    html = htmx.get(f"/console/rides/{ride.pk}/").content.decode()
    assert re.findall(r'data-assign-driver="(\d+)"', html) == [str(van.pk)]
    assert sedan.get_full_name() not in html


def test_assigning_through_the_console_records_the_dispatcher(
    htmx, make_driver, passenger, dispatcher
):
    """A console assignment goes through the service, in the dispatcher's name."""
    ride = book(passenger)
    driver = make_driver(*CAPE_TOWN)
    response = htmx.post(
        f"/console/rides/{ride.pk}/assign/",
        {"driver_id": driver.pk, "version": ride.version},
    )
    html = response.content.decode()
    assert response.status_code == 200
    ride.refresh_from_db()
    assert ride.status == RideStatus.ASSIGNED and ride.driver_id == driver.pk
    event = ride.events.order_by("-version").first()
    assert (event.kind, event.actor, event.actor_role) == ("assigned", dispatcher, "dispatcher")
    assert "is now assigned" in html
    # The panel alone: the board's regions follow through the console socket.
    assert html.lstrip().startswith('<aside id="ride-panel"') and "hx-swap-oob" not in html
    assert DriverState.objects.get(driver=driver).status == DriverStatus.ON_TRIP


def test_a_driver_taken_meanwhile_is_reported_inline(htmx, make_driver, passenger, make_user):
    """A driver taken since the panel opened is an inline error; nothing is written."""
    driver = make_driver(*CAPE_TOWN)
    ride = book(passenger, at=(-34.5, 19.5))
    other = book(make_user("passenger"), ride_id="other")  # takes `driver`
    assert other.driver_id == driver.pk
    events_before = RideEvent.objects.count()
    response = htmx.post(
        f"/console/rides/{ride.pk}/assign/", {"driver_id": driver.pk, "version": ride.version}
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert 'class="notice notice-error"' in html
    assert "no longer available" in html
    assert RideEvent.objects.count() == events_before
    ride.refresh_from_db()
    assert ride.status == RideStatus.SEARCHING


def test_a_ride_that_changed_since_it_was_shown_is_not_assigned_blindly(
    htmx, make_driver, passenger, dispatcher
):
    """A ride that changed since the panel showed it is not assigned over the change."""
    ride = book(passenger, at=(-34.5, 19.5))
    first = make_driver(-34.5, 19.51)
    second = make_driver(-34.5, 19.52)
    seen = ride.version
    matching.ride_assign(ride=ride, driver_id=first.pk, actor=dispatcher, role="dispatcher")
    response = htmx.post(
        f"/console/rides/{ride.pk}/assign/", {"driver_id": second.pk, "version": seen}
    )
    assert "changed while you were looking" in response.content.decode()
    ride.refresh_from_db()
    assert ride.driver_id == first.pk


def test_reassigning_releases_the_previous_driver(htmx, make_driver, passenger, dispatcher):
    """Reassigning records who had the ride and frees that driver."""
    first = make_driver(*CAPE_TOWN)
    ride = book(passenger)
    assert ride.driver_id == first.pk
    second = make_driver(CAPE_TOWN[0] + 0.01, CAPE_TOWN[1])
    panel = htmx.get(f"/console/rides/{ride.pk}/").content.decode()
    assert "Reassign to another driver" in panel
    assert re.findall(r'data-assign-driver="(\d+)"', panel) == [str(second.pk)]
    htmx.post(
        f"/console/rides/{ride.pk}/assign/", {"driver_id": second.pk, "version": ride.version}
    )
    ride.refresh_from_db()
    assert ride.driver_id == second.pk
    event = ride.events.order_by("-version").first()
    assert (event.kind, event.actor) == ("reassigned", dispatcher)
    assert event.payload["previous_driver_id"] == first.pk
    assert DriverState.objects.get(driver=first).status == DriverStatus.AVAILABLE


def test_cancelling_needs_a_reason_and_records_the_dispatcher(
    htmx, make_driver, passenger, dispatcher
):
    """A dispatcher's cancel needs a reason, is recorded in their name, frees the driver."""
    driver = make_driver(*CAPE_TOWN)
    ride = book(passenger)
    response = htmx.post(f"/console/rides/{ride.pk}/cancel/", {"version": ride.version})
    assert "Give a reason" in response.content.decode()
    ride.refresh_from_db()
    assert ride.status == RideStatus.ASSIGNED
    response = htmx.post(
        f"/console/rides/{ride.pk}/cancel/",
        {"version": ride.version, "reason": "Passenger asked to cancel"},
    )
    assert "is cancelled" in response.content.decode()
    ride.refresh_from_db()
    assert ride.status == RideStatus.CANCELLED
    assert (ride.cancelled_by, ride.cancel_reason) == ("dispatcher", "Passenger asked to cancel")
    event = ride.events.order_by("-version").first()
    assert (event.kind, event.actor, event.actor_role) == ("cancelled", dispatcher, "dispatcher")
    assert DriverState.objects.get(driver=driver).status == DriverStatus.AVAILABLE


def test_a_caregiver_only_invited_is_marked_so_wherever_the_ride_shows(
    htmx, make_driver, make_user, passenger, settings
):
    """
    A dispatcher about to phone a passenger's caregivers sees, on the ride
    panel and on a ride in trouble as on a waiting card, which of them has
    not accepted yet (such a link grants nothing).
    """
    settings.NO_SHOW_WAIT_MIN = 5
    invited = make_user("caregiver", first_name="Ivy", last_name="Invited")
    CaregiverLink.objects.create(passenger=passenger, caregiver=invited, status=LinkStatus.INVITED)
    driver = make_driver(*CAPE_TOWN)
    ride = book(passenger)
    trips.ride_driver_arrived(ride=ride, driver=driver)
    panel = htmx.get(f"/console/rides/{ride.pk}/").content.decode()
    trouble = htmx.get("/console/regions/trouble/").content.decode()
    for html in (panel, trouble):
        caregivers = html[html.index('class="caregivers"') :]
        caregivers = caregivers[: caregivers.index("</ul>")]
        assert "Ivy Invited" in caregivers and "(family, invited)" in caregivers


def test_a_panel_refreshed_after_a_change_elsewhere_says_so(htmx, passenger):
    """A panel refreshed from an older version says the ride changed, at the new version."""
    ride = book(passenger)
    html = htmx.get(f"/console/rides/{ride.pk}/?seen={ride.version - 1}").content.decode()
    assert "changed on another console" in html
    assert f'data-ride-version="{ride.version}"' in html


def test_a_panel_refreshed_at_the_version_it_showed_says_nothing(htmx, passenger):
    """A refresh that finds the ride as it was (a reconnect, say) adds no notice."""
    ride = book(passenger)
    for seen in (ride.version, "junk"):
        html = htmx.get(f"/console/rides/{ride.pk}/?seen={seen}").content.decode()
        assert "changed on another console" not in html
        assert f'data-ride-version="{ride.version}"' in html


def test_a_malformed_seen_version_is_ignored_not_a_crash(htmx, passenger):
    """A `seen` that is no usable number (a superscript digit, 5000 digits): the panel as is."""
    ride = book(passenger)
    for seen in ("\u00b2", "9" * 5000):
        response = htmx.get(f"/console/rides/{ride.pk}/?seen={seen}")
        assert response.status_code == 200
        assert f'data-ride-version="{ride.version}"' in response.content.decode()


def test_assigning_a_driver_id_beyond_any_key_is_an_inline_error(htmx, passenger):
    """A driver id no database key can hold is the form's error, not a server error."""
    ride = book(passenger)
    response = htmx.post(
        f"/console/rides/{ride.pk}/assign/", {"driver_id": "9" * 30, "version": ride.version}
    )
    assert response.status_code == 200
    assert "Choose a driver from the list." in response.content.decode()
    ride.refresh_from_db()
    assert ride.status == RideStatus.SEARCHING


def test_a_pending_ride_can_be_closed_as_unfulfilled(htmx, passenger, dispatcher):
    """A dispatcher can give up on a waiting ride: unfulfilled, in their name."""
    ride = book(passenger)
    htmx.post(
        f"/console/rides/{ride.pk}/unfulfilled/",
        {"version": ride.version, "reason": "No accessible vehicle nearby"},
    )
    ride.refresh_from_db()
    assert ride.status == RideStatus.UNFULFILLED
    assert ride.events.order_by("-version").first().actor == dispatcher


def test_cancelling_an_ended_ride_is_an_inline_error(htmx, passenger):
    """Cancelling a ride that has ended is an error in the panel, not a crash."""
    ride = book(passenger)
    rides.ride_cancel(ride=ride, actor=passenger, cancelled_by="passenger")
    ride.refresh_from_db()
    response = htmx.post(
        f"/console/rides/{ride.pk}/cancel/", {"version": ride.version, "reason": "again"}
    )
    assert response.status_code == 200
    assert 'class="notice notice-error"' in response.content.decode()


def test_without_htmx_actions_redirect_back_to_the_ride(console, make_driver, passenger):
    """Without htmx an assignment redirects to the ride's full page, with the notice."""
    ride = book(passenger)
    driver = make_driver(*CAPE_TOWN)
    response = console.post(
        f"/console/rides/{ride.pk}/assign/", {"driver_id": driver.pk, "version": ride.version}
    )
    assert response.status_code == 302
    assert response["Location"] == f"/console/rides/{ride.pk}/"
    page = console.get(response["Location"]).content.decode()
    assert "<html" in page and "is now assigned" in page and 'id="ride-panel"' in page


def test_only_dispatchers_may_assign(make_staff, support, make_driver, passenger):
    """Support staff cannot assign a driver (403); the ride keeps waiting."""
    ride = book(passenger)
    driver = make_driver(*CAPE_TOWN)
    client = Client()
    staff_login(client, support)
    response = client.post(
        f"/console/rides/{ride.pk}/assign/", {"driver_id": driver.pk, "version": ride.version}
    )
    assert response.status_code == 403
    ride.refresh_from_db()
    assert ride.status == RideStatus.SEARCHING


# --- caregiver links ----------------------------------------------------------------


def test_support_staff_manage_links_but_do_not_see_the_board(support):
    """Support staff reach the caregiver links page but not the board."""
    client = Client()
    staff_login(client, support)
    assert client.get(BOARD).status_code == 403
    page = client.get("/console/links/")
    assert page.status_code == 200
    assert b"Link a caregiver to a passenger" in page.content


def test_creating_a_link_invites_the_caregiver(htmx, passenger, make_user, dispatcher):
    """A link made in the console is an invitation, with its permissions and inviter."""
    carer = make_user("caregiver", first_name="Emily", last_name="Davis")
    response = htmx.post(
        "/console/links/new/",
        {
            "passenger_phone": passenger.display_phone,
            "caregiver_phone": "0" + carer.phone_number[2:],
            "relationship_type": "family",
            "can_book_rides": "on",
            "can_receive_notifications": "on",
            "notes": "Daughter",
        },
    )
    html = response.content.decode()
    link = CaregiverLink.objects.get(passenger=passenger, caregiver=carer)
    assert link.status == LinkStatus.INVITED
    assert (link.can_book_rides, link.can_view_location, link.can_receive_notifications) == (
        True,
        False,
        True,
    )
    assert link.invited_by == dispatcher
    assert "is invited to care for" in html
    assert '<section id="link-list"' in html and 'hx-swap-oob="true"' in html


def test_link_errors_show_inline(htmx, passenger):
    """A number nobody uses yet is invited all the same; bad fields show beside the fields."""
    response = htmx.post(
        "/console/links/new/",
        {
            "passenger_phone": passenger.phone_number,
            "caregiver_phone": "+27 82 999 0000",
            "relationship_type": "family",
        },
    )
    assert response.status_code == 200
    assert "+27 82 999 0000 is invited to care for" in response.content.decode()
    response = htmx.post(
        "/console/links/new/",
        {"passenger_phone": "+27 82 000 0000", "caregiver_phone": "x", "relationship_type": "x"},
    )
    html = response.content.decode()
    assert "No passenger has this phone number" in html and 'class="field-error"' in html


def test_revoking_a_link_goes_through_the_service(htmx, passenger, make_user, make_link):
    """Revoking a link is audited; revoking it again says it already is."""
    carer = make_user("caregiver")
    link = make_link(passenger, carer)
    response = htmx.post(f"/console/links/{link.pk}/revoke/")
    link.refresh_from_db()
    assert link.status == LinkStatus.REVOKED
    assert "no longer cares for" in response.content.decode()
    from people.models import AuditEvent

    assert AuditEvent.objects.filter(action="link.revoked", subject_id=str(link.pk)).exists()
    again = htmx.post(f"/console/links/{link.pk}/revoke/")
    assert "already revoked" in again.content.decode()


def test_unverified_drivers_are_not_on_the_live_map(console, make_driver):
    """A driver support has not verified can take no ride, so the map leaves them out."""
    shown = make_driver(-26.2, 28.04)
    hidden = make_driver(-26.21, 28.04)
    DriverState.objects.filter(driver=hidden).update(status=DriverStatus.AVAILABLE)
    hidden.driver_profile.is_verified = False
    hidden.driver_profile.save()
    ids = {row.driver.pk for row in regions.driver_rows()}
    assert shown.pk in ids and hidden.pk not in ids
