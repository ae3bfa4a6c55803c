"""
The console's day view: plan tomorrow, runs as lanes with their stops,
unassigned trips with their reasons, moving and locking trips, publishing,
planning what remains, runs running late; dispatchers only; every change
audited as a PlanEvent with its actor.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from dispatch import rides, trips
from dispatch.geo import Point
from dispatch.locations import location_store
from dispatch.models import DayPlan, DriverState, PlanEvent, Ride, RideStatus, Stop
from dispatch.planning import day as on_the_day
from dispatch.planning import services
from people.models import VehicleType
from tests.conftest import JHB, staff_login
from tests.dispatch.test_plan_services import book, shift_for, tomorrow


@pytest.fixture
def booked(db, passenger, make_user, make_driver, settings):
    """Tomorrow: three trips and two drivers on shift; one trip no shift covers."""
    settings.PLAN_EXPLORATION = 0
    john = make_driver(first_name="John", last_name="Doe")
    mike = make_driver(first_name="Mike", vehicle_type=VehicleType.WHEELCHAIR_ACCESSIBLE)
    shift_for(john)
    shift_for(mike, wheelchair=2)
    bob = make_user("passenger", first_name="Bob", last_name="Rider")
    return {
        "john": john,
        "mike": mike,
        "rides": [
            book(passenger, 8, 0),
            book(bob, 8, 5),
            book(make_user("passenger", first_name="Wanda"), 9, 0, wheelchair=True),
            book(make_user("passenger", first_name="Nora", last_name="Night"), 21, 0),
        ],
    }


def url(suffix=""):
    return f"/console/day/{tomorrow().isoformat()}/{suffix}"


@pytest.mark.django_db
def test_the_day_link_goes_to_tomorrow(console):
    """The board links to the day plan, which opens on tomorrow."""
    response = console.get("/console/day/")
    assert response.status_code == 302 and response["Location"] == url()
    page = console.get("/console/")
    assert b'href="/console/day/"' in page.content


@pytest.mark.django_db
def test_support_staff_and_anonymous_visitors_cannot_use_the_day_view(
    booked, client, make_staff, support
):
    """Only dispatchers may see or change the day plan and the reports."""
    assert client.get(url()).status_code == 302
    assert client.post(url("plan/")).status_code == 302
    other = Client()
    staff_login(other, support)
    assert other.get(url()).status_code == 403
    assert other.post(url("plan/")).status_code == 403
    assert other.get("/console/reports/").status_code == 403
    assert not DayPlan.objects.exists()


@pytest.mark.django_db
def test_plan_tomorrow_shows_lanes_and_the_unassigned_with_their_reasons(htmx, booked):
    """Planning tomorrow shows each run's lane and every trip left unassigned with its reason."""
    page = htmx.get(url())
    assert b"Plan tomorrow" in page.content and b"The day is not planned yet." in page.content
    response = htmx.post(url("plan/"))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="day-plan"' in html and "<html" not in html
    assert "3 of 4 trips" in html
    plan = DayPlan.objects.get(service_date=tomorrow())
    for run in plan.runs.all():
        if run.stops.exists():
            assert f'id="run-{run.pk}"' in html
    assert html.count('class="stop stop-') == Stop.objects.count() == 6
    # The trip no shift covers is listed with why, in words.
    assert "Nora Night" in html and "No shift that could carry this trip" in html
    event = PlanEvent.objects.get(plan=plan, kind="planned")
    assert event.actor.first_name == "Dana"


