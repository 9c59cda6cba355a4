"""Target profiles: what a device is, which runtimes to use on it, what it can do.

A profile is a TOML file (schema in :mod:`edgekit.core.target_schema`, examples in the top-level
``targets/`` directory, shipped inside the wheel as ``edgekit/targets``).
:func:`load_target` takes a built-in name (``jetson-orin-nano``), the word
``jetson`` (the Jetson this host is, read from the device tree) or a path to
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
from importlib import resources
from pathlib import Path
from typing import Any

from edgekit.core.errors import UsageError
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
    "list_targets", "load_target", "load_target_file", "parse_target", "read_device_tree_model", "resolve_jetson",
]

DEVICE_TREE_MODEL_PATHS = (Path("/proc/device-tree/model"), Path("/sys/firmware/devicetree/base/model"))


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


def load_target(name_or_path: str | os.PathLike[str], *,
                device_tree_model: str | os.PathLike[str] | None = None) -> TargetProfile:
    """A built-in target by name, ``jetson`` (this Jetson), or a user's TOML file.

    ``device_tree_model`` overrides the file read to identify a Jetson (for tests).
    """
    if isinstance(name_or_path, os.PathLike) or str(name_or_path).endswith(".toml") or os.sep in str(name_or_path):
        return load_target_file(name_or_path)
    name = str(name_or_path).strip().lower().replace("_", "-")
    if name == "jetson":
        return resolve_jetson(device_tree_model=device_tree_model)
    files = _builtin_files()
    if name in files:
        return _load_builtin(name, files[name])
    close = difflib.get_close_matches(name, list(files), n=3, cutoff=0.5)
    maybe = f"did you mean {', '.join(close)}? " if close else ""
    raise UsageError(f"unknown target {str(name_or_path)!r}",
                     hint=f"{maybe}built-in targets: {', '.join(sorted(files)) or 'none found'}, "
                          "'jetson' (this Jetson), or a path to a .toml profile")


def read_device_tree_model(paths: tuple[Path, ...] = DEVICE_TREE_MODEL_PATHS) -> str | None:
    """The board name from the device tree, without its trailing NUL; None when absent."""
    for p in paths:
        try:
            return Path(p).read_bytes().rstrip(b"\x00\n ").decode("utf-8", "replace").strip()
        except OSError:
            continue
    return None


def resolve_jetson(*, device_tree_model: str | os.PathLike[str] | None = None) -> TargetProfile:
    """The Jetson profile matching this host's device-tree model; UsageError elsewhere."""
    paths = (Path(device_tree_model),) if device_tree_model is not None else DEVICE_TREE_MODEL_PATHS
    model = read_device_tree_model(paths)
    jetsons = [p for p in list_targets() if p.family == "jetson"]
    names = ", ".join(p.name for p in jetsons)
    if model is None or "jetson" not in model.lower():
        seen = f"this host is {model!r}" if model else f"no device-tree model at {paths[0]}"
        raise UsageError(
            f"--target jetson needs a Jetson, and {seen}",
            hint="install edgekit on the Jetson with the TensorRT from JetPack and run "
                 f"'edgekit bench --target jetson' there, or pass a Jetson profile name explicitly: {names}")
    low = " ".join(model.lower().replace("-", " ").split())
    for p in jetsons:
        if any(m in low for m in p.device_tree_match):
            return p
    raise UsageError(f"this Jetson ({model!r}) has no built-in profile",
                     hint=f"built-in Jetson profiles: {names}; copy the closest one to a .toml file, "
                          "edit it and pass its path")
