"""Which artifact x runtime x precision cells ``edgekit bench`` runs, and why the others do not.

Rules (the target profile lists runtimes in preference order, each with the
precisions it accepts on its device):

* A runtime the user named with ``--runtime`` must be installed
  (:class:`~edgekit.core.errors.MissingDependencyError` naming the extra); a
  runtime only the profile lists and that is not installed becomes one
  ``skipped`` row per artifact, with the ``pip install`` line as the reason.
* What an artifact allows: ONNX Runtime runs an ONNX graph in the types it
  declares, so an fp32 ONNX gives fp32 and a Q/DQ ONNX gives int8. OpenVINO
  additionally runs an fp32 ONNX at the bf16 or f16 inference precision (it
  converts the graph when it compiles). An OpenVINO IR or a TensorRT engine
  runs at the precision it was built for. A runtime that cannot read the
  artifact's format gives a ``skipped`` row naming the way forward.
* A precision the artifact allows but the profile does not list for that
  runtime is a ``skipped`` row; one the profile lists but the artifact cannot
  give is left out, unless ``--precision`` asked for it and no other
  artifact of the run gives it there (then it is a ``skipped`` row that says
  which artifact would give it).

Whether the device really runs a precision is found out by running it: the
OpenVINO runner refuses a precision the CPU would silently replace, and that
cell is recorded as ``unsupported`` (see :mod:`edgekit.bench.runner`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from edgekit.core.errors import MissingDependencyError, UsageError
from edgekit.core.lazy import available
from edgekit.core.manifest import Manifest
from edgekit.core.target_schema import PRECISIONS, RuntimeSpec, TargetProfile
from edgekit.runtime.registry import FORMAT_RUNTIMES, canonical_format, resolve_runtime


def artifact_format(manifest: Manifest) -> str:
    return canonical_format(manifest.format)


def allowed_precisions(runtime: str, fmt: str, artifact_precision: str) -> tuple[str, ...]:
    """The precisions ``runtime`` can execute from an artifact of ``fmt`` built at ``artifact_precision``."""
    return resolve_runtime(runtime).allowed_precisions(fmt, artifact_precision)


def _format_reason(runtime: str, fmt: str) -> str:
    backend = resolve_runtime(runtime)
    if fmt == "onnx" and backend.onnx_reason:
        return backend.onnx_reason
    readers = ", ".join(FORMAT_RUNTIMES.get(fmt, ())) or "no installed runtime"
    return f"{runtime} cannot read a {fmt} artifact (read by: {readers})"


@dataclass(frozen=True)
class Cell:
    """One planned row. ``reason`` is set (and nothing runs) for a skipped row."""

    artifact: int  # index into the artifact list
    spec: RuntimeSpec
    precision: str
    reason: str | None = None
    artifact_cannot: bool = False  # skipped only because this artifact cannot give the asked precision
    unsupported: bool = False  # not run because this host lacks the runtime, provider or hardware

    @property
    def runs(self) -> bool:
        return self.reason is None


def _matches(spec: RuntimeSpec, wanted: str) -> bool:
    name, _, device = wanted.partition(":")
    entry = resolve_runtime(name)
    return spec.runtime == entry.name and (not device or spec.device.lower() == device.lower())


def select_runtimes(target: TargetProfile, wanted: Sequence[str] | None) -> list[tuple[RuntimeSpec, str | None]]:
    """The target's runtimes to use, in preference order, each with a skip reason (None: use it).

    ``wanted`` filters by runtime name or alias (``ort``, ``ov``, ``trt``), or ``runtime:device``.
    """
    specs = list(target.runtimes)
    explicit: set[str] = set()
    if wanted:
        chosen: list[RuntimeSpec] = []
        for w in wanted:
            hits = [s for s in specs if _matches(s, w)]
            if not hits:
                have = ", ".join(s.key for s in specs)
                raise UsageError(f"target {target.name} has no runtime {w!r}", hint=f"it has {have}")
            for s in hits:
                if s not in chosen:
                    chosen.append(s)
            explicit.update(s.runtime for s in hits)
        specs = [s for s in target.runtimes if s in chosen]  # keep the profile's preference order
    out: list[tuple[RuntimeSpec, str | None]] = []
    for s in specs:
        backend = resolve_runtime(s.runtime)
        if available(backend.requires):
            out.append((s, missing_provider(s)))
        elif s.runtime in explicit:
            raise MissingDependencyError(backend.requires, backend.extra, purpose=f"--runtime {s.runtime}")
        else:
            out.append((s, f"{s.runtime} is not installed (pip install 'edgekit[{backend.extra}]')"))
    if explicit and not any(reason is None for _, reason in out):
        extras = sorted({resolve_runtime(s.runtime).extra for s, _ in out})
        raise MissingDependencyError(
            "/".join(sorted({resolve_runtime(s.runtime).requires for s, _ in out})),
            ",".join(extras), purpose=f"none of target {target.name}'s runtimes is installed")
    return out


def missing_provider(spec: RuntimeSpec) -> str | None:
    """Why ONNX Runtime cannot use ``spec``'s execution provider here (None: it can), naming what to install."""
    if spec.runtime != "onnxruntime" or spec.provider in (None, "CPUExecutionProvider"):
        return None
    import onnxruntime  # installed: checked by the caller

    have = onnxruntime.get_available_providers()
    if spec.provider in have:
        return None
    return (f"ONNX Runtime here has no {spec.provider} (it has {', '.join(have)}): install onnxruntime-gpu "
            "(on a Jetson, the JetPack build from the Jetson Zoo)")


