"""ONNX Runtime backend.

Threads are always set explicitly (ORT's defaults changed between versions and
``taskset`` pinning misbehaves without them): ``intra_op_num_threads`` is
``threads`` or the number of CPUs this process may run on, inter-op threads
default to 1, and the execution mode is sequential.

Execution providers: ``providers=None`` picks, among those installed,
TensorRT, then CUDA, then CPU. Asking for a provider that is not installed is
an error, never a silent fallback. The providers ORT actually bound are read
back from the session (``get_providers()``) and recorded.

``info.precision`` is the artifact's precision as the graph declares it
(fp32, fp16, bf16, or int8 for a Q/DQ or QOperator graph): ONNX Runtime runs
a graph in the types it declares, so this is what runs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.core.errors import ArtifactError, UsageError
from edgekit.core.lazy import require
from edgekit.core.specs import TensorSpec
from edgekit.runtime.base import Runner, RunnerInfo
from edgekit.runtime.onnx_info import GraphInfo, ort_type_to_dtype, read_graph_info

log = logging.getLogger(__name__)

#: short names a user may type -> ORT provider names
PROVIDER_ALIASES: dict[str, str] = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "dnnl": "DnnlExecutionProvider",
}
#: provider preference when none is asked for
AUTO_ORDER = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
GRAPH_OPT_LEVELS: dict[str, str] = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}


def default_threads() -> int:
    """The number of CPUs this process may run on (affinity-aware)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS / Windows
        return max(1, os.cpu_count() or 1)


def resolve_providers(asked: Sequence[str] | None, available: Sequence[str]) -> list[str]:
    """The provider list to give ORT: explicit ones checked, or the auto order."""
    if asked is None:
        chosen = [p for p in AUTO_ORDER if p in available]
        return chosen or ["CPUExecutionProvider"]
    if isinstance(asked, str):
        asked = [asked]
    if not asked:
        raise UsageError("providers is empty", hint="give at least one, e.g. providers=['cpu']")
    out: list[str] = []
    for p in asked:
        full = PROVIDER_ALIASES.get(p.lower(), p)
        if full not in available:
            raise UsageError(
                f"ONNX Runtime execution provider {p!r} is not available in this installation",
                hint=f"available: {', '.join(available)}; CUDA/TensorRT need the onnxruntime-gpu package",
            )
        if full not in out:
            out.append(full)
    return out


class OnnxRuntimeRunner(Runner):
    """Run an ONNX model with ONNX Runtime."""

    name = "onnxruntime"

    def __init__(
        self,
        model_path: str | Path,
        *,
        threads: int | None = None,
        inter_op_threads: int = 1,
        providers: Sequence[str] | None = None,
        graph_optimization: str = "all",
    ) -> None:
        super().__init__(model_path)
        self._ort = require("onnxruntime", purpose="running ONNX models")
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise UsageError(f"threads must be a positive integer, got {threads!r}")
        if not isinstance(inter_op_threads, int) or inter_op_threads < 1:
            raise UsageError(f"inter_op_threads must be a positive integer, got {inter_op_threads!r}")
        if graph_optimization not in GRAPH_OPT_LEVELS:
            raise UsageError(
                f"unknown graph_optimization {graph_optimization!r}",
                hint=f"choose one of {', '.join(GRAPH_OPT_LEVELS)}",
            )
        self.threads = threads if threads is not None else default_threads()
        self.inter_op_threads = inter_op_threads
        self.graph_optimization = graph_optimization
        self.providers = resolve_providers(providers, self._ort.get_available_providers())
        self._sess: Any = None
        self._graph: GraphInfo | None = None
        self._inputs: tuple[TensorSpec, ...] = ()
        self._outputs: tuple[TensorSpec, ...] = ()

    def _activate_impl(self) -> None:
        ort = self._ort
        self._graph = read_graph_info(self.model_path)
        so = ort.SessionOptions()
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = self.inter_op_threads
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, GRAPH_OPT_LEVELS[self.graph_optimization])
        so.log_severity_level = 3
        try:
            self._sess = ort.InferenceSession(str(self.model_path), sess_options=so, providers=self.providers)
        except Exception as e:  # ORT raises its own pybind exception types (Fail, InvalidGraph, ...)
            raise ArtifactError(
                f"ONNX Runtime cannot load {self.model_path}: {type(e).__name__}: {' '.join(str(e).split())[:400]}"
            ) from None
        bound = list(self._sess.get_providers())
        missing = [p for p in self.providers if p not in bound]
        if missing:
            log.warning("ONNX Runtime did not bind %s for %s (bound: %s)", missing, self.model_path, bound)
        self._inputs = tuple(self._spec(a) for a in self._sess.get_inputs())
        self._outputs = tuple(self._spec(a) for a in self._sess.get_outputs())

    @staticmethod
    def _spec(arg: Any) -> TensorSpec:
        shape = tuple(
            d if isinstance(d, int) else (str(d) if d not in (None, "") else f"?{i}") for i, d in enumerate(arg.shape)
        )
        return TensorSpec(name=arg.name, shape=shape, dtype=ort_type_to_dtype(arg.type))

    def _deactivate_impl(self) -> None:
        self._sess = None

    def _inputs_impl(self) -> tuple[TensorSpec, ...]:
        return self._inputs

    def _outputs_impl(self) -> tuple[TensorSpec, ...]:
        return self._outputs

    def _info_impl(self) -> RunnerInfo:
        bound = list(self._sess.get_providers())
        graph: GraphInfo = self._graph  # type: ignore[assignment]  # set in _activate_impl
        device = {
            "TensorrtExecutionProvider": "gpu (tensorrt ep)",
            "CUDAExecutionProvider": "gpu (cuda ep)",
        }.get(bound[0], "cpu")
        return RunnerInfo(
            runtime=self.name,
            runtime_version=str(self._ort.__version__),
            device=device,
            precision=graph.precision,
            threads=self.threads,
            details={
                "providers": bound,
                "providers_requested": list(self.providers),
                "intra_op_num_threads": self.threads,
                "inter_op_num_threads": self.inter_op_threads,
                "execution_mode": "sequential",
                "graph_optimization": self.graph_optimization,
                "graph": graph.to_json(),
            },
        )

    def _infer_impl(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = [o.name for o in self._outputs]
        results = self._sess.run(names, feeds)
        return dict(zip(names, results))