@pytest.mark.django_db
def test_move_lock_and_publish_are_audited_with_the_dispatcher(htmx, booked, dispatcher):
    """Moving, locking and publishing a plan are each recorded with the dispatcher who did it."""
    htmx.post(url("plan/"))
    plan = DayPlan.objects.get(service_date=tomorrow())
    bob_ride = Ride.objects.get(pk=booked["rides"][1].pk)
    other = plan.runs.exclude(pk=bob_ride.run_id).get(
        driver=booked["mike"] if bob_ride.run.driver == booked["john"] else booked["john"]
    )
    response = htmx.post(
        url(f"trips/{bob_ride.pk}/move/"),
        {"to_run": other.pk, "version": plan.version},
    )
    assert f"Moved ride {bob_ride.ride_id}" in response.content.decode()
    bob_ride.refresh_from_db()
    assert bob_ride.run == other and not bob_ride.run_locked
    htmx.post(url(f"trips/{bob_ride.pk}/lock/"), {"locked": "1"})
    bob_ride.refresh_from_db()
    assert bob_ride.run_locked
    # Planning again keeps the locked trip on its run.
    htmx.post(url("plan/"))
    bob_ride.refresh_from_db()
    assert bob_ride.run == other
    plan.refresh_from_db()
    response = htmx.post(url("publish/"), {"version": plan.version})
    assert "Published" in response.content.decode()
    plan.refresh_from_db()
    assert plan.status == "published" and plan.published_by == dispatcher
    kinds = list(plan.events.order_by("version").values_list("kind", "actor"))
    assert [k for k, _ in kinds] == ["planned", "moved", "locked", "planned", "published"]
    assert {actor for _, actor in kinds} == {dispatcher.pk}
    assert Ride.objects.get(pk=bob_ride.pk).confirmed_pickup_at is not None


@pytest.mark.django_db
def test_a_trip_cancelled_after_planning_shows_so_and_offers_no_move(htmx, booked, passenger):
    """Its stops stay in the lane, marked with how the ride ended, with nothing to click."""
    htmx.post(url("plan/"))
    sarahs = Ride.objects.get(pk=booked["rides"][0].pk)
    rides.ride_cancel(ride=sarahs, actor=passenger, cancelled_by="passenger", reason="Unwell")
    html = htmx.get(url()).content.decode()
    assert f'id="move-{booked["rides"][1].pk}"' in html  # Bob's still moves
    assert f'id="move-{sarahs.pk}"' not in html
    assert '<span class="pill">Cancelled</span>' in html


@pytest.mark.django_db
def test_a_stale_screen_and_an_impossible_move_are_refused_in_words(htmx, booked):
    """A plan changed meanwhile, or a move a vehicle cannot take, is refused in words."""
    htmx.post(url("plan/"))
    plan = DayPlan.objects.get(service_date=tomorrow())
    response = htmx.post(url("publish/"), {"version": plan.version - 1})
    assert "changed while you were looking" in response.content.decode()
    assert DayPlan.objects.get(pk=plan.pk).status == "draft"
    chair = Ride.objects.get(pk=booked["rides"][2].pk)
    john_run = plan.runs.get(driver=booked["john"])
    response = htmx.post(url(f"trips/{chair.pk}/move/"), {"to_run": john_run.pk})
    assert response.status_code == 200 and "cannot take" in response.content.decode()
    assert Ride.objects.get(pk=chair.pk).run.driver == booked["mike"]
    for not_a_run in ("abc", "²"):
        response = htmx.post(url(f"trips/{chair.pk}/move/"), {"to_run": not_a_run})
        assert "Choose a run" in response.content.decode()
    assert htmx.post(url("publish/"), {"version": "²"}).status_code == 200


@pytest.mark.django_db
def test_a_lock_from_a_stale_screen_is_refused(htmx, booked, dispatcher):
    """A trip moved meanwhile is not locked to a run the dispatcher never saw it on."""
    htmx.post(url("plan/"))
    plan = DayPlan.objects.get(service_date=tomorrow())
    bob_ride = Ride.objects.get(pk=booked["rides"][1].pk)
    html = htmx.get(url()).content.decode()
    lock_form = html[html.index(f'action="{url(f"trips/{bob_ride.pk}/lock/")}"') :]
    lock_form = lock_form[: lock_form.index("</form>")]
    assert f'name="version" value="{plan.version}"' in lock_form
    seen = plan.version
    # Another dispatcher moves Bob's trip to the other run meanwhile.
    other = plan.runs.exclude(pk=bob_ride.run_id).get()
    services.trip_move(ride=bob_ride, to_run=other, actor=dispatcher)
    response = htmx.post(url(f"trips/{bob_ride.pk}/lock/"), {"locked": "1", "version": seen})
    assert "changed while you were looking" in response.content.decode()
    assert not Ride.objects.get(pk=bob_ride.pk).run_locked


