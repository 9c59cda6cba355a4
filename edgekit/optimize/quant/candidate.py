"""The method-specific half of ``edgekit quantize``: make the candidate, measure it.

Called by :func:`edgekit.optimize.quant.quantize.quantize` inside its staging
directory; writes the model file(s) into ``stage`` and returns the report that
becomes ``extra.quantization`` in the manifest. Every path ends the same way:
the candidate and the FP32 parent run on the same eval images and are
compared (max-abs, top-1 agreement, paired drop with its CI and McNemar).
Q/DQ ONNX candidates are also run in the second runtime (OpenVINO at a static
batch, explicit f32) and the result is reported.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.core.errors import ParityError, UsageError
from edgekit.core.lazy import available, require
from edgekit.core.manifest import Artifact
from edgekit.core.specs import TensorSpec
from edgekit.optimize.quant import data as quant_data
from edgekit.optimize.quant.data import CalibrationSet, EvalSet, compare, run_logits
from edgekit.optimize.quant.patterns import Patterns, find_patterns, graph_from_onnx, graph_from_openvino

log = logging.getLogger(__name__)

#: FP16 parity: max |fp16 - fp32| relative to the FP32 logits' range, and no unexplained top-1 flip
FP16_REL_TOL = 2e-2


@dataclass(frozen=True)
class Built:
    model_file: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    report: dict[str, Any]


def _static(specs: tuple[TensorSpec, ...], batch: int) -> tuple[TensorSpec, ...]:
    return tuple(replace(s, shape=(batch, *s.shape[1:])) for s in specs)


def _excluded(patterns: Patterns, keep_float: tuple[str, ...], valid: set[str]) -> dict[str, list[str]]:
    sel = patterns.select(keep_float)
    return {k: [n for n in v if n in valid] for k, v in sel.items()}


def _flat(groups: dict[str, list[str]]) -> list[str]:
    seen: dict[str, None] = {}
    for names in groups.values():
        seen.update(dict.fromkeys(names))
    return list(seen)


def _runtime_entry(name: str, info: dict[str, Any], cmp: dict[str, Any], *, primary: bool) -> dict[str, Any]:
    entry = {"runtime": name, "status": "passed", "primary": primary, "batch": info["batch"],
             "precision": info["precision"], "version": info["version"], "top1_agreement": cmp["top1_agreement"],
             "max_abs": cmp["max_abs"]}
    if cmp.get("candidate_top1") is not None:
        entry["top1"] = cmp["candidate_top1"]
        entry["drop_pts"] = cmp["drop_pts"]
    return entry


def _secondary_openvino(path: Path, ev: EvalSet, ref: np.ndarray, batch: int, threads: int | None,
                        budget: float, source: str) -> dict[str, Any]:
    """Run a Q/DQ ONNX in OpenVINO (static batch, f32) and compare with the FP32 reference."""
    if not available("openvino"):
        return {"runtime": "openvino", "status": "skipped", "reason": "openvino is not installed"}
    try:
        logits, info = run_logits(path, ev.x, runtime="openvino", batch=batch, threads=threads)
    except Exception as e:  # report, don't hide: the artifact's own runtime passed
        return {"runtime": "openvino", "status": "failed", "batch": batch,
                "reason": f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"}
    cmp = compare(ref, logits, ev.labels, budget_pts=budget, budget_source=source)
    return _runtime_entry("openvino", info, cmp, primary=False)


class Builder:
    """One quantization run; ``build()`` dispatches on the plan."""

    def __init__(self, options: Any, p: Any, parent: Artifact, calib: CalibrationSet | None, ev: EvalSet,
                 work: Path, stage: Path, *, say: Callable[[str], None], budget: float, budget_source: str) -> None:
        self.o, self.p, self.parent, self.calib, self.ev = options, p, parent, calib, ev
        self.work, self.stage, self.say = work, stage, say
        self.budget, self.source = budget, budget_source
        self.m = parent.manifest
        self.input_name = self.m.input.name
        self.report: dict[str, Any] = {
            "precision": options.precision, "method": p.method if options.precision == "int8" else None,
            "runtime": p.runtime, "target": p.target, "for": options.target, "arch": p.arch,
            "preset": {**p.preset.to_json(), "chosen": p.preset_choice} if options.precision == "int8" else None,
            "calib": calib.record if calib else None, "eval": ev.record,
        }

    # -- shared -----------------------------------------------------------------------------
    def reference(self, runtime: str) -> np.ndarray:
        self.say(f"running the FP32 parent on {self.ev.record['n']} eval images ({runtime})")
        logits, info = run_logits(self.parent.model_path, self.ev.x, runtime=runtime, batch=self.p.batch,
                                  threads=self.o.threads)
        self.report["reference"] = {"artifact": str(self.parent.path), "sha256": self.m.files[self.m.model_file], **info}
        return logits

    def measure(self, path: Path, ref: np.ndarray, runtime: str) -> tuple[dict[str, Any], dict[str, Any]]:
        logits, info = run_logits(path, self.ev.x, runtime=runtime, batch=self.p.batch, threads=self.o.threads)
        return compare(ref, logits, self.ev.labels, budget_pts=self.budget, budget_source=self.source), info

    def finish_onnx(self, final: Path, ref: np.ndarray, cmp: dict[str, Any], info: dict[str, Any]) -> Built:
        shutil.copyfile(final, self.stage / "model.onnx")
        self.report["accuracy"] = cmp
        self.say("checking the artifact in OpenVINO (static batch, f32)")
        self.report["runtimes"] = [
            _runtime_entry("onnxruntime", info, cmp, primary=True),
            _secondary_openvino(self.stage / "model.onnx", self.ev, ref, self.p.batch, self.o.threads,
                                self.budget, self.source),
        ]
        return Built("model.onnx", self.m.inputs, self.m.outputs, self.report)

    def build(self) -> Built:
        if self.o.precision == "fp16":
            return self.fp16()
        if self.p.method == "onnxruntime":
            return self.ort()
        if self.p.output_format == "openvino-ir":
            return self.nncf_openvino()
        return self.nncf_onnx()

    # -- ONNX Runtime -----------------------------------------------------------------------
    def ort(self) -> Built:
        onnx = require("onnx")
        from edgekit.optimize.quant import control as quant_control, ort as quant_ort

        layout = quant_ort.LAYOUTS[self.p.layout]
        pre = self.work / "pre.onnx"
        self.say("pre-processing the graph (shape inference, basic optimizations)")
        quant_ort.preprocess_for_quantization(self.parent.model_path, pre)
        pre_model = onnx.load(str(pre))
        patterns = find_patterns(graph_from_onnx(pre_model))
        groups = _excluded(patterns, self.p.preset.keep_float, {n.name for n in pre_model.graph.node})
        base = _flat(groups)
        reader = quant_ort.ArrayCalibrationReader(self.calib.x, self.input_name, self.p.batch)  # type: ignore[union-attr]
        cache = self.work / "calibration_ranges.json"
        q0 = self.work / "q0.onnx"
        self.say(f"quantizing with ONNX Runtime ({layout.name}, {len(base)} node(s) kept in float by the preset)")
        recipe = quant_ort.quantize_ort(pre, q0, reader=reader, layout=layout, preset=self.p.preset,
                                        nodes_to_exclude=base, cache_path=cache)
        ref = self.reference("onnxruntime")
        self.say("evaluating the INT8 model")
        cmp, info = self.measure(q0, ref, "onnxruntime")
        final = q0
        if self.o.max_drop is not None and cmp["drop_pts"] > self.o.max_drop:
            self.say(f"drop {cmp['drop_pts']:.2f} pts > {self.o.max_drop:g}: ranking layers by the error they add")
            ranking = quant_control.rank_nodes(pre, q0, self.calib.x, input_name=self.input_name,  # type: ignore[union-attr]
                                               batch=self.p.batch, threads=self.o.threads)

            def trial(extra: list[str]) -> tuple[float, float, Path]:
                out = self.work / f"q{len(extra)}.onnx"
                quant_ort.quantize_ort(pre, out, reader=reader, layout=layout, preset=self.p.preset,
                                       nodes_to_exclude=base + extra, cache_path=cache)
                c, _ = self.measure(out, ref, "onnxruntime")
                self.say(f"  {len(extra)} more layer(s) in float: drop {c['drop_pts']:.2f} pts")
                return c["drop_pts"], c["candidate_top1"], out

            res = quant_control.accuracy_control(ranking, measure=trial, initial_drop=cmp["drop_pts"],
                                                 budget_pts=self.o.max_drop, max_iterations=self.o.max_iterations,
                                                 initial_path=q0)
            groups["accuracy_control"] = res.kept_float
            self.report["accuracy_control"] = res.to_json(self.o.max_drop, self.o.max_iterations)
            final = res.model_path or q0
            cmp, info = self.measure(final, ref, "onnxruntime")
        elif self.o.max_drop is not None:
            self.report["accuracy_control"] = {"iterations": 0, "fits": True, "kept_float": [],
                                               "drop_pts": cmp["drop_pts"], "budget_pts": self.o.max_drop}
        qmodel = onnx.load(str(final))
        graph = quant_ort.qdq_report(qmodel)
        quant_ort.check_layout(graph, layout)
        quantized, floating = quant_ort.float_nodes(qmodel)
        graph["quantized_nodes"], graph["float_nodes"] = len(quantized), len(floating)
        self.report.update(layout=layout.to_json(), recipe=recipe, patterns=patterns.to_json(), graph=graph,
                           excluded_nodes=groups)
        return self.finish_onnx(final, ref, cmp, info)

    # -- NNCF -------------------------------------------------------------------------------
    def nncf_onnx(self) -> Built:
        onnx = require("onnx")
        from edgekit.optimize.quant import nncf as quant_nncf, ort as quant_ort

        model = onnx.load(str(self.parent.model_path))
        patterns = find_patterns(graph_from_onnx(model))
        groups = _excluded(patterns, self.p.preset.keep_float, {n.name for n in model.graph.node})
        out = self.work / "q.onnx"
        self.say(f"quantizing with NNCF (ONNX, {len(_flat(groups))} node(s) kept in float by the preset)")
        recipe = quant_nncf.quantize_nncf_onnx(self.parent.model_path, out, calib_x=self.calib.x,  # type: ignore[union-attr]
                                               batch=self.p.batch, input_name=self.input_name,
                                               preset=self.p.preset, ignored=_flat(groups))
        ref = self.reference("onnxruntime")
        cmp, info = self.measure(out, ref, "onnxruntime")
        qmodel = onnx.load(str(out))
        graph = quant_ort.qdq_report(qmodel)
        quantized, floating = quant_ort.float_nodes(qmodel)
        graph["quantized_nodes"], graph["float_nodes"] = len(quantized), len(floating)
        layout = {"name": "nncf-qdq", "format": "onnx-qdq", "activations": graph["activation_types"],
                  "activation_zero_points_all_zero": graph["activation_zero_points_all_zero"],
                  "weights": graph["weight_types"], "why": "NNCF's ONNX Q/DQ (not TensorRT's layout)"}
        self.report.update(layout=layout, recipe=recipe, patterns=patterns.to_json(), graph=graph,
                           excluded_nodes=groups)
        return self.finish_onnx(out, ref, cmp, info)

    def nncf_openvino(self) -> Built:
        from edgekit.optimize.quant import nncf as quant_nncf

        batch = self.p.batch
        view = quant_nncf.load_openvino_static(self.parent.model_path, batch=batch)
        patterns = find_patterns(graph_from_openvino(view))
        groups = _excluded(patterns, self.p.preset.keep_float, {op.get_friendly_name() for op in view.get_ordered_ops()})
        ignored = _flat(groups)
        ref = self.reference("openvino")
        control = self.o.max_drop is not None
        self.say(f"quantizing with NNCF for OpenVINO (static batch {batch}, {len(ignored)} node(s) kept in float"
                 f"{', accuracy control' if control else ''})")
        recipe = quant_nncf.quantize_openvino(
            self.parent.model_path, self.stage, calib_x=self.calib.x, batch=batch, preset=self.p.preset,  # type: ignore[union-attr]
            ignored=ignored, eval_x=self.ev.x if control else None, eval_labels=self.ev.labels if control else None,
            max_drop_pts=self.o.max_drop, max_iterations=self.o.max_iterations)
        graph = recipe.pop("graph")
        xml = self.stage / quant_nncf.MODEL_XML
        self.say("evaluating the INT8 IR (OpenVINO CPU, f32, static batch)")
        cmp, info = self.measure(xml, ref, "openvino")
        if graph["fake_quantize"]:  # the runner reads precision from ONNX graphs only; an IR says it here
            info = {**info, "precision": "int8", "float_precision": info["precision"]}
        if control:
            reverted = [n for n in graph["float_layers"] if n not in set(ignored)]
            groups["accuracy_control"] = reverted
            self.report["accuracy_control"] = {**recipe.get("accuracy_control", {}), "kept_float": reverted,
                                               "drop_pts": cmp["drop_pts"], "fits": cmp["drop_pts"] <= self.o.max_drop,
                                               "note": "NNCF chose the reverted layers on the eval images: optimistic"}
        layout = {"name": "openvino-fakequantize", "format": "openvino-ir",
                  "activations": f"int8/uint8 per NNCF preset {recipe['preset']}", "weights": "int8 symmetric per-channel",
                  "why": "NNCF on the OpenVINO model; compiled and checked at a static batch, f32 hint"}
        self.report.update(layout=layout, recipe=recipe, patterns=patterns.to_json(), graph=graph,
                           excluded_nodes=groups, accuracy=cmp,
                           runtimes=[_runtime_entry("openvino", info, cmp, primary=True)])
        return Built(quant_nncf.MODEL_XML, _static(self.m.inputs, batch), _static(self.m.outputs, batch), self.report)

    # -- FP16 -------------------------------------------------------------------------------
    def fp16(self) -> Built:
        from edgekit.export.parity import compare_outputs
        from edgekit.optimize.quant import fp16

        if self.p.output_format == "openvino-ir":
            from edgekit.optimize.quant.nncf import MODEL_XML, load_openvino_static

            model = load_openvino_static(self.parent.model_path, batch=self.p.batch)
            self.say(f"saving an OpenVINO IR with FP16 weights (static batch {self.p.batch})")
            recipe = fp16.convert_openvino_fp16(model, self.stage, model_xml=MODEL_XML)
            runtime, path, model_file = "openvino", self.stage / MODEL_XML, MODEL_XML
            specs = (_static(self.m.inputs, self.p.batch), _static(self.m.outputs, self.p.batch))
        else:
            self.say("converting to FP16 (FP32 inputs and outputs)")
            path = self.stage / "model.onnx"
            recipe = fp16.convert_onnx_fp16(self.parent.model_path, path)
            runtime, model_file, specs = "onnxruntime", "model.onnx", (self.m.inputs, self.m.outputs)
        ref = self.reference(runtime)
        logits, info = run_logits(path, self.ev.x, runtime=runtime, batch=self.p.batch, threads=self.o.threads)
        cmp = compare(ref, logits, self.ev.labels, budget_pts=self.budget, budget_source=self.source)
        par = compare_outputs(runtime, ref, logits, rel_tol=FP16_REL_TOL, precision=info["precision"],
                              batches=[self.p.batch])
        cmp["parity"] = par.to_json()
        if not par:
            raise ParityError(
                f"the FP16 model differs from its FP32 parent: rel error {par.rel:.2e} (tolerance {FP16_REL_TOL:g}), "
                f"top-1 agreement {par.top1_agreement:.1%}, {par.unexplained_flips} unexplained flip(s)",
                hint="nothing was written; keep FP32 for this model, or report it",
            )
        runtimes = [_runtime_entry(runtime, info, cmp, primary=True)]
        if runtime == "onnxruntime":
            runtimes.append(_secondary_openvino(path, self.ev, ref, self.p.batch, self.o.threads, self.budget,
                                                self.source))
        layout = {"name": "fp16", "format": "openvino-ir" if runtime == "openvino" else "onnx",
                  "activations": "float16", "weights": "float16", "io": "float32"}
        self.report.update(layout=layout, recipe=recipe, accuracy=cmp, runtimes=runtimes)
        return Built(model_file, specs[0], specs[1], self.report)


def build_candidate(options: Any, p: Any, parent: Artifact, calib: CalibrationSet | None, ev: EvalSet, work: Path,
                    stage: Path, *, say: Callable[[str], None], budget: float, budget_source: str) -> Built:
    if options.precision == "int8" and calib is None:
        raise UsageError("INT8 quantization needs calibration images", hint=quant_data.NO_CALIB_HINT)
    return Builder(options, p, parent, calib, ev, work, stage, say=say, budget=budget,
                   budget_source=budget_source).build()
