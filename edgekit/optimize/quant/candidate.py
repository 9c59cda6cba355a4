"""The method-specific half of ``edgekit quantize``: make the candidate, measure it.

Called by :func:`edgekit.optimize.quant.quantize.quantize` inside its staging
directory. Each method (ONNX Runtime, NNCF on ONNX, NNCF on OpenVINO, FP16) is
a small class with one ``run(ctx) -> Built``: it reads the typed
:class:`~edgekit.optimize.quant.report.QuantContext`, writes the model file(s)
into ``ctx.stage`` and returns a typed
:class:`~edgekit.optimize.quant.report.QuantReport` (``extra.quantization`` in
the manifest). Every path ends the same way: the candidate and the FP32 parent
run on the same eval images and are compared (max-abs, top-1 agreement, paired
drop with its CI and McNemar). Q/DQ ONNX candidates are also run in the second
runtime (OpenVINO at a static batch, explicit f32) and the result is reported.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from edgekit.core.errors import CheckFailed, ParityError, UsageError
from edgekit.core.lazy import require
from edgekit.core.manifest import Artifact
from edgekit.core.specs import TensorSpec
from edgekit.optimize.quant import data as quant_data
from edgekit.optimize.quant.data import CalibrationSet, EvalSet, run_logits
from edgekit.optimize.quant.patterns import Patterns, find_patterns, graph_from_onnx, graph_from_openvino
from edgekit.optimize.quant.report import (
    Built,
    QuantContext,
    QuantReport,
    header,
    runtime_entry,
    secondary_openvino,
)

if TYPE_CHECKING:
    from edgekit.optimize.quant.quantize import QuantizeOptions, QuantizePlan

log = logging.getLogger(__name__)

#: FP16 parity: max |fp16 - fp32| relative to the FP32 logits' range, and no unexplained top-1 flip
FP16_REL_TOL = 2e-2


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


def _graph_counts(qmodel: Any) -> dict[str, Any]:
    from edgekit.optimize.quant import ort as quant_ort

    graph = quant_ort.qdq_report(qmodel)
    quantized, floating = quant_ort.float_nodes(qmodel)
    graph["quantized_nodes"], graph["float_nodes"] = len(quantized), len(floating)
    return graph


def _onnx_built(ctx: QuantContext, final: Path, ref: np.ndarray, ref_record: dict[str, Any], cmp: dict[str, Any],
                info: dict[str, Any], **fields: Any) -> Built:
    """A Q/DQ ONNX candidate: copied into the stage, checked in OpenVINO too, reported."""
    shutil.copyfile(final, ctx.stage / "model.onnx")
    ctx.say("checking the artifact in OpenVINO (static batch, f32)")
    runtimes = (runtime_entry("onnxruntime", info, cmp, primary=True),
                secondary_openvino(ctx, ctx.stage / "model.onnx", ref))
    m = ctx.parent.manifest
    report = QuantReport(ctx.header, ref_record, accuracy=cmp, runtimes=runtimes, **fields)
    return Built("model.onnx", m.inputs, m.outputs, report)


class OrtMethod:
    """INT8 Q/DQ with ONNX Runtime's static quantizer, with the accuracy-control fallback."""

    name: ClassVar[str] = "onnxruntime"

    def run(self, ctx: QuantContext) -> Built:
        onnx = require("onnx")
        from edgekit.optimize.quant import control as quant_control
        from edgekit.optimize.quant import ort as quant_ort

        o, p = ctx.options, ctx.plan
        layout = quant_ort.LAYOUTS[p.layout]
        pre = ctx.work / "pre.onnx"
        ctx.say("pre-processing the graph (shape inference, basic optimizations)")
        quant_ort.preprocess_for_quantization(ctx.parent.model_path, pre)
        pre_model = onnx.load(str(pre))
        patterns = find_patterns(graph_from_onnx(pre_model))
        groups = _excluded(patterns, p.preset.keep_float, {n.name for n in pre_model.graph.node})
        base = _flat(groups)
        reader = quant_ort.ArrayCalibrationReader(ctx.calib_x, ctx.input_name, p.batch)
        cache = ctx.work / "calibration_ranges.json"
        q0 = ctx.work / "q0.onnx"
        ctx.say(f"quantizing with ONNX Runtime ({layout.name}, {len(base)} node(s) kept in float by the preset)")
        recipe = quant_ort.quantize_ort(pre, q0, reader=reader, layout=layout, preset=p.preset,
                                        nodes_to_exclude=base, cache_path=cache)
        ref, ref_record = ctx.reference("onnxruntime")
        ctx.say("evaluating the INT8 model")
        cmp, info = ctx.measure(q0, ref, "onnxruntime")
        final, control = q0, None
        ub0 = ctx.select_bound(q0, "onnxruntime")[0] if o.max_drop is not None else None
        if ub0 is not None and ub0 > o.max_drop:
            ctx.say(f"validation: upper {o.confidence:.0%} bound of the drop {ub0:.2f} pts > {o.max_drop:g}: "
                    "ranking layers by the error they add")
            ranking = quant_control.rank_nodes(pre, q0, ctx.calib_x, input_name=ctx.input_name, batch=p.batch,
                                               threads=o.threads)

            def trial(extra: list[str]) -> tuple[float, float, Path]:
                out = ctx.work / f"q{len(extra)}.onnx"
                quant_ort.quantize_ort(pre, out, reader=reader, layout=layout, preset=p.preset,
                                       nodes_to_exclude=base + extra, cache_path=cache)
                ub, top1, _ = ctx.select_bound(out, "onnxruntime")
                ctx.say(f"  {len(extra)} more layer(s) in float: validation drop upper bound {ub:.2f} pts")
                return ub, top1, out

            res = quant_control.accuracy_control(ranking, measure=trial, initial_drop=ub0,
                                                 budget_pts=o.max_drop, max_iterations=o.max_iterations,
                                                 initial_path=q0)
            groups["accuracy_control"] = res.kept_float
            control = res.to_json(o.max_drop, o.max_iterations)
            final = res.model_path or q0
            if not quant_ort.float_nodes(onnx.load(str(final)))[0]:
                raise CheckFailed(
                    f"cannot meet the {o.max_drop:g} pt budget in INT8: even with every quantized layer back in "
                    f"float ({len(res.kept_float)} layer(s)) the model is only its FP32 parent",
                    hint="nothing was written; raise --max-drop or lower --confidence, try another --preset, or QAT")
            cmp, info = ctx.measure(final, ref, "onnxruntime")
        elif o.max_drop is not None:
            control = {"iterations": 0, "fits": True, "kept_float": [], "upper_pts": ub0, "budget_pts": o.max_drop,
                       "measured_on": "validation split"}
        budget = ctx.judge(final, ref, "onnxruntime")
        qmodel = onnx.load(str(final))
        graph = _graph_counts(qmodel)
        quant_ort.check_layout(graph, layout)
        return _onnx_built(ctx, final, ref, ref_record, cmp, info, layout=layout.to_json(), recipe=recipe,
                           patterns=patterns.to_json(), graph=graph, excluded_nodes=groups, accuracy_control=control,
                           budget=budget)


