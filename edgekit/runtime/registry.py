"""Runtime backends by name, resolved without importing any runtime.

Every package under ``edgekit/runtime/`` that defines ``BACKEND`` (a
:class:`~edgekit.runtime.backend.Backend`) is registered when this module is
imported (``import edgekit`` does); :func:`register` adds one from anywhere
else (a plugin, a test). Registering also tells the core what it may not know
on its own: the runtime's target-profile devices, the extra that installs it,
the versions to record.

``available_runtimes()`` looks packages up (``importlib.util.find_spec``) and
imports nothing; ``create_runner`` imports only the runner module asked for.
``runner_for_artifact`` picks the runner from an artifact's manifest format.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path
from typing import Any

from edgekit.core.errors import ArtifactError, UsageError
from edgekit.core.lazy import available, register_extra
from edgekit.core.manifest import Artifact, load_artifact
from edgekit.core.target_schema import RUNTIME_RULES, RuntimeRules, register_runtime_rules
from edgekit.core.versions import track
from edgekit.runtime.backend import Backend
from edgekit.runtime.base import Runner

#: canonical name -> backend, in preference order (rank, then registration)
RUNTIMES: dict[str, Backend] = {}
#: alias -> canonical name
ALIASES: dict[str, str] = {}
#: manifest format -> the runtimes that read it, the default first
FORMAT_RUNTIMES: dict[str, tuple[str, ...]] = {}
#: another spelling of a format -> the format
FORMAT_ALIASES: dict[str, str] = {}


def register(backend: Backend, *, replace: bool = False) -> Backend:
    """Add ``backend`` (``replace``: over one of the same name); returns it."""
    if backend.name in RUNTIMES and not replace and RUNTIMES[backend.name] != backend:
        raise UsageError(f"a runtime named {backend.name!r} is already registered",
                         hint="pass replace=True to replace it")
    taken = {a for b in RUNTIMES.values() if b.name != backend.name for a in (b.name, *b.aliases)}
    clash = [a for a in (backend.name, *backend.aliases) if a in taken]
    if clash:
        raise UsageError(f"runtime {backend.name!r}: the name(s) {', '.join(clash)} are taken")
    _rebuild([*(b for b in RUNTIMES.values() if b.name != backend.name), backend])
    register_runtime_rules(backend.name, RuntimeRules(devices=backend.devices, providers=backend.providers,
                                                      device_precisions=backend.device_precisions))
    for module, extra in {backend.requires: backend.extra, **backend.extra_modules}.items():
        register_extra(module, extra)
    track(*backend.versions)
    return backend


def unregister(name: str) -> None:
    """Remove a registered backend (target profiles naming it stop validating)."""
    _rebuild([b for b in RUNTIMES.values() if b.name != name])
    RUNTIME_RULES.pop(name, None)


def _rebuild(backends: list[Backend]) -> None:
    """Refill the tables in place (other modules hold references to them)."""
    order = {b.name: i for i, b in enumerate(backends)}
    ordered = sorted(backends, key=lambda b: (b.rank, order[b.name]))
    RUNTIMES.clear()
    RUNTIMES.update((b.name, b) for b in ordered)
    ALIASES.clear()
    ALIASES.update((a, b.name) for b in ordered for a in b.aliases)
    FORMAT_ALIASES.clear()
    FORMAT_ALIASES.update((a, f) for b in ordered for a, f in b.format_aliases.items())
    FORMAT_RUNTIMES.clear()
    for b in ordered:
        for fmt in b.formats:
            FORMAT_RUNTIMES[fmt] = (*FORMAT_RUNTIMES.get(fmt, ()), b.name)


def _register_builtins() -> None:
    import edgekit.runtime as pkg

    for mod in pkgutil.iter_modules(pkg.__path__):
        if mod.ispkg:
            backend = getattr(importlib.import_module(f"{pkg.__name__}.{mod.name}"), "BACKEND", None)
            if isinstance(backend, Backend):
                register(backend)


def resolve_runtime(runtime: str) -> Backend:
    """The backend for a runtime name or alias (case-insensitive)."""
    key = str(runtime).strip().lower()
    key = ALIASES.get(key, key)
    entry = RUNTIMES.get(key)
    if entry is None:
        valid = ", ".join(f"{e.name} ({'/'.join(e.aliases)})" if e.aliases else e.name for e in RUNTIMES.values())
        raise UsageError(f"unknown runtime {runtime!r}", hint=f"choose one of: {valid}")
    return entry


def canonical_format(fmt: str) -> str:
    """A manifest format in its canonical spelling (``ir`` -> ``openvino-ir``)."""
    f = str(fmt).strip().lower()
    return FORMAT_ALIASES.get(f, f)


def runner_class(runtime: str) -> type[Runner]:
    """The runner class for ``runtime`` (imports the backend's runner module, not the runtime)."""
    runner = resolve_runtime(runtime).runner
    if not isinstance(runner, str):
        return runner
    module, _, name = runner.partition(":")
    cls: type[Runner] = getattr(importlib.import_module(module), name)
    return cls


def available_runtimes() -> list[str]:
    """Runtimes whose package is installed (looked up, not imported)."""
    return [e.name for e in RUNTIMES.values() if available(e.requires)]


def create_runner(runtime: str, model_path: str | Path, **options: Any) -> Runner:
    """A runner for ``model_path`` on ``runtime``; ``options`` go to its constructor.

    Unknown options are a :class:`UsageError` that lists the accepted ones.
    The runner is not activated: use it in a ``with`` block.
    """
    cls = runner_class(runtime)
    params = inspect.signature(cls.__init__).parameters
    accepted = [n for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise UsageError(
            f"{cls.name} runner does not take option(s) {', '.join(unknown)}",
            hint=f"it takes: {', '.join(accepted) or 'no options'}",
        )
    return cls(model_path, **options)


def runner_for_artifact(artifact: Artifact | str | Path, *, runtime: str | None = None, **options: Any) -> Runner:
    """A runner for an artifact (a directory with ``edgekit.json``, or a loaded :class:`Artifact`).

    The runtime follows the manifest's format (``onnx`` -> onnxruntime,
    ``openvino-ir`` -> openvino, ``tensorrt-engine`` -> tensorrt); ``runtime``
    picks another one that runs the format. What the manifest records for the
    runtime (for an OpenVINO IR built by ``edgekit build``: the device and the
    inference precision) are the defaults; ``options`` override them. A path is
    loaded with every file's sha256 verified.
    """
    art = artifact if isinstance(artifact, Artifact) else load_artifact(artifact)
    m = art.manifest
    runtimes = FORMAT_RUNTIMES.get(m.format)
    if runtimes is None:
        raise ArtifactError(
            f"{art.path} has format {m.format!r}, which no edgekit runtime runs",
            hint=f"known formats: {', '.join(FORMAT_RUNTIMES)}",
        )
    backend = resolve_runtime(runtime) if runtime is not None else RUNTIMES[runtimes[0]]
    if backend.name not in runtimes:
        raise UsageError(
            f"{backend.name} does not run {m.format} artifacts like {art.path}",
            hint=f"use {' or '.join(runtimes)}"
            + ("; build an engine with 'edgekit build'" if m.format == "onnx" else ""),
        )
    for k, v in backend.manifest_defaults(m).items():
        options.setdefault(k, v)
    return create_runner(backend.name, art.model_path, **options)


_register_builtins()
