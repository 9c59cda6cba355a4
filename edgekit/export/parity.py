"""Parity: does the exported graph compute what the PyTorch model computes?

Each runtime runs the ONNX graph on the same inputs as the PyTorch reference:
real images from the embedded dataset, preprocessed exactly as the manifest
says, plus a few seeded random tensors. Reported per runtime: max-abs error,
mean-abs error, the error relative to the reference output's range, and top-1
agreement. A top-1 flip is *explained* when the reference's own top-1/top-2
margin is within twice the max-abs error (a near tie); an unexplained flip, or
a relative error above tolerance, fails parity. OpenVINO is always run at an
explicit f32 inference precision and the precision it reports back is recorded
(on AMX CPUs it silently runs bf16 otherwise).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.core.errors import MissingDependencyError
from edgekit.core.lazy import available

log = logging.getLogger(__name__)

#: max |a-b| / (max(ref) - min(ref)) allowed in FP32: measured errors are ~1e-6
DEFAULT_REL_TOL = 1e-4


@dataclass(frozen=True)
class RuntimeParity:
    runtime: str
    status: str  # "passed" | "failed" | "skipped"
    precision: str | None = None
    max_abs: float | None = None
    mean_abs: float | None = None
    rel: float | None = None
    top1_agreement: float | None = None
    flips: int = 0
    unexplained_flips: int = 0
    batches: tuple[int, ...] = ()
    reason: str = ""

    def __bool__(self) -> bool:
        return self.status != "failed"

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["batches"] = list(self.batches)
        return d


@dataclass(frozen=True)
class ParityReport:
    reference: str
    n_real: int
    n_random: int
    data: str
    rel_tol: float
    runtimes: tuple[RuntimeParity, ...] = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        return all(self.runtimes) and any(r.status == "passed" for r in self.runtimes)

    def __bool__(self) -> bool:
        return self.passed

    def failures(self) -> list[str]:
        out = []
        for r in self.runtimes:
            if r.status != "failed":
                continue
            if r.rel is None:  # compared nothing: shape mismatch, NaN/Inf
                out.append(f"{r.runtime}: {r.reason}")
            else:
                out.append(
                    f"{r.runtime}: rel error {r.rel:.2e} (max-abs {r.max_abs:.2e}), "
                    f"top-1 agreement {r.top1_agreement:.1%}, {r.unexplained_flips} unexplained flips"
                )
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "inputs": {"real_images": self.n_real, "random_tensors": self.n_random, "data": self.data},
            "rel_tol": self.rel_tol,
            "passed": self.passed,
            "runtimes": [r.to_json() for r in self.runtimes],
        }


def compare_outputs(
    runtime: str,
    ref: np.ndarray,
    got: np.ndarray,
    *,
    rel_tol: float,
    precision: str | None,
    batches: Sequence[int],
) -> RuntimeParity:
    """Compare logits ``got`` against ``ref`` (both (N, classes))."""
    ref = ref.astype(np.float64)
    got = got.astype(np.float64)
    if ref.shape != got.shape:
        return RuntimeParity(runtime, "failed", precision, reason=f"output shape {got.shape} != reference {ref.shape}")
    if not np.all(np.isfinite(got)):
        return RuntimeParity(runtime, "failed", precision, reason="output contains NaN or Inf")
    diff = np.abs(ref - got)
    max_abs = float(diff.max())
    span = float(ref.max() - ref.min()) or 1.0
    rel = max_abs / span
    top_ref = ref.argmax(axis=1)
    top_got = got.argmax(axis=1)
    flips = top_ref != top_got
    srt = np.sort(ref, axis=1)
    margin = srt[:, -1] - srt[:, -2] if ref.shape[1] > 1 else np.full(len(ref), np.inf)
    unexplained = int(np.sum(flips & (margin > 2 * max_abs)))
    ok = rel <= rel_tol and unexplained == 0
    return RuntimeParity(
        runtime=runtime,
        status="passed" if ok else "failed",
        precision=precision,
        max_abs=max_abs,
        mean_abs=float(diff.mean()),
        rel=rel,
        top1_agreement=float(np.mean(~flips)),
        flips=int(flips.sum()),
        unexplained_flips=unexplained,
        batches=tuple(batches),
        reason="" if ok else "error above tolerance" if rel > rel_tol else "top-1 flips not explained by near ties",
    )


def run_batched(infer: Callable[[np.ndarray], np.ndarray], x: np.ndarray, batch: int) -> np.ndarray:
    outs = []
    for i in range(0, len(x), batch):
        chunk = x[i : i + batch]
        n = len(chunk)
        if n < batch:  # a static batch: pad with the first rows, drop their outputs
            chunk = np.concatenate([chunk, x[: batch - n]])
        outs.append(infer(np.ascontiguousarray(chunk))[:n])
    return np.concatenate(outs)


def _runner_factories(threads: int | None) -> dict[str, Callable[[Path], Any]]:
    def ort(path: Path) -> Any:
        from edgekit.runtime.onnxruntime.runner import OnnxRuntimeRunner

        return OnnxRuntimeRunner(path, threads=threads)

    def ov(path: Path) -> Any:
        from edgekit.runtime.openvino.runner import OpenVINORunner

        return OpenVINORunner(path, device="CPU", precision="f32", threads=threads)

    return {"onnxruntime": ort, "openvino": ov}


def check_parity(
    onnx_path: Path,
    reference: Callable[[np.ndarray], np.ndarray],
    inputs: np.ndarray,
    *,
    n_real: int,
    data: str,
    static_batch: int | None,
    runtimes: Sequence[str] = ("onnxruntime", "openvino"),
    rel_tol: float = DEFAULT_REL_TOL,
    threads: int | None = None,
) -> ParityReport:
    """Run ``onnx_path`` on every installed runtime and compare with ``reference``.

    ``static_batch`` is the graph's fixed batch size, or None for a dynamic
    batch (then batch 1 and the whole input set in one batch are both run).
    ONNX Runtime is required; other runtimes are skipped, with the reason
    recorded, when they are not installed.
    """
    if not available("onnxruntime"):
        raise MissingDependencyError("onnxruntime", "onnxruntime", purpose="needed to check export parity")
    batches = [static_batch] if static_batch else [1, len(inputs)]
    ref = reference(inputs)
    results = []
    factories = _runner_factories(threads)
    for name in runtimes:
        if not available(name):
            results.append(RuntimeParity(name, "skipped", reason=f"{name} is not installed"))
            continue
        with factories[name](onnx_path) as runner:
            in_name = runner.inputs[0].name
            out_name = runner.outputs[0].name

            def infer(x: np.ndarray) -> np.ndarray:
                return runner.infer({in_name: x})[out_name]

            precision = runner.info.precision
            got = [run_batched(infer, inputs, b) for b in batches]
        worst = max(
            (compare_outputs(name, ref, g, rel_tol=rel_tol, precision=precision, batches=batches) for g in got),
            key=lambda r: (r.status == "failed", r.rel or 0.0),
        )
        log.info("parity %s: max-abs %.2e rel %.2e top-1 %.1f%%", name, worst.max_abs or 0, worst.rel or 0, 100 * (worst.top1_agreement or 0))
        results.append(worst)
    return ParityReport(
        reference="torch",
        n_real=n_real,
        n_random=len(inputs) - n_real,
        data=data,
        rel_tol=rel_tol,
        runtimes=tuple(results),
    )