@pytest.mark.django_db
def test_moving_a_trip_off_every_run_lists_it_as_unassigned(htmx, booked):
    """A trip taken off its run is listed as unassigned, with why, and loses its stops."""
    htmx.post(url("plan/"))
    sarah_ride = Ride.objects.get(pk=booked["rides"][0].pk)
    response = htmx.post(url(f"trips/{sarah_ride.pk}/move/"), {"to_run": ""})
    html = response.content.decode()
    assert "to the unassigned list" in html
    assert html.index("A dispatcher took it off its run.") > html.index('id="unassigned-title"')
    sarah_ride.refresh_from_db()
    assert sarah_ride.run is None and not sarah_ride.stops.exists()


@pytest.mark.django_db
def test_moving_an_unassigned_trip_nowhere_keeps_its_reason(htmx, booked):
    """Move clicked on an unassigned trip left at "Unassigned" keeps why it is unassigned."""
    htmx.post(url("plan/"))
    plan = DayPlan.objects.get(service_date=tomorrow())
    nora_ride = booked["rides"][3]
    move = {"to_run": "", "version": plan.version}
    response = htmx.post(url(f"trips/{nora_ride.pk}/move/"), move)
    html = response.content.decode()
    assert "on no run" in html and "No shift that could carry this trip" in html
    assert "A dispatcher took it off its run." not in html
    assert DayPlan.objects.get(pk=plan.pk).version == plan.version
    assert not plan.events.filter(kind="moved").exists()


@pytest.mark.django_db
def test_a_change_made_while_the_day_is_planned_again_is_not_overwritten(
    htmx, booked, dispatcher, monkeypatch
):
    """A trip another dispatcher moves and locks while the solver runs stays where they put it."""
    htmx.post(url("plan/"))
    plan = DayPlan.objects.get(service_date=tomorrow())
    bob_ride = Ride.objects.get(pk=booked["rides"][1].pk)
    other = plan.runs.exclude(pk=bob_ride.run_id).get()
    solve = services.solve

    def solve_while_bob_is_moved(*args, **kwargs):
        solved = solve(*args, **kwargs)
        services.trip_move(ride=bob_ride, to_run=other, actor=dispatcher, lock=True)
        return solved

    monkeypatch.setattr(services, "solve", solve_while_bob_is_moved)
    response = htmx.post(url("plan/"))
    assert "changed while you were looking" in response.content.decode()
    bob_ride.refresh_from_db()
    assert bob_ride.run == other and bob_ride.run_locked
    assert bob_ride.stops.filter(run=other).count() == 2


@pytest.mark.django_db
def test_without_htmx_an_action_comes_back_to_the_page(console, booked):
    """The day plan's actions still work without htmx, coming back to the page."""
    response = console.post(url("plan/"))
    assert response.status_code == 302 and response["Location"] == url()
    page = console.get(url())
    assert b"Planned" in page.content


@pytest.mark.django_db
def test_planning_again_from_a_page_read_before_a_publish_is_refused(htmx, booked, dispatcher):
    """
    A page still showing the draft does not plan the day again once a
    colleague published it: the riders keep the windows they were told.
    """
    htmx.post(url("plan/"))
    plan = DayPlan.objects.get(service_date=tomorrow())
    page = htmx.get(url()).content.decode()
    form = page[page.index('data-action="plan"') - 400 : page.index('data-action="plan"')]
    assert f'name="version" value="{plan.version}"' in form
    services.plan_publish(plan=plan, actor=dispatcher)
    published = DayPlan.objects.get(pk=plan.pk)
    told = dict(Ride.objects.values_list("pk", "confirmed_pickup_at"))
    html = htmx.post(url("plan/"), {"version": plan.version}).content.decode()
    assert "changed while you were looking at it" in html
    assert DayPlan.objects.get(pk=plan.pk).version == published.version
    assert dict(Ride.objects.values_list("pk", "confirmed_pickup_at")) == told


