"""
The times of a route whose order is fixed: each stop as early as it can be,
except that a pickup waits when leaving earlier would make that passenger
ride longer than their maximum. None when no times fit (a window, the
shift, the seats or the maximum ride time).

The constraints are differences of times (t_next >= t + service + travel;
a <= t <= b; t_dropoff - t_pickup <= service + max ride), so the earliest
times meeting them all are a longest-path fixpoint: push forward, pull each
pickup up to its drop-off minus the longest ride, repeat until nothing
moves. A time pushed past its window means no times fit.
"""

from __future__ import annotations

from collections.abc import Sequence

from dispatch.planning.problem import PICKUP, Problem, Route, Stop, Vehicle

Step = tuple[int, str]  # (trip key, PICKUP or DROPOFF)


def fits_load(problem: Problem, vehicle: Vehicle, sequence: Sequence[Step]) -> bool:
    """Seats and wheelchair spaces hold at every stop (those aboard at the start count)."""
    picked = {key for key, kind in sequence if kind == PICKUP}
    seats = wheelchairs = 0
    for key, kind in sequence:
        trip = problem.trip[key]
        if kind != PICKUP and key not in picked:
            seats += trip.seats
            wheelchairs += trip.wheelchairs
    if seats > vehicle.seats or wheelchairs > vehicle.wheelchairs:
        return False
    for key, kind in sequence:
        trip = problem.trip[key]
        sign = 1 if kind == PICKUP else -1
        seats += sign * trip.seats
        wheelchairs += sign * trip.wheelchairs
        if seats > vehicle.seats or wheelchairs > vehicle.wheelchairs:
            return False
    return True


def timetable(
    problem: Problem, vehicle: Vehicle, sequence: Sequence[Step], *, as_asked: bool = False
) -> Route | None:
    """
    The route's times in this order, or None when none fit. `as_asked`:
    no pickup before the time its rider asked for (None when that does not
    fit; the caller keeps the earliest times then).
    """
    if not sequence:
        return Route(vehicle.key, [], vehicle.window[0], vehicle.window[0])
    if not fits_load(problem, vehicle, sequence):
        return None
    d = problem.durations
    trips = [problem.trip[key] for key, _ in sequence]
    pickups = [kind == PICKUP for _, kind in sequence]
    places = [t.pickup if up else t.dropoff for t, up in zip(trips, pickups, strict=True)]
    windows = [
        t.pickup_window if up else t.dropoff_window for t, up in zip(trips, pickups, strict=True)
    ]
    service = [t.service_s for t in trips]
    legs = [d[places[i - 1]][places[i]] for i in range(1, len(places))]
    n = len(sequence)
    times = [w[0] for w in windows]
    if as_asked:
        for i, (t, up) in enumerate(zip(trips, pickups, strict=True)):
            if up and t.requested is not None:
                times[i] = max(times[i], t.requested)
    times[0] = max(times[0], vehicle.window[0] + d[vehicle.start][places[0]])
    where = {step: i for i, step in enumerate(sequence)}
    pairs = [
        (where[(t.key, PICKUP)], i, t.service_s + t.max_ride_s)
        for i, (t, up) in enumerate(zip(trips, pickups, strict=True))
        if not up and (t.key, PICKUP) in where
    ]
    for _ in range(n + 1):
        for i in range(1, n):
            earliest = times[i - 1] + service[i - 1] + legs[i - 1]
            if earliest > times[i]:
                times[i] = earliest
        for i in range(n):
            if times[i] > windows[i][1]:
                return None
        moved = False
        for p, q, longest in pairs:
            if times[p] < times[q] - longest:
                times[p] = times[q] - longest
                moved = True
        if not moved:
            break
    else:
        return None
    returns = times[-1] + service[-1] + d[places[-1]][vehicle.end]
    if returns > vehicle.window[1]:
        return None
    departs = times[0] - d[vehicle.start][places[0]]
    stops = []
    arrival = times[0]
    for i, (key, kind) in enumerate(sequence):
        if i:
            arrival = times[i - 1] + service[i - 1] + legs[i - 1]
        stops.append(Stop(key, kind, places[i], arrival, times[i], times[i] + service[i]))
    return Route(vehicle.key, stops, departs, returns)


def as_asked(problem: Problem, route: Route) -> Route:
    """
    The route timed again so that no pickup comes before the time its rider
    asked for, where its order allows; else the route as it is (each stop
    as early as it can be). A plan's routes pass here before they are
    written: riders are told these times.
    """
    sequence = [(stop.trip, stop.kind) for stop in route.stops]
    return timetable(problem, problem.vehicle[route.vehicle], sequence, as_asked=True) or route
