"""
The reports on a known day: on-time pickups (per day and per driver),
no-shows and late cancels, trips per vehicle-hour, ride times against the
maximum; the page and its CSV.
"""

from __future__ import annotations

import codecs
import csv
import io
from datetime import timedelta

import pytest

from dispatch import reports
from dispatch.models import CancelledBy, Ride, RideStatus, Run
from dispatch.planning import services
from people.models import User, VehicleType
from tests.dispatch.test_plan_services import book, shift_for, tomorrow


@pytest.fixture
def known_day(db, passenger, make_user, make_driver, settings):
    """
    Tomorrow, planned and published, then as it went: Sarah picked up on
    time, Bob late and over his maximum ride time, Wanda a no-show (the
    driver on time), Nora cancelled 30 minutes before, Olga three hours before.
    """
    settings.PLAN_EXPLORATION = 0
    settings.LATE_CANCEL_MIN = 60
    john = make_driver(first_name="John", last_name="Doe")
    mike = make_driver(first_name="Mike", vehicle_type=VehicleType.WHEELCHAIR_ACCESSIBLE)
    shift_for(john)
    shift_for(mike, wheelchair=2)
    people = [passenger] + [
        make_user("passenger", first_name=n) for n in ("Bob", "Wanda", "Nora", "Olga")
    ]
    booked = [book(p, 8 + n, 0) for n, p in enumerate(people)]
    plan = services.plan_day(service_date=tomorrow(), timeout_s=5)
    services.plan_publish(plan=plan)
    rides = {
        p.first_name: Ride.objects.select_related("run").get(pk=r.pk)
        for p, r in zip(people, booked, strict=True)
    }

    def went(name, status, *, arrived=None, ride_min=None, cancelled_before=None):
        ride = rides[name]
        end = ride.confirmed_window_end
        fields = {"status": status, "driver_id": ride.run.driver_id}
        if arrived is not None:
            fields["arrived_at"] = end + timedelta(minutes=arrived)
            fields["started_at"] = fields["arrived_at"] + timedelta(minutes=2)
        if ride_min is not None:
            fields["ended_at"] = fields["started_at"] + timedelta(minutes=ride_min)
        if cancelled_before is not None:
            fields.update(
                driver_id=None,
                cancelled_by=CancelledBy.PASSENGER,
                ended_at=ride.confirmed_pickup_at - timedelta(minutes=cancelled_before),
            )
        Ride.objects.filter(pk=ride.pk).update(**fields)

    went("Sarah", RideStatus.COMPLETED, arrived=-5, ride_min=8)
    went("Bob", RideStatus.COMPLETED, arrived=10, ride_min=200)
    went("Wanda", RideStatus.NO_SHOW, arrived=-20)
    went("Nora", RideStatus.CANCELLED, cancelled_before=30)
    went("Olga", RideStatus.CANCELLED, cancelled_before=180)
    runs = Run.objects.filter(plan=plan, departs_at__isnull=False)
    hours = sum((r.returns_at - r.departs_at).total_seconds() for r in runs) / 3600
    return {"rides": rides, "hours": hours, "john": john, "mike": mike}


@pytest.mark.django_db
def test_the_measures_of_a_known_day(known_day):
    """A day's report counts pickups, on-time, no-shows, late cancels and vehicle hours right."""
    report = reports.report(tomorrow(), tomorrow())
    (day,) = report.days
    assert day.label == tomorrow().isoformat()
    figures = day.row()
    assert figures["pickups"] == 3 and figures["on_time"] == 2
    assert figures["on_time_pct"] == 66.7
    assert figures["no_shows"] == 1 and figures["late_cancels"] == 1
    assert figures["completed"] == 2
    assert figures["vehicle_hours"] == round(known_day["hours"], 2) > 0
    assert figures["trips_per_vehicle_hour"] == round(2 / known_day["hours"], 2)
    assert figures["over_max"] == 1 and figures["longest_share_of_max"] > 1
    assert figures["mean_ride_min"] == pytest.approx((8 + 200) / 2, abs=0.1)
    assert report.total.row() == figures


@pytest.mark.django_db
def test_on_time_is_counted_per_driver(known_day):
    """The report credits each driver with their own on-time pickups."""
    rides = known_day["rides"]
    report = reports.report(tomorrow(), tomorrow())
    by_driver = {m.label: m for m in report.drivers}
    expected: dict[str, list[bool]] = {}
    for name, on_time in (("Sarah", True), ("Bob", False), ("Wanda", True)):
        driver = str(Ride.objects.get(pk=rides[name].pk).driver)
        expected.setdefault(driver, []).append(on_time)
    for driver, flags in expected.items():
        assert by_driver[driver].pickups == len(flags)
        assert by_driver[driver].on_time == sum(flags)


