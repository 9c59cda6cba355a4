"""``edgekit quantize``: an FP32 ONNX artifact -> an INT8 or FP16 artifact, measured.

Order of work: validate the options and the output directory; load the parent
artifact (it must have a manifest, be FP32 and not already quantized); plan
(runtime, method, Q/DQ layout, preset); read real calibration images and the
eval images; quantize in a work directory; check the graph's layout; compare
with the FP32 parent on the same images (paired statistics); with
``--max-drop``, keep layers in float until the upper ``--confidence`` bound
of the drop on the **validation** split fits the budget
(:mod:`edgekit.bench.budget`), then measure and report on the **test**
split; write the model, ``calibration.json`` and the manifest last into a
staging directory that becomes the output only when complete.

A failed accuracy verdict (the budget not met on validation, broken on
test, or, without ``--max-drop``, a drop over the default budget that the
test split confirms) still writes the artifact, marked ``"verdict":
"failed"`` in ``extra.quantization`` of its manifest, and raises
:class:`CheckFailed` (exit 1). An accuracy control that ends with every
layer in float "cannot meet the budget" (exit 1, nothing written).

Dispatch (``--for`` names a runtime or a target profile, whose first runtime
that supports the precision is used):

=================  ===========  =========================================
runtime            method       artifact
=================  ===========  =========================================
onnxruntime (x86)  onnxruntime  Q/DQ ONNX, U8S8 (uint8 act., int8 weights)
onnxruntime (ARM)  onnxruntime  Q/DQ ONNX, S8S8
tensorrt           onnxruntime  Q/DQ ONNX, S8S8 symmetric (zero points 0)
openvino           nncf         OpenVINO IR (FakeQuantize), static batch
any but tensorrt   nncf         NNCF Q/DQ ONNX
=================  ===========  =========================================
"""

from __future__ import annotations

import json
import logging
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from edgekit.core.atomic import check_output_dir, staged_dir
from edgekit.core.errors import ArtifactError, CheckFailed, UsageError
from edgekit.core.manifest import Artifact, LineageStep, Manifest, load_artifact
from edgekit.core.options import NON_EMPTY, Rule, at_least, check_fields, one_of, opt
from edgekit.core.specs import Precision
from edgekit.core.versions import tool_versions
from edgekit.optimize.quant.data import DEFAULT_BUDGET_PTS, MIN_CALIB, NO_CALIB_HINT
from edgekit.optimize.quant.presets import QuantPreset, preset_names, resolve_preset

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
RUNTIMES = ("onnxruntime", "openvino", "tensorrt")
METHODS = ("nncf", "onnxruntime")
PRECISIONS = ("int8", "fp16")


@dataclass(frozen=True)
class QuantizeOptions:
    """What ``edgekit quantize`` takes; see the CLI help for each field."""

    artifact: Path
    output: Path
    calib: str | Path | None = None
    precision: str = opt("int8", rule=one_of(PRECISIONS), help="Target precision.")
    method: str | None = opt(None, rule=one_of(METHODS), help="Quantizer (default: the best for the runtime).")
    target: str | None = opt(None, flag="--for", rule=NON_EMPTY,
                             help="Runtime name or target profile the artifact is for.")
    preset: str = opt("auto", rule=NON_EMPTY,
                      help="Which nodes stay in float (a preset name, or auto).")
    calib_size: int = opt(300, rule=Rule(lambda v: isinstance(v, int) and v >= MIN_CALIB, f"at least {MIN_CALIB}",
                                         hint="a few hundred real images is typical"),
                          help="Calibration images.")
    max_drop: float | None = opt(None, rule=Rule(lambda v: 0 < v <= 100, "in (0, 100] (points of top-1)"),
                                 help="Accuracy budget in top-1 points (accuracy-control fallback).")
    eval: str | Path | None = None
    eval_size: int | None = opt(1000, rule=at_least(1, ">= 1"), help="Evaluation images.")
    batch: int | None = opt(None, rule=at_least(1, ">= 1"), help="Static batch size of the quantized model.")
    max_iterations: int = opt(8, rule=at_least(1, ">= 1"), help="Accuracy-control fallback rounds.")
    confidence: float = opt(0.95, rule=Rule(lambda v: 0.5 <= v < 1, "in [0.5, 1)"),
                            help="One-sided confidence of the upper bound --max-drop is judged on.")
    seed: int = 0
    threads: int | None = None
    overwrite: bool = False

    def validate(self) -> None:
        """Every value (:meth:`check`), then the output directory."""
        self.check()
        check_output_dir(self.output, overwrite=self.overwrite)

    def check(self) -> None:
        """The values alone (no file is touched): what ``edgekit run --dry-run`` checks."""
        if self.precision not in PRECISIONS:
            raise UsageError(f"unknown --precision {self.precision!r}", hint=f"choose one of {', '.join(PRECISIONS)}")
        if self.method is not None and self.method not in METHODS:
            raise UsageError(f"unknown --method {self.method!r}", hint=f"choose one of {', '.join(METHODS)}")
        check_fields(self)
        if self.precision == "int8" and self.calib is None:
            raise UsageError("INT8 quantization needs --calib DATA", hint=NO_CALIB_HINT)
        if self.precision == "fp16" and self.max_drop is not None:
            raise UsageError("--max-drop applies to INT8 (FP16 has nothing to fall back)")


