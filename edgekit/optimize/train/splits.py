"""The three splits of a training run, cached in memory: train / validation / test.

* **train** is fitted on;
* **validation** *selects*: the best epoch, pruning recovery, accuracy
  control's float fallbacks, presets. A number measured on it is optimistic
  and is never reported as a result;
* **test** *reports*: it is never trained on and never chooses anything.

* ``embedded`` (the default): the embedded dataset's own deterministic
  train / validation / test splits (see :mod:`edgekit.data.embedded`);
  ``--val-split`` / ``--test-split`` do not apply.
* A folder (ImageFolder) or an ``.npz``: every image is decoded once at the
  training size; exact duplicates (identical pixels after resizing) are
  grouped so that a group never straddles a split; then a stratified, seeded
  ``--test-split`` fraction of each class becomes the test split and, of the
  rest, ``--val-split`` (a fraction of the whole) the validation split (the
  embedded split's rule, keys ``blake2b(seed:group)``, independent of numpy's
  RNG).

``--train-limit N`` trains on a stratified seeded subset of N training
images (quick trials, tests); validation and test stay whole.

The record (:attr:`DataSplit.info`) goes into the artifact's manifest:
classes, sizes, ``splits.{train,validation,test}.ids_sha256`` (sha256 of the
image ids, one per line), the validation and test ids themselves (up to
:data:`MAX_LISTED_IDS`), and a fingerprint, sha256 of the class names and
every sample's split, id and label. The older keys ``n_heldout``,
``heldout_ids`` and ``heldout_ids_sha256`` name the **test** split.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.core.errors import DataError, UsageError
from edgekit.core.specs import PreprocessSpec
from edgekit.data import EMBEDDED, load_dataset
from edgekit.data.embedded import (
    EMBEDDED_NAME,
    HELDOUT_FRACTION,
    SPLIT_SEED,
    VALIDATION_FRACTION,
    load_embedded,
    split_indices,
)
from edgekit.data.sampling import calibration_indices
from edgekit.optimize.train.batches import (
    ImageCache,
    Tick,
    build_cache,
    duplicate_groups,
)

log = logging.getLogger(__name__)

#: held-out ids are listed in the manifest up to this many (always hashed)
MAX_LISTED_IDS = 10_000
DEFAULT_VAL_SPLIT = 0.1
DEFAULT_TEST_SPLIT = 0.2
#: salt of the validation keys of a folder split (independent of the test split's)
_VALIDATION_SALT = 7919


@dataclass(frozen=True, eq=False)
class DataSplit:
    train: ImageCache
    validation: ImageCache  # selects (best epoch, recovery, fallbacks); never reported
    test: ImageCache  # reports; never trained on, never selects
    info: dict[str, Any]


def is_embedded(data: str | Path | None) -> bool:
    return data is None or (isinstance(data, str) and (data == EMBEDDED or data.startswith(EMBEDDED + ":")))


def check_val_split(val_split: float | None, test_split: float | None = None) -> None:
    for name, v in (("--val-split", val_split), ("--test-split", test_split)):
        if v is not None and not (0.0 < float(v) < 1.0):
            raise UsageError(f"{name} must be strictly between 0 and 1, got {v}",
                             hint="e.g. --val-split 0.1 --test-split 0.2 (fractions of each class)")
    va = DEFAULT_VAL_SPLIT if val_split is None else float(val_split)
    te = DEFAULT_TEST_SPLIT if test_split is None else float(test_split)
    if va + te >= 1.0:
        raise UsageError(f"--val-split {va:g} and --test-split {te:g} leave nothing to train on",
                         hint="their sum must stay below 1, e.g. 0.1 and 0.2")


def _ids_sha256(ids: tuple[str, ...]) -> str:
    return hashlib.sha256("\n".join(ids).encode("utf-8")).hexdigest()


def fingerprint(classes: tuple[str, ...], train: ImageCache, validation: ImageCache, test: ImageCache) -> str:
    """sha256 of the class names and every sample's split, id and label."""
    h = hashlib.sha256()
    h.update(("\n".join(classes) + "\n--\n").encode("utf-8"))
    for split, cache in (("train", train), ("validation", validation), ("test", test)):
        for i, lab in zip(cache.ids, cache.labels.tolist()):
            h.update(f"{split}\t{i}\t{lab}\n".encode())
    return h.hexdigest()