@pytest.mark.django_db
def test_planning_a_day_a_colleague_planned_meanwhile_is_refused(htmx, booked):
    """Two dispatchers on an unplanned day: the second "Plan" asks to look again."""
    page = htmx.get(url()).content.decode()
    form = page[page.index('data-action="plan"') - 400 : page.index('data-action="plan"')]
    assert 'name="version" value="0"' in form
    htmx.post(url("plan/"), {"version": 0})
    plan = DayPlan.objects.get(service_date=tomorrow())
    html = htmx.post(url("plan/"), {"version": 0}).content.decode()
    assert "changed while you were looking at it" in html
    assert DayPlan.objects.get(pk=plan.pk).version == plan.version


@pytest.mark.django_db
def test_a_day_that_is_over_is_not_changed_from_a_page_left_open(htmx, booked, monkeypatch):
    """Past midnight, yesterday's page plans, publishes, moves and locks nothing."""
    htmx.post(url("plan/"))
    plan = DayPlan.objects.get(service_date=tomorrow())
    ride = Ride.objects.filter(service_date=tomorrow(), run__isnull=False).first()
    day_url = url()
    after = timezone.now() + timedelta(days=2)
    monkeypatch.setattr(timezone, "now", lambda: after)
    page = htmx.get(day_url).content.decode()
    assert 'data-action="publish"' not in page and 'data-action="move"' not in page
    for action, body in (
        ("plan/", {}),
        ("publish/", {"version": plan.version}),
        ("replan/", {}),
        (f"trips/{ride.pk}/move/", {"to_run": "", "version": plan.version}),
        (f"trips/{ride.pk}/lock/", {"locked": "1", "version": plan.version}),
    ):
        html = htmx.post(day_url + action, body).content.decode()
        assert "is over: its plan stays as it was." in html, action
    fresh = DayPlan.objects.get(pk=plan.pk)
    assert (fresh.version, fresh.status) == (plan.version, plan.status)
    assert Ride.objects.get(pk=ride.pk).run_id == ride.run_id


@pytest.mark.django_db
def test_a_bad_date_is_not_found(console):
    """A day plan for an impossible date, or one whose neighbours are not dates, is a 404."""
    for day in ("2026-13-40", "0001-01-01", "9999-12-31"):
        assert console.get(f"/console/day/{day}/").status_code == 404


@pytest.fixture
def today_plan(db, passenger, make_user, make_driver, settings):
    """Today, published: Sarah on John's run."""
    settings.PLAN_EXPLORATION = 0
    today = timezone.localdate()
    john = make_driver(first_name="John", last_name="Doe")
    shift_for(john, day=today, start=0, end=23)
    ride = book(passenger, 8, 0, day=today)
    plan = services.plan_day(service_date=today, timeout_s=5)
    services.plan_publish(plan=plan)
    return {"plan": plan, "john": john, "ride": Ride.objects.get(pk=ride.pk), "today": today}


@pytest.mark.django_db
def test_a_run_running_late_shows_its_minutes_late(console, today_plan, monkeypatch, settings):
    # The position noted from this (sync) test: the in-process store.
    """A run whose driver cannot make the pickup window shows as running late, by how much."""
    settings.LOCATION_STORE = "memory"
    ride = today_plan["ride"]
    pickup = ride.stops.get(kind="pickup")
    # The driver is far away with the window closing.
    now = ride.confirmed_window_end - timedelta(minutes=5)
    monkeypatch.setattr(timezone, "now", lambda: now)
    location_store().note(today_plan["john"].pk, Point(JHB[0] + 0.4, JHB[1], now.timestamp()))
    page = console.get(f"/console/day/{today_plan['today'].isoformat()}/").content.decode()
    assert "Running late" in page and "min late" in page
    assert f'id="run-{pickup.run_id}"' in page and "is-late" in page


@pytest.mark.django_db
def test_replanning_what_remains_is_audited(htmx, today_plan, dispatcher):
    """Replanning the rest of today is audited and leaves rides under way alone."""
    ride = Ride.objects.select_related("run__driver").get(pk=today_plan["ride"].pk)
    trips.ride_run_reached(ride=ride)
    response = htmx.post(f"/console/day/{today_plan['today'].isoformat()}/replan/")
    assert "Planned what remains" in response.content.decode()
    event = PlanEvent.objects.get(plan=today_plan["plan"], kind="replanned")
    assert event.actor == dispatcher
    assert Ride.objects.get(pk=ride.pk).status == RideStatus.ASSIGNED


