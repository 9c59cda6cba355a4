"""Thermal zones and their trip points (``<root>/sys/class/thermal/thermal_zone*``, millidegrees).

A ``passive`` or ``critical`` trip at or below a zone's temperature means
the kernel is throttling (or about to shut down) because of that zone.
Zones that read ``-256`` °C (disabled sensors) or cannot be read are left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgekit.telemetry.base import read_int, read_text

THERMAL = Path("sys/class/thermal")
THROTTLING_TRIPS = ("passive", "critical")


@dataclass(frozen=True)
class Trip:
    kind: str  # passive, active, hot, critical
    temp_c: float


@dataclass(frozen=True)
class Zone:
    name: str  # type, de-duplicated with the zone number
    path: Path
    trips: tuple[Trip, ...]

    def read_c(self) -> float | None:
        v = read_int(self.path / "temp")
        if v is None or v <= -256000:
            return None
        return v / 1000.0

    def trips_crossed(self, temp_c: float) -> list[Trip]:
        return [t for t in self.trips if t.kind in THROTTLING_TRIPS and t.temp_c <= temp_c]


def find_zones(root: Path = Path("/")) -> list[Zone]:
    base = root / THERMAL
    zones: list[Zone] = []
    seen: set[str] = set()
    for d in sorted(base.glob("thermal_zone*"), key=lambda p: int(p.name[12:] or 0) if p.name[12:].isdigit() else 0):
        kind = read_text(d / "type") or d.name
        name = kind if kind not in seen else f"{kind}#{d.name[12:]}"
        seen.add(kind)
        trips = []
        for tt in sorted(d.glob("trip_point_*_type")):
            k = tt.name[len("trip_point_"):-len("_type")]
            temp = read_int(d / f"trip_point_{k}_temp")
            kind_t = read_text(tt)
            if temp is not None and kind_t and temp > 0:
                trips.append(Trip(kind_t, temp / 1000.0))
        zones.append(Zone(name, d, tuple(trips)))
    return zones


def read_temps(zones: list[Zone]) -> dict[str, float]:
    return {z.name: c for z in zones if (c := z.read_c()) is not None}
