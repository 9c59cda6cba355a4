"""Deterministic sample selection and batching for calibration, evaluation, benchmarks.

Selection is stratified and seeded: each sample gets a key from
``numpy.random.default_rng(seed).random(len(labels))`` (PCG64 doubles, a
stream numpy keeps stable), each class gets a share of ``n`` proportional to
its size (largest remainder), and a class contributes its lowest-key samples.
The same labels and seed always give the same indices.

Loading skips unreadable samples instead of failing a run: the sample is
recorded once in ``dataset.skipped`` as ``(source, reason)`` and logged as a
warning; only when nothing at all can be read is a :class:`DataError` raised.
"""

from __future__ import annotations

import difflib
import logging
import re
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np

from edgekit.core.errors import DataError, UsageError
from edgekit.core.specs import PreprocessSpec

if TYPE_CHECKING:
    from edgekit.data.dataset import Dataset

log = logging.getLogger(__name__)


def _labels(labels: Sequence[int] | np.ndarray) -> np.ndarray:
    a = np.asarray(labels)
    if a.ndim != 1 or (a.size and not np.issubdtype(a.dtype, np.integer)):
        raise UsageError(f"labels must be a 1-D integer array, got {a.dtype} {a.shape}")
    return a.astype(np.int64, copy=False)


def _available(n: int, exclude: Sequence[int] | np.ndarray | None) -> np.ndarray:
    mask = np.ones(n, dtype=bool)
    if exclude is not None:
        ex = np.asarray(exclude, dtype=np.int64)
        if ex.size and (ex.min() < 0 or ex.max() >= n):
            raise UsageError(f"exclude holds indices outside 0..{n - 1}")
        mask[ex] = False
    return mask