def _limit(cache: ImageCache, limit: int | None, seed: int) -> ImageCache:
    if limit is None or limit >= len(cache):
        return cache
    return cache.subset(np.sort(calibration_indices(cache.labels, limit, seed=seed)))


def prepare(
    data: str | Path | None,
    spec: PreprocessSpec,
    *,
    val_split: float | None = None,
    test_split: float | None = None,
    seed: int = 0,
    train_limit: int | None = None,
    tick: Tick | None = None,
) -> DataSplit:
    """Load, split (train / validation / test) and cache ``data`` at ``spec``'s size."""
    check_val_split(val_split, test_split)
    if train_limit is not None and train_limit < 2:
        raise UsageError(f"--train-limit must be at least 2, got {train_limit}")
    if is_embedded(data):
        if isinstance(data, str) and data != EMBEDDED:
            raise UsageError(
                f"--data {data!r}: training uses the embedded set's own train / validation / test splits",
                hint="pass --data embedded",
            )
        if val_split is not None or test_split is not None:
            log.warning("--val-split/--test-split are ignored: the embedded dataset has its own splits")
        return _prepare_embedded(spec, seed=seed, train_limit=train_limit, tick=tick)
    return _prepare_split(data, spec, val_split=val_split, test_split=test_split, seed=seed,
                          train_limit=train_limit, tick=tick)


def _split_record(train: ImageCache, validation: ImageCache, test: ImageCache) -> dict[str, Any]:
    """Sizes, id hashes and (up to MAX_LISTED_IDS) ids of the three splits; ``heldout_*`` name the test split."""
    out: dict[str, Any] = {
        "n_train": len(train),
        "n_validation": len(validation),
        "n_test": len(test),
        "n_heldout": len(test),
        "splits": {
            name: {"n": len(c), "ids_sha256": _ids_sha256(c.ids),
                   "role": role}
            for name, c, role in (("train", train, "fitted on"),
                                  ("validation", validation, "selects (best epoch, recovery, fallbacks); not reported"),
                                  ("test", test, "reported; never trained on, never selects"))
        },
        "heldout_ids_sha256": _ids_sha256(test.ids),
        "fingerprint": fingerprint(train.classes, train, validation, test),
        "content_sha256": hashlib.sha256(
            (train.content_sha256() + validation.content_sha256() + test.content_sha256()).encode()).hexdigest(),
    }
    if len(test) + len(validation) <= MAX_LISTED_IDS:
        out["test_ids"] = list(test.ids)
        out["heldout_ids"] = list(test.ids)
        out["validation_ids"] = list(validation.ids)
    return out


