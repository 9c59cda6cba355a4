"""Is this host the target's hardware? A result must never carry the name of hardware it did not run on.

A profile for a specific board (a Jetson module, a Raspberry Pi: profiles with detection rules) or for
another CPU architecture runs only on that hardware: there, or through ``edgekit bench --device`` from
here. ``--emulate`` runs it on this host with the profile's settings (runtimes, precisions, batch sizes,
threads capped at this host's cores); its results are named after this host and say so.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, replace
from typing import Any

from edgekit.core.host import HostFacts
from edgekit.core.target_schema import TargetProfile


@dataclass(frozen=True)
class Placement:
    """Where a bench of ``profile`` runs: ``mismatch`` says why this host is not that hardware (None: it is)."""

    profile: str
    host: str  # "hostname (CPU model, arch)"
    host_id: str  # "hostname"
    mismatch: str | None
    emulated: bool

    @property
    def report_name(self) -> str:
        """The target name results carry: the profile's only where it ran on that hardware."""
        if self.mismatch is None:
            return self.profile
        return f"{self.host_id}~{self.profile}-settings" if self.emulated else f"{self.profile}-not-run-on-{self.host_id}"

    def to_json(self) -> dict[str, Any]:
        return {"profile": self.profile, "host": self.host, "emulated": self.emulated, "mismatch": self.mismatch,
                "note": self.note}

    @property
    def note(self) -> str | None:
        if self.mismatch is None:
            return None
        if self.emulated:
            return (f"ran on {self.host} with {self.profile}'s settings (emulation; {self.mismatch}): "
                    "these are this host's numbers")
        return (f"{self.mismatch}: not benchmarked here; run on the device ('edgekit bench --device NAME', or "
                f"edgekit on the device itself), or pass --emulate to run {self.profile}'s settings on this host")


def hardware_mismatch(target: TargetProfile, facts: HostFacts) -> str | None:
    """Why this host is not ``target``'s hardware, or None when it is (or the profile is a generic one)."""
    from edgekit.core.targets import resolve_target

    if target.arch and facts.arch not in target.arch:
        return f"{target.name} is {'/'.join(target.arch)} hardware and this host is {facts.arch}"
    if target.device_tree_match or target.module_match:
        res = resolve_target(facts, profiles=(target,))
        if res.profile is None or res.profile.name != target.name:
            seen = facts.board or f"a {facts.arch} {facts.cpu_model or 'CPU'}"
            return f"this host is {seen}, not a {target.name}"
    return None


def place(target: TargetProfile, facts: HostFacts, *, emulate: bool) -> Placement:
    host_id = socket.gethostname() or "this-host"
    host = f"{host_id} ({facts.cpu_model or 'unknown CPU'}, {facts.arch})"
    mismatch = hardware_mismatch(target, facts)
    return Placement(profile=target.name, host=host, host_id=host_id, mismatch=mismatch,
                     emulated=emulate and mismatch is not None)


def not_here(cells: list[Any], placement: Placement) -> list[Any]:
    """Every row that would run marked ``unsupported`` with the placement's reason (a non-emulated mismatch)."""
    return [replace(c, reason=placement.note, unsupported=True) if c.runs else c for c in cells]
