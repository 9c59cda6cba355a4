"""Calibration and evaluation data for ``edgekit quantize``, and the paired comparison.

Calibration images are real images, never random tensors: a stratified,
seeded sample of ``--calib`` (the embedded dataset's *train* split when it is
named without a split), preprocessed exactly as the parent's manifest says
(resize, crop, channel conversion), so images of any size or channel count
are usable. Fewer than :data:`MIN_CALIB` readable images is an error.

Evaluation images come from ``--eval`` (its classes must map onto the
model's labels, else :class:`DataError`), or, without it, from the embedded
held-out split: labelled when the model was trained on those classes, and
otherwise used for top-1 agreement only. Images also used for calibration
are left out of evaluation.

Every comparison is paired (the FP32 parent and the candidate on the same
images): max-abs error, top-1 agreement and, with labels,
:func:`edgekit.bench.paired.compare_paired` (drop with its CI, McNemar,
verdict against the budget, and how many images would resolve it).
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.bench.paired import compare_paired
from edgekit.core.errors import CheckFailed, DataError, UsageError
from edgekit.core.manifest import Manifest
from edgekit.data import (
    batch_iter,
    calibration_indices,
    check_labels_match,
    evaluation_indices,
    load_dataset,
    load_embedded,
)
from edgekit.runtime.compare import compare_logits, reference_runner
from edgekit.runtime.compare import run_logits as run_model

log = logging.getLogger(__name__)

#: fewer calibration images than this give unstable activation ranges
MIN_CALIB = 32
#: budgets used for the verdict when --max-drop is not given (points of top-1)
DEFAULT_BUDGET_PTS = {"int8": 1.0, "fp16": 0.1}
NO_CALIB_HINT = (
    "random or synthetic calibration data silently ruins INT8 accuracy; give real images of the deployment "
    "domain: --calib DIR (<class>/<image> folders) or --calib embedded"
)


_SPLIT_SOURCE = re.compile(r"^([\w.-]+)(?::\w+)?#(\d+)$")


def source_key(source: str) -> str:
    """A sample's identity across splits: ``animals:train#00042`` and ``animals#00042`` are one image."""
    m = _SPLIT_SOURCE.match(source)
    return f"{m.group(1)}#{int(m.group(2))}" if m else source


