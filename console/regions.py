"""
What the board shows: the rows of its regions, read only. Every function
returns plain rows the templates can use without further queries. The rules
behind them (who is stale, what a passenger needs, who may be assigned) are
dispatch's; this only arranges them for a dispatcher's eye.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Case, F, IntegerField, Prefetch, Value, When
from django.utils import timezone

from dispatch import drivers, payloads
from dispatch.geo import Point
from dispatch.locations import live_position, location_store, saved_point
from dispatch.models import (
    DRIVER_HELD_STATUSES,
    Alarm,
    DriverState,
    DriverStatus,
    OfferStatus,
    Ride,
    RideEvent,
    RideOffer,
    RideStatus,
    Run,
)
from dispatch.planning.day import late_runs
from people.models import CaregiverLink, User, VehicleType

# The board's live regions. Caregiver links have their own page
# (console:links, console/links.py).
REGIONS = ("alerts", "pending-rides", "trouble", "active-rides", "events", "drivers")
# Regions kept in a template of their own, included into the board.
REGION_TEMPLATES = {"alerts": "console/alerts.html"}
ALERTS_SHOWN = 50
EVENTS_SHOWN = 40
OFFLINE_DRIVERS_SHOWN = 50
# Lists stay readable (and renders cheap) on a busy day; the counts and the
# map still cover everyone.
RIDES_SHOWN = 100
DRIVERS_SHOWN = 150


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
    # When the driver turns stale without a new report (None: never).
    stale_at: float | None = None
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
class Needs:
    labels: list[str] = field(default_factory=list)
    notes: str = ""


NEED_LABELS = {
    "wheelchair": "Wheelchair",
    "walker": "Walker",
    "assistance_boarding": "Help boarding",
    "service_animal": "Service animal",
}


def _needs(ride: Ride) -> Needs:
    """The ride's needs card (dispatch.payloads.needs_card) as chips."""
    card = payloads.needs_card(ride)
    return Needs(
        labels=[label for key, label in NEED_LABELS.items() if card[key]], notes=card["notes"]
    )


def _ts_to_datetime(ts: float | None) -> datetime | None:
    if not ts:
        return None
    return datetime.fromtimestamp(ts, tz=UTC)


def vehicle_label(user: User) -> str:
    profile = getattr(user, "driver_profile", None)
    if profile is None:
        return ""
    kind = VehicleType(profile.vehicle_type).label if profile.vehicle_type else ""
    return f"{kind} · {profile.vehicle_registration}" if profile.vehicle_registration else kind


# --- rides ------------------------------------------------------------------


def _live_links() -> Prefetch:
    return Prefetch(
        "passenger__caregiver_links",
        queryset=CaregiverLink.objects.live().select_related("caregiver").order_by("status"),
        to_attr="live_links",
    )


def _open_offers() -> Prefetch:
    return Prefetch(
        "offers",
        queryset=RideOffer.objects.filter(status=OfferStatus.OFFERED).select_related("driver"),
        to_attr="open_offers",
    )


def pending_rides(limit: int = RIDES_SHOWN) -> list[Ride]:
    """
    Rides waiting for a driver, longest waiting first, with needs, caregivers and
    (offer mode) the open offer: who holds it, and until when.
    """
    rides = list(
        Ride.objects.pending()
        .with_people()
        .prefetch_related(_live_links(), _open_offers())
        .order_by("waiting_since", "pk")[:limit]
    )
    for ride in rides:
        ride.needs = _needs(ride)
        ride.caregivers = ride.passenger.live_links
        ride.offer = ride.open_offers[0] if ride.open_offers else None
    return rides


def rides_in_trouble(active: list[Ride], rows: list[DriverRow] | None) -> list[Ride]:
    """
    Of the rides holding a driver, those a dispatcher should look at now:
    the driver waits at the pickup (a no-show is possible, or soon), or the
    driver has sent no position lately.
    """
    stale = {row.driver.pk for row in rows or () if row.stale}
    trouble = []
    for ride in active:
        ride.driver_stale = ride.driver_id in stale
        if ride.status == RideStatus.DRIVER_ARRIVED or ride.driver_stale:
            trouble.append(ride)
    return trouble


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


def name_drivers(events: list[RideEvent]) -> list[RideEvent]:
    """
    Each event's driver and previous driver (an offer's, an assignment's, a
    reassignment's: the ids in its payload) as `driver` and
    `previous_driver`, read in one query.
    """
    ids = set()
    for event in events:
        for key in ("driver_id", "previous_driver_id"):
            if isinstance(event.payload.get(key), int):
                ids.add(event.payload[key])
    people = User.objects.in_bulk(ids) if ids else {}
    for event in events:
        event.driver = people.get(event.payload.get("driver_id"))
        event.previous_driver = people.get(event.payload.get("previous_driver_id"))
    return events


def recent_events(limit: int = EVENTS_SHOWN) -> list[RideEvent]:
    return name_drivers(
        list(
            RideEvent.objects.select_related("ride", "actor").order_by("-created_at", "-pk")[:limit]
        )
    )


def ride_for_panel(ride_pk: int) -> Ride | None:
    ride = (
        Ride.objects.with_people()
        .prefetch_related(_live_links(), _open_offers())
        .filter(pk=ride_pk)
        .first()
    )
    if ride is not None:
        ride.needs = _needs(ride)
        ride.caregivers = ride.passenger.live_links
        ride.timeline = name_drivers(
            list(ride.events.select_related("actor").order_by("-version")[:8])
        )
        ride.offer = ride.open_offers[0] if ride.is_pending and ride.open_offers else None
    return ride


