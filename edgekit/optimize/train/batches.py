"""Decode once, train many epochs: an in-memory uint8 cache and numpy batch loaders.

:func:`build_cache` runs the geometric part of the model's eval transform
(shorter side to ``spec.resize_size``, center crop to ``spec.input_size``)
once per image and keeps the result as uint8 (N, C, H, W); greyscale datasets
keep one channel. Every epoch then only augments and normalizes arrays, which
matters on a 2-core machine where decoding a folder each epoch would dominate.

Without augmentation a cached sample normalizes to exactly what
:func:`edgekit.data.preprocess_image` gives, so training, the held-out score,
the exported manifest and ``edgekit eval`` all see the same input.

Torch-free: the loaders yield numpy arrays; :mod:`edgekit.optimize.train.distill`
turns them into tensors.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgekit.data.recorded import sample_id
from edgekit.core.errors import DataError, UsageError
from edgekit.core.specs import PreprocessSpec
from edgekit.data.dataset import Dataset
from edgekit.data.preprocess import resize_and_crop
from edgekit.optimize.train.augment import AugmentConfig, augment_batch, normalize

log = logging.getLogger(__name__)

Tick = Callable[[int, int], None]


@dataclass(frozen=True, eq=False)
class ImageCache:
    """Preprocessed-but-not-normalized images of one dataset split.

    ``rows`` are indices into the source dataset, ``ids`` the samples' stable
    names (file paths relative to an ImageFolder root, or embedded indices).
    """

    images: np.ndarray  # uint8 (N, C, H, W), C in {1, 3}, in spec.channel_order
    labels: np.ndarray  # int64 (N,)
    rows: np.ndarray  # int64 (N,)
    ids: tuple[str, ...]
    classes: tuple[str, ...]
    spec: PreprocessSpec
    skipped: tuple[tuple[str, str], ...] = field(default=())

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, positions: Sequence[int] | np.ndarray) -> ImageCache:
        p = np.asarray(positions, dtype=np.int64)
        return ImageCache(
            images=self.images[p],
            labels=self.labels[p],
            rows=self.rows[p],
            ids=tuple(self.ids[i] for i in p.tolist()),
            classes=self.classes,
            spec=self.spec,
        )

    def normalized(self, positions: Sequence[int] | np.ndarray) -> np.ndarray:
        """The model input (float32 (B, 3, H, W)) of cached samples, without augmentation."""
        return normalize(self.images[np.asarray(positions, dtype=np.int64)], self.spec.mean, self.spec.std)

    def content_sha256(self) -> str:
        """sha256 of the cached pixels and labels, in order (a fingerprint of the data trained on)."""
        h = hashlib.sha256()
        h.update(np.ascontiguousarray(self.images).tobytes())
        h.update(self.labels.astype("<i8").tobytes())
        return h.hexdigest()


def _check_spec(spec: PreprocessSpec) -> None:
    if spec.layout != "NCHW":
        raise UsageError(f"training needs an NCHW preprocessing spec, got layout {spec.layout!r}")


def build_cache(
    dataset: Dataset, rows: Sequence[int] | np.ndarray, spec: PreprocessSpec, *, tick: Tick | None = None
) -> ImageCache:
    """Decode and resize ``rows`` of ``dataset`` once; unreadable images are skipped and logged."""
    _check_spec(spec)
    idx = [int(i) for i in np.asarray(rows, dtype=np.int64).tolist()]
    h, w = int(spec.input_size[0]), int(spec.input_size[1])
    buf = np.empty((len(idx), 1, h, w), dtype=np.uint8)
    kept: list[int] = []
    skipped: list[tuple[str, str]] = []
    for k, i in enumerate(idx):
        try:
            hwc = resize_and_crop(dataset.image(i), spec)
        except DataError as e:
            skipped.append((sample_id(dataset, i), e.one_line()))
            dataset.skipped.append((dataset.source(i), e.one_line()))
            log.warning("skipping %s: %s", dataset.source(i), e.one_line())
            continue
        if spec.channel_order == "BGR":
            hwc = hwc[..., ::-1]
        chw = hwc.transpose(2, 0, 1)
        if buf.shape[1] == 1 and not (np.array_equal(chw[0], chw[1]) and np.array_equal(chw[0], chw[2])):
            buf = np.repeat(buf, 3, axis=1)  # the first colour image: keep all three channels from now on
        n = len(kept)
        buf[n] = chw[:1] if buf.shape[1] == 1 else chw
        kept.append(i)
        if tick is not None:
            tick(k + 1, len(idx))
    if idx and not kept:
        first = f"; first: {skipped[0][0]}: {skipped[0][1]}" if skipped else ""
        raise DataError(f"none of the {len(idx)} images of {dataset.name} could be read{first}",
                        hint="replace or remove the unreadable files")
    labels = dataset.labels
    return ImageCache(
        images=buf[: len(kept)],
        labels=np.asarray([int(labels[i]) for i in kept], dtype=np.int64),
        rows=np.asarray(kept, dtype=np.int64),
        ids=tuple(sample_id(dataset, i) for i in kept),
        classes=tuple(dataset.classes),
        spec=spec,
        skipped=tuple(skipped),
    )


def duplicate_groups(cache: ImageCache) -> np.ndarray:
    """Group id per sample: samples whose cached pixels are identical share one (the first's position)."""
    first: dict[bytes, int] = {}
    out = np.empty(len(cache), dtype=np.int64)
    for k in range(len(cache)):
        key = hashlib.blake2b(cache.images[k].tobytes(), digest_size=16).digest()
        out[k] = first.setdefault(key, k)
    return out


class TrainBatches:
    """Shuffled, augmented training batches; epoch ``e`` is a pure function of (seed, e).

    The last incomplete batch is dropped (BatchNorm misbehaves on tiny
    batches) unless the whole split is smaller than one batch.
    """

    def __init__(
        self, cache: ImageCache, *, batch_size: int, seed: int = 0, augment: AugmentConfig | None = None
    ) -> None:
        if batch_size < 2:
            raise UsageError(f"--batch-size must be at least 2 for training (BatchNorm), got {batch_size}")
        if len(cache) < 2:
            raise DataError(f"training needs at least 2 images, the training split has {len(cache)}",
                            hint="add images, or lower --val-split")
        self.cache = cache
        self.batch_size = min(batch_size, len(cache))
        self.seed = int(seed)
        self.augment = augment or AugmentConfig.off()

    def __len__(self) -> int:
        return len(self.cache) // self.batch_size

    @property
    def num_samples(self) -> int:
        return len(self) * self.batch_size

    def epoch(self, epoch: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        rng = np.random.default_rng([self.seed, int(epoch)])
        order = rng.permutation(len(self.cache))
        spec = self.cache.spec
        for k in range(len(self)):
            pos = np.sort(order[k * self.batch_size : (k + 1) * self.batch_size])
            x = augment_batch(self.cache.images[pos], rng, self.augment)
            yield normalize(x, spec.mean, spec.std), self.cache.labels[pos]


class EvalBatches:
    """Held-out batches in order, without augmentation."""

    def __init__(self, cache: ImageCache, *, batch_size: int = 256) -> None:
        if batch_size < 1:
            raise UsageError(f"batch size must be positive, got {batch_size}")
        self.cache = cache
        self.batch_size = batch_size

    def __len__(self) -> int:
        return -(-len(self.cache) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for s in range(0, len(self.cache), self.batch_size):
            pos = np.arange(s, min(s + self.batch_size, len(self.cache)))
            yield self.cache.normalized(pos), self.cache.labels[pos]


@dataclass(frozen=True)
class Loaders:
    """What :func:`edgekit.optimize.train.distill.train` consumes: a training and a held-out source."""

    train: TrainBatches
    heldout: EvalBatches

    @classmethod
    def from_caches(
        cls,
        train: ImageCache,
        heldout: ImageCache,
        *,
        batch_size: int,
        seed: int = 0,
        augment: AugmentConfig | None = None,
        eval_batch_size: int = 256,
    ) -> Loaders:
        if train.classes != heldout.classes:
            raise DataError("the training and held-out splits have different classes")
        return cls(
            TrainBatches(train, batch_size=batch_size, seed=seed, augment=augment),
            EvalBatches(heldout, batch_size=eval_batch_size),
        )