@dataclass(frozen=True)
class QuantizePlan:
    runtime: str
    target: str | None
    arch: str
    method: str
    layout: str
    preset: QuantPreset
    preset_choice: str
    batch: int
    output_format: str  # onnx | openvino-ir

    def to_json(self) -> dict[str, Any]:
        return {"runtime": self.runtime, "target": self.target, "arch": self.arch, "method": self.method,
                "layout": self.layout, "preset": self.preset.name, "preset_choice": self.preset_choice,
                "batch": self.batch, "format": self.output_format}


@dataclass(frozen=True)
class QuantizeResult:
    artifact: Artifact
    report: dict[str, Any] = field(repr=False)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"artifact": str(self.artifact.path), "manifest": self.artifact.manifest.to_json(), "seconds": self.seconds}


def _host_arch() -> str:
    m = platform.machine().lower()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(m, m)


def check_parent(parent: Artifact) -> None:
    """The parent must be an FP32 ONNX artifact that is not quantized yet."""
    m = parent.manifest
    if m.format != "onnx":
        raise ArtifactError(f"{parent.path} is a {m.format} artifact; quantize takes the FP32 ONNX artifact",
                            hint="give the directory written by 'edgekit export' or 'edgekit finetune'")
    from edgekit.runtime.onnx_info import read_graph_info

    info = read_graph_info(parent.model_path)
    if m.precision == "int8" or info.is_quantized:
        raise UsageError(f"{parent.path} is already quantized (precision {m.precision}, {info.qdq_nodes} Q/DQ nodes)",
                         hint="quantize the FP32 parent recorded in its lineage instead")
    if m.precision != "fp32" or info.precision != "fp32":
        raise UsageError(f"{parent.path} has precision {m.precision} (graph: {info.precision}); quantize needs FP32",
                         hint="quantize the FP32 parent recorded in its lineage instead")


def plan(options: QuantizeOptions, manifest: Manifest) -> QuantizePlan:
    """Resolve --for, --method, the layout and the preset (no heavy imports)."""
    target_name, arch, provider = None, _host_arch(), None
    if options.target is None or options.target in RUNTIMES:
        runtime = options.target or "onnxruntime"
    else:
        from edgekit.core.targets import load_target

        t = load_target(options.target)
        spec = t.runtime_for(precision=options.precision)
        runtime, target_name, provider = spec.runtime, t.name, spec.provider
        arch = arch if arch in t.arch else t.arch[0]
    method = options.method or ("nncf" if runtime == "openvino" else "onnxruntime")
    if options.precision == "int8" and runtime == "tensorrt" and method == "nncf":
        raise UsageError("--method nncf cannot make a TensorRT model: NNCF's ONNX uses unsigned activations",
                         hint="TensorRT needs signed symmetric INT8 Q/DQ: use --method onnxruntime (the default)")
    if options.precision == "int8" and method == "nncf" and runtime != "openvino" and options.max_drop is not None:
        raise UsageError("--max-drop with --method nncf works for OpenVINO only",
                         hint="use --for openvino, or --method onnxruntime for the sensitivity-ranked fallback")
    gpu_provider = provider is not None and provider.lower() in ("tensorrt", "cuda", "tensorrtexecutionprovider",
                                                                    "cudaexecutionprovider")
    if options.precision == "fp16":
        layout = "fp16"
    elif method == "nncf":
        layout = "openvino-fakequantize" if runtime == "openvino" else "nncf-qdq"
    elif runtime == "tensorrt" or gpu_provider:
        layout = "s8s8-symmetric"
    elif arch == "aarch64":
        layout = "s8s8"
    else:
        layout = "u8s8"
    preset, choice = resolve_preset(options.preset, family=manifest.family)
    static = manifest.input.shape[0] if isinstance(manifest.input.shape[0], int) else None
    batch = options.batch or static or 1
    if static is not None and options.batch is not None and options.batch != static:
        raise UsageError(f"--batch {options.batch} differs from the parent's static batch {static}",
                         hint="export the parent with --dynamic-batch or with the batch you deploy")
    fmt = "openvino-ir" if runtime == "openvino" and (method == "nncf" or options.precision == "fp16") else "onnx"
    return QuantizePlan(runtime, target_name, arch, method, layout, preset, choice, int(batch), fmt)


