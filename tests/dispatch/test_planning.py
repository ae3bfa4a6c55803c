"""
The planner on small instances: every plan is verified (windows, shifts,
seats and wheelchair spaces, the wheelchair skill, locks, maximum ride
time), the verifier catches each kind of violation, the timetable holds
the ride limit, and the travel-time clients speak OSRM's and Valhalla's JSON.
"""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from bench.planning import synthetic_day
from dispatch.planning import problem as P
from dispatch.planning.insertion import insertion_plan
from dispatch.planning.problem import DROPOFF, PICKUP, Plan, Problem, Route, Trip, Vehicle
from dispatch.planning.rules import Rules
from dispatch.planning.solver import solve
from dispatch.planning.timetable import timetable
from dispatch.planning.travel import (
    Haversine,
    OsrmTable,
    RoutingUnavailable,
    ValhallaMatrix,
)
from dispatch.planning.verify import PlanViolation, verify, violations

RULES = Rules()
MIN = 60


def line(*minutes: int) -> list[list[int]]:
    """Places on a line, each `minutes` from the last: the matrix of their seconds."""
    at = [0]
    for m in minutes:
        at.append(at[-1] + m * MIN)
    return [[abs(a - b) for b in at] for a in at]


def trip(key, pickup, dropoff, d, *, at=None, arrive=None, wheelchair=False, seats=1, **extra):
    w = RULES.windows(
        direct_s=d[pickup][dropoff], wheelchair=wheelchair, pickup_at=at, appointment_at=arrive
    )
    return Trip(
        key=key,
        pickup=pickup,
        dropoff=dropoff,
        pickup_window=w.pickup,
        dropoff_window=w.dropoff,
        service_s=w.service_s,
        max_ride_s=w.max_ride_s,
        seats=0 if wheelchair else seats,
        wheelchairs=int(wheelchair),
        requested=at,
        **extra,
    )


def van(key, *, seats=4, wheelchairs=0, window=(0, 12 * 3600), at=0):
    return Vehicle(key, at, at, window, seats, wheelchairs)


HOUR = 3600


# --- rules -------------------------------------------------------------------------


def test_max_ride_is_the_larger_of_the_factor_and_the_extra_minutes():
    assert RULES.max_ride_s(10 * MIN) == 30 * MIN
    assert RULES.max_ride_s(60 * MIN) == 90 * MIN


def test_an_arrive_by_trip_cannot_ride_too_long_whatever_times_its_windows_allow():
    w = RULES.windows(direct_s=25 * MIN, wheelchair=True, appointment_at=10 * HOUR)
    assert w.dropoff[1] == 10 * HOUR
    longest = w.dropoff[1] - (w.pickup[0] + w.service_s)
    assert longest <= w.max_ride_s


def test_the_promised_window_is_either_side_of_the_planned_pickup():
    assert RULES.promised(8 * HOUR) == (8 * HOUR - 15 * MIN, 8 * HOUR + 15 * MIN)


# --- solving and verifying -------------------------------------------------------------


def test_a_shared_ride_plan_keeps_every_constraint():
    d = line(10, 10, 10, 10)
    problem = Problem(
        trips=[
            trip(1, 1, 3, d, at=8 * HOUR),
            trip(2, 2, 4, d, at=8 * HOUR + 10 * MIN),
            trip(3, 1, 4, d, at=9 * HOUR, wheelchair=True),
        ],
        vehicles=[van(10, wheelchairs=1), van(11)],
        durations=d,
    )
    plan = solve(problem, exploration=1)
    assert not violations(problem, plan)
    assert plan.assigned == 3 and not plan.unassigned
    wheelchair_route = next(r for r in plan.routes if any(s.trip == 3 for s in r.stops))
    assert wheelchair_route.vehicle == 10


def test_a_pickup_is_planned_at_the_time_asked_when_the_route_allows():
    d = line(10)
    problem = Problem([trip(1, 0, 1, d, at=8 * HOUR)], [van(5)], d)
    (route,) = solve(problem, exploration=0).routes
    assert route.stops[0].service_at == 8 * HOUR


def test_the_synthetic_day_plans_verified_by_both_planners():
    day = synthetic_day(40, 6, seed=3)
    for plan in (solve(day.problem, exploration=0), insertion_plan(day.problem)):
        verify(day.problem, plan)
        assert plan.assigned + len(plan.unassigned) == 40


def test_a_wheelchair_with_no_wheelchair_vehicle_is_unassigned_with_why():
    d = line(10)
    problem = Problem([trip(1, 0, 1, d, at=8 * HOUR, wheelchair=True)], [van(5)], d)
    plan = solve(problem, exploration=0)
    assert plan.unassigned == {1: P.NO_VEHICLE_FITS}


