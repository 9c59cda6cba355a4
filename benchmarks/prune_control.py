"""The same-recovery control for the pruning bar.

A pruned model is recovered by N more epochs distilled from its parent; if the parent would also have gained
from N more epochs, "pruned vs parent" credits pruning with that training. The control puts the unpruned parent
through exactly that recovery (same data, augmentations, learning-rate schedule, epochs, seed, distilled from
a frozen copy of itself) with no pruning, exports it, and predicts the whole held-out split with ONNX Runtime
using the preprocessing of the parent's manifest: the images and pipeline the bench used for the pruned rows.

    python benchmarks/prune_control.py [--run prune] [--threads 2]

Reads ``~/.cache/edgekit/bench-runs/<run>/run.json`` (the parents and the pruned artifacts of that run) and
writes ``control.json`` next to it; ``optimize.py --pipelines prune`` compares every pruned row with it.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from edgekit.core.atomic import atomic_write_json  # noqa: E402

RUNS = Path.home() / ".cache" / "edgekit" / "bench-runs"


def _recovery_settings(run: dict[str, Any], model: str) -> dict[str, Any]:
    """The recovery every prune step of ``model`` used (they must agree), from the pruned manifests."""
    seen = []
    for s in run["steps"]:
        if s["kind"] == "prune" and s["label"].startswith(model + "/"):
            path = Path(s["path"])  # a step whose accuracy check failed set its artifact aside as <path>.failed
            d = path if (path / "edgekit.json").is_file() else path.with_name(path.name + ".failed")
            man = json.loads((d / "edgekit.json").read_text(encoding="utf-8"))
            rec = man["extra"]["prune"]["recovery"]
            seen.append({"epochs": int(rec["epochs"]), "distill": bool(rec["distill"])})
    if not seen or any(x != seen[0] for x in seen):
        raise SystemExit(f"{model}: no prune step, or prune steps with different recoveries: {seen}")
    return seen[0]


def _heldout_predictions(onnx_path: Path, artifact_dir: Path, threads: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-1 of the ONNX model on the whole embedded held-out split, preprocessed as the manifest says."""
    import onnxruntime as ort

    from edgekit.core.manifest import load_artifact
    from edgekit.data.embedded import load_embedded
    from edgekit.data.sampling import evaluation_indices, preload

    spec = load_artifact(artifact_dir).manifest.preprocess
    ds = load_embedded(split="test")
    idx = evaluation_indices(ds.labels, None)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(onnx_path), sess_options=so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    preds = []
    for s in range(0, len(idx), 256):
        x = preload(ds, idx[s : s + 256], spec)
        preds.extend(int(np.argmax(sess.run(None, {name: x[i : i + 1]})[0])) for i in range(len(x)))
    return np.asarray(preds), np.asarray(ds.labels)[idx]


def control(parent: Path, *, epochs: int, distill: bool, data: str, seed: int, threads: int) -> dict[str, Any]:
    from edgekit.export.onnx_export import export_torch_to_onnx
    from edgekit.optimize.prune import source as prune_source
    from edgekit.optimize.train.distill import train
    from edgekit.optimize.prune.prune import PruneOptions, _recovery_data
    from edgekit.optimize.train.loop import as_progress, deterministic, evaluate

    t0 = time.perf_counter()
    opts = PruneOptions(source=str(parent), output=Path("unused"), finetune=data, epochs=epochs, distill=distill,
                        seed=seed, threads=threads)
    src = prune_source.resolve(str(parent), weights=opts.weights, num_classes=None, img_size=None)
    model = src.loaded.model.eval()
    h, w = (int(v) for v in src.preprocess.input_size)
    config = opts.train_config()
    with deterministic(seed, threads), tempfile.TemporaryDirectory(prefix="edgekit-control-") as tmp:
        loaders, _, _ = _recovery_data(opts, src)  # the train and validation splits (validation selects)
        before = evaluate(model, loaders.heldout)[1]
        teacher = copy.deepcopy(model).eval() if distill else None
        for p in model.parameters():
            p.requires_grad_(True)
        record = train(model, loaders, teacher=teacher, config=config, progress=as_progress(print))
        model.eval()
        onnx_path = Path(tmp) / "control.onnx"
        export_torch_to_onnx(model, onnx_path, input_shape=(1, 3, h, w), opset=opts.opset)
        preds, labels = _heldout_predictions(onnx_path, parent, threads)
    return {"parent": str(parent), "epochs": epochs, "distill": distill, "seed": seed, "threads": threads,
            "train_config": {"lr": config.lr, "warmup_epochs": config.warmup_epochs, "select": config.select},
            "heldout_top1_training_view": {"before": before, "after": float(record.heldout_top1),
                                           "selected_epoch": record.selected_epoch},
            "top1": float(np.mean(preds == labels)), "predictions": preds.tolist(), "labels": labels.tolist(),
            "seconds": time.perf_counter() - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", default="prune", help="the run directory under ~/.cache/edgekit/bench-runs")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    run_dir = RUNS / args.run
    run = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    pipeline = run["pipeline"]
    out: dict[str, Any] = {"run": str(run_dir), "models": {}}
    for s in run["steps"]:
        if s["kind"] != "finetune":
            continue
        model = s["label"]
        rec = _recovery_settings(run, model)
        print(f"control for {model}: {rec['epochs']} recovery epoch(s), distill={rec['distill']}", flush=True)
        out["models"][model] = control(Path(s["path"]), data=str(pipeline.get("data", "embedded")),
                                       seed=int(pipeline.get("seed", 0)), threads=args.threads, **rec)
        print(f"{model}: control top-1 {out['models'][model]['top1']:.2%}", flush=True)
    atomic_write_json(run_dir / "control.json", out)
    print(f"wrote {run_dir / 'control.json'}")


if __name__ == "__main__":
    main()