def quantize(options: QuantizeOptions, *, progress: Progress | None = None) -> QuantizeResult:
    """Quantize (or convert to FP16), check and measure; returns the written artifact."""
    from edgekit.optimize.quant import data as quant_data
    from edgekit.optimize.quant.candidate import build_candidate

    t0 = time.perf_counter_ns()
    say = progress or (lambda msg: log.info(msg))
    options.validate()
    parent = load_artifact(options.artifact)
    check_parent(parent)
    m = parent.manifest
    p = plan(options, m)
    say(f"plan: {options.precision} for {p.runtime}"
        f"{f' ({p.target})' if p.target else ''}, method {p.method}, layout {p.layout}, preset {p.preset.name}")
    calib = None
    if options.precision == "int8":
        say(f"reading {options.calib_size} calibration images from {options.calib}")
        calib = quant_data.load_calibration(options.calib, n=options.calib_size, manifest=m, seed=options.seed,
                                            eval_spec=options.eval)  # type: ignore[arg-type]
    say("reading evaluation images (test split: reported)")
    excl = calib.sources if calib else ()
    ev = quant_data.load_eval(options.eval, n=options.eval_size, manifest=m, seed=options.seed,
                              exclude_sources=excl, split="test", calib_spec=options.calib)
    say(f"evaluation: {ev.record['n']} images, {ev.record['origin']}")
    ev_select = None
    if options.max_drop is not None:
        if not ev.labelled:
            raise UsageError("--max-drop needs labelled eval images with the model's classes",
                             hint="give --eval DIR laid out as <class>/<image> with the model's labels")
        say("reading the validation split (accuracy control chooses on it; never reported)")
        ev_select = quant_data.load_eval(options.eval, n=options.eval_size, manifest=m, seed=options.seed,
                                         exclude_sources=excl, split="validation", calib_spec=options.calib)
        if set(ev_select.sources) & set(ev.sources):  # pragma: no cover - disjoint by construction
            raise UsageError("the validation and test images overlap", hint="report this as a bug")
    budget = options.max_drop if options.max_drop is not None else DEFAULT_BUDGET_PTS[options.precision]
    budget_source = "--max-drop" if options.max_drop is not None else "default (not enforced)"
    with tempfile.TemporaryDirectory(prefix="edgekit-quantize-") as tmp, \
            staged_dir(options.output, overwrite=options.overwrite) as stage:
        built = build_candidate(options, p, parent, calib, ev, Path(tmp), stage, say=say,
                                budget=budget, budget_source=budget_source, ev_select=ev_select)
        report = built.report.to_json()
        failure = accuracy_failure(report, options)
        report["verdict"] = "failed" if failure else "passed"
        if failure:
            report["verdict_reason"] = failure
        if calib is not None:
            (stage / "calibration.json").write_text(
                json.dumps({"record": calib.record, "sources": list(calib.sources)}, indent=1) + "\n", encoding="utf-8")
        report["seconds"] = round((time.perf_counter_ns() - t0) / 1e9, 2)
        manifest = _manifest(parent, p, options, built.model_file, built.inputs, built.outputs, report, stage)
        manifest.write(stage)
    say(f"wrote {options.output}")
    if failure:
        raise CheckFailed(failure, hint=f"the artifact was kept in {options.output}, marked \"verdict\": \"failed\" "
                                        "in its manifest; raise --max-drop, try another --preset, or use QAT")
    return QuantizeResult(load_artifact(options.output), report, report["seconds"])


def accuracy_failure(report: dict[str, Any], options: QuantizeOptions) -> str | None:
    """Why the accuracy verdict failed, or None (see the module notes)."""
    budget = report.get("budget")
    if budget is not None:
        if not budget["accepted"]:
            kept = (report.get("accuracy_control") or {}).get("kept_float", [])
            return (f"the {options.precision.upper()} model does not meet the {options.max_drop:g} pt budget even "
                    f"with {len(kept)} layer(s) kept in float: {budget['statement']}")
        if budget["breaks_on_test"]:
            return f"accepted on the validation split but it breaks the budget on test: {budget['statement']}"
        return None
    paired = (report.get("accuracy") or {}).get("paired")
    if paired and paired.get("verdict") == "fail":
        return (f"{options.precision.upper()} accuracy check failed on the test split: {paired['reason']} "
                f"(default budget; set yours with --max-drop)")
    return None


def _manifest(parent: Artifact, p: QuantizePlan, options: QuantizeOptions, model_file: str, inputs: Any,
              outputs: Any, report: dict[str, Any], stage: Path) -> Manifest:
    m = parent.manifest
    recipe = {"precision": options.precision, **p.to_json(), "preset_params": p.preset.to_json(),
              "calib": report.get("calib"), "max_drop": options.max_drop, "seed": options.seed}
    lineage = LineageStep.made("quantize", parent=parent.as_parent(), recipe=recipe)
    extra = {k: v for k, v in m.extra.items() if k not in ("checks",)}
    extra["quantization"] = report
    ir = p.output_format == "openvino-ir"
    return replace(
        m,
        format=p.output_format,
        model_file=model_file,
        precision=options.precision,
        inputs=inputs,
        outputs=outputs,
        parity={"reference": "fp32 parent artifact", "runtimes": report["runtimes"]},
        lineage=(*m.lineage, lineage),
        versions=tool_versions(),
        created="",
        extra=extra,
        runtime="openvino" if ir else m.runtime,
        inference_precision=(Precision.FP16 if options.precision == "fp16" else Precision.FP32) if ir
        else m.inference_precision,
    ).with_files(stage)


__all__ = ["METHODS", "PRECISIONS", "RUNTIMES", "QuantizeOptions", "QuantizePlan", "QuantizeResult",
           "check_parent", "plan", "preset_names", "quantize"]