def test_a_day_with_nothing_to_plan_or_nobody_on_shift_plans_nothing():
    d = line(10)
    assert solve(Problem([], [van(5)], d), exploration=0).routes == []
    alone = solve(Problem([trip(1, 0, 1, d, at=8 * HOUR)], [], d), exploration=0)
    assert alone.unassigned == {1: P.NO_VEHICLE_FITS}


def test_a_trip_outside_every_shift_is_unassigned_with_why():
    d = line(10)
    problem = Problem([trip(1, 0, 1, d, at=20 * HOUR)], [van(5)], d)
    assert solve(problem, exploration=0).unassigned == {1: P.NO_SHIFT_COVERS}


def test_wheelchair_spaces_full_in_time_is_the_reason_given():
    d = line(30)
    trips = [trip(k, 0, 1, d, at=8 * HOUR, wheelchair=True) for k in (1, 2)]
    problem = Problem(trips, [van(5, wheelchairs=1)], d)
    plan = solve(problem, exploration=0)
    assert list(plan.unassigned.values()) == [P.NO_WHEELCHAIR_SPACE]


def test_a_locked_trip_stays_on_its_vehicle():
    d = line(10, 10)
    trips = [trip(1, 0, 1, d, at=8 * HOUR, locked_to=7), trip(2, 1, 2, d, at=9 * HOUR)]
    problem = Problem(trips, [van(6), van(7, at=2)], d)
    plan = solve(problem, exploration=1)
    assert {s.trip for r in plan.routes if r.vehicle == 7 for s in r.stops} >= {1}


def test_a_passenger_aboard_is_dropped_off_by_their_vehicle():
    d = line(10, 10)
    aboard = trip(1, 0, 2, d, at=8 * HOUR, on_board=7)
    problem = Problem([aboard, trip(2, 1, 2, d, at=8 * HOUR)], [van(6), van(7, at=1)], d)
    plan = solve(problem, exploration=1)
    route = next(r for r in plan.routes if r.vehicle == 7)
    assert (1, DROPOFF) in [(s.trip, s.kind) for s in route.stops]
    assert (1, PICKUP) not in [(s.trip, s.kind) for s in route.stops]


def test_the_timetable_makes_a_pickup_wait_rather_than_ride_too_long():
    # Trip 1 (10 min direct, 30 min max) is picked up, then the vehicle
    # fetches trip 2 whose window opens 25 minutes later: leaving with trip 1
    # as early as possible would make it ride 50 minutes.
    d = line(10, 10)
    t1 = trip(1, 0, 2, d, at=8 * HOUR)
    t2 = replace(trip(2, 1, 2, d, at=8 * HOUR + 40 * MIN))
    problem = Problem([t1, t2], [van(6)], d)
    route = timetable(
        problem, problem.vehicles[0], [(1, PICKUP), (2, PICKUP), (1, DROPOFF), (2, DROPOFF)]
    )
    assert route is not None
    assert not violations(problem, Plan([route]))
    stops = {(s.trip, s.kind): s for s in route.stops}
    ride = stops[(1, DROPOFF)].service_at - stops[(1, PICKUP)].departure
    assert ride <= t1.max_ride_s


def test_no_times_fit_when_the_ride_limit_cannot_be_kept():
    d = line(10, 40)
    t1 = trip(1, 0, 1, d, at=8 * HOUR)
    t2 = trip(2, 2, 1, d, at=8 * HOUR)
    problem = Problem([t1, t2], [van(6)], d)
    # Trip 1 aboard while the vehicle drives 40 minutes away and back.
    assert (
        timetable(
            problem, problem.vehicles[0], [(1, PICKUP), (2, PICKUP), (1, DROPOFF), (2, DROPOFF)]
        )
        is None
    )


def _one_route(problem, vehicle, steps, *, stretch=0, key=None):
    route = timetable(problem, problem.vehicle[vehicle], steps)
    if stretch:
        stops = [
            replace(s, service_at=s.service_at + stretch, departure=s.departure + stretch)
            if s.trip == key and s.kind == DROPOFF
            else s
            for s in route.stops
        ]
        route = Route(route.vehicle, stops, route.departs, route.returns + stretch)
    return Plan([route])


