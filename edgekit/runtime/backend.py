"""What a runtime backend declares about itself: the :class:`Backend` record.

Each backend package (``edgekit/runtime/<name>/__init__.py``) defines one
``BACKEND = Backend(...)``; :mod:`edgekit.runtime.registry` collects them. The
record is plain data plus a few small functions, so reading it imports no
runtime. Everything the rest of edgekit needs to know about a runtime comes
from here: the bench plan and cells, target-profile validation, the extra that
installs it, the versions recorded, ``edgekit build``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.core.manifest import Manifest
from edgekit.core.specs import Precision, StrEnum  # enum.StrEnum is 3.11+; edgekit runs on 3.10
from edgekit.core.target_schema import RuntimeSpec
from edgekit.runtime.base import Runner


class BatchMode(StrEnum):
    """How a backend runs batch sizes other than the one it was opened with."""

    #: runs the graph's batch as declared: a dynamic batch at any size, a static one only at that size
    DECLARED = "declared"
    #: compiles one static-batch model per batch size (a runner per batch; latency always at batch 1)
    RESHAPE = "reshape"
    #: runs what the artifact was built for; other sizes are fed to the same runner
    AS_BUILT = "as-built"


@dataclass(frozen=True)
class OpenRequest:
    """One bench cell's wish, for :attr:`Backend.options`: the runner options that give it."""

    spec: RuntimeSpec  # the target's runtime entry (device, provider)
    precision: str  # an edgekit precision (fp32, fp16, bf16, int8)
    manifest: Manifest | None  # None: a bare model file (the host-CPU reference of runtime/compare.py)
    threads: int | None
    streams: int | None
    batch: int | None  # the static batch to compile (BatchMode.RESHAPE only)


def _no_options(request: OpenRequest) -> dict[str, Any]:
    return {}


def _no_defaults(manifest: Manifest) -> dict[str, Any]:
    return {}



@dataclass(frozen=True)
class Backend:
    """A runtime backend's capabilities. Only ``name``, ``runner``, ``requires``, ``extra`` are required."""

    name: str  # canonical, lower case
    runner: str | type[Runner]  # "module:Class" of its Runner (imported on first use), or the class
    requires: str  # the third-party module it imports
    extra: str  # the edgekit extra that installs it: pip install 'edgekit[<extra>]'
    title: str = ""  # for messages ("OpenVINO"); the name when empty
    aliases: tuple[str, ...] = ()
    #: manifest formats it reads; a format it owns may have spellings (``format_aliases``: spelling -> format)
    formats: tuple[str, ...] = ("onnx",)
    format_aliases: Mapping[str, str] = field(default_factory=dict)
    #: target-profile devices; ``providers`` maps a device to its execution provider (runtimes that take one)
    devices: tuple[str, ...] = ("CPU",)
    providers: Mapping[str, str] = field(default_factory=dict)
    #: the devices above that run on an NVIDIA GPU (a bench there reads NVML before the CPU's RAPL; see uses_gpu)
    gpu_devices: tuple[str, ...] = ()
    #: device -> the only precisions it runs there (e.g. DLA: fp16, int8)
    device_precisions: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: other modules it needs -> their extra (recorded for MissingDependencyError)
    extra_modules: Mapping[str, str] = field(default_factory=dict)
    #: distributions whose versions every record keeps (environment, manifests, step-cache keys)
    versions: tuple[str, ...] = ()
    #: preference among the runtimes that read a format (lower first)
    rank: int = 100
    batching: BatchMode = BatchMode.AS_BUILT
    takes_threads: bool = True
    #: precisions it compiles an fp32 ONNX to, besides fp32 (the others run an artifact at its own precision)
    onnx_precisions: tuple[str, ...] = ()
    #: the vendor's own default mixed precision of an artifact precision, as a labelled extra bench row:
    #: artifact precision -> (label, device, CPU flags of which one must be present). E.g. OpenVINO runs an
    #: INT8 model's float layers in bf16 on CPUs with native bf16 (benchmark_app's default).
    mixed_precisions: Mapping[str, tuple[str, str, tuple[str, ...]]] = field(default_factory=dict)
    #: why it does not read an ONNX artifact, and the way forward (when "onnx" is not in ``formats``)
    onnx_reason: str | None = None
    #: the runner options for one bench cell
    options: Callable[[OpenRequest], dict[str, Any]] = field(default=_no_options, compare=False)
    #: runner options an artifact's manifest records (applied unless the caller passes them)
    manifest_defaults: Callable[[Manifest], dict[str, Any]] = field(default=_no_defaults, compare=False)
    #: the module of its engine build for ``edgekit build`` (see :mod:`edgekit.engines.build`), if any
    builder: str | None = None
    build_precisions: tuple[str, ...] = ()
    #: precision -> the largest relative error accepted when verifying a build against ONNX Runtime
    verify_rel_tol: Mapping[str, float] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.title or self.name

    def uses_gpu(self, device: str, provider: str | None = None) -> bool:
        """Whether a target's ``device`` (and execution ``provider``, if any) runs this runtime on an NVIDIA GPU."""
        named = {device.lower()} | {d.lower() for d, p in self.providers.items() if provider and p == provider}
        return any(d.lower() in named for d in self.gpu_devices)

    def allowed_precisions(self, fmt: str, artifact_precision: str) -> tuple[str, ...]:
        """The precisions it executes from an artifact of ``fmt`` built at ``artifact_precision``."""
        if fmt not in self.formats:
            return ()
        if fmt == "onnx" and artifact_precision == "fp32" and self.onnx_precisions:
            return ("fp32", *self.onnx_precisions)
        return (artifact_precision,)


@dataclass(frozen=True)
class EngineRequest:
    """What ``edgekit build`` asks a backend's builder (its ``build(request, stage, say=...)``) to make."""

    onnx_path: Path  # the parent artifact's ONNX (sha256-verified)
    input_name: str
    input_shape: tuple[int | str, ...]  # the manifest's input shape at ``batch``
    batch: int
    precision: str  # one of the backend's build_precisions, checked against the graph
    device: str  # the target profile's device for this runtime
    threads: int | None = None
    workspace_mb: int = 1024
    timing_cache_dir: Path | None = None
    timing_cache: bool = True


@dataclass(frozen=True)
class BuiltEngine:
    """What a builder wrote into the staging directory."""

    format: str  # the manifest format
    model_file: str
    details: dict[str, Any]  # recorded in the manifest's build recipe
    open_runner: Callable[[], Runner]  # a fresh, unactivated Runner on the staged model (for verification)
    inference_precision: Precision | None = None  # what the runtime is to run, when the engine does not say
    manifest_extra: dict[str, Any] = field(default_factory=dict)  # more runner defaults the manifest records