class NncfOnnxMethod:
    """INT8 Q/DQ ONNX with NNCF's ONNX backend."""

    name: ClassVar[str] = "nncf-onnx"

    def run(self, ctx: QuantContext) -> Built:
        onnx = require("onnx")
        from edgekit.optimize.quant import nncf as quant_nncf

        p = ctx.plan
        model = onnx.load(str(ctx.parent.model_path))
        patterns = find_patterns(graph_from_onnx(model))
        groups = _excluded(patterns, p.preset.keep_float, {n.name for n in model.graph.node})
        out = ctx.work / "q.onnx"
        ctx.say(f"quantizing with NNCF (ONNX, {len(_flat(groups))} node(s) kept in float by the preset)")
        recipe = quant_nncf.quantize_nncf_onnx(ctx.parent.model_path, out, calib_x=ctx.calib_x, batch=p.batch,
                                               input_name=ctx.input_name, preset=p.preset, ignored=_flat(groups))
        ref, ref_record = ctx.reference("onnxruntime")
        cmp, info = ctx.measure(out, ref, "onnxruntime")
        graph = _graph_counts(onnx.load(str(out)))
        layout = {"name": "nncf-qdq", "format": "onnx-qdq", "activations": graph["activation_types"],
                  "activation_zero_points_all_zero": graph["activation_zero_points_all_zero"],
                  "weights": graph["weight_types"], "why": "NNCF's ONNX Q/DQ (not TensorRT's layout)"}
        return _onnx_built(ctx, out, ref, ref_record, cmp, info, layout=layout, recipe=recipe,
                           patterns=patterns.to_json(), graph=graph, excluded_nodes=groups)


