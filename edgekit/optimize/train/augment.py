"""Training augmentations on cached uint8 arrays, in numpy (no torch, no PIL per epoch).

Images are decoded and resized once (see :mod:`edgekit.optimize.train.batches`);
each epoch only warps the cached arrays. The warp is axis-aligned (a crop
box, a shift and an optional horizontal flip), so bilinear resampling is
separable: ``out = Wy @ img @ Wx.T`` with two sparse interpolation matrices
per image, which BLAS does in a few milliseconds for a batch.

The augmentations are the ones that suit small datasets and small inputs:

* random resized crop with a mild scale (70-100 % of the area) and aspect
  ratio (3/4-4/3), the crop lying inside the image like torchvision's
  ``RandomResizedCrop``;
* a small translation (up to 10 % of the side), borders filled by repeating
  the edge pixels;
* a horizontal flip.

All randomness comes from the ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgekit.core.errors import UsageError


@dataclass(frozen=True)
class AugmentConfig:
    """Parameters of :func:`augment_batch`; ``AugmentConfig.off()`` disables it."""

    scale: tuple[float, float] = (0.7, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    translate: float = 0.1
    hflip: float = 0.5

    def __post_init__(self) -> None:
        lo, hi = self.scale
        if not (0.0 < lo <= hi <= 1.0):
            raise UsageError(f"augment scale must satisfy 0 < min <= max <= 1, got {self.scale}")
        rlo, rhi = self.ratio
        if not (0.0 < rlo <= rhi):
            raise UsageError(f"augment ratio must satisfy 0 < min <= max, got {self.ratio}")
        if not (0.0 <= self.translate < 0.5):
            raise UsageError(f"augment translate must be in [0, 0.5), got {self.translate}")
        if not (0.0 <= self.hflip <= 1.0):
            raise UsageError(f"augment hflip must be a probability, got {self.hflip}")

    @classmethod
    def off(cls) -> AugmentConfig:
        return cls(scale=(1.0, 1.0), ratio=(1.0, 1.0), translate=0.0, hflip=0.0)

    @property
    def enabled(self) -> bool:
        return self != AugmentConfig.off()

    def to_json(self) -> dict[str, Any]:
        return {
            "scale": list(self.scale),
            "ratio": list(self.ratio),
            "translate": self.translate,
            "hflip": self.hflip,
        }


@dataclass(frozen=True)
class Boxes:
    """Per-image source windows: centres and extents in pixels, and flips."""

    cy: np.ndarray
    cx: np.ndarray
    h: np.ndarray
    w: np.ndarray
    flip: np.ndarray


def sample_boxes(rng: np.random.Generator, n: int, height: int, width: int, cfg: AugmentConfig) -> Boxes:
    """Draw ``n`` crop windows (always in the same order of draws, for reproducibility)."""
    area = rng.uniform(cfg.scale[0], cfg.scale[1], n)
    log_r = rng.uniform(math.log(cfg.ratio[0]), math.log(cfg.ratio[1]), n)
    r = np.exp(log_r)
    w = np.minimum(np.sqrt(area * r) * width, width)
    h = np.minimum(np.sqrt(area / r) * height, height)
    cx = w / 2 + rng.uniform(0.0, 1.0, n) * (width - w)
    cy = h / 2 + rng.uniform(0.0, 1.0, n) * (height - h)
    cx = cx + rng.uniform(-cfg.translate, cfg.translate, n) * width
    cy = cy + rng.uniform(-cfg.translate, cfg.translate, n) * height
    flip = rng.uniform(0.0, 1.0, n) < cfg.hflip
    return Boxes(cy=cy, cx=cx, h=h, w=w, flip=flip)


def interpolation_matrices(
    centre: np.ndarray, extent: np.ndarray, size: int, out: int, flip: np.ndarray | None = None
) -> np.ndarray:
    """(B, out, size) float32 bilinear weights sampling ``[centre - extent/2, centre + extent/2]``.

    Output pixel ``j`` reads source position ``centre + ((j + 0.5) / out - 0.5) * extent - 0.5``
    (pixel centres, like PIL and ``align_corners=False``), clamped to the image
    (edge pixels repeat). ``flip`` mirrors the output axis.
    """
    b = centre.shape[0]
    t = (np.arange(out, dtype=np.float64) + 0.5) / out - 0.5  # (out,)
    sign = np.where(flip, -1.0, 1.0) if flip is not None else np.ones(b)
    pos = centre[:, None] + (t[None, :] * sign[:, None]) * extent[:, None] - 0.5
    pos = np.clip(pos, 0.0, size - 1)
    i0 = np.floor(pos).astype(np.int64)
    i1 = np.minimum(i0 + 1, size - 1)
    w1 = (pos - i0).astype(np.float32)
    m = np.zeros((b, out, size), dtype=np.float32)
    bi = np.arange(b)[:, None]
    ji = np.arange(out)[None, :]
    m[bi, ji, i0] = 1.0 - w1
    m[bi, ji, i1] += w1
    return m


def warp(images: np.ndarray, boxes: Boxes, out_size: tuple[int, int] | None = None) -> np.ndarray:
    """Resample ``images`` (B, C, H, W) uint8/float into (B, C, oh, ow) float32 (0-255)."""
    _, _, h, w = images.shape
    oh, ow = out_size or (h, w)
    my = interpolation_matrices(boxes.cy, boxes.h, h, oh)  # (B, oh, H)
    mx = interpolation_matrices(boxes.cx, boxes.w, w, ow, boxes.flip)  # (B, ow, W)
    x = images.astype(np.float32, copy=False)
    rows = np.matmul(my[:, None], x)  # (B, C, oh, W)
    return np.matmul(rows, mx.transpose(0, 2, 1)[:, None])  # (B, C, oh, ow)


def augment_batch(images: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    """Augmented float32 copies (0-255) of a (B, C, H, W) uint8 batch."""
    if images.ndim != 4:
        raise UsageError(f"augment_batch needs a (B, C, H, W) batch, got shape {images.shape}")
    if not cfg.enabled:
        return images.astype(np.float32)
    b, _, h, w = images.shape
    return warp(images, sample_boxes(rng, b, h, w, cfg))


def normalize(
    x: np.ndarray, mean: tuple[float, float, float], std: tuple[float, float, float]
) -> np.ndarray:
    """(B, C, H, W) pixels in 0-255 -> float32 (B, 3, H, W) ``(x / 255 - mean) / std``.

    A single-channel batch (greyscale images cached once) is broadcast to the
    three channels, exactly as converting it to RGB first would give.
    """
    m = np.asarray(mean, dtype=np.float32).reshape(1, 3, 1, 1)
    s = np.asarray(std, dtype=np.float32).reshape(1, 3, 1, 1)
    if x.shape[1] not in (1, 3):
        raise UsageError(f"normalize needs 1 or 3 channels, got shape {x.shape}")
    y = (x.astype(np.float32, copy=False) / np.float32(255.0) - m) / s  # broadcasts 1 -> 3 channels
    return np.ascontiguousarray(y, dtype=np.float32)
