"""Write ci/canary.json: EfficientNet-Lite0 (ImageNet, the dev extra's weights) FP32 logits on scikit-image's photos.

Run once from a known-good commit (it encodes what the preprocessing + export + runtime chain computes):
    python tools/make_canary.py
The test tests/test_canary.py then holds every later commit to it.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from edgekit.export import ExportOptions, export_model
from edgekit.gate import canary
from edgekit.optimize.quant.data import run_logits


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        art = export_model(ExportOptions(model="efficientnet_lite0", output=Path(tmp) / "lite0", weights="imagenet"))
        m = art.manifest
        z, _ = run_logits(art.model_path, canary.inputs(m.preprocess), runtime="onnxruntime", batch=1, threads=None)
        rec = canary.record(z, list(m.labels or ()), spec=m.preprocess, source=m.weights.source or "")
    canary.CANARY_FILE.write_text(json.dumps(rec, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {canary.CANARY_FILE}")


if __name__ == "__main__":
    main()