def _sha256_lines(items: list[str]) -> str:
    return hashlib.sha256("\n".join(items).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CalibrationSet:
    x: np.ndarray
    sources: tuple[str, ...]
    record: dict[str, Any]


@dataclass(frozen=True)
class EvalSet:
    x: np.ndarray
    labels: np.ndarray | None  # model output indices; None: agreement only
    record: dict[str, Any]
    sources: tuple[str, ...] = field(default=(), repr=False)

    @property
    def labelled(self) -> bool:
        return self.labels is not None


def _load(ds: Any, idx: np.ndarray, spec: Any) -> tuple[np.ndarray, np.ndarray]:
    xs, used = [], []
    for x, _, ids in batch_iter(ds, idx, spec, batch_size=64, with_indices=True):
        xs.append(x)
        used.append(ids)
    return np.concatenate(xs).astype(np.float32, copy=False), np.concatenate(used)


def _splits(ds: Any, manifest: Manifest, spec: str | Path, seed: int, *, eval_only: bool) -> Any:
    from edgekit.data.recorded import split_rows

    return split_rows(ds, manifest.extra.get("dataset"), spec, seed=seed, eval_only=eval_only)


def _is_embedded(spec: str | Path | None) -> bool:
    return spec is None or str(spec) == "embedded" or str(spec).startswith("embedded:")


def _same(a: str | Path | None, b: str | Path | None) -> bool:
    if a is None or b is None or _is_embedded(a) or _is_embedded(b):
        return False
    return Path(str(a)).expanduser().resolve() == Path(str(b)).expanduser().resolve()


def load_calibration(spec: str | Path, *, n: int, manifest: Manifest, seed: int,
                     eval_spec: str | Path | None = None) -> CalibrationSet:
    """``n`` real images from ``spec`` (stratified, seeded), preprocessed for the model.

    A folder or ``.npz`` the model was trained on, or that is also ``--eval``, is split first (the
    model's recorded splits, else a seeded split, :mod:`edgekit.data.recorded`): calibration reads only
    its *train* part, so validation and test images are disjoint from calibration by construction.
    """
    from edgekit.data.recorded import trained_on

    ds = load_dataset(spec, split="train")
    pool = None
    if not _is_embedded(spec) and (_same(spec, eval_spec) or trained_on(manifest.extra.get("dataset"), spec)):
        pool = _splits(ds, manifest, spec, seed, eval_only=False)["train"]
    size = len(ds) if pool is None else int(pool.size)
    if size < MIN_CALIB:
        raise DataError(
            f"--calib {spec} holds {size} images (its training part); calibration needs at least {MIN_CALIB}",
            hint="give more real images of the deployment domain (a few hundred is typical)",
        )
    if pool is None:
        idx = calibration_indices(ds.labels, min(n, len(ds)), seed=seed)
    else:
        idx = pool[calibration_indices(ds.labels[pool], min(n, size), seed=seed)]
    x, used = _load(ds, idx, manifest.preprocess)
    if len(x) < MIN_CALIB:
        raise DataError(
            f"only {len(x)} of {len(idx)} calibration images of {spec} could be read; at least {MIN_CALIB} are needed",
            hint="replace the unreadable files or give more images",
        )
    sources = tuple(str(ds.source(int(i))) for i in used)
    record = {
        "dataset": str(ds.name),
        "spec": str(spec),
        "split": "train" if pool is None else "train part of a seeded / recorded split",
        "n": len(x),
        "asked": int(n),
        "available": int(size),
        "seed": seed,
        "selection": "stratified by class, seeded (edgekit.data.calibration_indices)",
        "indices_sha256": hashlib.sha256(np.asarray(used, dtype=np.int64).tobytes()).hexdigest(),
        "sources_sha256": _sha256_lines(list(sources)),
        "skipped": len(ds.skipped),
        "file": "calibration.json",
    }
    if len(x) < n:
        log.warning("calibrating with %d images (%d asked, %d available)", len(x), n, size)
    return CalibrationSet(x, sources, record)


def load_eval(
    spec: str | Path | None,
    *,
    n: int | None,
    manifest: Manifest,
    seed: int,
    exclude_sources: tuple[str, ...] = (),
    split: str = "test",
    calib_spec: str | Path | None = None,
) -> EvalSet:
    """Evaluation images of ``split`` (``validation`` selects, ``test`` reports); see the module notes.

    Without ``spec``: the embedded set's ``split``; a model whose labels are not the embedded classes is
    refused (DataError naming the fix) rather than judged on images of other classes. With a folder or
    ``.npz``: the model's recorded split when it was trained on that data, else a seeded split of it
    (:mod:`edgekit.data.recorded`); calibration images are never evaluation images.
    """
    if split not in ("validation", "test"):
        raise UsageError(f"evaluation split must be validation or test, got {split!r}")
    note = ""
    if spec is None or _is_embedded(spec):
        ds = load_embedded(split=split)
        origin = f"embedded {split} split" + ("" if spec is not None else " (no --eval given)")
        if manifest.labels is None:
            mapping: np.ndarray | None = None
            origin += "; the model has no labels: top-1 agreement only"
        else:
            try:
                mapping = check_labels_match(ds.classes, manifest.labels, num_classes=manifest.num_classes)
            except DataError as e:
                raise DataError(
                    f"the model's classes are not the embedded set's ({e.message}): judging it on the embedded "
                    "images would measure nothing", hint="give --eval DIR laid out as <class>/<image> with the "
                    "model's classes (e.g. the folder it was fine-tuned on: its recorded test split is used)",
                ) from None
        rows = np.arange(len(ds), dtype=np.int64)
    else:
        ds = load_dataset(spec)
        mapping = check_labels_match(ds.classes, manifest.labels, num_classes=manifest.num_classes)
        sp = _splits(ds, manifest, spec, seed, eval_only=not _same(spec, calib_spec))
        rows = sp[split]
        origin = f"--eval {split} split: {sp.note}"
        note = sp.origin
    excl = {source_key(s) for s in exclude_sources}
    overlap = [int(i) for i in rows.tolist() if excl and source_key(str(ds.source(int(i)))) in excl]
    avail = np.setdiff1d(rows, np.asarray(overlap, dtype=np.int64)) if overlap else rows
    if avail.size == 0:
        raise DataError(f"no {split} images in {ds.name}" + (" after leaving out the calibration images"
                                                             if overlap else ""),
                        hint="give more images, or a separate --eval folder")
    sel = evaluation_indices(ds.labels[avail], None if n is None or n >= avail.size else n, seed=seed)
    idx = avail[sel]
    x, used = _load(ds, idx, manifest.preprocess)
    labels = None if mapping is None else mapping[ds.labels[used]]
    record = {
        "dataset": str(ds.name),
        "spec": None if spec is None else str(spec),
        "split": split,
        "role": "selects (not reported)" if split == "validation" else "reported",
        "split_origin": note or "embedded",
        "origin": origin,
        "n": len(x),
        "labelled": labels is not None,
        "seed": seed,
        "left_out_as_calibration": len(overlap),
        "sources_sha256": _sha256_lines([str(ds.source(int(i))) for i in used]),
    }
    return EvalSet(x, labels, record, tuple(str(ds.source(int(i))) for i in used))


# -- running and comparing ------------------------------------------------------------------


def run_logits(model_path: Path, x: np.ndarray, *, runtime: str, batch: int, threads: int | None) -> tuple[np.ndarray, dict[str, Any]]:
    """Logits of ``model_path`` on ``x`` and the runner's info (OpenVINO: f32, static ``batch``)."""
    if runtime not in ("openvino", "onnxruntime"):
        raise UsageError(f"cannot evaluate with runtime {runtime!r} on this host")
    with reference_runner(model_path, runtime=runtime, threads=threads,
                          batch=batch if runtime == "openvino" else None) as runner:
        logits = run_model(runner, x, batch=batch)
        info = runner.info
    return logits, {"runtime": info.runtime, "version": info.runtime_version, "precision": info.precision,
                    "threads": info.threads, "batch": batch}


def compare(
    ref: np.ndarray, cand: np.ndarray, labels: np.ndarray | None, *, budget_pts: float, budget_source: str
) -> dict[str, Any]:
    """Paired comparison of candidate logits with the reference's on the same images."""
    if not np.all(np.isfinite(cand)):
        raise CheckFailed(
            f"the quantized model produced NaN or Inf on {int((~np.isfinite(cand).all(axis=1)).sum())} images",
            hint="nothing was written; try another --preset or --method",
        )
    c = compare_logits(ref, cand, tol=None)
    agree = float(c.top1_agreement or 0.0)
    out: dict[str, Any] = {
        "n": c.n,
        "top1_agreement": agree,
        "max_abs": c.max_abs,
        "mean_abs": c.mean_abs,
        "median_image_max_abs": c.median_image_max_abs,
        # how decided the FP32 model was where the candidate flipped: near ties flip first
        "flips": c.flips,
        "fp32_margin_median": c.ref_margin_median,
        "fp32_margin_max_flipped": c.ref_margin_max_flipped,
        "budget_pts": budget_pts,
        "budget_source": budget_source,
    }
    if labels is None:
        out["paired"] = None
        out["statement"] = (
            f"top-1 agreement with the FP32 parent {agree:.1%} on {len(ref)} real images; no labels, so no "
            "accuracy drop can be measured (give --eval DIR with the model's classes)"
        )
        return out
    p = compare_paired(ref, cand, labels, budget_pts=budget_pts)
    out["paired"] = p.to_json()
    out["reference_top1"] = p.reference_top1
    out["candidate_top1"] = p.candidate_top1
    out["drop_pts"] = p.drop_pts
    out["statement"] = f"{p.verdict}: {p.reason}"
    return out
