"""Power, thermal and clock telemetry for benchmark windows (standard library and numpy only).

One module per source, each reading from an injectable root path or command
runner: :mod:`~edgekit.telemetry.hwmon` (Jetson INA3221),
:mod:`~edgekit.telemetry.tegrastats` (Jetson fallback, JetPack 4-7 parser),
:mod:`~edgekit.telemetry.rapl` (Intel powercap), :mod:`~edgekit.telemetry.rpi`
(Raspberry Pi 5 PMIC and throttle bits), :mod:`~edgekit.telemetry.nvml`
(NVIDIA GPU, lazy ``pynvml``); :mod:`~edgekit.telemetry.thermal`,
:mod:`~edgekit.telemetry.clocks` and :mod:`~edgekit.telemetry.overcurrent`
for the device state; :mod:`~edgekit.telemetry.throttle` for the rules;
:mod:`~edgekit.telemetry.session` ties them to a bench window.
"""

from __future__ import annotations

from edgekit.telemetry.base import (
           PowerReading,
           PowerSource,
           Scope,
           SourceName,
           Unavailable,
)
from edgekit.telemetry.detect import PowerChoice, open_source
from edgekit.telemetry.result import TelemetryResult
from edgekit.telemetry.session import Telemetry, TelemetryOptions

__all__ = ["PowerChoice", "PowerReading", "PowerSource", "Scope", "SourceName", "Telemetry", "TelemetryOptions",
           "TelemetryResult", "Unavailable", "open_source"]
