"""Structural checks of an exported graph: the ONNX checker and strict shape inference."""

from __future__ import annotations

from pathlib import Path

from edgekit.core.errors import ExportError
from edgekit.core.lazy import require


def check_graph(path: Path) -> dict[str, object]:
    """Run ``onnx.checker`` (full check) and strict shape inference on ``path``.

    The checker is given the path, not a loaded proto, so models with external
    data (and over 2 GiB) are checked too. Returns what was checked.
    """
    onnx = require("onnx")
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as e:  # onnx raises ValidationError and friends
        raise ExportError(f"onnx.checker rejected {path.name}: {str(e).splitlines()[0]}") from None
    inferred = path.with_name(f".{path.name}.inferred")
    try:
        onnx.shape_inference.infer_shapes_path(str(path), str(inferred), check_type=True, strict_mode=True, data_prop=True)
    except Exception as e:
        raise ExportError(f"strict shape inference failed on {path.name}: {str(e).splitlines()[0]}") from None
    finally:
        inferred.unlink(missing_ok=True)
    return {"checker": "full_check", "shape_inference": "strict"}