class NncfOpenVINOMethod:
    """INT8 OpenVINO IR (FakeQuantize) with NNCF's OpenVINO backend, at a static batch."""

    name: ClassVar[str] = "nncf-openvino"

    def run(self, ctx: QuantContext) -> Built:
        from edgekit.optimize.quant import nncf as quant_nncf

        o, batch, m = ctx.options, ctx.plan.batch, ctx.parent.manifest
        view = quant_nncf.load_openvino_static(ctx.parent.model_path, batch=batch)
        patterns = find_patterns(graph_from_openvino(view))
        groups = _excluded(patterns, ctx.plan.preset.keep_float,
                           {op.get_friendly_name() for op in view.get_ordered_ops()})
        ignored = _flat(groups)
        ref, ref_record = ctx.reference("openvino")
        control = o.max_drop is not None
        ctx.say(f"quantizing with NNCF for OpenVINO (static batch {batch}, {len(ignored)} node(s) kept in float"
                f"{', accuracy control' if control else ''})")
        recipe = quant_nncf.quantize_openvino(
            ctx.parent.model_path, ctx.stage, calib_x=ctx.calib_x, batch=batch, preset=ctx.plan.preset,
            ignored=ignored, eval_x=ctx.ev_select.x if control and ctx.ev_select else None,
            eval_labels=ctx.ev_select.labels if control and ctx.ev_select else None,
            max_drop_pts=o.max_drop, max_iterations=o.max_iterations)
        graph = recipe.pop("graph")
        ctx.say("evaluating the INT8 IR (OpenVINO CPU, f32, static batch)")
        cmp, info = ctx.measure(ctx.stage / quant_nncf.MODEL_XML, ref, "openvino")
        if graph["fake_quantize"]:  # the runner reads precision from ONNX graphs only; an IR says it here
            info = {**info, "precision": "int8", "float_precision": info["precision"]}
        accuracy_control = None
        if control:
            reverted = [n for n in graph["float_layers"] if n not in set(ignored)]
            groups["accuracy_control"] = reverted
            accuracy_control = {**recipe.get("accuracy_control", {}), "kept_float": reverted,
                                "drop_pts": cmp["drop_pts"], "fits": cmp["drop_pts"] <= o.max_drop,
                                "note": "NNCF chose the reverted layers on the validation split; the reported "
                                        "drop is on the test split"}
        budget = ctx.judge(ctx.stage / quant_nncf.MODEL_XML, ref, "openvino") if control else None
        layout = {"name": "openvino-fakequantize", "format": "openvino-ir",
                  "activations": f"int8/uint8 per NNCF preset {recipe['preset']}",
                  "weights": "int8 symmetric per-channel",
                  "why": "NNCF on the OpenVINO model; compiled and checked at a static batch, f32 hint"}
        report = QuantReport(ctx.header, ref_record, layout=layout, recipe=recipe, accuracy=cmp,
                             runtimes=(runtime_entry("openvino", info, cmp, primary=True),),
                             patterns=patterns.to_json(), graph=graph, excluded_nodes=groups,
                             accuracy_control=accuracy_control, budget=budget)
        return Built(quant_nncf.MODEL_XML, _static(m.inputs, batch), _static(m.outputs, batch), report)


