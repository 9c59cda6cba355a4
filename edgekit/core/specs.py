"""Frozen specs that travel inside every artifact: preprocessing and tensors."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any


class StrEnum(str, Enum):
    """``enum.StrEnum`` for Python 3.10."""

    def __str__(self) -> str:
        return str(self.value)


class Interpolation(StrEnum):
    NEAREST = "nearest"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"


class Precision(StrEnum):
    FP32 = "fp32"
    FP16 = "fp16"
    BF16 = "bf16"
    INT8 = "int8"


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INCEPTION_MEAN = (0.5, 0.5, 0.5)
INCEPTION_STD = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class PreprocessSpec:
    """How an image becomes the model's input tensor.

    The image is converted to ``channel_order``, its shorter side resized to
    ``resize_size`` with ``interpolation``, center-cropped to ``input_size``,
    scaled to [0, 1], normalized with ``mean``/``std`` and laid out as NCHW.
    ``resize_size`` follows timm: ``floor(input_size / crop_pct)``.
    """

    input_size: tuple[int, int] = (224, 224)
    crop_pct: float = 0.875
    interpolation: Interpolation = Interpolation.BILINEAR
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    channel_order: str = "RGB"
    layout: str = "NCHW"

    def __post_init__(self) -> None:
        if not (0.0 < self.crop_pct <= 1.0):
            raise ValueError(f"crop_pct must be in (0, 1], got {self.crop_pct}")
        if len(self.input_size) != 2 or min(self.input_size) <= 0:
            raise ValueError(f"input_size must be two positive ints, got {self.input_size}")
        if self.channel_order not in ("RGB", "BGR"):
            raise ValueError(f"channel_order must be RGB or BGR, got {self.channel_order}")

    @property
    def resize_size(self) -> int:
        return int(math.floor(min(self.input_size) / self.crop_pct))

    def with_input_size(self, size: int) -> PreprocessSpec:
        return PreprocessSpec(
            input_size=(size, size),
            crop_pct=self.crop_pct,
            interpolation=self.interpolation,
            mean=self.mean,
            std=self.std,
            channel_order=self.channel_order,
            layout=self.layout,
        )

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["input_size"] = list(self.input_size)
        d["mean"] = list(self.mean)
        d["std"] = list(self.std)
        d["interpolation"] = str(self.interpolation)
        d["resize_size"] = self.resize_size
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> PreprocessSpec:
        return cls(
            input_size=tuple(int(v) for v in d["input_size"]),  # type: ignore[arg-type]
            crop_pct=float(d["crop_pct"]),
            interpolation=Interpolation(d["interpolation"]),
            mean=tuple(float(v) for v in d["mean"]),  # type: ignore[arg-type]
            std=tuple(float(v) for v in d["std"]),  # type: ignore[arg-type]
            channel_order=d.get("channel_order", "RGB"),
            layout=d.get("layout", "NCHW"),
        )


@dataclass(frozen=True)
class TensorSpec:
    """A model input or output. A symbolic dimension is a string (``"batch"``)."""

    name: str
    shape: tuple[int | str, ...]
    dtype: str = "float32"
    layout: str | None = None

    @property
    def is_dynamic(self) -> bool:
        return any(not isinstance(d, int) or d < 0 for d in self.shape)

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}
        if self.layout:
            d["layout"] = self.layout
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TensorSpec:
        return cls(
            name=d["name"],
            shape=tuple(d["shape"]),
            dtype=d.get("dtype", "float32"),
            layout=d.get("layout"),
        )


@dataclass(frozen=True)
class Published:
    """A published reference number and where it comes from."""

    params: int | None = None
    macs: int | None = None
    top1: float | None = None
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
