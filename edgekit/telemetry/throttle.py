"""Was a measured window throttled? Rules over the snapshots taken in it.

A window is throttled when, at any snapshot in it:

* a thermal zone is at or above one of its ``passive`` or ``critical`` trip points;
* a Jetson over-current counter rose between the first and the last snapshot;
* a Raspberry Pi throttle bit (under-voltage, frequency capped, throttled, soft
  temperature limit) is set now, or its since-boot bit appeared during the window;
* (reported with the trip) a clock limit is below its hardware maximum.

A downclock alone (DVFS lowering a clock with no trip, no over-current event
and no throttle bit) is not throttling; it is recorded as the minimum clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from edgekit.telemetry.rpi import THROTTLE_BITS, throttle_flags
from edgekit.telemetry.state import Snapshot
from edgekit.telemetry.thermal import THROTTLING_TRIPS, Trip


@dataclass(frozen=True)
class Verdict:
    throttled: bool
    reasons: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return self.throttled


def judge(snaps: Sequence[Snapshot], *, trips: Mapping[str, Sequence[Trip]],
          capped: Mapping[str, tuple[float, float]] | None = None) -> Verdict:
    reasons: list[str] = []
    tripped = False
    for zone, zone_trips in trips.items():
        temps = [s.temps_c[zone] for s in snaps if zone in s.temps_c]
        if not temps:
            continue
        hottest = max(temps)
        crossed = [t for t in zone_trips if t.kind in THROTTLING_TRIPS and t.temp_c <= hottest]
        if crossed:
            tripped = True
            t = min(crossed, key=lambda t: t.temp_c)
            reasons.append(f"{zone} reached {hottest:.1f} °C, at or above its {t.kind} trip point {t.temp_c:.1f} °C")
    if snaps:
        first, last = snaps[0].oc_events, snaps[-1].oc_events
        for name in sorted(set(first) & set(last)):
            if last[name] > first[name]:
                reasons.append(f"over-current event {name}: count rose {first[name]} -> {last[name]}")
        bits = [s.throttled_bits for s in snaps if s.throttled_bits is not None]
        if bits:
            now = sorted({n for b in bits for n in throttle_flags(b)[0]})
            if now:
                reasons.append("Raspberry Pi throttle bits set: " + ", ".join(now))
            new_ever = (bits[-1] & ~bits[0]) >> 16 & 0xF
            appeared = [n for b, n in THROTTLE_BITS.items() if new_ever & (1 << b) and n not in now]
            if appeared:
                reasons.append("Raspberry Pi throttle occurred during the window: " + ", ".join(appeared))
    if tripped and capped:
        reasons.append("clock capped below its maximum with the trip: "
                       + ", ".join(f"{k} {c:.0f}/{m:.0f} MHz" for k, (c, m) in sorted(capped.items())))
    return Verdict(bool(reasons), tuple(reasons))
