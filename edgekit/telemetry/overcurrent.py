"""Jetson over-current event counters: ``<root>/sys/kernel/debug/bpmp/debug/soctherm/oc*/event_cnt``.

Readable by root only (debugfs). A count that rises during a window means the
SoC throttled itself for over-current in it.
"""

from __future__ import annotations

from pathlib import Path

from edgekit.telemetry.base import read_int

SOCTHERM = Path("sys/kernel/debug/bpmp/debug/soctherm")


def find_counters(root: Path = Path("/")) -> list[Path]:
    base = root / SOCTHERM
    try:
        return sorted(base.glob("oc*/event_cnt")) if base.is_dir() else []
    except OSError:
        return []


def read_counters(paths: list[Path]) -> dict[str, int]:
    return {p.parent.name: v for p in paths if (v := read_int(p)) is not None}
