"""One comparator on the device side: run a model on an array, compare its logits with a reference's.

Polygraphy's Comparator, small. Used by export parity (ONNX vs torch), engine build verification
(engine vs ONNX Runtime on the parent ONNX), quantization (candidate vs FP32 parent), and bench's
accuracy loop (its padding rule). Torch-free: numpy and the runtime registry.

* :func:`reference_runner`: the FP32 host-CPU reference for a model file, with the backend record's own
  options for an fp32 CPU cell (ONNX Runtime by default; OpenVINO's record asks for an explicit ``f32``
  inference precision: on AMX CPUs it silently runs bf16 otherwise).
* :func:`pad_batch` / :func:`run_logits`: the one batching rule. A static batch is filled by repeating
  the chunk's last row, and the outputs of the padding rows are dropped (works for any chunk size, even
  fewer inputs than the batch).
* :func:`compare_logits`: max-abs and mean-abs error, error relative to the reference's range, top-1
  agreement and flips; a flip is *explained* when the reference's own top-1/top-2 margin is within
  twice the max-abs error (a near tie). It passes when the relative error is within ``tol`` and no flip
  is unexplained.
* :class:`RuntimeParity` / :class:`ParityReport` (via :func:`compare_outputs`): the parity record an
  artifact's manifest carries.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.runtime.base import Runner

#: max |a-b| / (max(ref) - min(ref)) allowed in FP32: measured errors are ~1e-6
DEFAULT_REL_TOL = 1e-4


def reference_runner(model_path: str | Path, *, runtime: str | None = None, threads: int | None = None,
                     batch: int | None = None) -> Runner:
    """An FP32 runner on this host's CPU for ``model_path`` (not activated: use it in a ``with`` block);
    ``runtime`` None: the registry's first runtime for ONNX (ONNX Runtime).

    The options are the backend's own for an fp32 cell on its ``CPU`` device (:attr:`Backend.options`), so
    a runtime's precision rule (OpenVINO's explicit ``f32``) lives in its record; ``batch`` is compiled
    only by a runtime that compiles one static batch per size (``BatchMode.RESHAPE``).
    """
    from edgekit.core.errors import UsageError
    from edgekit.core.target_schema import RuntimeSpec
    from edgekit.runtime.backend import BatchMode, OpenRequest
    from edgekit.runtime.registry import FORMAT_RUNTIMES, create_runner, resolve_runtime

    if runtime is None and not FORMAT_RUNTIMES.get("onnx"):
        raise UsageError("no runtime that reads ONNX is registered", hint="pip install 'edgekit[onnxruntime]'")
    backend = resolve_runtime(runtime if runtime is not None else FORMAT_RUNTIMES["onnx"][0])
    if "CPU" not in backend.devices:
        raise UsageError(f"{backend.label} does not run on this host's CPU, so it cannot be the FP32 reference",
                         hint="use a runtime with a CPU device (onnxruntime, openvino)")
    spec = RuntimeSpec(runtime=backend.name, device="CPU", precisions=("fp32",))
    options = backend.options(OpenRequest(spec=spec, precision="fp32", manifest=None, threads=threads, streams=None,
                                          batch=batch if backend.batching == BatchMode.RESHAPE else None))
    return create_runner(backend.name, model_path, **{"threads": threads, **options})


def pad_batch(chunk: np.ndarray, batch: int | None) -> np.ndarray:
    """``chunk`` filled to ``batch`` rows by repeating its last row (``None``: a dynamic batch, unchanged)."""
    n = len(chunk)
    if batch is None or n >= batch:
        return np.ascontiguousarray(chunk)
    return np.ascontiguousarray(np.concatenate([chunk, np.repeat(chunk[-1:], batch - n, axis=0)]))


def run_batched(infer: Callable[[np.ndarray], np.ndarray], x: np.ndarray, batch: int) -> np.ndarray:
    """``infer`` over ``x`` in chunks of ``batch`` (the last one padded), outputs as ``(len(x), -1)``."""
    outs = []
    for i in range(0, len(x), batch):
        chunk = x[i : i + batch]
        n = len(chunk)
        outs.append(np.asarray(infer(pad_batch(chunk, batch)))[:n].reshape(n, -1))
    return np.concatenate(outs)


def run_logits(runner: Runner, x: np.ndarray, *, batch: int) -> np.ndarray:
    """Logits of an active ``runner`` (first input, first output) on ``x``, ``batch`` rows per call."""
    in_name, out_name = runner.inputs[0].name, runner.outputs[0].name
    return run_batched(lambda a: runner.infer({in_name: a})[out_name], x, batch)


@dataclass(frozen=True)
class ComparisonResult:
    """How far ``got`` is from ``ref``; ``bool()`` is whether it passed ``tol``."""

    n: int
    tol: float | None
    max_abs: float | None = None
    mean_abs: float | None = None
    rel: float | None = None
    top1_agreement: float | None = None
    flips: int = 0
    unexplained_flips: int = 0
    median_image_max_abs: float | None = None
    #: the reference's top-1/top-2 margin: its median, and its largest where the candidate flipped
    ref_margin_median: float | None = None
    ref_margin_max_flipped: float | None = None
    #: "" when passed; else why (shape, NaN/Inf, error above tolerance, unexplained flips)
    reason: str = ""

    @property
    def passed(self) -> bool:
        return not self.reason

    @property
    def finite(self) -> bool:
        """Whether anything was compared (False: a shape mismatch or NaN/Inf in the output)."""
        return self.rel is not None

    def __bool__(self) -> bool:
        return self.passed

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def compare_logits(ref: np.ndarray, got: np.ndarray, *, tol: float | None) -> ComparisonResult:
    """Compare logits ``got`` with ``ref`` (both ``(N, classes)``); ``tol`` None measures without a verdict."""
    n = len(ref)
    ref = np.asarray(ref, dtype=np.float64)
    got = np.asarray(got, dtype=np.float64)
    if ref.shape != got.shape:
        return ComparisonResult(n, tol, reason=f"output shape {got.shape} != reference {ref.shape}")
    if not np.all(np.isfinite(got)):
        return ComparisonResult(n, tol, reason="output contains NaN or Inf")
    diff = np.abs(ref - got)
    max_abs = float(diff.max())
    span = float(ref.max() - ref.min()) or 1.0
    rel = max_abs / span
    flips = ref.argmax(axis=1) != got.argmax(axis=1)
    srt = np.sort(ref, axis=1)
    margin = srt[:, -1] - srt[:, -2] if ref.shape[1] > 1 else np.full(len(ref), np.inf)
    unexplained = int(np.sum(flips & (margin > 2 * max_abs)))
    reason = ""
    if tol is not None and rel > tol:
        reason = "error above tolerance"
    elif tol is not None and unexplained:
        reason = "top-1 flips not explained by near ties"
    return ComparisonResult(
        n=n, tol=tol, max_abs=max_abs, mean_abs=float(diff.mean()), rel=rel,
        top1_agreement=float(np.mean(~flips)), flips=int(flips.sum()), unexplained_flips=unexplained,
        median_image_max_abs=float(np.median(diff.max(axis=1))),
        ref_margin_median=float(np.median(margin)),
        ref_margin_max_flipped=float(margin[flips].max()) if flips.any() else None,
        reason=reason,
    )


# --- the parity record an artifact's manifest carries (export parity, engine build verification) -------------------

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


def compare_outputs(runtime: str, ref: np.ndarray, got: np.ndarray, *, rel_tol: float, precision: str | None,
                    batches: Sequence[int]) -> RuntimeParity:
    """:func:`compare_logits` as one runtime's line of a parity report."""
    c = compare_logits(ref, got, tol=rel_tol)
    if not c.finite:
        return RuntimeParity(runtime, "failed", precision, reason=c.reason)
    return RuntimeParity(runtime=runtime, status="passed" if c else "failed", precision=precision,
                         max_abs=c.max_abs, mean_abs=c.mean_abs, rel=c.rel, top1_agreement=c.top1_agreement,
                         flips=c.flips, unexplained_flips=c.unexplained_flips, batches=tuple(batches),
                         reason=c.reason)
