"""
The JSON the apps receive about rides. Names and fields are a contract with
the mobile apps (docs/protocol.md): add fields, never rename them. What a
given viewer may see of each message is dispatch.access's to decide.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal, TypedDict

from django.utils import timezone

from dispatch.geo import Point, haversine_km
from dispatch.models import Alarm, AlarmKind, Ride, Stop, StopKind
from people.rest_schemas import person_out

# Average urban speed for the pickup ETA when the app sent none.
ETA_SPEED_KMH = 30.0


def eta_minutes(distance_km: float) -> int:
    """Minutes to cover `distance_km` at an average urban speed (at least one)."""
    return max(1, round(distance_km / ETA_SPEED_KMH * 60))


def _num(value: Decimal | float | None) -> float | None:
    return None if value is None else float(value)


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def person(user) -> dict[str, Any] | None:
    if user is None:
        return None
    return person_out(user)


def driver_card(driver, point: Point | None) -> dict:
    """The driver as the apps show them; `point`: where they are now."""
    profile = getattr(driver, "driver_profile", None)
    return {
        **person_out(driver),
        "vehicle_type": profile.vehicle_type if profile else None,
        "vehicle_registration": profile.vehicle_registration if profile else None,
        "rating": _num(profile.rating) if profile else None,
        "latitude": point.lat if point else None,
        "longitude": point.lng if point else None,
    }


def needs_card(ride: Ride) -> dict[str, Any]:
    """
    What the passenger needs on this ride: the one shape every surface shows
    (driver app, REST, console). The wheelchair is the ride's own, as it was
    matched (the booking's word, else the profile's), so a driver is never
    told of a wheelchair the matcher ignored; the rest is the profile's.
    """
    profile = getattr(ride.passenger, "passenger_profile", None)
    card = {
        "wheelchair": ride.needs_wheelchair,
        "walker": ride.needs_walker or bool(profile and profile.needs_walker),
        "assistance_boarding": bool(profile and profile.needs_assistance_boarding),
        "service_animal": ride.service_animal or bool(profile and profile.has_service_animal),
        "notes": profile.notes if profile else "",
        "companions": ride.companions,
        "attendant": ride.attendant,
    }
    if ride.notes:
        card["ride_notes"] = ride.notes
    return card


def _places(ride: Ride) -> dict[str, Any]:
    return {
        "pickup_latitude": ride.pickup_latitude,
        "pickup_longitude": ride.pickup_longitude,
        "pickup_address": ride.pickup_address,
        "dropoff_latitude": ride.dropoff_latitude,
        "dropoff_longitude": ride.dropoff_longitude,
        "dropoff_address": ride.dropoff_address,
        "pickup": {
            "latitude": ride.pickup_latitude,
            "longitude": ride.pickup_longitude,
            "address": ride.pickup_address,
        },
        "dropoff": {
            "latitude": ride.dropoff_latitude,
            "longitude": ride.dropoff_longitude,
            "address": ride.dropoff_address,
        },
        "distance_km": _num(ride.distance_km),
        "estimated_duration_minutes": ride.estimated_duration_minutes,
        "fare_amount": _num(ride.fare_amount),
    }


def _local(value) -> str | None:
    """A time booked ahead, as riders read it: in TIME_ZONE, with its offset."""
    return timezone.localtime(value).isoformat() if value else None


def booked_ahead(ride: Ride) -> dict[str, Any] | None:
    """When a ride booked ahead is wanted, and what its rider was told; None on demand."""
    if not ride.is_booked_ahead:
        return None
    return {
        "service_date": ride.service_date.isoformat(),
        "pickup_at": _local(ride.pickup_at),
        "appointment_at": _local(ride.appointment_at),
        "leg": ride.leg,
        "will_call": ride.will_call,
        "outbound_ride_id": ride.outbound.ride_id if ride.outbound_id else None,
        "series_id": ride.series_id,
        "pickup_window": pickup_window_of(ride),
        # What was booked: who and what rides along.
        "booked_needs": {
            "wheelchair": ride.needs_wheelchair,
            "walker": ride.needs_walker,
            "service_animal": ride.service_animal,
            "companions": ride.companions,
            "attendant": ride.attendant,
        },
    }


def pickup_window_of(ride: Ride) -> dict[str, Any] | None:
    """The confirmed pickup window, once a published plan gave it one."""
    if ride.confirmed_pickup_at is None:
        return None
    return {
        "start": _local(ride.confirmed_window_start),
        "end": _local(ride.confirmed_window_end),
        "planned_pickup_at": _local(ride.confirmed_pickup_at),
    }


def _about(ride: Ride, kind: str) -> dict[str, Any]:
    """What every ride message opens with: its type, the ride and its version."""
    return {
        "type": kind,
        "ride_id": ride.ride_id,
        "booking_id": ride.pk,
        "status": ride.status,
        "version": ride.version,
    }


def ride_status(ride: Ride, point: Point | None) -> dict[str, Any]:
    """
    The whole ride as one snapshot: sent on connect and on every change.
    `point`: the driver's live position.
    """
    return {
        **_about(ride, "ride_status"),
        "passenger": person(ride.passenger),
        "booked_by": person(ride.booked_by),
        "booked_on_behalf": ride.booked_on_behalf,
        "driver": driver_card(ride.driver, point) if ride.driver_id else None,
        **_places(ride),
        "needs_wheelchair": ride.needs_wheelchair,
        "booked_ahead": booked_ahead(ride),
        "cancelled_by": ride.cancelled_by or None,
        "cancel_reason": ride.cancel_reason or None,
        "no_driver_found": ride.no_driver_found_at is not None,
        "created_at": _iso(ride.created_at),
        "assigned_at": _iso(ride.assigned_at),
        "arrived_at": _iso(ride.arrived_at),
        "started_at": _iso(ride.started_at),
        "ended_at": _iso(ride.ended_at),
        "timestamp": timezone.now().isoformat(),
    }


def ride_scheduled(ride: Ride) -> dict[str, Any]:
    """The booker's answer to a ride booked ahead (and each leg's news to its rider)."""
    return {
        **_about(ride, "ride_scheduled"),
        "message": "Ride booked",
        "booked_ahead": booked_ahead(ride),
        "return_ride_ids": [r.ride_id for r in ride.returns.all()] if ride.pk else [],
    }


class PickupWindow(TypedDict):
    """The news of a confirmed pickup window: a plan was published or changed."""

    type: Literal["pickup_window"]
    ride_id: str
    booking_id: int
    status: str
    version: int
    window_start: str | None
    window_end: str | None
    planned_pickup_at: str | None
    pickup_at: str | None
    appointment_at: str | None
    # The driver and vehicle of the run, without phone or position (the day
    # may be far off); None when the ride left the plan.
    driver: dict[str, Any] | None
    changed: bool


def pickup_window(ride: Ride, *, changed: bool) -> PickupWindow:
    driver = None
    if ride.run_id is not None and ride.confirmed_pickup_at is not None:
        card = driver_card(ride.run.driver, None)
        driver = {k: card[k] for k in ("id", "name", "vehicle_type", "vehicle_registration")}
    return PickupWindow(
        **_about(ride, "pickup_window"),
        window_start=_local(ride.confirmed_window_start),
        window_end=_local(ride.confirmed_window_end),
        planned_pickup_at=_local(ride.confirmed_pickup_at),
        pickup_at=_local(ride.pickup_at),
        appointment_at=_local(ride.appointment_at),
        driver=driver,
        changed=changed,
    )


def searching(ride: Ride) -> dict[str, Any]:
    return {
        **_about(ride, "searching"),
        "message": "Searching for available drivers...",
    }


def no_drivers(ride: Ride) -> dict[str, Any]:
    return {
        **_about(ride, "no_drivers"),
        "message": "No drivers available nearby",
    }


def driver_assigned(ride: Ride, point: Point | None) -> dict[str, Any]:
    """The passenger's news of their driver; `point`: where the driver is now."""
    card = driver_card(ride.driver, point)
    distance = None
    if point is not None:
        distance = round(
            haversine_km(point.lat, point.lng, ride.pickup_latitude, ride.pickup_longitude), 2
        )
    eta = None if distance is None else eta_minutes(distance)
    return {
        **_about(ride, "driver_assigned"),
        "message": "Driver found!",
        "driver": card,
        # The flat shape too: apps in the field read either.
        "driver_id": card["id"],
        "driver_name": card["name"],
        "driver_phone": card["phone"],
        "driver_rating": card["rating"],
        "vehicle_type": card["vehicle_type"],
        "vehicle_registration": card["vehicle_registration"],
        "distance_km": distance,
        "eta_minutes": eta,
    }


