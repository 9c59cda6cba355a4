"""INT8 with NNCF: OpenVINO IR (``model.xml``/``.bin``) or Q/DQ ONNX.

* OpenVINO: the ONNX parent is converted with ``ov.convert_model``, reshaped
  to a **static** batch (the deployment batch) and quantized by NNCF
  (``target_device=CPU``); with an accuracy budget,
  ``nncf.quantize_with_accuracy_control`` reverts the most harmful layers to
  float until the drop fits. Its ``validation_fn`` runs the compiled model it is
  given (NNCF compiles it at f32 inference precision) and refuses one whose
  input is not static or whose precision is not f32: OpenVINO gave wrong
  outputs for an NNCF INT8 model with a dynamic batch compiled with the f32
  hint, and was right with static shapes. The IR is saved without FP16
  compression (INT8 weights are stored as int8 by NNCF; the rest stays f32).
* ONNX: ``nncf.quantize`` on the ONNX model gives NNCF's Q/DQ layout: int8
  weights, and activations uint8 (after ReLU-like ops) or int8, all with zero
  point 0 in PERFORMANCE, asymmetric in MIXED. Unsigned activations are not
  TensorRT's layout, so TensorRT always uses the ONNX Runtime path.

``nncf`` imports torch when torch is installed: it is imported only here,
only when this method runs.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.core.errors import CheckFailed, ExportError, UsageError
from edgekit.core.lazy import require
from edgekit.optimize.quant.presets import QuantPreset

log = logging.getLogger(__name__)

MODEL_XML = "model.xml"
MODEL_BIN = "model.bin"
#: OpenVINO op types with weights that NNCF quantizes
OV_WEIGHTED = ("Convolution", "GroupConvolution", "MatMul", "ConvolutionBackpropData")
#: images NNCF's accuracy restorer ranks layers on (its default is the calibration subset size)
RANKING_SUBSET = 100


def _nncf() -> Any:
    return require("nncf", purpose="INT8 quantization with NNCF")


@contextlib.contextmanager
def nncf_output() -> Iterator[None]:
    """Keep NNCF's INFO logs and progress bars off stdout (it is edgekit's result channel).

    NNCF logs INFO to a stdout handler and draws rich progress bars on stdout;
    while it runs, its handler writes to stderr at WARNING (INFO with
    ``edgekit -vv``) and stdout is redirected to stderr. Restored afterwards.
    """
    nlog = logging.getLogger("nncf")
    saved = [(h, h.level, getattr(h, "stream", None)) for h in nlog.handlers]
    level = nlog.level
    quiet = logging.INFO if log.isEnabledFor(logging.DEBUG) else logging.WARNING
    nlog.setLevel(quiet)
    for h, _, stream in saved:
        h.setLevel(quiet)
        if stream is not None and isinstance(h, logging.StreamHandler):
            h.setStream(sys.stderr)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        nlog.setLevel(level)
        for h, lvl, stream in saved:
            h.setLevel(lvl)
            if stream is not None and isinstance(h, logging.StreamHandler):
                h.setStream(stream)


def nncf_kwargs(preset: QuantPreset, *, ignored: list[str], subset_size: int, target: str) -> dict[str, Any]:
    """Keyword arguments of nncf.quantize for ``preset``; also what the manifest records."""
    nncf = _nncf()
    kw: dict[str, Any] = {
        "subset_size": subset_size,
        "fast_bias_correction": preset.fast_bias_correction,
        "target_device": nncf.TargetDevice.CPU if target == "openvino" else nncf.TargetDevice.ANY,
    }
    if preset.nncf_preset is not None:
        kw["preset"] = nncf.QuantizationPreset(preset.nncf_preset)
    if preset.model_type == "transformer":
        kw["model_type"] = nncf.ModelType.TRANSFORMER
    if ignored:
        kw["ignored_scope"] = nncf.IgnoredScope(names=list(ignored), validate=True)
    return kw


def _recipe(kw: dict[str, Any], preset: QuantPreset) -> dict[str, Any]:
    nncf = _nncf()
    return {
        "tool": f"nncf {getattr(nncf, '__version__', '?')}",
        "subset_size": kw["subset_size"],
        "fast_bias_correction": kw["fast_bias_correction"],
        "target_device": str(kw["target_device"].value),
        "preset": preset.nncf_preset or "nncf default (performance; mixed for transformers)",
        "model_type": preset.model_type,
        "ignored_nodes": len(kw["ignored_scope"].names) if "ignored_scope" in kw else 0,
    }


def _dataset(x: np.ndarray, batch: int, input_name: str | None) -> Any:
    nncf = _nncf()
    items = []
    for i in range(0, len(x), batch):
        chunk = x[i : i + batch]
        if len(chunk) < batch:
            chunk = np.concatenate([chunk, x[: batch - len(chunk)]])
        items.append(np.ascontiguousarray(chunk, dtype=np.float32))
    if input_name is None:
        return nncf.Dataset(items)
    return nncf.Dataset(items, lambda a: {input_name: a})


def load_openvino_static(onnx_path: Path, *, batch: int) -> Any:
    """``ov.convert_model`` of the parent, reshaped to a static batch."""
    ov = require("openvino", purpose="quantizing for OpenVINO")
    try:
        model = ov.convert_model(str(onnx_path))
    except Exception as e:  # OpenVINO raises OpConversionFailure, RuntimeError, ... by frontend
        raise ExportError(f"OpenVINO cannot convert {onnx_path.name}: {type(e).__name__}: {' '.join(str(e).split())[:300]}") from None
    shapes = {}
    for port in model.inputs:
        ps = port.get_partial_shape()
        dims = [ps[i] for i in range(len(ps))]
        if dims and not (dims[0].is_static and dims[0].get_length() == batch):
            dims[0] = ov.Dimension(batch)
            shapes[port] = ov.PartialShape(dims)
    if shapes:
        model.reshape(shapes)
    dynamic = [p.get_any_name() for p in model.inputs if p.get_partial_shape().is_dynamic]
    if dynamic:
        raise UsageError(f"inputs {dynamic} keep dynamic dimensions at batch {batch}", hint="export with a static input size")
    return model


def make_validation_fn(labels: np.ndarray, *, batch: int) -> Callable[[Any, Any], tuple[float, list[float]]]:
    """validation_fn(compiled_model, items) -> (top-1, per-item accuracy); items are (x, image indices).

    Refuses a compiled model with a dynamic input or a non-f32 inference precision.
    """
    ov = require("openvino")

    def validate(compiled: Any, items: Any) -> tuple[float, list[float]]:
        prec = compiled.get_property(ov.properties.hint.inference_precision)
        if prec.get_type_name() != "f32":
            raise CheckFailed(f"accuracy control got a model compiled at {prec.get_type_name()}, not f32")
        if any(p.get_partial_shape().is_dynamic for p in compiled.inputs):
            raise CheckFailed("accuracy control got a model with a dynamic input; it must be static")
        request = compiled.create_infer_request()
        out_port = compiled.outputs[0]
        per_item: list[float] = []  # one value per data item (a batch), as NNCF expects
        hits = total = 0
        for x, idx in items:
            logits = request.infer({0: x})[out_port]
            pred = np.asarray(logits).reshape(len(x), -1).argmax(axis=1)[: len(idx)]
            ok = pred == labels[np.asarray(idx)]
            per_item.append(float(ok.mean()))
            hits, total = hits + int(ok.sum()), total + len(idx)
        return (hits / total if total else 0.0), per_item

    return validate


def _validation_dataset(x: np.ndarray, batch: int) -> Any:
    nncf = _nncf()
    items = []
    for i in range(0, len(x), batch):
        chunk = x[i : i + batch]
        idx = np.arange(i, i + len(chunk))
        if len(chunk) < batch:
            chunk = np.concatenate([chunk, x[: batch - len(chunk)]])
        items.append((np.ascontiguousarray(chunk, dtype=np.float32), idx))
    return nncf.Dataset(items)


def quantize_openvino(
    onnx_path: Path,
    stage: Path,
    *,
    calib_x: np.ndarray,
    batch: int,
    preset: QuantPreset,
    ignored: list[str],
    model: Any = None,
    eval_x: np.ndarray | None = None,
    eval_labels: np.ndarray | None = None,
    max_drop_pts: float | None = None,
    max_iterations: int = 8,
) -> dict[str, Any]:
    """NNCF on the OpenVINO model at a static batch; writes ``stage/model.xml`` + ``.bin``."""
    ov = require("openvino", purpose="quantizing for OpenVINO")
    nncf = _nncf()
    model = model if model is not None else load_openvino_static(onnx_path, batch=batch)
    kw = nncf_kwargs(preset, ignored=ignored, subset_size=len(calib_x), target="openvino")
    calib = _dataset(calib_x, batch, None)
    recipe = _recipe(kw, preset)
    with nncf_output():
        try:
            if max_drop_pts is None:
                q = nncf.quantize(model, calib, **kw)
            else:
                if eval_x is None or eval_labels is None:
                    raise UsageError("accuracy control needs labelled eval data")
                params = nncf.AdvancedAccuracyRestorerParameters(
                    max_num_iterations=max_iterations, ranking_subset_size=min(RANKING_SUBSET, len(eval_x))
                )
                q = nncf.quantize_with_accuracy_control(
                    model,
                    calib,
                    _validation_dataset(eval_x, batch),
                    make_validation_fn(eval_labels, batch=batch),
                    max_drop=max_drop_pts / 100.0,
                    drop_type=nncf.DropType.ABSOLUTE,
                    advanced_accuracy_restorer_parameters=params,
                    **kw,
                )
                recipe["accuracy_control"] = {
                    "tool": "nncf.quantize_with_accuracy_control",
                    "max_drop": max_drop_pts / 100.0,
                    "drop_type": "absolute",
                    "max_num_iterations": max_iterations,
                "ranking_subset_size": min(RANKING_SUBSET, len(eval_x)),
                    "validation": f"top-1, OpenVINO CPU at f32 inference precision, static batch {batch}",
                }
        except (nncf.ValidationError, nncf.InternalError, RuntimeError, ValueError) as e:
            raise ExportError(f"NNCF failed to quantize for OpenVINO: {type(e).__name__}: {' '.join(str(e).split())[:300]}") from None
    ov.save_model(q, str(stage / MODEL_XML), compress_to_fp16=False)
    recipe["static_batch"] = batch
    recipe["compress_to_fp16"] = False
    recipe["graph"] = ov_quant_report(q)
    return recipe


def quantize_nncf_onnx(
    onnx_path: Path, out_path: Path, *, calib_x: np.ndarray, batch: int, input_name: str, preset: QuantPreset,
    ignored: list[str],
) -> dict[str, Any]:
    """NNCF on the ONNX model; writes a Q/DQ ONNX to ``out_path``."""
    onnx = require("onnx")
    nncf = _nncf()
    kw = nncf_kwargs(preset, ignored=ignored, subset_size=len(calib_x), target="onnx")
    with nncf_output():
        try:
            q = nncf.quantize(onnx.load(str(onnx_path)), _dataset(calib_x, batch, input_name), **kw)
        except (nncf.ValidationError, nncf.InternalError, RuntimeError, ValueError) as e:
            raise ExportError(
                f"NNCF failed to quantize {onnx_path.name}: {type(e).__name__}: {' '.join(str(e).split())[:300]}"
            ) from None
    onnx.save(q, str(out_path))
    return _recipe(kw, preset)


_WEIGHT_PATH = ("Convert", "Subtract", "Multiply", "Reshape", "Transpose", "Unsqueeze")
_INT_TYPES = ("i8", "u8", "i4", "u4")


def _weight_kind(op: Any) -> str:
    """What feeds a weighted op's second input, walked back through weight decompression (NNCF stores
    quantized weights as an i8 Constant -> Convert -> [Subtract] -> Multiply) and FakeQuantize:
    ``"int8"`` (an integer constant or a FakeQuantize), ``"float"`` (float constants only), or
    ``"activation"`` (a computed tensor or a graph input: attention scores have no weight to quantize)."""
    if op.get_input_size() < 2:
        return "float"
    frontier = [op.input(1).get_source_output().get_node()]
    quantized = False
    for _ in range(6):
        nxt = []
        for node in frontier:
            t = node.get_type_name()
            if t == "Constant":
                quantized |= node.get_output_element_type(0).get_type_name() in _INT_TYPES
            elif t in _WEIGHT_PATH or t == "FakeQuantize":
                quantized |= t == "FakeQuantize"
                nxt.extend(i.get_source_output().get_node() for i in node.inputs())
            else:
                return "activation"
        frontier = nxt
    return "int8" if quantized else "float"


def ov_quant_report(model: Any) -> dict[str, Any]:
    """Which weighted layers of an OpenVINO model run in INT8 (quantized weights) or float."""
    quantized, floating = [], []
    fq = 0
    for op in model.get_ordered_ops():
        t = op.get_type_name()
        if t == "FakeQuantize":
            fq += 1
        if t not in OV_WEIGHTED:
            continue
        kind = _weight_kind(op)
        if kind != "activation":
            (quantized if kind == "int8" else floating).append(op.get_friendly_name())
    return {"fake_quantize": fq, "quantized_layers": len(quantized), "float_layers": floating}
