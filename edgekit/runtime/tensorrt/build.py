"""ONNX -> TensorRT engine (``model.engine`` + its sidecar ``model.engine.json``).

The engine is built on the device that runs it (engines and timing caches are
not portable across GPU, TensorRT, CUDA or JetPack). The timing cache lives in
a per-environment file, ``<cache>/trt-timing/<env digest>.cache``, so later
builds on the same device reuse the measured tactics and an engine built on
one device never reuses another device's timings. The cache directory is
``--timing-cache-dir``, else edgekit's cache root (:mod:`edgekit.core.cache`:
``$EDGEKIT_CACHE``, ``$EDGEKIT_CACHE_DIR``, ``$XDG_CACHE_HOME/edgekit``, ``~/.cache/edgekit``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgekit.core.atomic import sha256_file
from edgekit.core.cache import cache_root
from edgekit.runtime.backend import BuiltEngine, EngineRequest
from edgekit.runtime.base import Runner
from edgekit.runtime.tensorrt import BACKEND, FORMAT
from edgekit.runtime.tensorrt.engine_key import ENV_FIELDS, sidecar_path

MODEL_ENGINE = "model.engine"
PRECISIONS = BACKEND.build_precisions


def environment_digest(env: dict[str, Any]) -> str:
    """A short digest of the device fields a timing cache depends on."""
    fields = {k: env.get(k) for k in ENV_FIELDS}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode("utf-8")).hexdigest()[:16]


def check_available() -> tuple[Any, Any]:
    """``(tensorrt, cuda)``: MissingDependencyError naming how to install TensorRT here, or a DeviceError
    naming the fix when there is no NVIDIA driver or it is older than TensorRT's CUDA."""
    from edgekit.runtime.tensorrt import cuda, env

    trt = env.import_tensorrt()
    return trt, cuda.load_cuda(trt)


def build_trt_engine(
    onnx_path: Path,
    stage: Path,
    *,
    precision: str,
    input_name: str,
    input_shape: tuple[int, ...],
    dla_core: int | None,
    workspace_mb: int,
    timing_cache_dir: Path | None,
    use_timing_cache: bool,
) -> dict[str, Any]:
    """Build ``stage/model.engine`` (+ sidecar) at the static ``input_shape``; returns the recipe details."""
    from edgekit.runtime.tensorrt import env as trt_env
    from edgekit.runtime.tensorrt.builder import build_engine_file

    trt = trt_env.import_tensorrt()
    env = trt_env.device_environment(trt)
    cache: Path | None = None
    if use_timing_cache:
        cache = (timing_cache_dir or cache_root() / "trt-timing") / f"{environment_digest(env)}.cache"
        cache.parent.mkdir(parents=True, exist_ok=True)
    cache_in = sha256_file(cache) if cache is not None and cache.is_file() else None
    shape = tuple(int(d) for d in input_shape)
    key = build_engine_file(
        onnx_path,
        stage / MODEL_ENGINE,
        precision=precision,
        workspace_mb=workspace_mb,
        timing_cache=cache,
        shapes={input_name: (shape, shape, shape)},
        dla_core=dla_core,
        gpu_fallback=dla_core is not None,
    )
    return {
        "engine_key_digest": key.digest(),
        "sidecar": sidecar_path(stage / MODEL_ENGINE).name,
        "environment": key.describe(),
        "tensorrt_version": key.tensorrt_version,
        "strongly_typed": key.strongly_typed,
        "builder_flags": list(key.extra.get("builder_flags", [])),
        "precision_label": key.precision_label,
        "dla_placement": key.extra.get("dla_placement"),
        "dla_core": dla_core,
        "gpu_fallback": dla_core is not None,
        "workspace_mb": workspace_mb,
        "shapes": {input_name: [list(shape)] * 3},
        "timing_cache": str(cache) if cache is not None else None,
        "timing_cache_sha256_before": cache_in,
        "tf32": False,
    }


def verification_runner(stage: Path) -> Callable[[], Runner]:
    """The engine run on this device's GPU (the sidecar is verified before TensorRT sees the bytes)."""

    def make() -> Runner:
        from edgekit.runtime.tensorrt.runner import TensorRTRunner

        return TensorRTRunner(stage / MODEL_ENGINE)

    return make


def build(request: EngineRequest, stage: Path, *, say: Callable[[str], None]) -> BuiltEngine:
    """``edgekit build``'s entry point (:class:`~edgekit.runtime.backend.EngineRequest` in, engine in ``stage``)."""
    say(f"building a TensorRT engine from {request.onnx_path.name} ({request.precision}, batch {request.batch}, "
        f"{request.device})")
    details = build_trt_engine(
        request.onnx_path, stage, precision=request.precision, input_name=request.input_name,
        input_shape=tuple(int(d) for d in request.input_shape), dla_core=0 if request.device == "DLA" else None,
        workspace_mb=request.workspace_mb, timing_cache_dir=request.timing_cache_dir,
        use_timing_cache=request.timing_cache)
    return BuiltEngine(format=FORMAT, model_file=MODEL_ENGINE, details=details, open_runner=verification_runner(stage))
