"""One bench run's telemetry: the power source, the state probe, the idle baseline, cooldown, and the
:class:`~edgekit.telemetry.result.TelemetryResult` of each measured window.

It lives in the bench code path, in the process that runs the model (on the
host for a local bench, on the device for ``bench --device``): nothing in it
assumes the host.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from edgekit.core.errors import UsageError
from edgekit.telemetry.base import CommandRunner, PowerSource, Unavailable, run_command
from edgekit.telemetry.detect import open_source
from edgekit.telemetry.energy import window_energy
from edgekit.telemetry.monitor import WindowMonitor
from edgekit.telemetry.result import TelemetryResult
from edgekit.telemetry.state import StateProbe
from edgekit.telemetry.sustained import interval_table
from edgekit.telemetry.throttle import judge

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TelemetryOptions:
    power: str = "auto"  # auto | off | ina3221 | tegrastats | rapl | rpi-pmic | nvml
    rate_hz: float = 20.0
    idle_s: float = 2.0  # idle baseline before the first window (0: none)
    allow_throttle: bool = False
    cooldown: bool = False
    cooldown_delta_c: float = 3.0  # back within this of the idle temperature
    cooldown_max_s: float = 300.0
    sustained_min: float | None = None
    interval_s: float | None = None  # sustained interval; None: a tenth of the run, 10 to 60 s
    root: str = "/"

    def validate(self) -> None:
        for name, v, zero in (("--power-rate", self.rate_hz, False), ("--idle", self.idle_s, True),
                              ("--cooldown-delta", self.cooldown_delta_c, False),
                              ("--cooldown-max", self.cooldown_max_s, False),
                              ("--sustained", self.sustained_min, False), ("interval_s", self.interval_s, False)):
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v) or v < 0 or (v == 0 and not zero):
                raise UsageError(f"{name} must be a number {'>= 0' if zero else '> 0'}, got {v!r}")

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


class Telemetry:
    def __init__(self, options: TelemetryOptions, *, source: PowerSource | None, unavailable: Sequence[Unavailable],
                 probe: StateProbe, sleep: Callable[[float], None] = time.sleep) -> None:
        self.options, self.source, self.unavailable, self.probe = options, source, tuple(unavailable), probe
        self.sleep = sleep
        self.idle_power_w: float | None = None
        self.idle_temp_c: float | None = None
        self.notes: list[str] = []

    @classmethod
    def open(cls, options: TelemetryOptions, *, prefer_gpu: bool = False, run: CommandRunner | None = None,
             source: PowerSource | None = None) -> Telemetry:
        """Probe everything under ``options.root``; ``source`` (tests) skips the probing of power sources."""
        options.validate()
        root = Path(options.root)
        src: PowerSource | None
        why: list[Unavailable] = []
        if source is not None:
            src = source
        else:
            src, why = open_source(options.power, root=root, run=run or run_command, prefer_gpu=prefer_gpu)
        probe = StateProbe(root, run=run)
        return cls(options, source=src, unavailable=why, probe=probe)

    def close(self) -> None:
        if self.source is not None:
            self.source.close()

    def monitor(self) -> WindowMonitor:
        return WindowMonitor(self.source, self.probe, rate_hz=self.options.rate_hz)

    def measure_idle(self) -> None:
        """Mean power and hottest temperature with nothing running, over ``idle_s``."""
        if self.options.idle_s <= 0:
            return
        mon = self.monitor()
        with mon:
            self.sleep(self.options.idle_s)
        temps = [s.max_temp_c for s in mon.snapshots if s.max_temp_c is not None]
        self.idle_temp_c = min(temps) if temps else None
        if self.source is not None and mon.t0_ns is not None and mon.t1_ns is not None:
            we = window_energy(mon.readings, mon.t0_ns, mon.t1_ns, kind=self.source.kind)
            self.idle_power_w = we.mean_power_w if we is not None else None
            if we is None:
                self.notes.append(f"idle baseline: {self.source.name} gave no usable sample in {self.options.idle_s} s")

    def cooldown(self) -> dict[str, Any] | None:
        """Wait until the hottest zone is back within ``cooldown_delta_c`` of idle, at most ``cooldown_max_s``."""
        if not self.options.cooldown:
            return None
        if self.idle_temp_c is None:
            return {"waited_s": 0.0, "reached": False, "target_c": None,
                    "reason": "no idle temperature to cool down to (" + self.probe.absent.get(
                        "temperature", "no idle baseline: --idle 0") + ")"}
        target = self.idle_temp_c + self.options.cooldown_delta_c
        t0 = time.perf_counter_ns()
        temp = self.probe.snapshot(with_commands=False).max_temp_c
        while temp is not None and temp > target and (time.perf_counter_ns() - t0) / 1e9 < self.options.cooldown_max_s:
            self.sleep(1.0)
            temp = self.probe.snapshot(with_commands=False).max_temp_c
        waited = (time.perf_counter_ns() - t0) / 1e9
        reached = temp is not None and temp <= target
        if not reached:
            log.warning("cooldown: still %.1f °C after %.0f s (target %.1f °C)", temp or float("nan"), waited, target)
        return {"waited_s": waited, "reached": reached, "target_c": target, "temp_c": temp}

    def settings(self) -> dict[str, Any]:
        return {**self.options.to_json(), "source": self.source.name if self.source else None,
                "scope": str(self.source.scope) if self.source else None,
                "detail": self.source.detail if self.source else None,
                "unavailable": [u.one_line() for u in self.unavailable],
                "idle_power_w": self.idle_power_w, "idle_temp_c": self.idle_temp_c,
                "state_absent": dict(self.probe.absent), "trips": {z: [[t.kind, t.temp_c] for t in trips]
                                                                   for z, trips in self.probe.trips.items()},
                "notes": list(self.notes)}

    def result(self, mon: WindowMonitor, *, iterations: int, latencies_ns: Sequence[int] = (),
               cooldown: dict[str, Any] | None = None) -> TelemetryResult:
        """The row's telemetry from a finished window of ``iterations`` inferences."""
        res = TelemetryResult(state_absent=dict(self.probe.absent), cooldown=cooldown)
        snaps = mon.snapshots
        if snaps:
            res = replace(res, **_state_fields(snaps))
        verdict = judge(snaps, trips=self.probe.trips, capped=self.probe.capped())
        res = replace(res, throttled=verdict.throttled, throttle_reasons=verdict.reasons)
        if self.source is None:
            res = replace(res, power_unavailable=tuple(u.one_line() for u in self.unavailable))
        elif mon.t0_ns is not None and mon.t1_ns is not None:
            res = replace(res, **self._power_fields(mon, iterations))
        if self.options.sustained_min and latencies_ns and mon.t0_ns is not None and mon.t1_ns is not None:
            rows, ratio = interval_table(mon, latencies_ns, kind=self.source.kind if self.source else None,
                                         interval_s=self.options.interval_s)
            res = replace(res, intervals=tuple(rows), first_last=ratio)
        return res

    def _power_fields(self, mon: WindowMonitor, iterations: int) -> dict[str, Any]:
        src = self.source
        assert src is not None and mon.t0_ns is not None and mon.t1_ns is not None
        base = {"source": str(src.name), "scope": str(src.scope), "detail": src.detail, "rate_hz": mon.rate_hz,
                "idle_power_w": self.idle_power_w}
        we = window_energy(mon.readings, mon.t0_ns, mon.t1_ns, kind=src.kind)
        if we is None or iterations <= 0:
            why = "; ".join(mon.errors) or "no usable sample in the window"
            return {**base, "source": None,
                    "power_unavailable": (f"{src.name}: read during the window but {why}",)}
        per = we.energy_mj / iterations
        out: dict[str, Any] = {**base, "samples": we.samples, "mean_power_w": we.mean_power_w, "window_energy_j": we.energy_mj / 1e3,
               "energy_mj": per, "inferences_per_j": iterations / (we.energy_mj / 1e3) if we.energy_mj > 0 else None}
        if we.power_ci_w is not None:
            scale = we.duration_s * 1e3 / iterations  # W -> mJ per inference
            out["power_ci_w"] = we.power_ci_w
            out["energy_ci_mj"] = (we.power_ci_w[0] * scale, we.power_ci_w[1] * scale)
        if self.idle_power_w is not None:
            out["above_idle_w"] = we.mean_power_w - self.idle_power_w
            out["above_idle_mj"] = (we.energy_mj - self.idle_power_w * 1e3 * we.duration_s) / iterations
        return out


def _state_fields(snaps: Sequence[Any]) -> dict[str, Any]:
    first, last = snaps[0], snaps[-1]
    zones: dict[str, float] = {}
    mins: dict[str, float] = {}
    for s in snaps:
        for k, v in s.temps_c.items():
            zones[k] = max(v, zones.get(k, v))
        for k, v in s.clocks_mhz.items():
            mins[k] = min(v, mins.get(k, v))
    return {"temp_start_c": first.max_temp_c, "temp_end_c": last.max_temp_c,
            "temp_max_c": max(zones.values()) if zones else None, "temps_max_c": zones,
            "clocks_start_mhz": dict(first.clocks_mhz), "clocks_min_mhz": mins}