class Fp16Method:
    """FP16 ONNX (FP32 inputs/outputs) or an OpenVINO IR with FP16 weights, checked for parity."""

    name: ClassVar[str] = "fp16"

    def run(self, ctx: QuantContext) -> Built:
        from edgekit.optimize.quant import fp16
        from edgekit.runtime.compare import compare_outputs

        p, m = ctx.plan, ctx.parent.manifest
        if p.output_format == "openvino-ir":
            from edgekit.optimize.quant.nncf import MODEL_XML, load_openvino_static

            model = load_openvino_static(ctx.parent.model_path, batch=p.batch)
            ctx.say(f"saving an OpenVINO IR with FP16 weights (static batch {p.batch})")
            recipe = fp16.convert_openvino_fp16(model, ctx.stage, model_xml=MODEL_XML)
            runtime, path, model_file = "openvino", ctx.stage / MODEL_XML, MODEL_XML
            specs = (_static(m.inputs, p.batch), _static(m.outputs, p.batch))
        else:
            ctx.say("converting to FP16 (FP32 inputs and outputs)")
            path = ctx.stage / "model.onnx"
            recipe = fp16.convert_onnx_fp16(ctx.parent.model_path, path)
            runtime, model_file, specs = "onnxruntime", "model.onnx", (m.inputs, m.outputs)
        ref, ref_record = ctx.reference(runtime)
        logits, info = run_logits(path, ctx.ev.x, runtime=runtime, batch=p.batch, threads=ctx.options.threads)
        cmp = ctx.compare(ref, logits)
        par = compare_outputs(runtime, ref, logits, rel_tol=FP16_REL_TOL, precision=info["precision"],
                              batches=[p.batch])
        cmp["parity"] = par.to_json()
        if not par:
            raise ParityError(
                f"the FP16 model differs from its FP32 parent: rel error {par.rel:.2e} (tolerance {FP16_REL_TOL:g}), "
                f"top-1 agreement {par.top1_agreement:.1%}, {par.unexplained_flips} unexplained flip(s)",
                hint="nothing was written; keep FP32 for this model, or report it",
            )
        runtimes = [runtime_entry(runtime, info, cmp, primary=True)]
        if runtime == "onnxruntime":
            runtimes.append(secondary_openvino(ctx, path, ref))
        layout = {"name": "fp16", "format": "openvino-ir" if runtime == "openvino" else "onnx",
                  "activations": "float16", "weights": "float16", "io": "float32"}
        report = QuantReport(ctx.header, ref_record, layout=layout, recipe=recipe, accuracy=cmp,
                             runtimes=tuple(runtimes))
        return Built(model_file, specs[0], specs[1], report)


def method_for(options: QuantizeOptions,
               plan: QuantizePlan) -> OrtMethod | NncfOnnxMethod | NncfOpenVINOMethod | Fp16Method:
    """The method class a plan asks for."""
    if options.precision == "fp16":
        return Fp16Method()
    if plan.method == "onnxruntime":
        return OrtMethod()
    return NncfOpenVINOMethod() if plan.output_format == "openvino-ir" else NncfOnnxMethod()


def build_candidate(options: QuantizeOptions, p: QuantizePlan, parent: Artifact, calib: CalibrationSet | None,
                    ev: EvalSet, work: Path, stage: Path, *, say: Callable[[str], None], budget: float,
                    budget_source: str, ev_select: EvalSet | None = None) -> Built:
    if options.precision == "int8" and calib is None:
        raise UsageError("INT8 quantization needs calibration images", hint=quant_data.NO_CALIB_HINT)
    ctx = QuantContext(options, p, parent, calib, ev, work, stage, say, budget, budget_source,
                       header=header(options, p, calib, ev, ev_select), ev_select=ev_select)
    return method_for(options, p).run(ctx)
