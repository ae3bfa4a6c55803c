"""
Cheapest insertion: a trip goes where it adds the fewest vehicle-seconds
among every vehicle and every pair of positions whose timetable fits. The
benchmark's baseline planner (trips in order of their pickup window), the
repair of a solver's route, and a will-call return joining a run that
passes all use it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from dispatch.planning.problem import (
    DROPOFF,
    LOCKED_RUN_CANNOT,
    NO_SEAT,
    NO_SHIFT_COVERS,
    NO_VEHICLE_FITS,
    NO_WHEELCHAIR_SPACE,
    PICKUP,
    Plan,
    Problem,
    Route,
    Trip,
    Vehicle,
)
from dispatch.planning.timetable import Step, timetable


def may_carry(vehicle: Vehicle, trip: Trip) -> bool:
    pinned = trip.on_board if trip.on_board is not None else trip.locked_to
    return vehicle.carries(trip) and (pinned is None or pinned == vehicle.key)


def insert(
    problem: Problem, route: Route, sequence: list[Step], trip: Trip
) -> tuple[int, list[Step], Route] | None:
    """The cheapest way to add `trip` to this route: (added seconds, order, route)."""
    vehicle = problem.vehicle[route.vehicle]
    if not may_carry(vehicle, trip):
        return None
    d = problem.durations
    ready = [vehicle.window[0]] + [s.departure for s in route.stops]
    where = [vehicle.start] + [s.place for s in route.stops]
    best: tuple[int, list[Step], Route] | None = None
    n = len(sequence)
    for i in range(n + 1):
        # Inserting only ever delays what is there: today's times are lower bounds.
        at_pickup = max(trip.pickup_window[0], ready[i] + d[where[i]][trip.pickup])
        if at_pickup > trip.pickup_window[1]:
            break
        if i < n and not _reaches(problem, trip.pickup, at_pickup + trip.service_s, route, i):
            continue
        for j in range(i, n + 1):
            if j == i:
                at_drop = at_pickup + trip.service_s + d[trip.pickup][trip.dropoff]
            else:
                at_drop = ready[j] + d[where[j]][trip.dropoff]
            if at_drop > trip.dropoff_window[1]:
                break
            candidate = sequence[:i] + [(trip.key, PICKUP)] + sequence[i:j]
            candidate += [(trip.key, DROPOFF)] + sequence[j:]
            timed = timetable(problem, vehicle, candidate)
            if timed is None:
                continue
            cost = timed.seconds - route.seconds
            if best is None or cost < best[0]:
                best = (cost, candidate, timed)
    return best


def _reaches(problem: Problem, place: int, leaving: int, route: Route, i: int) -> bool:
    """Whether the stop now at position i can still be served after a visit to `place`."""
    stop = route.stops[i]
    trip = problem.trip[stop.trip]
    window = trip.pickup_window if stop.kind == PICKUP else trip.dropoff_window
    return leaving + problem.durations[place][stop.place] <= window[1]


def cheapest(
    problem: Problem, routes: dict[int, Route], sequences: dict[int, list[Step]], trip: Trip
) -> tuple[int, list[Step], Route] | None:
    """The cheapest place for `trip` on any of the routes (as `insert` answers), or None."""
    best = None
    for key, route in routes.items():
        found = insert(problem, route, sequences[key], trip)
        if found is not None and (best is None or found[0] < best[0]):
            best = found
    return best


def unassigned_reason(problem: Problem, trip: Trip) -> str:
    """Why no run took `trip`, in the words a dispatcher can act on."""
    pinned = trip.on_board if trip.on_board is not None else trip.locked_to
    fitting = [v for v in problem.vehicles if v.carries(trip)]
    if pinned is not None:
        return LOCKED_RUN_CANNOT
    if not fitting:
        return NO_VEHICLE_FITS
    alone = [(trip.key, PICKUP), (trip.key, DROPOFF)]
    if not any(timetable(problem, v, alone) for v in fitting):
        return NO_SHIFT_COVERS
    return NO_WHEELCHAIR_SPACE if trip.wheelchairs else NO_SEAT


def insertion_plan(problem: Problem, trips: Iterable[Trip] | None = None) -> Plan:
    """The baseline: each trip, earliest pickup first, where it costs least."""
    started = time.perf_counter()
    empty = {v.key: timetable(problem, v, []) for v in problem.vehicles}
    routes: dict[int, Route] = dict(empty)
    sequences: dict[int, list[Step]] = {v.key: [] for v in problem.vehicles}
    unassigned: dict[int, str] = {}
    order = sorted(trips or problem.trips, key=lambda t: (t.pickup_window[0], t.key))
    for trip in order:
        if trip.on_board is not None:
            # Already aboard: its drop-off goes where it costs least on its vehicle.
            aboard = routes.get(trip.on_board)
            best = aboard and _drop_aboard(problem, aboard, sequences[trip.on_board], trip)
        else:
            best = cheapest(problem, routes, sequences, trip)
        if best is None:
            unassigned[trip.key] = unassigned_reason(problem, trip)
            continue
        _, sequence, route = best
        routes[route.vehicle], sequences[route.vehicle] = route, sequence
    return Plan(
        routes=[r for r in routes.values() if r.stops],
        unassigned=unassigned,
        solver="insertion",
        seconds=time.perf_counter() - started,
    )


def _drop_aboard(problem: Problem, route: Route, sequence: list[Step], trip: Trip):
    vehicle = problem.vehicle[route.vehicle]
    best = None
    for j in range(len(sequence) + 1):
        candidate = sequence[:j] + [(trip.key, DROPOFF)] + sequence[j:]
        timed = timetable(problem, vehicle, candidate)
        if timed is not None and (best is None or timed.seconds - route.seconds < best[0]):
            best = (timed.seconds - route.seconds, candidate, timed)
    return best
