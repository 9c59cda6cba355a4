"""``edgekit build``: an ONNX artifact + a target profile -> an engine artifact.

The target decides the runtime: the first of its runtimes (in preference
order) that can build the precision: TensorRT writes an engine, OpenVINO an
IR. ONNX Runtime runs the ONNX artifact as it is, so when it is the runtime
chosen there is nothing to build, and edgekit says so (exit 2) instead of
copying a file.

Order of work: load and verify the parent artifact (every file's sha256),
resolve the target, the runtime and the precision, check them against the
graph (INT8 only from a Q/DQ graph), check the output location and that the
backend is installed: all before any slow step. Then build into a staging
directory, verify the result against ONNX Runtime on the parent ONNX on real
embedded images (a failure raises :class:`ParityError`, exit 1), write the
manifest last and rename the directory into place. Nothing partial is left.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.core.atomic import check_output_dir, staged_dir
from edgekit.core.errors import MissingDependencyError, ParityError, UsageError
from edgekit.core.lazy import available
from edgekit.core.manifest import Artifact, LineageStep, load_artifact
from edgekit.core.specs import Precision, TensorSpec
from edgekit.core.targets import RuntimeSpec, TargetProfile, load_target
from edgekit.core.versions import tool_versions
from edgekit.runtime.compare import ParityReport, RuntimeParity, compare_outputs, reference_runner, run_logits
from edgekit.runtime.base import Runner
from edgekit.runtime.onnx_info import GraphInfo, read_graph_info
from edgekit.runtime.backend import Backend, EngineRequest
from edgekit.runtime.registry import RUNTIMES, resolve_runtime

log = logging.getLogger(__name__)

Progress = Callable[[str], None]



def builders() -> dict[str, Backend]:
    """The runtimes that build engines (their ``builder``), by name. Each backend declares its build
    precisions and the verification tolerance (max |engine - onnxruntime| / range) per precision."""
    return {name: b for name, b in RUNTIMES.items() if b.builder}


class NothingToBuild(UsageError):
    """The chosen runtime runs the ONNX artifact as it is (ONNX Runtime)."""


@dataclass(frozen=True)
class BuildOptions:
    """What ``edgekit build`` takes; see the CLI help for each field."""

    artifact: Path
    target: str
    precision: str | None = None  # None: the parent artifact's precision
    runtime: str | None = None  # None: the target's first runtime that builds the precision
    device: str | None = None  # a runtime device of the target (e.g. DLA)
    output: Path | None = None  # None: <artifact>-<target>-<precision> beside the artifact
    batch: int | None = None  # None: the artifact's static batch, or 1
    overwrite: bool = False
    threads: int | None = None
    parity_images: int = 4
    parity_random: int = 1
    rel_tol: float | None = None  # None: the backend's verify_rel_tol for the precision
    seed: int = 0
    timing_cache_dir: Path | None = None
    timing_cache: bool = True
    workspace_mb: int = 1024

    def validate(self) -> None:
        if self.precision is not None and self.precision not in tuple(str(p) for p in Precision):
            raise UsageError(f"unknown precision {self.precision!r}", hint="choose fp32, fp16, bf16 or int8")
        if self.batch is not None and self.batch < 1:
            raise UsageError(f"--batch must be >= 1, got {self.batch}")
        if self.parity_images < 1 or self.parity_random < 0:
            raise UsageError(f"verification needs at least one real image, got {self.parity_images}")
        if self.rel_tol is not None and not 0 < self.rel_tol < 1:
            raise UsageError(f"--rel-tol must be in (0, 1), got {self.rel_tol}")
        if self.threads is not None and self.threads < 1:
            raise UsageError(f"--threads must be >= 1, got {self.threads}")


@dataclass(frozen=True)
class BuildPlan:
    """Everything decided before the slow steps."""

    parent: Artifact
    graph: GraphInfo
    target: TargetProfile
    runtime: RuntimeSpec
    precision: str
    batch: int
    output: Path
    rel_tol: float

    @property
    def parent_onnx(self) -> Path:
        return self.parent.model_path


def _choose_runtime(target: TargetProfile, precision: str, *, runtime: str | None, device: str | None) -> RuntimeSpec:
    if runtime is not None:
        return target.runtime_for(runtime=resolve_runtime(runtime).name, device=device, precision=precision)
    for r in target.runtimes:
        if r.runtime in builders() and r.supports(precision) and (device is None or r.device.lower() == device.lower()):
            return r
    return target.runtime_for(device=device, precision=precision)  # onnxruntime, or the error listing what it has


def _nothing_to_build(plan_target: TargetProfile, r: RuntimeSpec, precision: str, parent: Artifact) -> NothingToBuild:
    others = sorted({x.runtime for x in plan_target.runtimes if x.runtime in builders() and x.supports(precision)})
    alt = f", or pass --runtime {others[0]} to build for {others[0]}" if others else ""
    return NothingToBuild(
        f"nothing to build: target {plan_target.name} runs {precision} on {r.key}, and ONNX Runtime runs the "
        f"ONNX artifact {parent.path} as it is",
        hint=f"use {parent.path} directly with onnxruntime{alt}",
    )


def _static_batch(spec: TensorSpec) -> int | None:
    d = spec.shape[0] if spec.shape else None
    return d if isinstance(d, int) and d > 0 else None


def plan_build(options: BuildOptions) -> BuildPlan:
    """Validate the request (cheap: no runtime import, nothing written)."""
    options.validate()
    parent = load_artifact(options.artifact)
    m = parent.manifest
    if m.format != "onnx":
        raise UsageError(
            f"{parent.path} is not an ONNX artifact (format {m.format!r}); edgekit build takes one",
            hint="build from the ONNX artifact it came from (see the lineage in its edgekit.json)",
        )
    target = load_target(options.target)
    graph = read_graph_info(parent.model_path)
    precision = options.precision or ("int8" if graph.is_quantized else m.precision)
    spec = _choose_runtime(target, precision, runtime=options.runtime, device=options.device)
    backend = builders().get(spec.runtime)
    if backend is None:
        raise _nothing_to_build(target, spec, precision, parent)
    if graph.is_quantized and precision != "int8":
        raise UsageError(
            f"{parent.path} is quantized (Q/DQ or QOperator nodes): it builds only as --precision int8, "
            f"not {precision}",
            hint="build the float artifact it was quantized from for fp32/fp16",
        )
    if precision == "int8" and not graph.is_quantized:
        raise UsageError(
            f"--precision int8 needs a quantized artifact, and {parent.path} has no QuantizeLinear/DequantizeLinear "
            "nodes (INT8 comes from explicit Q/DQ quantization, not from the build)",
            hint="quantize it first (edgekit quantize) and build from the artifact that writes",
        )
    if precision not in backend.build_precisions:
        raise UsageError(
            f"edgekit does not build {precision} for {spec.runtime}",
            hint=f"{spec.runtime} builds {', '.join(backend.build_precisions)}",
        )
    static = _static_batch(m.input)
    batch = options.batch or static or 1
    if static is not None and batch != static:
        raise UsageError(
            f"{parent.path} has a static batch of {static}; cannot build batch {batch}",
            hint=f"re-export with --batch {batch} or --dynamic-batch",
        )
    output = options.output or parent.path.parent / f"{parent.path.name}-{target.name}-{precision}"
    check_output_dir(output, overwrite=options.overwrite)
    if Path(output).resolve() == parent.path.resolve():
        raise UsageError(f"the output {output} is the artifact being built from", hint="choose another -o")
    rel_tol = options.rel_tol if options.rel_tol is not None else backend.verify_rel_tol[precision]
    return BuildPlan(parent=parent, graph=graph, target=target, runtime=spec, precision=precision,
                     batch=batch, output=Path(output), rel_tol=rel_tol)


def _with_batch(spec: TensorSpec, batch: int) -> TensorSpec:
    if not spec.shape or isinstance(spec.shape[0], int):
        return spec
    return replace(spec, shape=(batch, *spec.shape[1:]))


def verify_build(
    plan: BuildPlan, open_runner: Callable[[], Runner], *, options: BuildOptions, name: str
) -> ParityReport:
    """Run the built model and ONNX Runtime on the parent ONNX on the same inputs and compare logits."""
    from edgekit.data.sampling import parity_inputs

    x, data = parity_inputs(plan.parent.manifest.preprocess, n_real=options.parity_images,
                            n_random=options.parity_random, seed=options.seed)

    def outputs(runner: Runner) -> tuple[np.ndarray, str]:
        with runner:
            return run_logits(runner, x, batch=plan.batch), runner.info.precision

    ref, _ = outputs(reference_runner(plan.parent_onnx, threads=options.threads))
    got, precision = outputs(open_runner())
    result = compare_outputs(name, ref, got, rel_tol=plan.rel_tol, precision=precision, batches=[plan.batch])
    log.info("verify %s: max-abs %.2e rel %.2e top-1 %.1f%%", name, result.max_abs or 0, result.rel or 0,
             100 * (result.top1_agreement or 0))
    return ParityReport(reference=f"onnxruntime:{plan.parent.manifest.model_file}", n_real=options.parity_images,
                        n_random=options.parity_random, data=data, rel_tol=plan.rel_tol, runtimes=(result,))


def _describe(r: RuntimeParity) -> str:
    if r.rel is None:
        return f"{r.runtime}: {r.reason}"
    return (f"{r.runtime}: rel error {r.rel:.2e} (max-abs {r.max_abs:.2e}), top-1 agreement "
            f"{r.top1_agreement:.1%}, {r.unexplained_flips} unexplained flips ({r.reason})")


def build_artifact(options: BuildOptions, *, progress: Progress | None = None) -> Artifact:
    """Build, verify and write the engine artifact; returns it (loaded and sha256-verified)."""
    say = progress or (lambda msg: log.info(msg))
    plan = plan_build(options)
    r = plan.runtime
    if not available("onnxruntime"):
        raise MissingDependencyError("onnxruntime", "onnxruntime", purpose="needed to verify the build")
    builder = importlib.import_module(str(resolve_runtime(r.runtime).builder))
    builder.check_available()
    m = plan.parent.manifest
    recipe: dict[str, Any] = {"target": plan.target.name, "target_source": plan.target.source, "runtime": r.runtime,
                              "device": r.device, "precision": plan.precision, "batch": plan.batch}
    request = EngineRequest(onnx_path=plan.parent_onnx, input_name=m.input.name,
                            input_shape=_with_batch(m.input, plan.batch).shape,
                            batch=plan.batch, precision=plan.precision, device=r.device, threads=options.threads,
                            workspace_mb=options.workspace_mb, timing_cache_dir=options.timing_cache_dir,
                            timing_cache=options.timing_cache)
    with staged_dir(plan.output, overwrite=options.overwrite) as stage:
        built = builder.build(request, stage, say=say)
        details, fmt, model_file, open_runner = built.details, built.format, built.model_file, built.open_runner
        recipe.update(details)
        say(f"verifying against ONNX Runtime on {m.model_file} ({options.parity_images} real images)")
        report = verify_build(plan, open_runner, options=options, name=r.runtime)
        if not report:
            raise ParityError(
                f"the {fmt} built from {plan.parent.path} does not compute what the ONNX does: "
                + _describe(report.runtimes[0]),
                hint=f"nothing was written; tolerance rel {plan.rel_tol:g} (--rel-tol), "
                     "try another --precision or report it",
            )
        manifest = replace(
            m,
            format=fmt,
            model_file=model_file,
            precision=Precision(plan.precision),
            inputs=tuple(_with_batch(s, plan.batch) for s in m.inputs),
            outputs=tuple(_with_batch(s, plan.batch) for s in m.outputs),
            parity=report.to_json(),
            lineage=(*m.lineage, LineageStep.made("build", parent=plan.parent.as_parent(), recipe=recipe)),
            versions=tool_versions(),
            created="",
            extra={"target": plan.target.name, **built.manifest_extra, "build": recipe},
            runtime=r.runtime,
            device=r.device,
            inference_precision=built.inference_precision,
            checkpoint=None,  # an engine keeps none of the parent's torch-side files
            prune_config=None,
            build_kwargs=None,
        ).with_files(stage)
        manifest.write(stage)
    say(f"wrote {plan.output}")
    return load_artifact(plan.output)


__all__ = ["BuildOptions", "BuildPlan", "NothingToBuild",
           "build_artifact", "plan_build", "verify_build"]