def _prepare_embedded(spec: PreprocessSpec, *, seed: int, train_limit: int | None, tick: Tick | None) -> DataSplit:
    tr_ds = load_embedded(split="train")
    va_ds = load_embedded(split="validation")
    te_ds = load_embedded(split="test")
    rows = np.arange(len(tr_ds))
    if train_limit is not None and train_limit < len(tr_ds):
        rows = np.sort(calibration_indices(tr_ds.labels, train_limit, seed=seed))
    n_total = len(rows) + len(va_ds) + len(te_ds)

    def offset(k0: int) -> Tick:
        def t(k: int, n: int) -> None:
            if tick:
                tick(k0 + k, n_total)
        return t

    train = build_cache(tr_ds, rows, spec, tick=offset(0))
    validation = build_cache(va_ds, np.arange(len(va_ds)), spec, tick=offset(len(rows)))
    test = build_cache(te_ds, np.arange(len(te_ds)), spec, tick=offset(len(rows) + len(va_ds)))
    sides = [set(c.ids) for c in (train, validation, test)]
    if sides[0] & sides[1] or sides[0] & sides[2] or sides[1] & sides[2]:  # pragma: no cover - disjoint by design
        raise DataError("the embedded splits overlap; reinstall edgekit")
    info = {
        "name": EMBEDDED_NAME,
        "source": f"{EMBEDDED}:{EMBEDDED_NAME}",
        "classes": list(train.classes),
        "train_limit": train_limit,
        "split": {
            "kind": "embedded",
            "test_fraction": HELDOUT_FRACTION,
            "validation_fraction": VALIDATION_FRACTION,
            "split_seed": SPLIT_SEED,
            "duplicates": "near-duplicate groups kept on one side (see the dataset README)",
        },
        "heldout_from": f"edgekit.data.load_embedded(split='test', seed={SPLIT_SEED}).ids",
        **_split_record(train, validation, test),
        "skipped": 0,
    }
    return DataSplit(train, validation, test, info)


def _prepare_split(
    data: str | Path | None,
    spec: PreprocessSpec,
    *,
    val_split: float | None,
    test_split: float | None,
    seed: int,
    train_limit: int | None,
    tick: Tick | None,
) -> DataSplit:
    va_frac = DEFAULT_VAL_SPLIT if val_split is None else float(val_split)
    te_frac = DEFAULT_TEST_SPLIT if test_split is None else float(test_split)
    ds = load_dataset(data)
    if len(ds) < 3:
        raise DataError(f"{ds.name} holds {len(ds)} image(s); training needs several per class")
    cache = build_cache(ds, np.arange(len(ds)), spec, tick=tick)
    groups = duplicate_groups(cache)
    n_dups = int(len(cache) - np.unique(groups).size)
    pool, te_pos = split_indices(cache.labels, groups, heldout_fraction=te_frac, seed=seed)
    tr_rel, va_rel = split_indices(cache.labels[pool], groups[pool], heldout_fraction=va_frac / (1.0 - te_frac),
                                   seed=seed + _VALIDATION_SALT)
    tr_pos, va_pos = pool[tr_rel], pool[va_rel]
    for name, pos, flag in (("test", te_pos, "--test-split"), ("validation", va_pos, "--val-split")):
        if pos.size == 0:
            raise DataError(f"{flag} holds out no image of {ds.name} ({len(cache)} images) for the {name} split",
                            hint=f"raise {flag} or add images")
    classes = tuple(ds.classes)
    no_train = [classes[c] for c in range(len(classes)) if not np.any(cache.labels[tr_pos] == c)]
    if no_train:
        raise DataError(
            f"class(es) without training images after the split: {', '.join(no_train[:8])}",
            hint="add images to them or lower --val-split / --test-split",
        )
    for name, pos in (("validation", va_pos), ("test", te_pos)):
        missing = [classes[c] for c in range(len(classes)) if not np.any(cache.labels[pos] == c)]
        if missing:
            log.warning("class(es) without %s images: %s (too few images)", name, ", ".join(missing[:8]))
    train = _limit(cache.subset(tr_pos), train_limit, seed)
    validation, test = cache.subset(va_pos), cache.subset(te_pos)
    src = Path(data) if data is not None else None
    info: dict[str, Any] = {
        "name": ds.name,
        "source": str(src.resolve()) if src is not None else None,
        "classes": list(classes),
        "train_limit": train_limit,
        "split": {
            "kind": "stratified",
            "val_split": va_frac,
            "test_split": te_frac,
            "seed": seed,
            "duplicates": f"exact duplicates kept on one side ({n_dups} duplicate images found)",
        },
        **_split_record(train, validation, test),
        "skipped": len(cache.skipped),
    }
    return DataSplit(train, validation, test, info)
