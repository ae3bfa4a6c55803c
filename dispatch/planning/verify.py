"""
Every plan is checked here before anyone sees it, whichever solver made it:
each trip once, its pickup before its drop-off on one vehicle, the windows,
the shift, seats and wheelchair spaces, the wheelchair skill, locks, times
that travel allows, and the maximum ride time. A violation is a bug in the
planner, never a plan to keep: `verify` raises.
"""

from __future__ import annotations

from dispatch.planning.problem import DROPOFF, PICKUP, Plan, Problem


class PlanViolation(AssertionError):
    """A plan broke a constraint: the planner has a bug."""


def violations(problem: Problem, plan: Plan) -> list[str]:
    found: list[str] = []
    d = problem.durations
    seen: dict[int, int] = {}
    for route in plan.routes:
        vehicle = problem.vehicle.get(route.vehicle)
        if vehicle is None:
            found.append(f"route of unknown vehicle {route.vehicle}")
            continue
        if not route.stops:
            continue
        here, clock = vehicle.start, route.departs
        if route.departs < vehicle.window[0]:
            found.append(f"vehicle {vehicle.key} leaves before its shift")
        aboard = {
            s.trip: None for s in route.stops if s.kind == DROPOFF and problem.trip[s.trip].on_board
        }
        seats = sum(problem.trip[k].seats for k in aboard)
        wheelchairs = sum(problem.trip[k].wheelchairs for k in aboard)
        picked_at: dict[int, int] = {}
        for stop in route.stops:
            trip = problem.trip.get(stop.trip)
            if trip is None:
                found.append(f"unknown trip {stop.trip}")
                continue
            name = f"trip {trip.key} {stop.kind}"
            if stop.arrival < clock + d[here][stop.place]:
                found.append(f"{name}: reached sooner than travel allows")
            window = trip.pickup_window if stop.kind == PICKUP else trip.dropoff_window
            if not (window[0] <= stop.service_at <= window[1]) or stop.service_at < stop.arrival:
                found.append(f"{name}: served at {stop.service_at}, outside {window}")
            if stop.departure != stop.service_at + trip.service_s:
                found.append(f"{name}: boarding time not kept")
            if trip.wheelchairs and not vehicle.wheelchairs:
                found.append(f"{name}: a wheelchair on vehicle {vehicle.key}, which has no space")
            if trip.locked_to is not None and trip.locked_to != vehicle.key:
                found.append(f"{name}: locked to {trip.locked_to}, planned on {vehicle.key}")
            sign = 1 if stop.kind == PICKUP else -1
            seats += sign * trip.seats
            wheelchairs += sign * trip.wheelchairs
            if seats > vehicle.seats or wheelchairs > vehicle.wheelchairs:
                found.append(f"{name}: vehicle {vehicle.key} over capacity")
            if stop.kind == PICKUP:
                if trip.key in picked_at or trip.on_board is not None:
                    found.append(f"{name}: picked up twice")
                picked_at[trip.key] = stop.departure
                seen[trip.key] = seen.get(trip.key, 0) + 1
            else:
                if trip.key in picked_at:
                    ride = stop.service_at - picked_at.pop(trip.key)
                    if ride > trip.max_ride_s:
                        found.append(f"{name}: rides {ride} s, longer than its {trip.max_ride_s} s")
                elif trip.on_board != vehicle.key:
                    found.append(f"{name}: dropped off before it was picked up")
                else:
                    seen[trip.key] = seen.get(trip.key, 0) + 1
            here, clock = stop.place, stop.departure
        for key in picked_at:
            found.append(f"trip {key}: picked up and never dropped off")
        if route.returns < clock + d[here][vehicle.end]:
            found.append(f"vehicle {vehicle.key} back sooner than travel allows")
        if route.returns > vehicle.window[1]:
            found.append(f"vehicle {vehicle.key} back after its shift ends")
    for key, count in seen.items():
        if count > 1:
            found.append(f"trip {key} planned {count} times")
        if key in plan.unassigned:
            found.append(f"trip {key} both planned and unassigned")
    missing = set(problem.trip) - set(seen) - set(plan.unassigned)
    if missing:
        found.append(f"trips neither planned nor unassigned: {sorted(missing)[:10]}")
    return found


def verify(problem: Problem, plan: Plan) -> Plan:
    """The plan, if it keeps every constraint; PlanViolation otherwise."""
    found = violations(problem, plan)
    if found:
        raise PlanViolation(f"{len(found)} violation(s): " + "; ".join(found[:20]))
    return plan
