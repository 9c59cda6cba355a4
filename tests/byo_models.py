"""Bare ONNX classifiers that no edgekit command made (for import / bring-your-own-model tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def bare_classifier(path: Path, *, shape=(1, 3, 32, 32), classes: int = 10, seed: int = 0) -> Path:
    """A plain ONNX image classifier no edgekit command made: conv, relu, global pool, linear."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    nhwc = shape[3] == 3
    w1 = rng.normal(0, 0.3, (8, 3, 3, 3)).astype(np.float32)
    w2 = rng.normal(0, 0.3, (classes, 8)).astype(np.float32)
    nodes = [helper.make_node("Transpose", ["image"], ["x"], perm=[0, 3, 1, 2])] if nhwc else []
    nodes += [
        helper.make_node("Conv", ["x" if nhwc else "image", "w1"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "w2"], ["scores"], transB=1),
    ]
    graph = helper.make_graph(
        nodes, "bare", [helper.make_tensor_value_info("image", TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [shape[0], classes])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def imported_artifact(tmp: Path, *, name: str = "bare") -> Path:
    """``bare_classifier`` imported with the embedded dataset's labels: an artifact bench can score."""
    from edgekit.data.embedded import embedded_class_names
    from edgekit.export.import_onnx import import_onnx

    model = bare_classifier(tmp / f"{name}.onnx")
    return import_onnx(model, output=tmp / name, preset="unit", labels=embedded_class_names()).path