# --- drivers ----------------------------------------------------------------


def _driver_row(
    state: DriverState, point: Point | None, held: dict[int, Ride], now: float
) -> DriverRow:
    profile = getattr(state.driver, "driver_profile", None)
    is_demo = bool(profile and profile.is_demo)
    lat = point.lat if point else None
    lng = point.lng if point else None
    heading = point.heading if point else None
    report = point.seen or None if point else None
    seen = _ts_to_datetime(report)
    if state.last_seen_at and (seen is None or state.last_seen_at > seen):
        seen = state.last_seen_at
    online = state.status != DriverStatus.OFFLINE
    return DriverRow(
        driver=state.driver,
        status=state.status,
        status_label=DriverStatus(state.status).label,
        is_demo=is_demo,
        stale=online and drivers.is_stale(point, now),
        stale_at=drivers.stale_at(point),
        latitude=lat,
        longitude=lng,
        heading=heading,
        last_report=report,
        last_seen=seen,
        vehicle=vehicle_label(state.driver),
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
    # Drivers who may not drive (not verified, or no longer; switched off; no
    # longer a driver) are not shown: they can take no ride. A trip they are
    # finishing still shows on its ride card.
    states = DriverState.objects.may_drive().select_related("driver", "driver__driver_profile")
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
        positions = {state.driver_id: live_position(state.driver_id, state) for state in chosen}
    else:
        live = location_store().all()
        positions = {
            state.driver_id: live.get(state.driver_id) or saved_point(state) for state in chosen
        }
    return [_driver_row(state, positions.get(state.driver_id), held, now) for state in chosen]


def region_template(name: str) -> str:
    """The template name of one board region, for render_to_string."""
    return f"{REGION_TEMPLATES.get(name, 'console/board.html')}#{name}"


# --- the alert lane -----------------------------------------------------------


def alert_lane(now: datetime | None = None) -> dict[str, Any]:
    """
    What needs a dispatcher's attention: open alarms, drivers waiting at
    the door after the caregivers were told, rides waiting for a driver
    longer than ALERT_WAITING_MIN (each listed from the start, shown once
    due, so the page reveals it on time without a render), late runs.
    """
    now = now or timezone.now()
    alarms = list(
        Alarm.objects.filter(acknowledged_at=None)
        .select_related("ride__passenger", "ride__driver")
        .order_by("raised_at")[:ALERTS_SHOWN]
    )
    at_door = list(
        Ride.objects.filter(status=RideStatus.DRIVER_ARRIVED)
        .exclude(waiting_escalated_at=None)
        .select_related("passenger", "driver")
        .order_by("arrived_at")[:ALERTS_SHOWN]
    )
    waiting = list(
        Ride.objects.pending()
        .select_related("passenger")
        .order_by("waiting_since", "pk")[:ALERTS_SHOWN]
    )
    after = timedelta(minutes=settings.ALERT_WAITING_MIN)
    for ride in waiting:
        ride.alert_after = ride.waiting_since + after
        ride.alert_due = ride.alert_after <= now
    today = timezone.localdate(now)
    late = (
        late_runs(today, now=now) if Run.objects.filter(plan__service_date=today).exists() else []
    )
    due = len(alarms) + len(at_door) + sum(r.alert_due for r in waiting) + len(late)
    return {
        "alarms": alarms,
        "at_door": at_door,
        "waiting": waiting,
        "late_runs": late,
        "due": due,
    }


def board_context(regions: tuple[str, ...] | list[str] | set[str] = REGIONS) -> dict[str, Any]:
    """The data of the given board regions, each read once."""
    ctx: dict[str, Any] = {
        "no_show_wait_min": settings.NO_SHOW_WAIT_MIN,
    }
    if "alerts" in regions:
        ctx["alerts"] = alert_lane()
    if "pending-rides" in regions:
        rides = pending_rides()
        ctx["pending_rides"] = rides
        ctx["pending_count"] = (
            Ride.objects.pending().count() if len(rides) >= RIDES_SHOWN else len(rides)
        )
    if "active-rides" in regions or "trouble" in regions:
        rides = active_rides()
        ctx["active_rides"] = rides
        ctx["active_count"] = (
            Ride.objects.filter(status__in=DRIVER_HELD_STATUSES).count()
            if len(rides) >= RIDES_SHOWN
            else len(rides)
        )
    if "events" in regions:
        ctx["events"] = recent_events()
    if "drivers" in regions or "trouble" in regions:
        rows = driver_rows()
        online = [r for r in rows if r.online]
        ctx["drivers"] = rows
        ctx["drivers_online"] = online[:DRIVERS_SHOWN]
        ctx["drivers_online_count"] = len(online)
        ctx["drivers_offline"] = [r for r in rows if not r.online]
        # Only the most recently seen are listed: "50+" when there may be more.
        ctx["drivers_offline_cut"] = len(ctx["drivers_offline"]) >= OFFLINE_DRIVERS_SHOWN
        ctx["drivers_available"] = sum(
            1 for r in online if r.status == DriverStatus.AVAILABLE and not r.stale
        )
        ctx["drivers_stale"] = sum(1 for r in online if r.stale)
        ctx["drivers_on_trip"] = sum(
            1 for r in online if r.status == DriverStatus.ON_TRIP and not r.stale
        )
    if "trouble" in regions:
        ctx["trouble_rides"] = rides_in_trouble(ctx["active_rides"], ctx["drivers"])
    return ctx
