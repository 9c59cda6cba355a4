"""Target profiles: what a device is, which runtimes to use on it, what it can do.

A profile is a TOML file (schema in :mod:`edgekit.core.target_schema`, examples in the top-level
``targets/`` directory, shipped inside the wheel as ``edgekit/targets``).
:func:`load_target` takes a built-in name (``jetson-orin-nano``), the word
``jetson`` (the Jetson this host is, from :mod:`edgekit.core.host`'s facts) or a path to
the user's own TOML file. Every field is validated; an error names the file and
the field (``targets/foo.toml: runtimes[1].precisions: 'int4' is not one of
fp32, fp16, bf16, int8``).

Published figures (peak compute, memory bandwidth) must carry a ``source``;
when a figure is unknown the profile leaves it out and says why in a ``note``.
Standard library only (``tomllib``, or ``tomli`` on Python 3.10).
"""

from __future__ import annotations

import difflib
import os
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from edgekit.core.errors import UsageError
from edgekit.core.host import JETSON_MODULES, HostFacts, read_host_facts
from edgekit.core.target_schema import (
    ARCHES,
    FAMILIES,
    PRECISIONS,
    RUNTIME_RULES,
    SCHEMA_VERSION,
    HardwareSpec,
    MemorySpec,
    PeakCompute,
    PowerMode,
    RuntimeSpec,
    TargetProfile,
    parse_target,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

__all__ = [
    "ARCHES", "FAMILIES", "PRECISIONS", "RUNTIME_RULES", "SCHEMA_VERSION", "HardwareSpec", "MemorySpec",
    "PeakCompute", "PowerMode", "RuntimeSpec", "TargetProfile", "builtin_target_names", "builtin_targets_dir",
    "TargetResolution", "list_targets", "load_target", "load_target_file", "parse_target", "resolve_jetson",
    "resolve_target",
]


# -- loading ------------------------------------------------------------------

def builtin_targets_dir() -> Any:
    """The built-in profiles: ``targets/`` of a source checkout, else ``edgekit/targets`` in the wheel."""
    root = Path(__file__).resolve().parents[2]
    if (root / "targets").is_dir() and (root / "pyproject.toml").is_file():
        return root / "targets"
    return resources.files("edgekit") / "targets"


def _builtin_files() -> dict[str, Any]:
    d = builtin_targets_dir()
    try:
        entries = list(d.iterdir()) if d.is_dir() else []
    except (FileNotFoundError, NotADirectoryError):
        entries = []
    return {e.name[:-5]: e for e in entries if e.name.endswith(".toml") and e.is_file()}


def builtin_target_names() -> tuple[str, ...]:
    return tuple(sorted(_builtin_files()))


def _parse_text(text: str, origin: str) -> TargetProfile:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"{origin}: not valid TOML: {e}") from None
    return parse_target(data, origin=origin)


def load_target_file(path: str | os.PathLike[str]) -> TargetProfile:
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"target file {p} does not exist",
                         hint=f"pass a TOML file or one of: {', '.join(builtin_target_names())}")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"cannot read target file {p}: {e}") from None
    return _parse_text(text, str(path))


def list_targets() -> tuple[TargetProfile, ...]:
    """Every built-in profile, sorted by name."""
    return tuple(_load_builtin(n, f) for n, f in sorted(_builtin_files().items()))


def _load_builtin(name: str, entry: Any) -> TargetProfile:
    origin = f"targets/{name}.toml"
    profile = _parse_text(entry.read_text(encoding="utf-8"), origin)
    if profile.name != name:
        raise UsageError(f"{origin}: name: {profile.name!r} does not match the file name {name!r}")
    return profile


