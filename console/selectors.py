"""
What the console shows: reads only. Every function returns plain rows the
templates and the map script can use without further queries.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Case, F, IntegerField, Prefetch, Value, When
from django.utils import timezone

from dispatch.geo import haversine_km
from dispatch.locations import location_store
from dispatch.models import (
    DRIVER_HELD_STATUSES,
    PENDING_STATUSES,
    DriverState,
    DriverStatus,
    Ride,
    RideEvent,
    RideStatus,
)
from dispatch.selectors import is_dispatcher
from people.models import CaregiverLink, LinkStatus, User, VehicleType

REGIONS = ("pending-rides", "active-rides", "events", "drivers", "links")
EVENTS_SHOWN = 40
LINKS_SHOWN = 60
OFFLINE_DRIVERS_SHOWN = 50
# Lists stay readable (and renders cheap) on a busy day; the counts and the
# map still cover everyone.
RIDES_SHOWN = 100
DRIVERS_SHOWN = 150
MAP_RIDES_SHOWN = 2000


# --- who may do what --------------------------------------------------------


def can_use_board(user: User) -> bool:
    """The live board is for dispatchers (and superusers)."""
    return is_dispatcher(user)


def can_manage_links(user: User) -> bool:
    """Caregiver links: dispatchers and support staff."""
    if not (user.is_authenticated and user.is_active and user.is_staff):
        return False
    return user.is_superuser or user.groups.filter(name__in=["Dispatchers", "Support"]).exists()


# --- rows -------------------------------------------------------------------


@dataclass
class DriverRow:
    driver: User
    status: str
    status_label: str
    is_demo: bool
    stale: bool
    latitude: float | None
    longitude: float | None
    heading: float | None
    last_report: float | None
    last_seen: datetime | None
    vehicle: str
    ride: Ride | None = None

    @property
    def map_state(self) -> str:
        if self.stale:
            return "stale"
        return "on_trip" if self.status == DriverStatus.ON_TRIP else "available"

    @property
    def online(self) -> bool:
        return self.status != DriverStatus.OFFLINE


@dataclass
class Candidate:
    driver: User
    distance_km: float | None
    stale: bool
    is_demo: bool
    vehicle: str
    last_seen: datetime | None


@dataclass
class Needs:
    labels: list[str] = field(default_factory=list)
    notes: str = ""


def _needs(ride: Ride) -> Needs:
    profile = getattr(ride.passenger, "passenger_profile", None)
    labels = []
    if ride.needs_wheelchair or (profile and profile.needs_wheelchair):
        labels.append("Wheelchair")
    if profile is not None:
        if profile.needs_walker:
            labels.append("Walker")
        if profile.needs_assistance_boarding:
            labels.append("Help boarding")
        if profile.has_service_animal:
            labels.append("Service animal")
    return Needs(labels=labels, notes=profile.notes if profile else "")


def _ts_to_datetime(ts: float | None) -> datetime | None:
    if not ts:
        return None
    return datetime.fromtimestamp(ts, tz=UTC)


def _vehicle(user: User) -> str:
    profile = getattr(user, "driver_profile", None)
    if profile is None:
        return ""
    kind = VehicleType(profile.vehicle_type).label if profile.vehicle_type else ""
    return f"{kind} · {profile.vehicle_registration}" if profile.vehicle_registration else kind


def _is_stale(*, is_demo: bool, last_report: float | None, now: float) -> bool:
    if is_demo:
        return False
    return last_report is None or now - last_report > settings.DRIVER_STALE_AFTER_S


# --- rides ------------------------------------------------------------------


def _live_links() -> Prefetch:
    return Prefetch(
        "passenger__caregiver_links",
        queryset=CaregiverLink.objects.live().select_related("caregiver").order_by("status"),
        to_attr="live_links",
    )


def pending_rides(limit: int = RIDES_SHOWN) -> list[Ride]:
    """Rides waiting for a driver, oldest first, with needs and caregivers."""
    rides = list(
        Ride.objects.pending()
        .with_people()
        .prefetch_related(_live_links())
        .order_by("created_at", "pk")[:limit]
    )
    for ride in rides:
        ride.needs = _needs(ride)
        ride.caregivers = ride.passenger.live_links
    return rides


def active_rides(limit: int = RIDES_SHOWN) -> list[Ride]:
    """
    Rides holding a driver: drivers waiting at the pickup first (longest
    wait first, possible no-shows flagged), then those on the way, then trips
    under way.
    """
    now = timezone.now()
    wait = timedelta(minutes=settings.NO_SHOW_WAIT_MIN)
    attention = Case(
        When(status=RideStatus.DRIVER_ARRIVED, then=Value(0)),
        When(status=RideStatus.ASSIGNED, then=Value(1)),
        default=Value(2),
        output_field=IntegerField(),
    )
    rides = list(
        Ride.objects.filter(status__in=DRIVER_HELD_STATUSES)
        .with_people()
        .prefetch_related(_live_links())
        .order_by(attention, "arrived_at", "assigned_at", "pk")[:limit]
    )
    for ride in rides:
        ride.needs = _needs(ride)
        ride.caregivers = ride.passenger.live_links
        ride.no_show_at = ride.arrived_at + wait if ride.arrived_at else None
        ride.possible_no_show = bool(
            ride.status == RideStatus.DRIVER_ARRIVED and ride.no_show_at and ride.no_show_at <= now
        )
    return rides


def recent_events(limit: int = EVENTS_SHOWN) -> list[RideEvent]:
    return list(
        RideEvent.objects.select_related("ride", "actor").order_by("-created_at", "-pk")[:limit]
    )


def ride_for_panel(ride_pk: int) -> Ride | None:
    ride = Ride.objects.with_people().prefetch_related(_live_links()).filter(pk=ride_pk).first()
    if ride is not None:
        ride.needs = _needs(ride)
        ride.caregivers = ride.passenger.live_links
        ride.timeline = list(ride.events.select_related("actor").order_by("-version")[:8])
    return ride


# --- drivers ----------------------------------------------------------------


def _driver_row(state: DriverState, point, held: dict[int, Ride], now: float) -> DriverRow:
    profile = getattr(state.driver, "driver_profile", None)
    is_demo = bool(profile and profile.is_demo)
    if point is not None:
        lat, lng, heading, report = point.lat, point.lng, point.heading, point.seen or None
    else:
        lat, lng, heading = state.latitude, state.longitude, state.heading
        at = state.location_updated_at
        report = at.timestamp() if at else None
    seen = _ts_to_datetime(report)
    if state.last_seen_at and (seen is None or state.last_seen_at > seen):
        seen = state.last_seen_at
    online = state.status != DriverStatus.OFFLINE
    return DriverRow(
        driver=state.driver,
        status=state.status,
        status_label=DriverStatus(state.status).label,
        is_demo=is_demo,
        stale=online and _is_stale(is_demo=is_demo, last_report=report, now=now),
        latitude=lat,
        longitude=lng,
        heading=heading,
        last_report=report,
        last_seen=seen,
        vehicle=_vehicle(state.driver),
        ride=held.get(state.driver_id),
    )


def driver_rows(ids: set[int] | None = None) -> list[DriverRow]:
    """
    Drivers as the console shows them: every online one (available, then on
    trip) and the most recently seen offline ones; or exactly `ids`. Positions
    come from the live store, falling back to the last copy in the database.
    """
    now = time.time()
    order = Case(
        When(status=DriverStatus.AVAILABLE, then=Value(0)),
        When(status=DriverStatus.ON_TRIP, then=Value(1)),
        default=Value(2),
        output_field=IntegerField(),
    )
    states = DriverState.objects.select_related("driver", "driver__driver_profile")
    if ids is not None:
        chosen = list(states.filter(driver_id__in=ids))
    else:
        chosen = [
            *states.exclude(status=DriverStatus.OFFLINE).order_by(
                order, "driver__first_name", "driver__last_name"
            ),
            *states.filter(status=DriverStatus.OFFLINE).order_by(
                F("last_seen_at").desc(nulls_last=True)
            )[:OFFLINE_DRIVERS_SHOWN],
        ]
    held_rides = Ride.objects.filter(status__in=DRIVER_HELD_STATUSES).select_related("passenger")
    if ids is not None:
        held_rides = held_rides.filter(driver_id__in=ids)
    held = {ride.driver_id: ride for ride in held_rides}
    if ids is not None and len(ids) < 50:
        store = location_store()
        positions = {i: store.get(i) for i in ids}
    else:
        positions = location_store().all()
    return [_driver_row(state, positions.get(state.driver_id), held, now) for state in chosen]


def assign_candidates(ride: Ride, *, limit: int = 25) -> list[Candidate]:
    """
    Drivers a dispatcher may put on the ride: available and verified, with an
    accessible vehicle when the passenger uses a wheelchair; nearest first,
    those without a known position last.
    """
    now = time.time()
    positions = location_store().all()
    states = DriverState.objects.filter(
        status=DriverStatus.AVAILABLE,
        driver__is_active=True,
        driver__driver_profile__is_verified=True,
    ).select_related("driver", "driver__driver_profile")
    if ride.needs_wheelchair:
        states = states.filter(
            driver__driver_profile__vehicle_type=VehicleType.WHEELCHAIR_ACCESSIBLE
        )
    if ride.driver_id:
        states = states.exclude(driver_id=ride.driver_id)
    found: list[Candidate] = []
    for state in states:
        point = positions.get(state.driver_id)
        if point is not None:
            lat, lng, report = point.lat, point.lng, point.seen or None
        else:
            lat, lng = state.latitude, state.longitude
            report = state.location_updated_at.timestamp() if state.location_updated_at else None
        distance = (
            None
            if lat is None or lng is None
            else haversine_km(ride.pickup_latitude, ride.pickup_longitude, lat, lng)
        )
        is_demo = state.driver.driver_profile.is_demo
        found.append(
            Candidate(
                driver=state.driver,
                distance_km=distance,
                stale=_is_stale(is_demo=is_demo, last_report=report, now=now),
                is_demo=is_demo,
                vehicle=_vehicle(state.driver),
                last_seen=_ts_to_datetime(report) or state.last_seen_at,
            )
        )
    found.sort(key=lambda c: (c.distance_km is None, c.stale, c.distance_km or 0.0))
    return found[:limit]


# --- caregiver links --------------------------------------------------------


def caregiver_links(limit: int = LINKS_SHOWN) -> list[CaregiverLink]:
    """Live links first (invited, then active), then the ended ones."""
    order = Case(
        When(status=LinkStatus.INVITED, then=Value(0)),
        When(status=LinkStatus.ACTIVE, then=Value(1)),
        default=Value(2),
        output_field=IntegerField(),
    )
    return list(
        CaregiverLink.objects.select_related("passenger", "caregiver", "invited_by").order_by(
            order, "-updated_at"
        )[:limit]
    )


# --- the map ----------------------------------------------------------------


def _name(user: User | None) -> str:
    if user is None:
        return ""
    return user.get_full_name() or user.display_phone


def driver_marker(row: DriverRow) -> dict[str, Any]:
    return {
        "id": row.driver.pk,
        "name": _name(row.driver),
        "phone": row.driver.display_phone,
        "vehicle": row.vehicle,
        "status": row.status,
        "status_label": row.status_label,
        "demo": row.is_demo,
        "lat": row.latitude,
        "lng": row.longitude,
        "heading": row.heading,
        "ts": row.last_report,
        "ride_id": row.ride.ride_id if row.ride else None,
        "passenger": _name(row.ride.passenger) if row.ride else None,
    }


def _on_map(row: DriverRow) -> bool:
    return row.online and row.latitude is not None and row.longitude is not None


def ride_marker(ride: Ride) -> dict[str, Any]:
    return {
        "ride_pk": ride.pk,
        "ride_id": ride.ride_id,
        "status": ride.status,
        "status_label": RideStatus(ride.status).label,
        "pending": ride.is_pending,
        "no_driver": ride.no_driver_found_at is not None,
        "lat": ride.pickup_latitude,
        "lng": ride.pickup_longitude,
        "pickup": ride.pickup_address,
        "dropoff": ride.dropoff_address,
        "passenger": _name(ride.passenger),
        "driver_id": ride.driver_id if not ride.is_pending else None,
        "driver": _name(ride.driver) if ride.driver_id and not ride.is_pending else None,
        "version": ride.version,
    }


def _map_rides(pks: set[int] | None = None) -> list[Ride]:
    rides = Ride.objects.select_related("passenger", "driver").filter(
        status__in=[*PENDING_STATUSES, *DRIVER_HELD_STATUSES]
    )
    if pks is not None:
        rides = rides.filter(pk__in=pks)
    return list(rides.order_by("created_at")[:MAP_RIDES_SHOWN])


def map_snapshot(drivers: list[DriverRow] | None = None) -> dict[str, Any]:
    """
    Everything the map draws, as JSON-ready data: online drivers with their
    state, and the pickups of pending and active rides.
    """
    drivers = driver_rows() if drivers is None else drivers
    return {
        "type": "map.snapshot",
        "server_now": time.time(),
        "drivers": [driver_marker(row) for row in drivers if _on_map(row)],
        "rides": [ride_marker(ride) for ride in _map_rides()],
    }


def map_drivers_update(ids: set[int]) -> dict[str, Any]:
    """Markers of these drivers, and which of them left the map."""
    rows = [row for row in driver_rows(ids) if _on_map(row)]
    shown = {row.driver.pk for row in rows}
    return {
        "type": "map.drivers",
        "server_now": time.time(),
        "drivers": [driver_marker(row) for row in rows],
        "removed": sorted(set(ids) - shown),
    }


def map_rides_update(pks: set[int]) -> dict[str, Any]:
    """Pickups of these rides, and which rides ended (their pickup goes)."""
    rides = _map_rides(pks)
    live = {ride.pk for ride in rides}
    ended = Ride.objects.filter(pk__in=set(pks) - live).values_list("ride_id", flat=True)
    return {
        "type": "map.rides",
        "rides": [ride_marker(ride) for ride in rides],
        "removed": sorted(ended),
    }


def board_context(regions: tuple[str, ...] | list[str] | set[str] = REGIONS) -> dict[str, Any]:
    """The data of the given board regions, each read once."""
    ctx: dict[str, Any] = {
        "no_show_wait_min": settings.NO_SHOW_WAIT_MIN,
        "stale_after_s": settings.DRIVER_STALE_AFTER_S,
    }
    if "pending-rides" in regions:
        rides = pending_rides()
        ctx["pending_rides"] = rides
        ctx["pending_count"] = (
            Ride.objects.pending().count() if len(rides) >= RIDES_SHOWN else len(rides)
        )
    if "active-rides" in regions:
        rides = active_rides()
        ctx["active_rides"] = rides
        ctx["active_count"] = (
            Ride.objects.filter(status__in=DRIVER_HELD_STATUSES).count()
            if len(rides) >= RIDES_SHOWN
            else len(rides)
        )
    if "events" in regions:
        ctx["events"] = recent_events()
    if "drivers" in regions:
        rows = driver_rows()
        online = [r for r in rows if r.online]
        ctx["drivers"] = rows
        ctx["drivers_online"] = online[:DRIVERS_SHOWN]
        ctx["drivers_online_count"] = len(online)
        ctx["drivers_offline"] = [r for r in rows if not r.online]
        ctx["drivers_available"] = sum(
            1 for r in online if r.status == DriverStatus.AVAILABLE and not r.stale
        )
        ctx["drivers_stale"] = sum(1 for r in online if r.stale)
    if "links" in regions:
        ctx["links"] = caregiver_links()
    return ctx
