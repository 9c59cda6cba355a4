"""What telemetry adds to one bench row: power, energy per inference, temperatures, clocks, throttling.

Units: W, mJ per inference, inferences per J, °C, MHz. A field is None when it
was not measured; ``power_unavailable`` then says why (never a zero).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class TelemetryResult:
    source: str | None = None  # ina3221, tegrastats, rapl, rpi-pmic, nvml; None: no power measured
    scope: str | None = None  # module input, sum of module rails, SoC rails, CPU package, GPU board
    detail: str | None = None
    power_unavailable: tuple[str, ...] = ()  # why each source could not be used (when source is None)
    samples: int = 0
    rate_hz: float | None = None
    mean_power_w: float | None = None
    power_ci_w: tuple[float, float] | None = None
    idle_power_w: float | None = None
    above_idle_w: float | None = None
    window_energy_j: float | None = None
    energy_mj: float | None = None  # per inference
    energy_ci_mj: tuple[float, float] | None = None  # 95 %, batch means over time blocks
    above_idle_mj: float | None = None  # (E - idle * t) / N
    inferences_per_j: float | None = None
    temp_start_c: float | None = None  # hottest readable zone
    temp_end_c: float | None = None
    temp_max_c: float | None = None
    temps_max_c: dict[str, float] = field(default_factory=dict)  # per zone
    clocks_start_mhz: dict[str, float] = field(default_factory=dict)
    clocks_min_mhz: dict[str, float] = field(default_factory=dict)
    throttled: bool = False
    throttle_reasons: tuple[str, ...] = ()
    state_absent: dict[str, str] = field(default_factory=dict)  # what could not be read, and why
    cooldown: dict[str, Any] | None = None  # waited_s, target_c, reached
    intervals: tuple[dict[str, Any], ...] = ()  # sustained mode
    first_last: dict[str, float | None] | None = None  # sustained: last / first interval per metric

    def metrics(self) -> dict[str, Any]:
        """Flat keys for CSV, gates and history."""
        ci = self.energy_ci_mj or (None, None)
        cpu_start = [v for k, v in self.clocks_start_mhz.items() if k.startswith("cpu")]
        cpu_min = [v for k, v in self.clocks_min_mhz.items() if k.startswith("cpu")]
        fl = self.first_last or {}
        return {
            "energy_mj": self.energy_mj, "energy_ci_low_mj": ci[0], "energy_ci_high_mj": ci[1],
            "energy_above_idle_mj": self.above_idle_mj, "inferences_per_j": self.inferences_per_j,
            "power_mean_w": self.mean_power_w, "power_idle_w": self.idle_power_w,
            "power_above_idle_w": self.above_idle_w, "power_source": self.source, "power_scope": self.scope,
            "power_samples": self.samples, "power_rate_hz": self.rate_hz,
            "temp_start_c": self.temp_start_c, "temp_end_c": self.temp_end_c, "temp_max_c": self.temp_max_c,
            "cpu_mhz_start": max(cpu_start) if cpu_start else None, "cpu_mhz_min": min(cpu_min) if cpu_min else None,
            "gpu_mhz_start": self.clocks_start_mhz.get("gpu"), "gpu_mhz_min": self.clocks_min_mhz.get("gpu"),
            "throttled": self.throttled,
            "sustained_p50_ratio": fl.get("p50_ms"), "sustained_power_ratio": fl.get("power_w"),
        }

    def to_json(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        for k in ("power_unavailable", "throttle_reasons", "intervals"):
            d[k] = list(d[k])
        for k in ("power_ci_w", "energy_ci_mj"):
            d[k] = list(d[k]) if d[k] is not None else None
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TelemetryResult:
        kw = {f.name: d[f.name] for f in fields(cls) if f.name in d}
        for k in ("power_unavailable", "throttle_reasons", "intervals"):
            kw[k] = tuple(kw.get(k) or ())
        for k in ("power_ci_w", "energy_ci_mj"):
            if kw.get(k) is not None:
                kw[k] = (float(kw[k][0]), float(kw[k][1]))
        return cls(**kw)