@pytest.mark.django_db
def test_a_day_outside_the_range_is_not_counted(known_day):
    """The report leaves out days outside the range asked for."""
    after = tomorrow() + timedelta(days=1)
    report = reports.report(after, after + timedelta(days=3))
    assert report.days == [] and report.total.pickups == 0


@pytest.mark.django_db
def test_the_page_and_the_csv_show_the_day(console, known_day):
    """The reports page and its CSV download show the same figures for the day."""
    day = tomorrow().isoformat()
    page = console.get(f"/console/reports/?from={day}&to={day}").content.decode()
    assert "66.7" in page and f'<th scope="row">{day}</th>' in page
    response = console.get(f"/console/reports.csv?from={day}&to={day}")
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    day_row = next(r for r in rows if r["scope"] == "day")
    assert day_row["name"] == day and day_row["on_time"] == "2" and day_row["pickups"] == "3"
    assert day_row["late_cancels"] == "1" and day_row["no_shows"] == "1"
    assert {r["scope"] for r in rows} == {"total", "day", "driver"}


@pytest.mark.django_db
def test_bad_dates_are_said_in_words(console):
    """A report asked with a bad date says how to write one."""
    page = console.get("/console/reports/?from=yesterday").content.decode()
    assert "Dates are YYYY-MM-DD." in page
    # A week before the calendar's first days is no date either.
    page = console.get("/console/reports/?to=0001-01-03").content.decode()
    assert "Dates are YYYY-MM-DD." in page
    assert console.get("/console/reports.csv?to=0001-01-03").status_code == 200


@pytest.mark.django_db
def test_runs_of_a_plan_never_published_are_no_vehicle_hours(passenger, make_driver, settings):
    """A draft plan's runs took nobody anywhere: they count no hours."""
    settings.PLAN_EXPLORATION = 0
    shift_for(make_driver())
    book(passenger, 8, 0)
    plan = services.plan_day(service_date=tomorrow(), timeout_s=5)
    assert plan.status == "draft" and plan.runs.filter(departs_at__isnull=False).exists()
    assert reports.report(tomorrow(), tomorrow()).total.vehicle_hours == 0
    services.plan_publish(plan=plan)
    assert reports.report(tomorrow(), tomorrow()).total.vehicle_hours > 0


@pytest.mark.django_db
def test_an_arrive_by_ride_is_late_cancelled_against_its_latest_pickup(passenger, settings):
    """Not against the appointment: the pickup is the drive and boarding before it."""
    from dispatch.scheduling import Needs, Place, ride_book_ahead
    from tests.conftest import JHB
    from tests.dispatch.test_plan_services import at

    settings.LATE_CANCEL_MIN = 60
    ride = ride_book_ahead(
        passenger=passenger,
        booked_by=passenger,
        pickup=Place(JHB[0] + 0.01, JHB[1], "Home"),
        dropoff=Place(JHB[0] + 0.02, JHB[1] + 0.01, "Clinic"),
        appointment_at=at(10, 0),
        needs=Needs(),
    )
    cancelled = {"status": RideStatus.CANCELLED, "cancelled_by": CancelledBy.PASSENGER}
    Ride.objects.filter(pk=ride.pk).update(**cancelled, ended_at=at(8, 55))
    assert reports.is_late_cancel(Ride.objects.get(pk=ride.pk))
    Ride.objects.filter(pk=ride.pk).update(ended_at=at(7, 30))
    assert not reports.is_late_cancel(Ride.objects.get(pk=ride.pk))


@pytest.mark.django_db
def test_a_driver_name_is_no_formula_in_the_csv(console, known_day):
    """A name a spreadsheet would run as a formula (or a phone number for a name) stays text."""
    day = tomorrow().isoformat()

    def driver_names():
        response = console.get(f"/console/reports.csv?from={day}&to={day}")
        rows = csv.DictReader(io.StringIO(response.content.decode("utf-8-sig")))
        return [r["name"] for r in rows if r["scope"] == "driver"]

    formula = '=HYPERLINK("http://evil.example","x")'
    User.objects.filter(user_type="driver").update(first_name=formula, last_name="")
    assert set(driver_names()) == {"'" + formula}
    User.objects.filter(user_type="driver").update(first_name="", last_name="")
    names = driver_names()
    assert names and all(name.startswith("'+") for name in names)


@pytest.mark.django_db
def test_the_csv_says_it_is_utf8_so_spreadsheets_keep_accents(console, known_day):
    """A spreadsheet opening the file reads "Anél" as written (it takes UTF-8 only with a BOM)."""
    User.objects.filter(user_type="driver").update(first_name="Anél", last_name="Müller")
    day = tomorrow().isoformat()
    content = console.get(f"/console/reports.csv?from={day}&to={day}").content
    assert content.startswith(codecs.BOM_UTF8)
    rows = csv.DictReader(io.StringIO(content.decode("utf-8-sig")))
    assert "Anél Müller" in {r["name"] for r in rows if r["scope"] == "driver"}