def ride_assigned(ride: Ride) -> dict[str, Any]:
    """What the driver's app is told of a ride it now carries."""
    passenger = person(ride.passenger)
    return {
        **_about(ride, "ride_assigned"),
        "passenger": passenger,
        "passenger_name": passenger["name"],
        "passenger_phone": passenger["phone"],
        "booked_by": person(ride.booked_by),
        **_places(ride),
        "needs": needs_card(ride),
    }


def ride_updated(ride: Ride) -> dict[str, Any]:
    """What the driver's app is told when the passenger's needs change mid-ride."""
    return {
        **_about(ride, "ride_updated"),
        "changed": ["needs"],
        "needs": needs_card(ride),
    }


def ride_request(ride: Ride, distance_km: float | None, expires_at) -> dict[str, Any]:
    """Offer mode: a ride put to one driver, to accept or decline."""
    return {
        **ride_assigned(ride),
        "type": "ride_request",
        "pickup_distance_km": None if distance_km is None else round(distance_km, 2),
        "expires_at": _iso(expires_at),
        "timeout_s": max(0, round((expires_at - timezone.now()).total_seconds())),
    }


def ride_cancelled(ride: Ride) -> dict[str, Any]:
    return {
        **_about(ride, "ride_cancelled"),
        "cancelled_by": ride.cancelled_by or None,
        "reason": ride.cancel_reason or None,
    }


