"""ONNX -> OpenVINO IR (``model.xml`` + ``model.bin``) at a static batch.

``ov.save_model`` compresses float weights to FP16 by default; edgekit asks
for it only when the build precision is fp16, so an fp32 (or bf16, or int8)
IR keeps its float weights in fp32. INT8 comes from a Q/DQ ONNX, which
OpenVINO turns into FakeQuantize operations; it is never made up here.

The inference precision the device should run (``INFERENCE_PRECISION_HINT``)
is not part of the IR: it is recorded in the manifest and applied by the
runner, because on AMX CPUs OpenVINO otherwise runs bf16 without saying so.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgekit.core.errors import ArtifactError, UsageError
from edgekit.core.lazy import require
from edgekit.runtime.backend import BuiltEngine, EngineRequest
from edgekit.runtime.base import Runner
from edgekit.runtime.openvino import BACKEND, FORMAT, INFERENCE_PRECISION, RUN_PRECISION

log = logging.getLogger(__name__)

MODEL_XML = "model.xml"
MODEL_BIN = "model.bin"
PRECISIONS = BACKEND.build_precisions


def check_available() -> Any:
    """``import openvino`` or a MissingDependencyError naming the extra."""
    return require("openvino", purpose="building an OpenVINO IR")


def _reshape_batch(ov: Any, model: Any, input_name: str, batch: int) -> None:
    new: dict[Any, Any] = {}
    for port in model.inputs:
        ps = port.get_partial_shape()
        if ps.rank.is_dynamic or len(ps) == 0:
            raise UsageError(f"cannot set batch {batch}: input {port.get_any_name()!r} has no batch dimension")
        dims = [ps[i] for i in range(len(ps))]
        if dims[0].is_static and dims[0].get_length() == batch:
            continue
        dims[0] = ov.Dimension(batch)
        new[port] = ov.PartialShape(dims)
    if not new:
        return
    try:
        model.reshape(new)
    except RuntimeError as e:
        raise UsageError(
            f"OpenVINO cannot reshape input {input_name!r} to batch {batch}: {' '.join(str(e).split())[:300]}",
            hint="export the model with the batch you deploy (edgekit export --batch N)",
        ) from None


def build_ir(
    onnx_path: Path,
    stage: Path,
    *,
    precision: str,
    input_name: str,
    batch: int,
) -> dict[str, Any]:
    """Convert ``onnx_path`` into ``stage/model.xml`` + ``model.bin``; returns the recipe details."""
    if precision not in PRECISIONS:
        raise UsageError(f"unknown OpenVINO build precision {precision!r}",
                         hint=f"choose one of {', '.join(PRECISIONS)}")
    ov = check_available()
    try:
        model = ov.convert_model(str(onnx_path))
    except Exception as e:  # OpenVINO raises OpConversionFailure, RuntimeError, ... depending on the frontend
        raise ArtifactError(
            f"OpenVINO {ov.get_version()} cannot convert {onnx_path.name}: {type(e).__name__}: "
            f"{' '.join(str(e).split())[:400]}"
        ) from None
    _reshape_batch(ov, model, input_name, batch)
    dynamic = [p.get_any_name() for p in model.inputs if p.get_partial_shape().is_dynamic]
    if dynamic:
        raise UsageError(
            f"inputs {dynamic} still have dynamic dimensions after setting batch {batch}",
            hint="export the model with a static input size",
        )
    compress = precision == "fp16"
    ov.save_model(model, str(stage / MODEL_XML), compress_to_fp16=compress)
    log.info("wrote %s (compress_to_fp16=%s)", stage / MODEL_XML, compress)
    return {
        "compress_to_fp16": compress,
        "inference_precision": INFERENCE_PRECISION[precision],
        "input_shapes": {p.get_any_name(): [int(d) for d in p.get_shape()] for p in model.inputs},
        "openvino_version": str(ov.get_version()),
    }


def verification_runner(stage: Path, *, threads: int | None) -> Callable[[], Runner]:
    """The IR run on the host CPU at an explicit f32 inference precision (never a silent bf16)."""

    def make() -> Runner:
        from edgekit.runtime.openvino.runner import OpenVINORunner

        return OpenVINORunner(stage / MODEL_XML, device="CPU", precision="f32", threads=threads)

    return make


def build(request: EngineRequest, stage: Path, *, say: Callable[[str], None]) -> BuiltEngine:
    """``edgekit build``'s entry point (:class:`~edgekit.runtime.backend.EngineRequest` in, IR in ``stage``)."""
    say(f"converting {request.onnx_path.name} to OpenVINO IR ({request.precision}, batch {request.batch})")
    details = build_ir(request.onnx_path, stage, precision=request.precision, input_name=request.input_name,
                       batch=request.batch)
    return BuiltEngine(format=FORMAT, model_file=MODEL_XML, details=details,
                       open_runner=verification_runner(stage, threads=request.threads),
                       inference_precision=RUN_PRECISION[request.precision])