def check_precisions(precisions: Sequence[str] | None) -> tuple[str, ...] | None:
    if not precisions:
        return None
    out = []
    for p in precisions:
        q = str(p).strip().lower()
        q = {"f32": "fp32", "f16": "fp16", "float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}.get(q, q)
        known = (*PRECISIONS, *mixed_labels())
        if q not in known:
            raise UsageError(f"unknown precision {p!r}", hint=f"choose from {', '.join(known)}")
        if q not in out:
            out.append(q)
    return tuple(out)


def mixed_labels() -> tuple[str, ...]:
    """The vendors' default mixed precisions every registered backend offers (e.g. ``int8+bf16``)."""
    from edgekit.runtime.registry import RUNTIMES

    return tuple(dict.fromkeys(label for b in RUNTIMES.values() for label, _, _ in b.mixed_precisions.values()))


def host_cpu_flags() -> tuple[str, ...]:
    """The CPU flags of this machine (the one that runs the bench), as :mod:`edgekit.core.host` reads them."""
    from edgekit.core.host import parse_cpuinfo, read_text

    return parse_cpuinfo(read_text(Path("/"), "proc/cpuinfo"))[3]


def _mixed_cells(i: int, spec: RuntimeSpec, art_prec: str, asked: tuple[str, ...] | None,
                 flags: Sequence[str]) -> list[Cell]:
    """The backend's default mixed precision of this artifact, where this device and CPU have it natively."""
    mixed = resolve_runtime(spec.runtime).mixed_precisions.get(art_prec)
    if mixed is None or not spec.supports(art_prec):
        return []
    label, device, needs = mixed
    if spec.device.upper() != device or not set(needs) & set(flags) or (asked is not None and label not in asked):
        return []
    return [Cell(i, spec, label)]


def plan_cells(manifests: Sequence[Manifest], target: TargetProfile, *, runtimes: Sequence[str] | None = None,
               precisions: Sequence[str] | None = None, cpu_flags: Sequence[str] | None = None) -> list[Cell]:
    """Every row of the report, in artifact, then runtime preference, then precision order.

    ``cpu_flags``: this machine's (read from /proc/cpuinfo when None); a backend's default mixed precision
    (:attr:`~edgekit.runtime.backend.Backend.mixed_precisions`) is a row only where the CPU has it natively.
    """
    asked = check_precisions(precisions)
    flags = host_cpu_flags() if cpu_flags is None else tuple(cpu_flags)
    selected = select_runtimes(target, runtimes)
    cells: list[Cell] = []
    for i, m in enumerate(manifests):
        fmt, art_prec = artifact_format(m), str(m.precision)
        for spec, missing in selected:
            allowed = allowed_precisions(spec.runtime, fmt, art_prec)
            if missing is not None:
                cells.extend(Cell(i, spec, p, missing, unsupported=True) for p in (allowed or (art_prec,))
                             if spec.supports(p) and (asked is None or p in asked))
                continue
            if not allowed:
                if asked is None or art_prec in asked:
                    cells.append(Cell(i, spec, art_prec, _format_reason(spec.runtime, fmt)))
                continue
            order = list(dict.fromkeys([*spec.precisions, *allowed]))
            for p in order:
                if asked is not None and p not in asked:
                    continue
                if p in allowed and spec.supports(p):
                    cells.append(Cell(i, spec, p))
                elif p in allowed:
                    cells.append(Cell(i, spec, p, f"target {target.name} does not list {p} for {spec.key} "
                                                 f"(it lists {', '.join(spec.precisions)})"))
                elif asked is not None:
                    how = ("a quantized (Q/DQ) artifact: 'edgekit quantize'" if p == "int8"
                           else "an fp32 ONNX artifact" if resolve_runtime(spec.runtime).onnx_precisions
                           else f"an {p} artifact")
                    cells.append(Cell(i, spec, p, f"this {art_prec} {fmt} artifact cannot run {p} on "
                                                 f"{spec.runtime}; {p} needs {how}", artifact_cannot=True))
            cells.extend(_mixed_cells(i, spec, art_prec, asked, flags))
    # an asked precision another artifact gives on that runtime needs no "this one cannot" row
    given = {(c.spec.key, c.precision) for c in cells if c.runs}
    return [c for c in cells if not (c.artifact_cannot and (c.spec.key, c.precision) in given)]
