"""The accuracy part of benchmarks/families.py: train on the embedded data, evaluate on its test split.

Each model is trained with :func:`edgekit.optimize.train.finetune.finetune` on the
embedded animals training split at ``--train-size`` px for ``--epochs`` epochs,
from random init (efficientnet_lite0 also from its real ImageNet weights), with
``select="last"``: the reported epoch is the last one, not the one that scored
best on the validation split; the test split (reported) selects nothing.
The trained artifacts are cached in ``~/.cache/edgekit/bench-artifacts/``
under a name that holds the model, start, size, epochs, seed and train limit.

Evaluation: every test image (batch 1, the trained static graph) through
ONNX Runtime fp32 (the reference), OpenVINO f32 and OpenVINO bf16; the two
OpenVINO runs are compared with the reference on the same images (top-1
agreement, discordant counts b/c, exact McNemar p).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from common import CACHE

from edgekit.bench.accuracy import compute_accuracy
from edgekit.bench.paired import mcnemar_exact_p, wilson_interval
from edgekit.core.manifest import Artifact, load_artifact

#: starting weights of the trained models; every other model starts from random init
ACCURACY_INITS: dict[str, tuple[str, ...]] = {"efficientnet_lite0": ("none", "imagenet")}
#: (runtime, precision) evaluated on every trained model; the first is the reference
EVAL_CELLS = (("onnxruntime", "fp32"), ("openvino", "f32"), ("openvino", "bf16"))

Say = Callable[[str], None]


def _inits(model: str) -> tuple[str, ...]:
    return ACCURACY_INITS.get(model, ("none",))


def trained_dir(model: str, init: str, args: argparse.Namespace) -> Path:
    limit = f"-n{args.train_limit}" if args.train_limit else ""
    return CACHE / f"trained-{model}-{init}-{args.train_size}px-e{args.epochs}-last-s{args.seed}{limit}"


def trained_artifact(model: str, init: str, args: argparse.Namespace, say: Say) -> Artifact:
    out = trained_dir(model, init, args)
    if (out / "edgekit.json").is_file():
        return load_artifact(out)  # verifies every file's sha256
    from edgekit.optimize.train.finetune import FinetuneOptions, finetune

    say(f"{model}: training from {init} weights, {args.epochs} epoch(s) at {args.train_size} px -> {out}")
    res = finetune(
        FinetuneOptions(model=model, output=out, data="embedded", weights=init, epochs=args.epochs,
                        img_size=args.train_size, select="last", seed=args.seed, threads=args.threads,
                        train_limit=args.train_limit),
        progress=say,
    )
    say(f"{model}: trained in {res.seconds:.0f} s, test top-1 {res.test_top1:.2%} (torch, last epoch)")
    return load_artifact(out)


def train_all(models: list[str], args: argparse.Namespace, *, say: Say) -> None:
    """Train (or find in the cache) every model of the accuracy table; a failure is reported, not fatal."""
    for m in models:
        for init in _inits(m):
            try:
                trained_artifact(m, init, args, say)
            except Exception as e:  # reported again by evaluate_all
                say(f"{m} ({init}): training FAILED: {type(e).__name__}: {e}")


def _logits(art: Artifact, runtime: str, precision: str, x: np.ndarray, threads: int) -> tuple[np.ndarray, dict]:
    from edgekit.runtime.onnxruntime.runner import OnnxRuntimeRunner
    from edgekit.runtime.openvino.runner import OpenVINORunner

    if runtime == "onnxruntime":
        runner: Any = OnnxRuntimeRunner(art.model_path, threads=threads)
    else:
        runner = OpenVINORunner(art.model_path, precision=precision, hint="latency", streams=1, threads=threads)
    with runner as r:
        name, out = r.inputs[0].name, r.outputs[0].name
        logits = np.concatenate([r.infer({name: x[i : i + 1]})[out] for i in range(len(x))])
        info = r.info.to_json()
    info["details"].pop("graph", None)
    return logits, info


def evaluate_one(model: str, init: str, args: argparse.Namespace, say: Say) -> dict[str, Any]:
    from edgekit.data.embedded import load_embedded
    from edgekit.data.sampling import preload
    from edgekit.optimize.train.loop import TrainRecord

    art = trained_artifact(model, init, args, say)  # from the cache: train_all ran first
    m = art.manifest
    record = TrainRecord.from_json(m.extra["training"])
    ds = load_embedded(split="test")
    x = preload(ds, np.arange(len(ds)), m.preprocess)
    y = np.asarray(ds.labels)
    row: dict[str, Any] = {
        "model": model, "init": init, "artifact": str(art.path), "train_size": list(m.preprocess.input_size),
        "epochs": len(record.epochs), "select": record.select, "selected_epoch": record.selected_epoch,
        "train_seconds": record.seconds, "train_threads": record.threads, "n_train": record.n_train,
        "test_top1_torch": (m.extra.get("dataset") or {}).get("test_top1"),
        "validation_top1_torch": record.heldout_top1, "n_test": int(len(y)),
        "model_sha256": m.files[m.model_file],
        "base_weights": m.lineage[0].parent.weights if m.lineage and m.lineage[0].parent else None,
        "runs": {},
    }
    ref_pred = None
    for runtime, precision in EVAL_CELLS:
        key = f"{runtime}/{precision}"
        t0 = time.perf_counter()
        try:
            logits, info = _logits(art, runtime, precision, x, args.threads)
        except Exception as e:
            row["runs"][key] = {"error": " ".join(f"{type(e).__name__}: {e}".split())[:400]}
            say(f"{model} ({init}) {key}: evaluation FAILED: {row['runs'][key]['error']}")
            continue
        acc = compute_accuracy(logits, y, reference=ref_pred, class_names=m.labels)
        k = int(acc.correct.sum())
        run = {"top1": acc.top1, "top1_ci95": list(wilson_interval(k, acc.n)), "top5": acc.top5,
               "macro_f1": acc.macro_f1, "n_invalid": acc.n_invalid, "agreement": acc.agreement,
               "precision_reported": info["precision"], "precision_note": info["details"].get("precision_note"),
               "eval_seconds": time.perf_counter() - t0, "per_class_accuracy": acc.per_class_accuracy}
        if ref_pred is None:
            ref_pred, ref_correct = acc.predictions, acc.correct
        else:
            b = int((ref_correct & ~acc.correct).sum())
            c = int((~ref_correct & acc.correct).sum())
            run.update(b_ref_right_only=b, c_cand_right_only=c, mcnemar_p=mcnemar_exact_p(b, c),
                       disagreements=int((acc.predictions != ref_pred).sum()))
        row["runs"][key] = run
        say(f"{model} ({init}) {key}: top-1 {acc.top1:.2%}" + (f", agreement {acc.agreement:.2%}" if acc.agreement
                                                               is not None else ""))
    return row


def evaluate_all(models: list[str], args: argparse.Namespace, *, say: Say) -> dict[str, Any]:
    rows = []
    for m in models:
        for init in _inits(m):
            try:
                rows.append(evaluate_one(m, init, args, say))
            except Exception as e:
                rows.append({"model": m, "init": init, "error": " ".join(f"{type(e).__name__}: {e}".split())[:400]})
                say(f"{m} ({init}): FAILED: {rows[-1]['error']}")
    return {"rows": rows, "eval_cells": [f"{r}/{p}" for r, p in EVAL_CELLS], "reference": "onnxruntime/fp32",
            "recipe": {"epochs": args.epochs, "img_size": args.train_size, "select": "last", "seed": args.seed,
                       "threads": args.threads, "train_limit": args.train_limit, "data": "embedded (train split)",
                       "other settings": "edgekit.optimize.train.finetune defaults (AdamW, warm-up + cosine, "
                                         "label smoothing 0.1, its augmentation)"}}


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}"


def render_accuracy(acc: dict[str, Any], settings: dict[str, Any]) -> list[str]:
    r = acc["recipe"]
    md = [
        "## Accuracy on the embedded test split (models trained on the embedded training split)\n",
        f"Trained with `edgekit.optimize.train.finetune` on the embedded animals training split "
        f"({r['img_size']}x{r['img_size']} px, {r['epochs']} epochs, seed {r['seed']}, {r['threads']} threads"
        + (f", **only {r['train_limit']} training images: a smoke setting, not a result**" if r["train_limit"] else "")
        + "); the reported weights are the last epoch's (nothing selected on the test split). Random init unless "
        "the start column says ImageNet. Evaluated on every test image at batch 1 on the trained static graph; "
        "OpenVINO runs are compared with ONNX Runtime fp32 on the same images (agreement = same top-1; b/c = "
        "images only the reference / only OpenVINO got right; exact McNemar p).\n",
    ]
    head = ["model", "start", "epochs", "train s", "n", "top-1 torch (training run, test)", "top-1 ORT fp32 [95% CI]",
            "top-5", "macro-F1", "OV f32 top-1 (agree; b/c)", "OV bf16 top-1 (agree; b/c; p)"]
    rows = []
    for row in acc["rows"]:
        start = "ImageNet" if row["init"] == "imagenet" else "random"
        if "error" in row:
            rows.append([row["model"], start, "", "", "", "FAILED: " + row["error"][:120], "", "", "", "", ""])
            continue
        runs = row["runs"]
        ref = runs.get("onnxruntime/fp32", {})

        def cand(key: str, with_p: bool, runs: dict[str, Any] = runs) -> str:
            c = runs.get(key, {})
            if "error" in c or not c:
                return "failed"
            txt = f"{_pct(c['top1'])} ({_pct(c['agreement'])}; {c['b_ref_right_only']}/{c['c_cand_right_only']}"
            return txt + (f"; {c['mcnemar_p']:.2g})" if with_p else ")")

        ref_txt = ("failed" if "error" in ref or not ref else
                   f"{_pct(ref['top1'])} [{_pct(ref['top1_ci95'][0])}–{_pct(ref['top1_ci95'][1])}]")
        rows.append([row["model"], start, str(row["epochs"]), f"{row['train_seconds']:.0f}", str(row["n_test"]),
                     _pct(row["test_top1_torch"]), ref_txt, _pct(ref.get("top5")), _pct(ref.get("macro_f1")),
                     cand("openvino/f32", False), cand("openvino/bf16", True)])
    md += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(x) + " |" for x in rows]
    md.append("\nPercentages. The torch column is the training run's own evaluation of the same weights on the same "
              "test images; it should match ORT fp32 (a gap would point at export or preprocessing). Test images: "
              "28x28 greyscale silhouettes upscaled, 10 classes; near-duplicates never straddle the split.\n")
    return md
