"""What every quantization method shares: its typed inputs (:class:`QuantContext`) and result (:class:`QuantReport`).

A method (``candidate.py``) gets one frozen :class:`QuantContext`, writes its model file(s) into
``ctx.stage`` and returns a :class:`Built` whose :class:`QuantReport` becomes ``extra.quantization`` in
the manifest (:meth:`QuantReport.to_json`, the same keys as before the methods were classes).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgekit.core.errors import UsageError
from edgekit.core.lazy import available
from edgekit.core.manifest import Artifact
from edgekit.core.specs import TensorSpec
from edgekit.optimize.quant.data import CalibrationSet, EvalSet, compare, run_logits

if TYPE_CHECKING:
    from edgekit.optimize.quant.quantize import QuantizeOptions, QuantizePlan

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QuantReport:
    """``extra.quantization`` of a quantized artifact: the run's header, then what the method did and measured."""

    header: dict[str, Any]
    reference: dict[str, Any]
    layout: dict[str, Any]
    recipe: dict[str, Any]
    accuracy: dict[str, Any]
    runtimes: tuple[dict[str, Any], ...]
    patterns: dict[str, Any] | None = None
    graph: dict[str, Any] | None = None
    excluded_nodes: dict[str, list[str]] | None = None
    accuracy_control: dict[str, Any] | None = None
    #: --max-drop's verdict: accepted on the validation upper bound, measured on test (edgekit.bench.budget)
    budget: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {**self.header, "reference": self.reference}
        if self.accuracy_control is not None:
            d["accuracy_control"] = self.accuracy_control
        d.update(layout=self.layout, recipe=self.recipe)
        for key in ("patterns", "graph", "excluded_nodes"):
            value = getattr(self, key)
            if value is not None:
                d[key] = value
        d.update(accuracy=self.accuracy, runtimes=list(self.runtimes))
        if self.budget is not None:
            d["budget"] = self.budget
        return d


@dataclass(frozen=True)
class Built:
    """A method's output: the model file in ``stage``, its tensor specs and the report."""

    model_file: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    report: QuantReport


@dataclass(frozen=True)
class QuantContext:
    """One quantization run's inputs, typed (what every method reads, nothing it writes)."""

    options: QuantizeOptions
    plan: QuantizePlan
    parent: Artifact
    calib: CalibrationSet | None
    ev: EvalSet
    work: Path
    stage: Path
    say: Callable[[str], None]
    budget: float
    budget_source: str
    header: dict[str, Any] = field(default_factory=dict)
    #: the validation split: accuracy control chooses on it, nothing measured on it is reported
    ev_select: EvalSet | None = None
    _vref: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def input_name(self) -> str:
        return self.parent.manifest.input.name

    @property
    def calib_x(self) -> np.ndarray:
        assert self.calib is not None  # build_candidate refuses INT8 without calibration images
        return self.calib.x

    def reference(self, runtime: str) -> tuple[np.ndarray, dict[str, Any]]:
        """The FP32 parent's logits on the eval images, and the report's ``reference`` record."""
        self.say(f"running the FP32 parent on {self.ev.record['n']} eval images ({runtime})")
        m = self.parent.manifest
        logits, info = run_logits(self.parent.model_path, self.ev.x, runtime=runtime, batch=self.plan.batch,
                                  threads=self.options.threads)
        return logits, {"artifact": str(self.parent.path), "sha256": m.files[m.model_file], **info}

    def measure(self, path: Path, ref: np.ndarray, runtime: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """The candidate at ``path`` compared with ``ref`` on the same images, and its runner's info."""
        logits, info = run_logits(path, self.ev.x, runtime=runtime, batch=self.plan.batch,
                                  threads=self.options.threads)
        return self.compare(ref, logits), info

    def compare(self, ref: np.ndarray, logits: np.ndarray) -> dict[str, Any]:
        return compare(ref, logits, self.ev.labels, budget_pts=self.budget, budget_source=self.budget_source)

    def select_bound(self, path: Path, runtime: str) -> tuple[float, float, np.ndarray]:
        """(upper --confidence bound of the drop, candidate top-1, logits) on the validation split."""
        from edgekit.bench.budget import upper_bound

        ev, o = self.ev_select, self.options
        if ev is None or ev.labels is None or o.max_drop is None:
            raise UsageError("accuracy control needs --max-drop and labelled validation images")
        if runtime not in self._vref:
            self._vref[runtime], _ = run_logits(self.parent.model_path, ev.x, runtime=runtime, batch=self.plan.batch,
                                                threads=o.threads)
        logits, _ = run_logits(path, ev.x, runtime=runtime, batch=self.plan.batch, threads=o.threads)
        ub, pc = upper_bound(self._vref[runtime], logits, ev.labels, budget_pts=o.max_drop, confidence=o.confidence)
        return ub, pc.candidate_top1, logits

    def judge(self, path: Path, ref: np.ndarray, runtime: str) -> dict[str, Any] | None:
        """The --max-drop verdict: accepted on the validation upper bound, measured on test; None without one."""
        from edgekit.bench.budget import judge

        o, ev = self.options, self.ev_select
        if o.max_drop is None or ev is None or self.ev.labels is None:
            return None
        _, _, vlog = self.select_bound(path, runtime)
        tlog, _ = run_logits(path, self.ev.x, runtime=runtime, batch=self.plan.batch, threads=o.threads)
        v = judge((self._vref[runtime], vlog, ev.labels), (ref, tlog, self.ev.labels), budget_pts=o.max_drop,
                  confidence=o.confidence)
        self.say(v.statement)
        return v.to_json()


def header(options: QuantizeOptions, plan: QuantizePlan, calib: CalibrationSet | None,
           ev: EvalSet, ev_select: EvalSet | None = None) -> dict[str, Any]:
    """The report's first keys: what was asked and what was planned."""
    int8 = options.precision == "int8"
    return {
        "precision": options.precision, "method": plan.method if int8 else None,
        "runtime": plan.runtime, "target": plan.target, "for": options.target, "arch": plan.arch,
        "preset": {**plan.preset.to_json(), "chosen": plan.preset_choice} if int8 else None,
        "calib": calib.record if calib else None, "eval": ev.record,
        "select": ev_select.record if ev_select is not None else None,
    }


def runtime_entry(name: str, info: dict[str, Any], cmp: dict[str, Any], *, primary: bool) -> dict[str, Any]:
    entry = {"runtime": name, "status": "passed", "primary": primary, "batch": info["batch"],
             "precision": info["precision"], "version": info["version"], "top1_agreement": cmp["top1_agreement"],
             "max_abs": cmp["max_abs"]}
    if cmp.get("candidate_top1") is not None:
        entry["top1"] = cmp["candidate_top1"]
        entry["drop_pts"] = cmp["drop_pts"]
    return entry


def secondary_openvino(ctx: QuantContext, path: Path, ref: np.ndarray) -> dict[str, Any]:
    """Run a Q/DQ (or FP16) ONNX in OpenVINO (static batch, f32) and compare with the FP32 reference."""
    batch = ctx.plan.batch
    if not available("openvino"):
        return {"runtime": "openvino", "status": "skipped", "reason": "openvino is not installed"}
    try:
        logits, info = run_logits(path, ctx.ev.x, runtime="openvino", batch=batch, threads=ctx.options.threads)
    except Exception as e:  # report, don't hide: the artifact's own runtime passed
        return {"runtime": "openvino", "status": "failed", "batch": batch,
                "reason": f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"}
    return runtime_entry("openvino", info, ctx.compare(ref, logits), primary=False)