@pytest.mark.django_db
def test_a_ride_its_run_has_reached_is_not_reassigned_from_the_board(htmx, booked, make_driver):
    """
    Its run's driver takes it: the panel offers no one and says why, and a
    forged assignment is refused, so no on-demand driver is claimed for a
    ride whose end would never free them.
    """
    htmx.post(url("plan/"))
    ride = Ride.objects.select_related("run__driver").get(pk=booked["rides"][0].pk)
    trips.ride_run_reached(ride=ride)
    ride.refresh_from_db()
    helper = make_driver(JHB[0] + 0.01, JHB[1], first_name="Help", last_name="Er")
    panel = htmx.get(f"/console/rides/{ride.pk}/").content.decode()
    assert "its run's driver takes it" in panel and "data-assign-driver" not in panel
    response = htmx.post(
        f"/console/rides/{ride.pk}/assign/",
        {"driver_id": helper.pk, "version": ride.version, "confirm": "1"},
    )
    assert "not reassigned here" in response.content.decode()
    ride.refresh_from_db()
    assert ride.driver_id == booked["john"].pk or ride.driver_id == booked["mike"].pk
    assert DriverState.objects.get(driver=helper).status != "on_trip"


@pytest.mark.django_db
def test_a_change_made_while_what_remains_is_planned_is_not_overwritten(
    htmx, today_plan, dispatcher, monkeypatch
):
    """A trip taken off its run while what remains is planned again stays off it."""
    ride = today_plan["ride"]
    # Early in the day: the trip is still ahead.
    now = ride.confirmed_pickup_at - timedelta(hours=2)
    monkeypatch.setattr(timezone, "now", lambda: now)
    solve = on_the_day.solve

    def solve_while_the_trip_is_moved_off(*args, **kwargs):
        solved = solve(*args, **kwargs)
        services.trip_move(ride=ride, to_run=None, actor=dispatcher)
        return solved

    monkeypatch.setattr(on_the_day, "solve", solve_while_the_trip_is_moved_off)
    response = htmx.post(f"/console/day/{today_plan['today'].isoformat()}/replan/")
    assert "changed while you were looking" in response.content.decode()
    ride.refresh_from_db()
    assert ride.run is None and not ride.stops.exists()


@pytest.mark.django_db
def test_replanning_from_a_page_read_before_a_colleagues_move_is_refused(
    htmx, today_plan, dispatcher, monkeypatch
):
    """
    "Re-plan what remains" from a page that still shows the run before a
    colleague took a trip off it asks to look again, instead of planning
    over the move.
    """
    ride = today_plan["ride"]
    now = ride.confirmed_pickup_at - timedelta(hours=2)
    monkeypatch.setattr(timezone, "now", lambda: now)
    day_url = f"/console/day/{today_plan['today'].isoformat()}/"
    page = htmx.get(day_url).content.decode()
    form = page[page.index('data-action="replan"') - 400 : page.index('data-action="replan"')]
    shown = DayPlan.objects.get(pk=today_plan["plan"].pk).version
    assert f'name="version" value="{shown}"' in form
    services.trip_move(ride=ride, to_run=None, actor=dispatcher)
    moved = DayPlan.objects.get(pk=today_plan["plan"].pk).version
    html = htmx.post(day_url + "replan/", {"version": shown}).content.decode()
    assert "changed while you were looking at it" in html
    assert DayPlan.objects.get(pk=today_plan["plan"].pk).version == moved
    ride.refresh_from_db()
    assert ride.run is None


@pytest.mark.django_db
def test_a_trip_booked_after_the_day_was_planned_says_so(htmx, booked, make_user):
    """A late booking is listed as new since the planning, not with a blank reason."""
    htmx.post(url("plan/"), {"version": 0})
    late = book(make_user("passenger", first_name="Lara", last_name="Late"), 10, 0)
    page = htmx.get(url()).content.decode()
    listed = page[page.index(f'id="unassigned-{late.pk}"') :]
    reason = listed[
        listed.index('<p class="reason">') : listed.index(
            "</p>", listed.index('<p class="reason">')
        )
    ]
    assert "Booked after the day was planned" in reason