def driver_location(ride_id: str, driver_id: int, point: Point) -> dict[str, Any]:
    return {
        "type": "driver_location",
        "ride_id": ride_id,
        "driver_id": driver_id,
        "latitude": point.lat,
        "longitude": point.lng,
        "heading": point.heading,
        "speed": point.speed,
        "timestamp": timezone.now().isoformat(),
    }


# --- the driver's manifest -------------------------------------------------------


class ManifestStop(TypedDict):
    """One stop of a driver's run, as the driver's app shows it."""

    run_id: int
    sequence: int
    kind: str  # pickup or dropoff
    ride_id: str
    status: str
    done: bool
    # The stop the driver heads for now (the first not done).
    next: bool
    planned_at: str
    window_start: str
    window_end: str
    latitude: float
    longitude: float
    address: str
    # Name always; phone only for the current trip.
    passenger: dict[str, Any]
    # The needs card for the current trip only; None for the others.
    needs: dict[str, Any] | None


def manifest_stop(stop: Stop, *, done: bool, is_next: bool, current: bool) -> ManifestStop:
    """
    A stop of the driver's manifest. `current`: the stop's ride is the
    driver's current trip (the next stop's, or aboard): only then the
    rider's phone and needs card; of the rest of the day, the name alone.
    """
    ride = stop.ride
    pickup = stop.kind == StopKind.PICKUP
    place = "pickup" if pickup else "dropoff"
    start, end = stop.window_start, stop.window_end
    if pickup and ride.confirmed_pickup_at is not None:
        # What the rider was promised, not the planner's wider window.
        start, end = ride.confirmed_window_start, ride.confirmed_window_end
    rider = person(ride.passenger)
    return ManifestStop(
        run_id=stop.run_id,
        sequence=stop.sequence,
        kind=stop.kind,
        ride_id=ride.ride_id,
        status=ride.status,
        done=done,
        next=is_next,
        planned_at=_local(stop.service_at),
        window_start=_local(start),
        window_end=_local(end),
        latitude=getattr(ride, f"{place}_latitude"),
        longitude=getattr(ride, f"{place}_longitude"),
        address=getattr(ride, f"{place}_address"),
        passenger={"name": rider["name"], "phone": rider["phone"] if current else None},
        needs=needs_card(ride) if current else None,
    )


class Manifest(TypedDict):
    """A driver's published runs of one day: `manifest`, or `manifest_updated`."""

    type: Literal["manifest", "manifest_updated"]
    driver_id: int
    service_date: str
    plan_version: int | None
    # The rides of the current trip (the next stop's, and those aboard).
    current_ride_ids: list[str]
    stops: list[ManifestStop]
    timestamp: str


def manifest(
    *,
    driver_id: int,
    service_date,
    plan_version: int | None,
    stops: list[ManifestStop],
    current_ride_ids: list[str],
    updated: bool,
) -> Manifest:
    return Manifest(
        type="manifest_updated" if updated else "manifest",
        driver_id=driver_id,
        service_date=service_date.isoformat(),
        plan_version=plan_version,
        current_ride_ids=current_ride_ids,
        stops=stops,
        timestamp=timezone.now().isoformat(),
    )


def driver_waiting(ride: Ride, *, caregivers_told: bool) -> dict[str, Any]:
    """
    The no-show escalation: the driver waits at the door. Told to the
    passenger on arrival (`stage` "passenger"), then to them and their
    caregivers (`stage` "caregivers").
    """
    return {
        **_about(ride, "driver_waiting"),
        "stage": "caregivers" if caregivers_told else "passenger",
        "message": "The driver is waiting at the door.",
        "waiting_since": _iso(ride.arrived_at),
    }


ALARM_WORDS = {
    AlarmKind.SILENT: "We have lost touch with the driver's app. A dispatcher is checking.",
    AlarmKind.STOPPED: "The car has stood still on the way for a while. A dispatcher is checking.",
    AlarmKind.SOS: "The passenger asked for help. A dispatcher is checking.",
}


def alarm(ride: Ride, raised: Alarm) -> dict[str, Any]:
    """An alarm on the ride, raised or acknowledged by a dispatcher (no health details)."""
    return {
        **_about(ride, "alarm"),
        "alarm_id": raised.pk,
        "kind": raised.kind,
        "message": (
            "A dispatcher is looking after it."
            if raised.acknowledged_at
            else ALARM_WORDS[raised.kind]
        ),
        "raised_at": _iso(raised.raised_at),
        "acknowledged": raised.acknowledged_at is not None,
        "acknowledged_at": _iso(raised.acknowledged_at),
    }
