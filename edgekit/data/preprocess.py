"""Model-input preprocessing in numpy/Pillow, exactly as torchvision/timm eval.

The evaluation transform of timm and torchvision is, for a square input::

    Resize(resize_size, interpolation)   # shorter side -> resize_size, PIL
    CenterCrop(input_size)
    ToTensor()                           # uint8 HWC -> float32 CHW in [0, 1]
    Normalize(mean, std)

with ``resize_size = floor(input_size / crop_pct)``. This module reproduces
it without torch: the resize is the same Pillow call torchvision makes on a
PIL image (Pillow always antialiases bilinear/bicubic downscaling, which is
why torchvision's ``antialias`` flag does not matter for PIL inputs), the
output size and the crop offsets use torchvision's integer arithmetic, and
the arithmetic is float32 like torch's. On PIL inputs the result equals
torchvision's to float32 rounding (the tests check it on real photos).

Colour conversion (:func:`to_rgb`) also follows torchvision's loader,
``Image.convert("RGB")``, so a model sees what it saw in training:
alpha is dropped, not composited (``RGBA``/``LA``/``PA`` and palette
transparency), CMYK and palette images use Pillow's conversion. The one
deliberate difference is 16-bit and 32-bit integer greyscale (``I;16*``,
``I``), which Pillow clips to 255: here it is scaled, ``round(v / 257)``, so
65535 becomes 255 and the image keeps its contrast. Float images (``F``) are
read as [0, 1] when their maximum is at most 1, otherwise as [0, 255].
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from PIL import Image

from edgekit.core.errors import DataError
from edgekit.core.specs import Interpolation, PreprocessSpec

_RESAMPLE = {
    Interpolation.NEAREST: Image.Resampling.NEAREST,
    Interpolation.BILINEAR: Image.Resampling.BILINEAR,
    Interpolation.BICUBIC: Image.Resampling.BICUBIC,
}

_INT16_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})


def _gray_to_rgb(gray: np.ndarray) -> Image.Image:
    return Image.fromarray(np.ascontiguousarray(gray, dtype=np.uint8)).convert("RGB")


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow image to 8-bit RGB (see the module notes for the rules).

    Raises :class:`DataError` for a mode Pillow cannot convert.
    """
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in _INT16_MODES or mode == "I":
        a = np.asarray(img).astype(np.int64)
        a = np.clip(a, 0, 65535)
        return _gray_to_rgb((a + 128) // 257)
    if mode == "F":
        f = np.nan_to_num(np.asarray(img, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        if f.size and f.max() <= 1.0:
            f = f * 255.0
        return _gray_to_rgb(np.clip(np.rint(f), 0, 255))
    try:
        if mode == "P" and isinstance(img.info.get("transparency"), bytes):
            with warnings.catch_warnings():
                # Pillow warns that per-index palette alpha is dropped: that is the rule here.
                warnings.simplefilter("ignore", UserWarning)
                return img.convert("RGB")
        return img.convert("RGB")
    except (ValueError, OSError) as e:
        raise DataError(
            f"cannot convert an image of mode {mode!r} to RGB: {e}",
            hint="save the image as 8-bit RGB, greyscale or palette (PNG/JPEG)",
        ) from None


def resized_size(width: int, height: int, size: int) -> tuple[int, int]:
    """(width, height) after torchvision's ``Resize(size)``: shorter side -> ``size``.

    The longer side is ``int(size * long / short)``, truncated, as torchvision
    computes it.
    """
    if width <= 0 or height <= 0:
        raise DataError(f"image has an empty size {width}x{height}", hint="remove the file from the dataset")
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = size, int(size * long / short)
    return (new_short, new_long) if width <= height else (new_long, new_short)


def center_crop(arr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Center-crop an HWC array to ``size`` = (height, width) like torchvision.

    Offsets are ``int(round((h - ch) / 2.0))`` (Python's round, half to even).
    A crop larger than the image first pads with zeros as torchvision does.
    """
    ch, cw = size
    h, w = arr.shape[:2]
    if ch > h or cw > w:
        left = (cw - w) // 2 if cw > w else 0
        top = (ch - h) // 2 if ch > h else 0
        right = (cw - w + 1) // 2 if cw > w else 0
        bottom = (ch - h + 1) // 2 if ch > h else 0
        arr = np.pad(arr, ((top, bottom), (left, right), (0, 0)), mode="constant", constant_values=0)
        h, w = arr.shape[:2]
        if (ch, cw) == (h, w):
            return arr
    top = int(round((h - ch) / 2.0))
    left = int(round((w - cw) / 2.0))
    return arr[top : top + ch, left : left + cw]


def _resample(spec: PreprocessSpec) -> Image.Resampling:
    try:
        return _RESAMPLE[Interpolation(spec.interpolation)]
    except ValueError:
        raise DataError(
            f"unsupported interpolation {spec.interpolation!r} in the preprocessing spec",
            hint="use one of: " + ", ".join(str(i) for i in Interpolation),
        ) from None


def _check_layout(spec: PreprocessSpec) -> None:
    if spec.layout not in ("NCHW", "NHWC"):
        raise DataError(
            f"unsupported input layout {spec.layout!r} in the preprocessing spec",
            hint="use NCHW or NHWC",
        )


def resize_and_crop(img: Image.Image, spec: PreprocessSpec) -> np.ndarray:
    """The geometric part of the transform: RGB uint8 HWC of ``spec.input_size``."""
    rgb = to_rgb(img)
    new_size = resized_size(rgb.width, rgb.height, spec.resize_size)
    if new_size != rgb.size:
        rgb = rgb.resize(new_size, _resample(spec))
    return center_crop(np.asarray(rgb), (int(spec.input_size[0]), int(spec.input_size[1])))


def _normalize(hwc: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    x = hwc.astype(np.float32) / np.float32(255.0)
    if spec.channel_order == "BGR":
        x = x[..., ::-1]
    mean = np.asarray(spec.mean, dtype=np.float32)
    std = np.asarray(spec.std, dtype=np.float32)
    x = (x - mean) / std
    if spec.layout == "NHWC":
        return np.ascontiguousarray(x)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def preprocess_image(img: Image.Image, spec: PreprocessSpec) -> np.ndarray:
    """One image -> the model's float32 input sample (CHW; HWC for NHWC specs).

    Steps: :func:`to_rgb`; shorter side to ``spec.resize_size`` with
    ``spec.interpolation``; center crop to ``spec.input_size``; ``/ 255``;
    channel order (``mean``/``std`` are given in ``spec.channel_order``);
    ``(x - mean) / std``; layout.
    """
    _check_layout(spec)
    return _normalize(resize_and_crop(img, spec), spec)


def preprocess_batch(images: Sequence[Image.Image], spec: PreprocessSpec) -> np.ndarray:
    """Several images -> one float32 batch (N, C, H, W) (or NHWC per ``spec.layout``)."""
    _check_layout(spec)
    h, w = int(spec.input_size[0]), int(spec.input_size[1])
    shape = (len(images), 3, h, w) if spec.layout == "NCHW" else (len(images), h, w, 3)
    out = np.empty(shape, dtype=np.float32)
    for k, img in enumerate(images):
        out[k] = preprocess_image(img, spec)
    return out
