"""Named INT8 quantization presets (documented in docs/quantization-presets.md).

A preset is a recipe, not a promise: which parts of the graph stay in float,
whether weights are per-channel, which NNCF preset / model type / bias
correction to use. Its effect is measured (the quantize command reports the
paired top-1 drop, and the benchmarks compare presets); it is never assumed.

``auto`` picks a preset from the artifact manifest's ``family``.
The node lists come from :mod:`edgekit.optimize.quant.patterns`, run on the
graph being quantized (ONNX for ONNX Runtime and NNCF-ONNX, the OpenVINO model
for NNCF-OpenVINO), so the names always exist in that graph.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgekit.core.errors import UsageError

KEEP_FLOAT_KINDS = ("se", "classifier", "depthwise")


@dataclass(frozen=True)
class QuantPreset:
    """One named recipe. ``keep_float`` lists pattern kinds from :data:`KEEP_FLOAT_KINDS`."""

    name: str
    summary: str
    keep_float: tuple[str, ...] = ()
    per_channel: bool = True
    #: NNCF preset: "performance" (symmetric activations), "mixed" (asymmetric activations),
    #: or None (NNCF's default: mixed for transformers, performance otherwise)
    nncf_preset: str | None = None
    #: NNCF model type: None or "transformer" (attention patterns + SmoothQuant)
    model_type: str | None = None
    #: NNCF fast bias correction (False: the full, slower, more accurate method)
    fast_bias_correction: bool = True
    #: ONNX Runtime: quantize only MatMuls with a constant B (keeps attention scores in float)
    matmul_const_b_only: bool = False
    families: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        bad = [k for k in self.keep_float if k not in KEEP_FLOAT_KINDS]
        if bad:
            raise ValueError(f"preset {self.name}: unknown keep_float kinds {bad}")
        if self.nncf_preset not in (None, "performance", "mixed"):
            raise ValueError(f"preset {self.name}: nncf_preset must be performance, mixed or None")

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "keep_float": list(self.keep_float),
            "per_channel": self.per_channel,
            "nncf_preset": self.nncf_preset,
            "model_type": self.model_type,
            "fast_bias_correction": self.fast_bias_correction,
            "matmul_const_b_only": self.matmul_const_b_only,
        }


PRESETS: dict[str, QuantPreset] = {
    p.name: p
    for p in (
        QuantPreset(
            "default",
            "everything quantizable in INT8; per-channel weights; NNCF fast bias correction",
            families=("mobilenetv1", "mobilenetv2", "shufflenetv2", "squeezenet"),
        ),
        QuantPreset(
            "mobilenetv3",
            "squeeze-excite blocks (pool, convs, hard-sigmoid, Mul) and the classifier head in float; "
            "per-channel weights; NNCF full bias correction and MIXED preset",
            keep_float=("se", "classifier"),
            nncf_preset="mixed",
            fast_bias_correction=False,
            families=("mobilenetv3",),
        ),
        QuantPreset(
            "efficientnet",
            "squeeze-excite blocks and the classifier head in float (SiLU/SE are sensitive); per-channel "
            "weights; NNCF MIXED preset and full bias correction",
            keep_float=("se", "classifier"),
            nncf_preset="mixed",
            fast_bias_correction=False,
            families=("efficientnet",),
        ),
        QuantPreset(
            "depthwise-float",
            "depthwise convolutions in float (they gain least from INT8 and lose most accuracy); "
            "per-channel weights",
            keep_float=("depthwise",),
        ),
        QuantPreset(
            "transformer",
            "NNCF model_type TRANSFORMER (attention patterns, SmoothQuant) and MIXED preset; ONNX Runtime "
            "quantizes only MatMuls with constant weights; classifier head in float",
            keep_float=("classifier",),
            nncf_preset="mixed",
            model_type="transformer",
            matmul_const_b_only=True,
            families=("coatnet",),
        ),
    )
}
AUTO = "auto"


def preset_names() -> tuple[str, ...]:
    return (AUTO, *PRESETS)


def resolve_preset(name: str | None, *, family: str | None) -> tuple[QuantPreset, str]:
    """The preset for ``name`` (``auto``/None: by ``family``) and how it was chosen."""
    key = (name or AUTO).strip().lower()
    if key == AUTO:
        for p in PRESETS.values():
            if family and family in p.families:
                return p, f"auto: family {family}"
        return PRESETS["default"], f"auto: family {family or 'unknown'} has no specific preset"
    if key not in PRESETS:
        raise UsageError(
            f"unknown quantization preset {name!r}",
            hint=f"choose one of {', '.join(preset_names())} (see docs/quantization-presets.md)",
        )
    return PRESETS[key], "asked"
