"""
The day's plan by VROOM (pyvroom): pickup-and-delivery shipments with time
windows, two capacity dimensions (seats, wheelchair spaces), wheelchair as
a skill, boarding as service time, and locks as a skill only the locked
vehicle has. VROOM has no maximum ride time: the drop-off windows carry it
(dispatch.planning.rules), each route is timed again by
dispatch.planning.timetable, which holds it exactly, and a route that cannot
be timed loses its worst trip to cheapest insertion elsewhere. Every plan
is verified (dispatch.planning.verify) before it is returned.
"""

from __future__ import annotations

import os
import time
from datetime import timedelta
from typing import TYPE_CHECKING

from dispatch.planning.insertion import cheapest, unassigned_reason
from dispatch.planning.problem import DROPOFF, MAX_RIDE_TIME, PICKUP, Plan, Problem, Route, Trip
from dispatch.planning.rules import Rules
from dispatch.planning.timetable import Step, as_asked, timetable
from dispatch.planning.verify import verify

if TYPE_CHECKING:
    import vroom

WHEELCHAIR_SKILL = 1
# The part of a timeout VROOM may search for.
SEARCH_SHARE = 0.9
# Skill LOCK_SKILL + i: only vehicle i has it, so only it takes the trip.
LOCK_SKILL = 1000


def _window(window: tuple[int, int]) -> vroom.TimeWindow:
    import vroom

    # VROOM's times are unsigned; the caller's origin keeps real windows positive.
    return vroom.TimeWindow(max(0, window[0]), max(0, window[1]))


def vroom_input(problem: Problem) -> vroom.Input:
    # pyvroom and numpy are imported here, when a day is planned, not with
    # the module: with pandas they are 48 MB a socket worker never needs.
    import numpy as np
    import vroom

    model = vroom.Input()
    model.set_durations_matrix("car", np.asarray(problem.durations, dtype=np.uint32))
    index = {v.key: i for i, v in enumerate(problem.vehicles)}
    for i, v in enumerate(problem.vehicles):
        skills = {LOCK_SKILL + i} | ({WHEELCHAIR_SKILL} if v.wheelchairs else set())
        model.add_vehicle(
            vroom.Vehicle(
                i,
                start=v.start,
                end=v.end,
                capacity=vroom.Amount([v.seats, v.wheelchairs]),
                skills=skills,
                time_window=_window(v.window),
            )
        )
    for j, t in enumerate(problem.trips):
        skills = {WHEELCHAIR_SKILL} if t.wheelchairs else set()
        pinned = t.on_board if t.on_board is not None else t.locked_to
        if pinned is not None:
            if pinned not in index:
                continue
            skills.add(LOCK_SKILL + index[pinned])
        amount = vroom.Amount([t.seats, t.wheelchairs])
        if t.on_board is not None:
            # Aboard at the start: a delivery from the vehicle's load.
            model.add_job(
                vroom.Job(
                    j,
                    location=t.dropoff,
                    default_service=t.service_s,
                    delivery=amount,
                    skills=skills,
                    time_windows=[_window(t.dropoff_window)],
                )
            )
            continue
        model.add_shipment(
            vroom.ShipmentStep(
                j,
                location=t.pickup,
                default_service=t.service_s,
                time_windows=[_window(t.pickup_window)],
            ),
            vroom.ShipmentStep(
                j,
                location=t.dropoff,
                default_service=t.service_s,
                time_windows=[
                    _window(
                        Rules.tight_dropoff(
                            t.pickup_window, t.dropoff_window, t.service_s, t.max_ride_s
                        )
                    )
                ],
            ),
            amount=amount,
            skills=skills,
        )
    return model