def load_target(name_or_path: str | os.PathLike[str], *, facts: HostFacts | None = None) -> TargetProfile:
    """A built-in target by name, ``jetson`` (this Jetson), or a user's TOML file.

    ``facts`` are the host facts to identify a Jetson by (default: this host's, read by
    :func:`edgekit.core.host.read_host_facts`; tests and remote devices pass theirs).
    """
    if isinstance(name_or_path, os.PathLike) or str(name_or_path).endswith(".toml") or os.sep in str(name_or_path):
        return load_target_file(name_or_path)
    name = str(name_or_path).strip().lower().replace("_", "-")
    if name == "jetson":
        return resolve_jetson(facts=facts)
    files = _builtin_files()
    if name in files:
        return _load_builtin(name, files[name])
    close = difflib.get_close_matches(name, list(files), n=3, cutoff=0.5)
    maybe = f"did you mean {', '.join(close)}? " if close else ""
    raise UsageError(f"unknown target {str(name_or_path)!r}",
                     hint=f"{maybe}built-in targets: {', '.join(sorted(files)) or 'none found'}, "
                          "'jetson' (this Jetson), or a path to a .toml profile")


# -- resolution from host facts ----------------------------------------------------------------------------

@dataclass(frozen=True)
class TargetResolution:
    """Which built-in profile a host is, and why; ``profile`` None with ``reason`` when none fits."""

    profile: TargetProfile | None
    reason: str

    def __bool__(self) -> bool:
        return self.profile is not None


def _norm(text: str) -> str:
    return " ".join(text.lower().replace("-", " ").split())


def resolve_target(facts: HostFacts, *, profiles: tuple[TargetProfile, ...] | None = None) -> TargetResolution:
    """The built-in profile a host's own facts name.

    Jetson: by module P-number first (memory variants share one model string, and a carrier board changes
    it); a known P-number without a profile resolves to none, never to the closest model string. Then the
    device-tree model (Jetson, Raspberry Pi). Else by CPU: ``intel-cpu`` for an Intel x86_64 CPU, ``cpu``
    for any other x86_64/aarch64 host.
    """
    profiles = list_targets() if profiles is None else profiles
    if facts.jetson_module:
        for p in profiles:
            if facts.jetson_module in p.module_match:
                return TargetResolution(p, f"Jetson module {facts.jetson_module}")
        what = JETSON_MODULES.get(facts.jetson_module, "an unlisted module")
        return TargetResolution(None, f"Jetson module {facts.jetson_module} ({what}) has no built-in profile")
    if facts.board:
        low = _norm(facts.board)
        for p in profiles:
            if any(m in low for m in p.device_tree_match):
                return TargetResolution(p, f"device-tree model {facts.board!r}")
        if facts.is_jetson or low.startswith("raspberry pi"):
            return TargetResolution(None, f"board {facts.board!r} has no built-in profile")
    by_name = {p.name: p for p in profiles}
    if facts.arch == "x86_64" and "intel" in (facts.cpu_model or "").lower() and "intel-cpu" in by_name:
        return TargetResolution(by_name["intel-cpu"], f"Intel CPU {facts.cpu_model!r}")
    if "cpu" in by_name and facts.arch in by_name["cpu"].arch:
        return TargetResolution(by_name["cpu"], f"{facts.arch} CPU {facts.cpu_model or '(model unknown)'}")
    return TargetResolution(None, f"no built-in profile for a {facts.arch} host")


def resolve_jetson(*, facts: HostFacts | None = None) -> TargetProfile:
    """The Jetson profile this host's facts name; UsageError elsewhere or when none fits."""
    facts = read_host_facts() if facts is None else facts
    jetsons = [p for p in list_targets() if p.family == "jetson"]
    names = ", ".join(p.name for p in jetsons)
    if not facts.is_jetson:
        seen = f"this host is {facts.board!r}" if facts.board else f"this host is a {facts.arch} {facts.cpu_model or 'CPU'}"
        raise UsageError(
            f"--target jetson needs a Jetson, and {seen}",
            hint="install edgekit on the Jetson with the TensorRT from JetPack and run "
                 f"'edgekit bench --target jetson' there, or bench it from here with 'edgekit bench --device NAME' "
                 f"(see 'edgekit devices add'), or pass a Jetson profile name explicitly: {names}")
    res = resolve_target(facts, profiles=tuple(jetsons))
    if res.profile is None:
        raise UsageError(f"this Jetson ({facts.board!r}): {res.reason}",
                         hint=f"built-in Jetson profiles: {names}; copy the closest one to a .toml file, "
                              "edit it and pass its path")
    return res.profile
