"""
A ride's event log as support staff read it: each step to the second in
TIME_ZONE (with its offset), who took it, the driver it concerned and why.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from dispatch import labels
from dispatch.models import Ride, RideEvent
from people.models import User
from project.common.admin import UNFOLD_COLOURS, Pill

# Steps taken by the ride's driver themselves.
DRIVER_STEPS = {"driver_arrived", "started", "completed", "no_show", "driver_cancelled"}


def stamp(moment: datetime | None) -> str:
    """ "2026-12-04 21:46:09 +02:00": to the second, in TIME_ZONE, with the offset."""
    if moment is None:
        return "—"
    local = timezone.localtime(moment)
    offset = local.strftime("%z")
    return f"{local:%Y-%m-%d %H:%M:%S} {offset[:3]}:{offset[3:]}"


@dataclass(frozen=True, slots=True)
class TimelineRow:
    version: int
    at: str
    kind: str
    what: str
    tone: str
    status: str
    who: str
    driver: str
    detail: str

    @property
    def pill(self) -> str:
        # Rendered here: a template would print the Pill's str, its words alone.
        return Pill(self.kind, self.what, UNFOLD_COLOURS.get(self.tone)).__html__()


def _who(event: RideEvent) -> str:
    role = labels.role_label(event.actor_role or "system")
    if event.actor is None:
        return role if event.actor_role not in ("", "system") else "Care Connect (automatic)"
    return f"{event.actor} ({role.lower()})"


def _detail(event: RideEvent, people: dict[int, User]) -> str:
    payload = event.payload or {}
    parts = []
    if payload.get("reason"):
        parts.append(f"Reason: {payload['reason']}")
    previous = payload.get("previous_driver_id")
    if previous:
        parts.append(f"Instead of {people.get(previous, f'driver #{previous}')}")
    if payload.get("distance_km") is not None:
        parts.append(f"{payload['distance_km']:.1f} km from the pickup")
    if payload.get("run_id"):
        parts.append(f"Run #{payload['run_id']}")
    return "; ".join(parts)


def ride_timeline(ride: Ride) -> list[TimelineRow]:
    """Every event of the ride, oldest first, with its people named."""
    events = list(ride.events.select_related("actor").order_by("version"))
    ids = {
        value
        for event in events
        for key in ("driver_id", "previous_driver_id")
        if (value := (event.payload or {}).get(key))
    }
    people = {user.pk: user for user in User.objects.filter(pk__in=ids)}
    rows, holder = [], None
    for event in events:
        named = (event.payload or {}).get("driver_id")
        if event.kind in DRIVER_STEPS and event.actor is not None:
            named = event.actor.pk
            people.setdefault(named, event.actor)
        if event.kind in ("assigned", "reassigned"):
            holder = named
        concerned = named or holder
        rows.append(
            TimelineRow(
                version=event.version,
                at=stamp(event.created_at),
                kind=event.kind,
                what=labels.event_label(event.kind),
                tone=labels.event_tone(event.kind),
                status=labels.ride_status_label(event.to_status) if event.to_status else "",
                who=_who(event),
                driver=str(people.get(concerned, "—")) if concerned else "No driver yet",
                detail=_detail(event, people),
            )
        )
        if event.kind in ("driver_cancelled", "no_drivers"):
            holder = None
    return rows


def no_driver_found_at(ride: Ride) -> datetime | None:
    """
    When matching last found nobody: the ride's field while it waits (a
    driver found later clears it), else the log's last no_drivers event.
    """
    if ride.no_driver_found_at is not None:
        return ride.no_driver_found_at
    event = ride.events.filter(kind="no_drivers").order_by("-version").first()
    return event.created_at if event else None
