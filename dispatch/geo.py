"""Distances on the Earth and a grid index that searches outward."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass

EARTH_RADIUS_KM = 6371.0088
KM_PER_DEGREE_LAT = math.pi * EARTH_RADIUS_KM / 180.0
# The latitudes a position may have: the map's (Web Mercator's, as Redis GEO
# keeps them). Nowhere this service drives lies beyond, and the grid index
# is neither right nor quick near the poles.
MAX_LATITUDE = 85.05112878


def haversine_km(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp = p2 - p1
    dl = math.radians(lng2 - lng1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


@dataclass(slots=True)
class Point:
    lat: float
    lng: float
    seen: float  # unix seconds of the last report (or of the placing)
    heading: float | None = None
    speed: float | None = None
    # False for a position placed rather than reported (a demo driver who
    # stands still): it never goes stale (dispatch.drivers.is_stale).
    reported: bool = True


class GridIndex:
    """
    Points bucketed into square cells of `cell_deg` degrees.

    `nearest` walks rings of cells outward from the query's cell and yields
    points in order of distance, stopping at the radius, so a search costs
    the points near the query rather than the whole fleet.
    """

    def __init__(self, cell_deg: float = 0.01) -> None:
        self.cell_deg = cell_deg
        self._cells: dict[tuple[int, int], set[int]] = {}
        self._points: dict[int, Point] = {}
        self._cell_of: dict[int, tuple[int, int]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._points)

    def __contains__(self, key: int) -> bool:
        return key in self._points

    def _cell(self, lat: float, lng: float) -> tuple[int, int]:
        return (math.floor(lat / self.cell_deg), math.floor(lng / self.cell_deg))

    def get(self, key: int) -> Point | None:
        return self._points.get(key)

    def put(self, key: int, point: Point) -> None:
        cell = self._cell(point.lat, point.lng)
        with self._lock:
            old = self._cell_of.get(key)
            if old != cell:
                if old is not None:
                    bucket = self._cells[old]
                    bucket.discard(key)
                    if not bucket:
                        del self._cells[old]
                self._cells.setdefault(cell, set()).add(key)
                self._cell_of[key] = cell
            self._points[key] = point

    def remove(self, key: int) -> None:
        with self._lock:
            cell = self._cell_of.pop(key, None)
            self._points.pop(key, None)
            if cell is not None:
                bucket = self._cells.get(cell)
                if bucket is not None:
                    bucket.discard(key)
                    if not bucket:
                        del self._cells[cell]

    def clear(self) -> None:
        with self._lock:
            self._cells.clear()
            self._points.clear()
            self._cell_of.clear()

    def items(self) -> list[tuple[int, Point]]:
        with self._lock:
            return list(self._points.items())

    def nearest(
        self, lat: float, lng: float, radius_km: float
    ) -> Iterator[tuple[int, float, Point]]:
        """Yield (key, distance_km, point) within radius, nearest first."""
        ci, cj = self._cell(lat, lng)
        cell_km_lat = self.cell_deg * KM_PER_DEGREE_LAT
        # Longitude cells shrink towards the poles; use the narrowest width in
        # the search band so no ring is closed too early.
        band = min(89.0, abs(lat) + radius_km / KM_PER_DEGREE_LAT)
        cell_km_lng = cell_km_lat * max(math.cos(math.radians(band)), 1e-6)
        cell_km = min(cell_km_lat, cell_km_lng)
        max_ring = int(radius_km / cell_km) + 1
        # Within-cell offset: a point in ring r is at least (r - 1) cells away.
        pending: list[tuple[float, int, Point]] = []
        for ring in range(max_ring + 1):
            with self._lock:
                found = [
                    (key, self._points[key])
                    for cell in _ring_cells(ci, cj, ring)
                    for key in self._cells.get(cell, ())
                ]
            for key, point in found:
                d = haversine_km(lat, lng, point.lat, point.lng)
                if d <= radius_km:
                    pending.append((d, key, point))
            # Everything closer than this bound has already been seen.
            bound = ring * cell_km
            if pending:
                pending.sort(key=lambda item: item[0], reverse=True)
                while pending and pending[-1][0] <= bound:
                    d, key, point = pending.pop()
                    yield key, d, point
            if bound > radius_km:
                break
        pending.sort(key=lambda item: item[0])
        for d, key, point in pending:
            yield key, d, point


def _ring_cells(ci: int, cj: int, ring: int) -> Iterator[tuple[int, int]]:
    if ring == 0:
        yield (ci, cj)
        return
    for dj in range(-ring, ring + 1):
        yield (ci - ring, cj + dj)
        yield (ci + ring, cj + dj)
    for di in range(-ring + 1, ring):
        yield (ci + di, cj - ring)
        yield (ci + di, cj + ring)


def naive_nearest(
    points: dict[int, Point], lat: float, lng: float, radius_km: float
) -> list[tuple[int, float]]:
    """Scan every point: the baseline that the grid is measured against."""
    found = []
    for key, p in points.items():
        d = haversine_km(lat, lng, p.lat, p.lng)
        if d <= radius_km:
            found.append((key, d))
    found.sort(key=lambda item: item[1])
    return found