def _sequences(problem: Problem, solution) -> dict[int, list[Step]]:
    """Each vehicle's order of stops, from VROOM's routes."""
    frame = solution.routes
    kinds = {"pickup": PICKUP, "delivery": DROPOFF, "job": DROPOFF}
    sequences: dict[int, list[Step]] = {v.key: [] for v in problem.vehicles}
    if "id" not in frame.columns:
        # pyvroom drops the column when no route serves anything.
        return sequences
    rows = zip(
        frame["vehicle_id"].to_numpy(),
        frame["type"].astype(str).to_numpy(),
        frame["id"],
        strict=True,
    )
    for vehicle_index, kind, job in rows:
        if kind in kinds:
            vehicle = problem.vehicles[int(vehicle_index)]
            sequences[vehicle.key].append((problem.trips[int(job)].key, kinds[kind]))
    return sequences


def _worst_ride(problem: Problem, sequence: list[Step]) -> int:
    """The trip of the route whose ride overruns its maximum most, timed as early as can be."""
    d = problem.durations
    clock, here, left = 0, None, {}
    worst, excess = sequence[0][0], -(10**9)
    for key, kind in sequence:
        trip = problem.trip[key]
        place = trip.pickup if kind == PICKUP else trip.dropoff
        window = trip.pickup_window if kind == PICKUP else trip.dropoff_window
        clock = max(window[0], clock + (d[here][place] if here is not None else 0))
        if kind == PICKUP:
            left[key] = clock + trip.service_s
        elif key in left and clock - left[key] - trip.max_ride_s > excess:
            worst, excess = key, clock - left[key] - trip.max_ride_s
        clock += trip.service_s
        here = place
    return worst


def _insert_anywhere(
    problem: Problem, routes: dict[int, Route], sequences: dict[int, list[Step]], trip: Trip
) -> bool:
    if trip.on_board is not None:
        return False
    best = cheapest(problem, routes, sequences, trip)
    if best is None:
        return False
    _, sequences[best[2].vehicle], routes[best[2].vehicle] = best
    return True


def solve(
    problem: Problem,
    *,
    exploration: int = 2,
    timeout_s: float | None = None,
    threads: int | None = None,
) -> Plan:
    """
    Plan `problem` with VROOM; the plan is verified. `timeout_s` bounds the
    whole: VROOM searches for nine tenths of it, the timing, repair and
    verifying take the rest.
    """
    started = time.perf_counter()
    if problem.trips and problem.vehicles:
        solution = vroom_input(problem).solve(
            exploration_level=exploration,
            nb_threads=threads or os.cpu_count() or 1,
            timeout=timedelta(seconds=timeout_s * SEARCH_SHARE) if timeout_s else None,
        )
        sequences = _sequences(problem, solution)
    else:
        # VROOM refuses a problem with nothing to do.
        sequences = {v.key: [] for v in problem.vehicles}
    routes: dict[int, Route] = {}
    dropped: list[int] = []
    for key, sequence in sequences.items():
        vehicle = problem.vehicle[key]
        timed = timetable(problem, vehicle, sequence)
        while timed is None and sequence:
            worst = _worst_ride(problem, sequence)
            dropped.append(worst)
            sequence = [step for step in sequence if step[0] != worst]
            timed = timetable(problem, vehicle, sequence)
        sequences[key] = sequence
        routes[key] = timed or timetable(problem, vehicle, [])
    planned = {key for seq in sequences.values() for key, _ in seq}
    # What VROOM left out (or a route had to give up) may still fit with the
    # real drop-off windows, which only the timetable can hold.
    unassigned: dict[int, str] = {}
    for trip in problem.trips:
        if trip.key in planned:
            continue
        if not _insert_anywhere(problem, routes, sequences, trip):
            unassigned[trip.key] = (
                MAX_RIDE_TIME if trip.key in dropped else unassigned_reason(problem, trip)
            )
    plan = Plan(
        routes=[as_asked(problem, r) for r in routes.values() if r.stops],
        unassigned=unassigned,
        solver=f"vroom x{exploration}",
        seconds=time.perf_counter() - started,
    )
    return verify(problem, plan)
