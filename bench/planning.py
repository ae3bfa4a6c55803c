"""
Planning a synthetic day (python -m bench --only plan).

A seeded generator makes the day: homes and places around Johannesburg and
Pretoria (most trips within one city, some between them), 25 % wheelchair
riders, 30 % arrive-by, some with a companion, pickups from 06:30 to 17:30;
shifts of 8.5 hours from a depot in each city, early and late, some in
wheelchair-accessible vehicles. Travel times are the default haversine
source. VROOM plans it, and cheapest insertion plans the same day as the
baseline; both plans are verified against every constraint.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

from django.conf import settings

from bench.scenarios import Result
from dispatch.planning.insertion import insertion_plan
from dispatch.planning.problem import Plan, Problem, Trip, Vehicle
from dispatch.planning.rules import Rules
from dispatch.planning.solver import solve
from dispatch.planning.travel import Haversine
from dispatch.planning.verify import violations

JOHANNESBURG = (-26.2041, 28.0473)
PRETORIA = (-25.7479, 28.2293)
HOUR = 3600


@dataclass
class Day:
    problem: Problem
    wheelchair_trips: int
    arrive_by_trips: int


def _near(rng: random.Random, centre: tuple[float, float], spread: float) -> tuple[float, float]:
    return (centre[0] + rng.gauss(0, spread), centre[1] + rng.gauss(0, spread))


def synthetic_day(
    n_trips: int = 200,
    n_vehicles: int = 25,
    *,
    seed: int = 19,
    rules: Rules | None = None,
    travel: Haversine | None = None,
) -> Day:
    """One day of requests and shifts; the same seed gives the same day."""
    rng = random.Random(seed)
    rules = rules or Rules()
    travel = travel or Haversine()
    cities = [JOHANNESBURG, PRETORIA]
    # Clinics, dialysis centres, day care: where many trips go.
    facilities = [_near(rng, cities[i % 2], 0.05) for i in range(24)]
    points: list[tuple[float, float]] = []
    requests = []
    for key in range(n_trips):
        city = 0 if rng.random() < 0.6 else 1
        home = _near(rng, cities[city], 0.05)
        other = city if rng.random() < 0.95 else 1 - city
        place = rng.choice([f for i, f in enumerate(facilities) if i % 2 == other])
        if rng.random() < 0.3:
            place = _near(rng, cities[other], 0.05)
        pickup, dropoff = (home, place) if rng.random() < 0.55 else (place, home)
        wheelchair = rng.random() < 0.25
        arrive_by = rng.random() < 0.3
        peak = rng.choice([8.0, 10.5, 12.5, 15.0])
        at = int(min(16.5, max(6.5, rng.gauss(peak, 1.2))) * HOUR)
        companions = 1 if rng.random() < 0.1 else 0
        requests.append((key, pickup, dropoff, wheelchair, arrive_by, at, companions))
        points += [pickup, dropoff]
    depots = [_near(rng, c, 0.02) for c in cities]
    points += depots
    durations = travel.matrix(points)
    trips = []
    for key, _, _, wheelchair, arrive_by, at, companions in requests:
        p, q = 2 * key, 2 * key + 1
        direct = int(durations[p][q])
        if arrive_by:
            at = max(at, 8 * HOUR)
        windows = rules.windows(
            direct_s=direct,
            wheelchair=wheelchair,
            pickup_at=None if arrive_by else at,
            appointment_at=at if arrive_by else None,
        )
        trips.append(
            Trip(
                key=key,
                pickup=p,
                dropoff=q,
                pickup_window=windows.pickup,
                dropoff_window=windows.dropoff,
                service_s=windows.service_s,
                max_ride_s=windows.max_ride_s,
                seats=(0 if wheelchair else 1) + companions,
                wheelchairs=1 if wheelchair else 0,
                requested=None if arrive_by else at,
            )
        )
    vehicles = []
    accessible = max(1, round(n_vehicles * 0.6))
    for key in range(n_vehicles):
        depot = 2 * n_trips + (0 if key % 5 < 3 else 1)
        early = key % 2 == 0
        start = int((6.0 if early else 9.5) * HOUR)
        vehicles.append(
            Vehicle(
                key=key,
                start=depot,
                end=depot,
                window=(start, start + int(8.5 * HOUR)),
                seats=3 if key < accessible else 4,
                wheelchairs=2 if key < accessible else 0,
            )
        )
    return Day(
        problem=Problem(trips=trips, vehicles=vehicles, durations=durations),
        wheelchair_trips=sum(1 for t in trips if t.wheelchairs),
        arrive_by_trips=sum(1 for r in requests if r[4]),
    )


def summary(plan: Plan, problem: Problem) -> str:
    share = plan.assigned / len(problem.trips)
    return (
        f"{plan.solver}: {plan.seconds:.2f} s, {plan.assigned}/{len(problem.trips)} "
        f"({share:.1%}) assigned, {plan.vehicles_used} vehicles, "
        f"{plan.vehicle_hours:.1f} vehicle-hours, "
        f"{len(violations(problem, plan))} violations"
    )


def results() -> list[Result]:
    """
    The issue's measures: 200 requests and 25 vehicles with VROOM at the
    settings plan_day uses, the same day by cheapest insertion, and a
    city's day of 1,000 requests and 100 vehicles.
    """
    rows = []
    day = synthetic_day(200, 25)
    timeout = settings.PLAN_TIMEOUT_S
    level = settings.PLAN_EXPLORATION
    threads = settings.PLAN_THREADS or None
    started = time.perf_counter()
    plan = solve(day.problem, exploration=level, timeout_s=timeout, threads=threads)
    seconds = time.perf_counter() - started
    share = plan.assigned / len(day.problem.trips)
    broken = len(violations(day.problem, plan))
    rows.append(
        Result(
            "plan 200 trips, 25 vehicles [vroom]",
            f"{seconds:.1f} s, {share:.1%} assigned, {plan.vehicles_used} vehicles, "
            f"{plan.vehicle_hours:.1f} vehicle-hours, {broken} ride-time or other violations",
            "<= 10 s, >= 95 %, 0 violations",
            seconds <= 10 and share >= 0.95 and broken == 0,
            f"exploration {level}; {day.wheelchair_trips} wheelchair, "
            f"{day.arrive_by_trips} arrive-by; unassigned: {_reasons(plan)}",
        )
    )
    base = insertion_plan(day.problem)
    rows.append(
        Result(
            "plan 200 trips, 25 vehicles [cheapest insertion]",
            f"{base.seconds:.2f} s, {base.assigned / len(day.problem.trips):.1%} assigned, "
            f"{base.vehicles_used} vehicles, {base.vehicle_hours:.1f} vehicle-hours, "
            f"{len(violations(day.problem, base))} violations",
            "",
            None,
            f"unassigned: {_reasons(base)}",
        )
    )
    fewer = 1 - plan.vehicle_hours / base.vehicle_hours
    more = plan.assigned - base.assigned
    rows.append(
        Result(
            "plan against the baseline",
            f"{-fewer:+.1%} vehicle-hours, {more:+d} trips served with the same fleet "
            f"({plan.vehicle_hours / plan.assigned:.2f} against "
            f"{base.vehicle_hours / base.assigned:.2f} vehicle-hours a trip)",
            ">= 20 % fewer vehicle-hours, or more trips with the same fleet",
            fewer >= 0.2 or more > 0,
        )
    )
    city = synthetic_day(1000, 100)
    started = time.perf_counter()
    big = solve(city.problem, exploration=level, timeout_s=timeout, threads=threads)
    seconds = time.perf_counter() - started
    rows.append(
        Result(
            "plan 1,000 trips, 100 vehicles [vroom]",
            f"{seconds:.1f} s, {big.assigned / 1000:.1%} assigned, "
            f"{len(violations(city.problem, big))} violations",
            f"within PLAN_TIMEOUT_S ({timeout:g} s), 0 violations",
            seconds <= timeout and not violations(city.problem, big),
            f"unassigned: {_reasons(big)}",
        )
    )
    return rows


def _reasons(plan: Plan) -> str:
    counts: dict[str, int] = {}
    for reason in plan.unassigned.values():
        counts[reason] = counts.get(reason, 0) + 1
    return ", ".join(f"{n} {r}" for r, n in sorted(counts.items())) or "none"
