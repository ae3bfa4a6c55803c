"""
How long a leg takes: a matrix of driving times in whole seconds between the
places of a day. Pluggable (ROUTING_ENGINE):

- `haversine` (default): the great-circle distance x DETOUR_FACTOR at
  URBAN_SPEED_KMH. No map data needed: development, CI, the benchmark.
- `osrm`: an OSRM server's table service at ROUTING_URL
  (GET /table/v1/driving/{lng,lat;...}?annotations=duration).
- `valhalla`: a Valhalla server's matrix at ROUTING_URL
  (POST /sources_to_targets).

A routing server that cannot answer is an error, never a silent fallback to
straight lines: a plan on the wrong times breaks its promises.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import requests
from django.conf import settings

from dispatch.errors import DispatchError

if TYPE_CHECKING:
    import numpy as np

LatLng = tuple[float, float]
EARTH_RADIUS_KM = 6371.0088


class RoutingUnavailable(DispatchError):
    code = "routing_unavailable"
    status = 503


class TravelTimes(Protocol):
    def matrix(self, points: Sequence[LatLng]) -> np.ndarray:
        """Seconds from each point (row) to each point (column), as integers."""


@dataclass(frozen=True)
class Haversine:
    detour_factor: float = 1.3
    speed_kmh: float = 30.0

    def km(self, points: Sequence[LatLng]) -> np.ndarray:
        np = _numpy()
        rad = np.radians(np.asarray(points, dtype=float).reshape(-1, 2))
        lat, lng = rad[:, 0:1], rad[:, 1:2]
        a = (
            np.sin((lat.T - lat) / 2) ** 2
            + np.cos(lat) * np.cos(lat.T) * np.sin((lng.T - lng) / 2) ** 2
        )
        return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))

    def matrix(self, points: Sequence[LatLng]) -> np.ndarray:
        np = _numpy()
        hours = self.km(points) * self.detour_factor / self.speed_kmh
        return np.rint(hours * 3600).astype(np.int64)


@dataclass(frozen=True)
class OsrmTable:
    url: str
    timeout_s: float = 30.0

    def matrix(self, points: Sequence[LatLng]) -> np.ndarray:
        coords = ";".join(f"{lng:.6f},{lat:.6f}" for lat, lng in points)
        try:
            response = requests.get(
                f"{self.url.rstrip('/')}/table/v1/driving/{coords}",
                params={"annotations": "duration"},
                timeout=self.timeout_s,
            )
            body = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise RoutingUnavailable(f"The routing server did not answer: {exc}") from exc
        if response.status_code != 200 or body.get("code") != "Ok":
            raise RoutingUnavailable(f"The routing server refused: {body.get('message', body)}")
        return _whole_seconds(body["durations"], len(points))


@dataclass(frozen=True)
class ValhallaMatrix:
    url: str
    costing: str = "auto"
    timeout_s: float = 30.0

    def matrix(self, points: Sequence[LatLng]) -> np.ndarray:
        places = [{"lat": lat, "lon": lng} for lat, lng in points]
        try:
            response = requests.post(
                f"{self.url.rstrip('/')}/sources_to_targets",
                json={"sources": places, "targets": places, "costing": self.costing},
                timeout=self.timeout_s,
            )
            body = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise RoutingUnavailable(f"The routing server did not answer: {exc}") from exc
        if response.status_code != 200 or "sources_to_targets" not in body:
            raise RoutingUnavailable(f"The routing server refused: {body.get('error', body)}")
        rows = [[cell.get("time") for cell in row] for row in body["sources_to_targets"]]
        return _whole_seconds(rows, len(points))


def _whole_seconds(rows, n: int) -> np.ndarray:
    """A routing server's matrix; a pair it cannot route is an error."""
    if len(rows) != n or any(len(row) != n for row in rows):
        raise RoutingUnavailable("The routing server answered a matrix of the wrong size.")
    if any(cell is None for row in rows for cell in row):
        raise RoutingUnavailable("The routing server found no road between some places.")
    np = _numpy()
    return np.rint(np.asarray(rows, dtype=float)).astype(np.int64)


def _numpy():
    """
    numpy, imported on the first matrix rather than with the module: socket
    workers import this module (a run's forecast) and most never plan, and
    numpy is 12 MB of each worker's memory.
    """
    import numpy

    return numpy


def travel_times() -> TravelTimes:
    """The source the settings name."""
    engine = settings.ROUTING_ENGINE
    if engine == "haversine":
        return Haversine(settings.DETOUR_FACTOR, settings.URBAN_SPEED_KMH)
    if not settings.ROUTING_URL:
        raise RoutingUnavailable(f"ROUTING_ENGINE={engine} needs ROUTING_URL.")
    if engine == "osrm":
        return OsrmTable(settings.ROUTING_URL, settings.ROUTING_TIMEOUT_S)
    if engine == "valhalla":
        return ValhallaMatrix(settings.ROUTING_URL, timeout_s=settings.ROUTING_TIMEOUT_S)
    raise RoutingUnavailable(f"Unknown ROUTING_ENGINE {engine!r}: haversine, osrm or valhalla.")