def _stratified(labels: np.ndarray, n: int, seed: int, exclude: Sequence[int] | np.ndarray | None) -> np.ndarray:
    """Selected indices ordered by their random key."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
        raise UsageError(f"the number of samples must be a positive integer, got {n!r}")
    keys = np.random.default_rng(seed).random(labels.shape[0])
    avail = np.nonzero(_available(labels.shape[0], exclude))[0]
    if n >= avail.size:
        return avail[np.argsort(keys[avail], kind="stable")]
    classes, counts = np.unique(labels[avail], return_counts=True)
    exact = n * counts / counts.sum()
    quota = np.floor(exact).astype(np.int64)
    rest = int(n - quota.sum())
    # the largest remainders get one more; ties go to the smaller class index
    quota[np.argsort(-(exact - quota), kind="stable")[:rest]] += 1
    picked = []
    for c, q in zip(classes.tolist(), quota.tolist()):
        members = avail[labels[avail] == c]
        picked.append(members[np.argsort(keys[members], kind="stable")[:q]])
    sel = np.concatenate(picked)
    return sel[np.argsort(keys[sel], kind="stable")]


def calibration_indices(
    labels: Sequence[int] | np.ndarray,
    n: int,
    *,
    seed: int = 0,
    exclude: Sequence[int] | np.ndarray | None = None,
) -> np.ndarray:
    """``n`` stratified indices for calibration, in a seeded shuffled order.

    Any prefix of the result is itself a random sample, so a consumer that
    stops early (a calibrator's ``subset_size``) still sees every class.
    With ``n`` at least the number available, all of them are returned.
    """
    lab = _labels(labels)
    sel = _stratified(lab, n, seed, exclude)
    if sel.size < n:
        log.warning("asked for %d calibration samples, only %d are available", n, sel.size)
    return sel


def evaluation_indices(
    labels: Sequence[int] | np.ndarray,
    n: int | None = None,
    *,
    seed: int = 0,
    exclude: Sequence[int] | np.ndarray | None = None,
) -> np.ndarray:
    """Indices to evaluate on, sorted: all (minus ``exclude``), or a stratified ``n``."""
    lab = _labels(labels)
    if n is None:
        return np.nonzero(_available(lab.shape[0], exclude))[0].astype(np.int64)
    return np.sort(_stratified(lab, n, seed, exclude))


def per_class_indices(labels: Sequence[int] | np.ndarray, k: int, *, seed: int = 0) -> np.ndarray:
    """Up to ``k`` seeded indices of every class, sorted."""
    lab = _labels(labels)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k <= 0:
        raise UsageError(f"the number of samples per class must be a positive integer, got {k!r}")
    keys = np.random.default_rng(seed).random(lab.shape[0])
    out = [m[np.argsort(keys[m], kind="stable")[:k]] for m in (np.nonzero(lab == c)[0] for c in np.unique(lab))]
    return np.sort(np.concatenate(out)) if out else np.zeros(0, dtype=np.int64)


# --- loading ------------------------------------------------------------------------------


def _record_skip(dataset: Dataset, i: int, reason: str) -> None:
    src = dataset.source(i)
    if any(s == src for s, _ in dataset.skipped):
        return
    dataset.skipped.append((src, reason))
    log.warning("skipping %s: %s", src, reason)


def _try_load(dataset: Dataset, i: int, spec: PreprocessSpec) -> np.ndarray | None:
    try:
        return dataset.load(i, spec)
    except DataError as e:
        _record_skip(dataset, i, e.one_line())
        return None


def _nothing_readable(dataset: Dataset, n: int) -> DataError:
    first = f"; first: {dataset.skipped[0][0]}: {dataset.skipped[0][1]}" if dataset.skipped else ""
    return DataError(
        f"none of the {n} selected images of {dataset.name} could be read{first}",
        hint="replace or remove the unreadable files",
    )


def batch_iter(
    dataset: Dataset,
    indices: Sequence[int] | np.ndarray,
    spec: PreprocessSpec,
    batch_size: int = 32,
    *,
    with_indices: bool = False,
) -> Iterator[tuple[np.ndarray, ...]]:
    """Yield ``(x, y)`` batches: x float32 (B, C, H, W), y int64 (B,).

    Unreadable samples are skipped (see the module notes) and the batch is
    filled from the following indices, so every batch has ``batch_size``
    samples except possibly the last. ``with_indices`` adds a third array,
    the dataset indices of the batch's samples.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
        raise UsageError(f"batch_size must be a positive integer, got {batch_size!r}")
    idx = [int(i) for i in np.asarray(indices, dtype=np.int64).tolist()]
    xs: list[np.ndarray] = []
    ys: list[int] = []
    ids: list[int] = []
    produced = 0

    def emit() -> tuple[np.ndarray, ...]:
        out = (np.stack(xs), np.asarray(ys, dtype=np.int64))
        if with_indices:
            out = (*out, np.asarray(ids, dtype=np.int64))
        xs.clear()
        ys.clear()
        ids.clear()
        return out

    for i in idx:
        x = _try_load(dataset, i, spec)
        if x is None:
            continue
        xs.append(x)
        ys.append(dataset.label(i))
        ids.append(i)
        produced += 1
        if len(xs) == batch_size:
            yield emit()
    if xs:
        yield emit()
    if idx and produced == 0:
        raise _nothing_readable(dataset, len(idx))


def preload(dataset: Dataset, indices: Sequence[int] | np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """The preprocessed samples, stacked in memory: float32 (N, C, H, W).

    For the benchmark's sample pool (a latency run cycles through real
    samples, never one repeated tensor). Each sample takes
    ``4 * C * H * W`` bytes (600 KB at 224x224). Unreadable samples are
    skipped, so N can be smaller than ``len(indices)``.
    """
    idx = [int(i) for i in np.asarray(indices, dtype=np.int64).tolist()]
    if not idx:
        raise UsageError("preload needs at least one index")
    out: np.ndarray | None = None
    k = 0
    for i in idx:
        x = _try_load(dataset, i, spec)
        if x is None:
            continue
        if out is None:
            out = np.empty((len(idx), *x.shape), dtype=np.float32)
        out[k] = x
        k += 1
    if out is None:
        raise _nothing_readable(dataset, len(idx))
    return out[:k] if k < len(idx) else out


# --- labels -------------------------------------------------------------------------------


def _norm(name: str) -> str:
    return re.sub(r"[\s_\-]+", " ", name.strip().lower())


def check_labels_match(
    dataset_classes: Sequence[str],
    model_labels: Sequence[str] | None,
    *,
    num_classes: int | None = None,
) -> np.ndarray:
    """Map each dataset class to the model's output index, or raise DataError.

    A class matches a label exactly, else after case folding and treating
    ``_``, ``-`` and spaces alike. Returns ``mapping`` with
    ``mapping[dataset_class_index] == model_output_index``. Without model
    labels nothing can be checked beyond ``num_classes``: the mapping is the
    identity and a warning says so.
    """
    classes = [str(c) for c in dataset_classes]
    if model_labels is None:
        if num_classes is not None and len(classes) > num_classes:
            raise DataError(
                f"the dataset has {len(classes)} classes but the model only {num_classes} outputs",
                hint="evaluate with the dataset the model was trained on",
            )
        log.warning("the model has no class labels: assuming dataset class i is model output i")
        return np.arange(len(classes), dtype=np.int64)
    labels = [str(c) for c in model_labels]
    exact = {lab: i for i, lab in reversed(list(enumerate(labels)))}
    normed: dict[str, int] = {}
    for i, lab in enumerate(labels):
        normed.setdefault(_norm(lab), i)
    mapping: list[int] = []
    unknown: list[str] = []
    for c in classes:
        j = exact.get(c, normed.get(_norm(c)))
        if j is None:
            unknown.append(c)
        else:
            mapping.append(j)
    if unknown:
        shown = ", ".join(repr(u) for u in unknown[:8]) + (f" and {len(unknown) - 8} more" if len(unknown) > 8 else "")
        close = difflib.get_close_matches(unknown[0], labels, n=3)
        sample = close or labels[:5]
        raise DataError(
            f"{len(unknown)} of {len(classes)} dataset classes are unknown to the model: {shown}",
            hint=(
                f"name the class folders after the model's {len(labels)} labels "
                f"(e.g. {', '.join(repr(s) for s in sample)}), or evaluate a model trained on these classes"
            ),
        )
    return np.asarray(mapping, dtype=np.int64)


def parity_inputs(spec: PreprocessSpec, *, n_real: int, n_random: int, seed: int) -> tuple[np.ndarray, str]:
    """Inputs of a parity check: real embedded held-out images preprocessed as ``spec`` says, then seeded
    random tensors; and the name of the data (``embedded:<name>:heldout``)."""
    from edgekit.data.embedded import EMBEDDED_NAME, load_embedded

    ds = load_embedded(split="heldout")
    idx = calibration_indices(ds.labels, n_real, seed=seed)
    real = np.stack([ds.load(int(i), spec) for i in idx]).astype(np.float32)
    rng = np.random.default_rng(seed)
    rand = rng.standard_normal((n_random, *real.shape[1:]), dtype=np.float32)
    return np.concatenate([real, rand]), f"embedded:{EMBEDDED_NAME}:heldout"
