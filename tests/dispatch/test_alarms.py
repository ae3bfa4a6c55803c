"""
The active-trip watchdog (a driver silent, or standing still away from the
pickup and the drop-off) and a passenger's `sos`: alarms to the consoles
and to the caregivers who may receive notifications.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from dispatch import alarms, broadcast, drivers, trips
from dispatch.geo import Point
from dispatch.locations import location_store
from dispatch.models import Alarm, AlarmKind, Ride, RideStatus
from tests.conftest import db, receive_until, token_for
from tests.dispatch.test_manifest import first_aboard, run_day, today  # noqa: F401
from tests.dispatch.test_rides_api import JHB, book
from tests.dispatch.test_waiting import IN_MEMORY, Ear

# Between the pickup (JHB) and the drop-off (JHB + 0.03, 0.03): near neither.
HALFWAY = (JHB[0] + 0.015, JHB[1] + 0.015)


@pytest.fixture
def on_the_way(
    passenger, make_driver, make_user, make_link, django_capture_on_commit_callbacks, settings
):
    """Sarah on board, her driver reporting; Emily is notified."""
    settings.CHANNEL_LAYERS = IN_MEMORY
    make_driver(*JHB)
    emily = make_user("caregiver")
    make_link(passenger, emily, can_receive_notifications=True)
    ride = book(passenger, "trip-9")
    for step in (trips.ride_driver_arrived, trips.ride_start):
        ride = step(ride=Ride.objects.get(pk=ride.pk), driver=ride.driver)
    ears = {
        "emily": Ear(broadcast.caregiver_group(emily.pk)),
        "console": Ear(broadcast.CONSOLE_GROUP),
        "passenger": Ear(broadcast.passenger_group(passenger.pk)),
        "driver": Ear(broadcast.driver_group(ride.driver_id)),
    }
    return Ride.objects.get(pk=ride.pk), ears


def report(driver_id: int, at: tuple[float, float], seen: float) -> None:
    location_store().put(driver_id, Point(at[0], at[1], seen))


@pytest.mark.django_db
def test_a_silent_driver_raises_one_alarm(on_the_way, settings, django_capture_on_commit_callbacks):
    """Past WATCHDOG_SILENT_MIN without a report: an alarm, once, to the console and Emily only."""
    ride, ears = on_the_way
    settings.WATCHDOG_SILENT_MIN = 3
    t0 = time.time()
    report(ride.driver_id, HALFWAY, t0)
    assert alarms.watch_trips(now=t0 + 170) == []
    with django_capture_on_commit_callbacks(execute=True):
        [alarm] = alarms.watch_trips(now=t0 + 190)
    assert alarm.kind == AlarmKind.SILENT and alarm.ride_id == ride.pk and alarm.is_open
    assert alarms.watch_trips(now=t0 + 250) == []
    assert Alarm.objects.count() == 1
    event = ride.events.order_by("version").last()
    assert event.kind == "alarm_raised" and event.payload["kind"] == "silent"
    [heard] = ears["emily"].heard()
    assert heard["message"]["type"] == "alarm" and heard["message"]["kind"] == "silent"
    assert heard["message"]["event"] == "alarm_raised"
    assert ears["passenger"].heard() == [] and ears["driver"].heard() == []
    assert [m["kind"] for m in ears["console"].heard()] == ["alarm_raised"]


@pytest.mark.django_db
def test_silence_follows_the_staleness_rule_demo_drivers_never_go_silent(on_the_way, settings):
    """A placed position (a demo driver) never turns stale, so never silent (dispatch.drivers)."""
    ride, _ = on_the_way
    settings.WATCHDOG_SILENT_MIN = 3
    location_store().put(ride.driver_id, Point(*HALFWAY, time.time(), reported=False))
    assert alarms.watch_trips(now=time.time() + 3600) == []
    assert drivers.stale_at(Point(0, 0, 100.0), after_s=180) == 280.0


@pytest.mark.django_db
def test_a_driver_standing_still_away_from_the_stops_raises_an_alarm(on_the_way, settings):
    """Still for more than WATCHDOG_STOPPED_MIN halfway: an alarm; moving again resets it."""
    ride, _ = on_the_way
    settings.WATCHDOG_SILENT_MIN = 60
    settings.WATCHDOG_STOPPED_MIN = 10
    t0 = time.time()
    report(ride.driver_id, HALFWAY, t0)
    assert alarms.watch_trips(now=t0) == []
    report(ride.driver_id, HALFWAY, t0 + 300)
    assert alarms.watch_trips(now=t0 + 300) == []
    report(ride.driver_id, HALFWAY, t0 + 590)
    [alarm] = alarms.watch_trips(now=t0 + 610)
    assert alarm.kind == AlarmKind.STOPPED
    assert alarm.details["latitude"] == HALFWAY[0]
    # Moving on, then stopping again: a new stretch, a new alarm only after it is long.
    report(ride.driver_id, (HALFWAY[0] + 0.005, HALFWAY[1]), t0 + 700)
    assert alarms.watch_trips(now=t0 + 700) == []


@pytest.mark.django_db
def test_standing_still_at_the_drop_off_is_no_alarm(on_the_way, settings):
    ride, _ = on_the_way
    settings.WATCHDOG_STOPPED_MIN = 1
    t0 = time.time()
    dropoff = (ride.dropoff_latitude + 0.0005, ride.dropoff_longitude)
    report(ride.driver_id, dropoff, t0)
    alarms.watch_trips(now=t0)
    report(ride.driver_id, dropoff, t0 + 120)
    assert alarms.watch_trips(now=t0 + 120) == []


@pytest.mark.django_db
def test_a_driver_waiting_early_for_a_planned_pickup_is_no_alarm(passenger, make_driver, settings):
    """
    A run's driver, given the next rider early, waits where they are for the
    booked time: no alarm while they can still make it, one once they cannot.
    """
    settings.WATCHDOG_SILENT_MIN = 60
    settings.WATCHDOG_STOPPED_MIN = 10
    make_driver(*JHB)
    ride = book(passenger, "early-1")
    assert ride.status == RideStatus.ASSIGNED
    t0 = time.time()
    planned = datetime.fromtimestamp(t0 + 3600, tz=UTC)
    Ride.objects.filter(pk=ride.pk).update(confirmed_pickup_at=planned)
    for at in (t0, t0 + 300, t0 + 700):
        report(ride.driver_id, HALFWAY, at)
        assert alarms.watch_trips(now=at) == []
    # The pickup was due ten minutes from the start: now it cannot be made.
    due = datetime.fromtimestamp(t0 + 600, tz=UTC)
    Ride.objects.filter(pk=ride.pk).update(confirmed_pickup_at=due)
    report(ride.driver_id, HALFWAY, t0 + 710)
    [alarm] = alarms.watch_trips(now=t0 + 710)
    assert alarm.kind == AlarmKind.STOPPED


# --- sos -------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_a_passengers_sos_raises_an_alarm_and_the_socket_stays_up(
    ws, passenger, make_driver, make_user, make_link
):
    """
    sos_received to the passenger; the alarm to Emily, not to Tom (who may
    see the map but not be notified); a caregiver's sos is refused.
    """
    await db(make_driver, *JHB)
    emily, tom = await db(make_user, "caregiver"), await db(make_user, "caregiver")
    await db(make_link, passenger, emily, can_receive_notifications=True)
    await db(make_link, passenger, tom, can_receive_notifications=False, can_view_location=True)
    await db(book, passenger, "sos-1")
    follower = await ws("/ws/caregiver/", token=await db(token_for, emily))
    await receive_until(follower, "connection_established")
    muted = await ws("/ws/caregiver/", token=await db(token_for, tom))
    await receive_until(muted, "connection_established")
    comm = await ws("/ws/ride/sos-1/", token=await db(token_for, passenger))
    await receive_until(comm, "ride_status")
    await comm.send_json_to({"type": "sos"})
    reply, _ = await receive_until(comm, "sos_received")
    alarm = await db(Alarm.objects.get, pk=reply["alarm_id"])
    assert alarm.kind == AlarmKind.SOS and alarm.raised_by_id == passenger.pk
    told, _ = await receive_until(follower, "alarm")
    assert told["kind"] == "sos" and told["event"] == "alarm_raised"
    # A second sos while the first is open: the same alarm, nothing new.
    await comm.send_json_to({"type": "sos"})
    again, _ = await receive_until(comm, "sos_received")
    assert again["alarm_id"] == alarm.pk
    # Only the passenger sends one; the caregiver's socket hears why and stays up.
    theirs = await ws("/ws/ride/sos-1/", token=await db(token_for, emily))
    await receive_until(theirs, "ride_status")
    await theirs.send_json_to({"type": "sos"})
    error, _ = await receive_until(theirs, "error")
    assert error["code"] == "forbidden"
    await theirs.send_json_to({"type": "ping"})
    await receive_until(theirs, "pong")
    assert await db(Alarm.objects.count) == 1
    assert await muted.receive_nothing(timeout=0.3)


@pytest.mark.django_db(transaction=True)
async def test_an_sos_after_the_ride_says_where_the_ride_is(ws, passenger, make_driver):
    """
    Refused as `invalid_state`, with `current_status` and `version` as every
    such refusal; nothing raised, and the socket stays up.
    """
    driver = await db(make_driver, *JHB)
    ride = await db(book, passenger, "sos-late")
    for step in (trips.ride_driver_arrived, trips.ride_start, trips.ride_complete):
        ride = await db(step, ride=await db(Ride.objects.get, pk=ride.pk), driver=driver)
    comm = await ws("/ws/ride/sos-late/", token=await db(token_for, passenger))
    await receive_until(comm, "ride_status")
    await comm.send_json_to({"type": "sos"})
    error, _ = await receive_until(comm, "error")
    assert error["code"] == "invalid_state"
    assert (error["current_status"], error["version"]) == ("completed", ride.version)
    await comm.send_json_to({"type": "ping"})
    await receive_until(comm, "pong")
    assert not await db(Alarm.objects.exists)


@pytest.mark.django_db
def test_a_run_driver_boarding_the_next_rider_raises_no_alarm_on_the_rider_on_board(
    run_day, settings
):
    """
    John's run: Sarah on board, then the run reaches Bob, and John waits at
    Bob's door and boards him (11 minutes). He stands at a stop of a ride he
    holds the whole time: no `stopped` alarm on Sarah's ride.
    """
    settings.WATCHDOG_STOPPED_MIN = 10
    settings.WATCHDOG_SILENT_MIN = 3
    driver = run_day["driver"]
    first, second_id = first_aboard(run_day)
    # Bob lives 3 km east of Sarah's stops.
    bob_home = (first.pickup_latitude, first.pickup_longitude + 0.03)
    Ride.objects.filter(ride_id=second_id).update(
        pickup_latitude=bob_home[0], pickup_longitude=bob_home[1]
    )
    second = Ride.objects.select_related("run__driver").get(ride_id=second_id)
    trips.ride_run_reached(ride=second)
    trips.ride_driver_arrived(ride=Ride.objects.with_people().get(pk=second.pk), driver=driver)
    assert Ride.objects.get(pk=first.pk).status == RideStatus.IN_PROGRESS

    t0 = time.time()
    location_store().put(driver.pk, Point(*bob_home, t0))
    assert alarms.watch_trips(now=t0) == []
    # Bob comes out at minute 6, is boarded, the trip starts at minute 9.
    trips.ride_start(ride=Ride.objects.with_people().get(pk=second.pk), driver=driver)
    location_store().put(driver.pk, Point(*bob_home, t0 + 660))
    raised = alarms.watch_trips(now=t0 + 660)
    on_board = Ride.objects.get(pk=first.pk).ride_id
    assert [(Ride.objects.get(pk=a.ride_id).ride_id == on_board, a.kind) for a in raised] == []
