"""Parity: does the exported graph compute what the PyTorch model computes?

Each runtime runs the ONNX graph on the same inputs as the PyTorch reference:
real images from the embedded dataset, preprocessed exactly as the manifest
says, plus a few seeded random tensors, compared with the one device-side
comparator (:func:`edgekit.runtime.compare.compare_logits`: max-abs, mean-abs,
error relative to the reference's range, top-1 agreement, flips explained by
near ties). OpenVINO is always run at an explicit f32 inference precision and
the precision it reports back is recorded (on AMX CPUs it silently runs bf16
otherwise).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from edgekit.core.errors import MissingDependencyError
from edgekit.core.lazy import available
from edgekit.runtime.compare import (
    DEFAULT_REL_TOL,
    ParityReport,
    RuntimeParity,
    compare_outputs,
    reference_runner,
    run_logits,
)

__all__ = ["DEFAULT_REL_TOL", "ParityReport", "RuntimeParity", "check_parity", "compare_outputs"]

log = logging.getLogger(__name__)


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
    for name in runtimes:
        if not available(name):
            results.append(RuntimeParity(name, "skipped", reason=f"{name} is not installed"))
            continue
        with reference_runner(onnx_path, runtime=name, threads=threads) as runner:
            precision = runner.info.precision
            got = [run_logits(runner, inputs, batch=b) for b in batches]
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