@pytest.mark.parametrize(
    "broken, expected",
    [
        ("capacity", "over capacity"),
        ("skill", "no space"),
        ("ride", "longer than"),
        ("window", "outside"),
        ("lock", "locked to"),
        ("missing", "neither planned nor unassigned"),
    ],
)
def test_the_verifier_catches_each_kind_of_violation(broken, expected):
    d = line(10, 10)
    t1, t2 = trip(1, 0, 1, d, at=8 * HOUR), trip(2, 0, 1, d, at=8 * HOUR)
    vehicles = [van(6, seats=2, wheelchairs=1), van(7)]
    steps = [(1, PICKUP), (2, PICKUP), (1, DROPOFF), (2, DROPOFF)]
    if broken == "capacity":
        vehicles[0] = van(6, seats=1, wheelchairs=1)
        problem = Problem([t1, t2], vehicles, d)
        good = timetable(Problem([t1, t2], [van(6, seats=2)], d), van(6, seats=2), steps)
        plan = Plan([good])
    elif broken == "skill":
        t1 = trip(1, 0, 1, d, at=8 * HOUR, wheelchair=True)
        problem = Problem([t1, t2], vehicles, d)
        good = timetable(
            Problem([t1, t2], [van(7, wheelchairs=1)], d), van(7, wheelchairs=1), steps
        )
        plan = Plan([replace(good, vehicle=7)])
    elif broken == "lock":
        problem = Problem([replace(t1, locked_to=7), t2], vehicles, d)
        plan = Plan([timetable(Problem([t1, t2], vehicles, d), vehicles[0], steps)])
    elif broken == "missing":
        problem = Problem([t1, t2], vehicles, d)
        plan = Plan([timetable(problem, vehicles[0], [(1, PICKUP), (1, DROPOFF)])])
    else:
        problem = Problem([t1, t2], vehicles, d)
        stretch = t1.max_ride_s if broken == "ride" else 3 * HOUR
        plan = _one_route(problem, 6, steps, stretch=stretch, key=1)
    with pytest.raises(PlanViolation, match=expected):
        verify(problem, plan)


# --- travel times ---------------------------------------------------------------------


def test_haversine_times_grow_with_distance_and_the_detour():
    points = [(-26.2041, 28.0473), (-25.7479, 28.2293)]
    plain = Haversine(1.0, 60).matrix(points)
    assert plain[0][1] == plain[1][0] and 50 * MIN < plain[0][1] < 60 * MIN
    assert Haversine(1.3, 60).matrix(points)[0][1] == pytest.approx(plain[0][1] * 1.3, abs=2)


class _StandIn(BaseHTTPRequestHandler):
    """A routing server as OSRM and Valhalla answer: the same JSON, made-up times."""

    def log_message(self, *args):
        pass

    def _answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        coords = self.path.split("/table/v1/driving/")[1].split("?")[0].split(";")
        if "annotations=duration" not in self.path:
            return self._answer(400, {"code": "InvalidQuery", "message": "no annotations"})
        n = len(coords)
        durations = [[abs(i - j) * 60.4 for j in range(n)] for i in range(n)]
        self._answer(200, {"code": "Ok", "durations": durations})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        if body.get("costing") != "auto":
            return self._answer(400, {"error": "costing"})
        n = len(body["sources"])
        rows = [[{"time": abs(i - j) * 90, "distance": 1.0} for j in range(n)] for i in range(n)]
        self._answer(200, {"sources_to_targets": rows})


@pytest.fixture
def routing_server():
    server = HTTPServer(("127.0.0.1", 0), _StandIn)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


POINTS = [(-26.2, 28.04), (-26.1, 28.1), (-26.0, 28.2)]


def test_osrm_table_client_reads_the_durations(routing_server):
    matrix = OsrmTable(routing_server).matrix(POINTS)
    assert matrix.tolist() == [[0, 60, 121], [60, 0, 60], [121, 60, 0]]


def test_valhalla_matrix_client_reads_the_times(routing_server):
    matrix = ValhallaMatrix(routing_server).matrix(POINTS)
    assert matrix.tolist() == [[0, 90, 180], [90, 0, 90], [180, 90, 0]]


def test_a_routing_server_that_is_down_is_an_error_not_straight_lines():
    with pytest.raises(RoutingUnavailable):
        OsrmTable("http://127.0.0.1:9", timeout_s=1).matrix(POINTS)


def test_the_settings_choose_the_source(settings, routing_server):
    from dispatch.planning.travel import travel_times

    settings.ROUTING_ENGINE = "osrm"
    settings.ROUTING_URL = routing_server
    assert isinstance(travel_times(), OsrmTable)
    settings.ROUTING_URL = ""
    with pytest.raises(RoutingUnavailable):
        travel_times()
