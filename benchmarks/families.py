"""The family comparison table: every zoo family on this machine, every CPU runtime and precision.

Per model (default: one or two per family, the seven families of the zoo):

* **size**: parameters and MACs read from the exported graph by
  :func:`edgekit.graph.profile_onnx` (beside the published numbers), ONNX file size;
* **latency**, batch 1, single stream, edgekit's harness (real test-split images
  cycled in a seeded order, time-based warm-up, stop when BOTH ``--seconds`` and
  ``--min-iterations`` are met), ``--threads`` threads everywhere, in these cells:
  torch eager fp32 (``torch.set_num_threads``, ``inference_mode``); ONNX Runtime
  fp32; OpenVINO f32 and bf16 (latency hint, 1 stream); each ONNX cell on the
  static batch-1 graph and on the dynamic-batch graph, both run at batch 1;
* **fastest configuration** of each model on this CPU, with whether its lead is
  larger than the round-to-round spread;
* **accuracy** on the embedded test split of each model trained on the
  embedded training split (``edgekit.optimize.train.finetune``; ``benchmarks/families_accuracy.py``).

Latency uses the default ImageNet input size with random-init weights (latency
does not depend on weight values; efficientnet_lite0 carries its real ImageNet
weights); accuracy uses the trained models at their training size.

Rounds: every cell runs ``--rounds`` times; round r visits the models in order
(reversed on odd rounds) and each model's cells in a seeded shuffled order, so
drift on a shared machine spreads over all cells. Reported: the median over
rounds of each cell's p50 and p90, the spread (min-max of the p50s), and ratios
to ONNX Runtime fp32 static taken within each round, then the median.

    python benchmarks/families.py --prepare            # export, profile, train: cache only, any time
    python benchmarks/families.py --rounds 5           # measure (on a quiet machine)
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import CACHE, artifact_for, real_samples, write_results  # noqa: E402
from families_report import CELLS, cell_key, render_markdown, summarize  # noqa: E402

from edgekit.bench.harness import measure_latency  # noqa: E402
from edgekit.core.manifest import Artifact  # noqa: E402
from edgekit.graph import profile_onnx  # noqa: E402
from edgekit.zoo.registry import get_model  # noqa: E402

log = logging.getLogger("families")

DEFAULT_MODELS = (
    "mobilenetv1_100",
    "mobilenetv2_100",
    "mobilenetv3_large_100",
    "mobilenetv3_small_100",
    "shufflenet_v2_x1_0",
    "squeezenet1_1",
    "efficientnet_b0",
    "efficientnet_lite0",
    "coatnet_0_rw_224",
)
#: weights of the latency exports; every other model is random-init ("none")
LATENCY_WEIGHTS = {"efficientnet_lite0": "imagenet"}
N_SAMPLES = 64


@dataclass
class Prepared:
    """One model ready to measure: its two graphs, its samples, its size."""

    name: str
    family: str
    weights: str
    static: Artifact
    dynamic: Artifact
    samples: np.ndarray  # (N, 3, H, W) real preprocessed test-split images
    size: dict[str, Any]
    torch_model: Any = None


def _say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def prepare(name: str, *, with_torch: bool) -> Prepared:
    entry = get_model(name)
    weights = LATENCY_WEIGHTS.get(entry.name, "none")
    _say(f"{entry.name}: exporting (weights {weights}; cached in {CACHE})")
    static = artifact_for(entry.name, weights=weights, dynamic_batch=False)
    dynamic = artifact_for(entry.name, weights=weights, dynamic_batch=True)
    prof = profile_onnx(static.model_path)
    pub = entry.published
    size = {
        "params_graph": prof.params,
        "params_published": pub.params,
        "macs_graph": prof.macs,
        "macs_complete": prof.macs_complete,
        "macs_published": pub.macs,
        "onnx_bytes": prof.file_size_bytes,
        "onnx_bytes_dynamic": profile_onnx(dynamic.model_path).file_size_bytes,
        "input_size": list(static.manifest.preprocess.input_size),
        "static_sha256": static.manifest.files[static.manifest.model_file],
        "dynamic_sha256": dynamic.manifest.files[dynamic.manifest.model_file],
        "published_source": pub.source,
        "weights": static.manifest.weights.to_json(),
        "profile_notes": list(prof.notes),
    }
    x = real_samples(static.manifest.preprocess, N_SAMPLES)
    model = None
    if with_torch:
        from edgekit.zoo.weights import load_model

        model = load_model(entry, weights).model.eval()
    return Prepared(entry.name, entry.family, weights, static, dynamic, x, size, model)


# -- one cell ------------------------------------------------------------------------------


def _measure(infer: Any, samples: list[Any], args: argparse.Namespace) -> Any:
    return measure_latency(
        infer, samples, warmup_s=args.warmup, min_duration_s=args.seconds, min_iterations=args.min_iterations,
        max_duration_s=args.max_seconds, seed=args.seed,
    )


def _torch_cell(p: Prepared, args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    import torch

    torch.set_num_threads(args.threads)
    xs = [torch.from_numpy(p.samples[i : i + 1]) for i in range(len(p.samples))]
    with torch.inference_mode():
        res = _measure(p.torch_model, xs, args)
    info = {"runtime": "torch", "runtime_version": torch.__version__, "device": "cpu", "precision": "fp32",
            "threads": torch.get_num_threads(),
            "details": {"mode": "eager", "inference_mode": True, "interop_threads": torch.get_num_interop_threads()}}
    return res, info


def _runtime_cell(p: Prepared, runtime: str, precision: str, graph: str,
                  args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    from edgekit.runtime.onnxruntime.runner import OnnxRuntimeRunner
    from edgekit.runtime.openvino.runner import OpenVINORunner

    path = (p.static if graph == "static" else p.dynamic).model_path
    if runtime == "onnxruntime":
        runner: Any = OnnxRuntimeRunner(path, threads=args.threads)
    else:  # the dynamic graph is compiled as it is (no reshape): that is the comparison
        runner = OpenVINORunner(path, precision=precision, hint="latency", streams=1, threads=args.threads)
    with runner as r:
        name = r.inputs[0].name
        feeds = [{name: p.samples[i : i + 1]} for i in range(len(p.samples))]
        res = _measure(r.infer, feeds, args)
        info = r.info.to_json()
    info["details"].pop("graph", None)  # the graph summary is in "models"
    return res, info


def run_cell(p: Prepared, cell: tuple[str, str, str], args: argparse.Namespace, rnd: int) -> dict[str, Any]:
    runtime, precision, graph = cell
    t0 = time.perf_counter_ns()
    load_before = os.getloadavg()[0]
    try:
        if runtime == "torch":
            res, info = _torch_cell(p, args)
        else:
            res, info = _runtime_cell(p, runtime, precision, graph, args)
    except Exception as e:  # a benchmark records a failing cell and goes on
        log.debug("cell failed", exc_info=True)
        msg = " ".join(f"{type(e).__name__}: {e}".split())[:400]
        _say(f"  round {rnd} {p.name} {cell_key(cell)}: FAILED {msg}")
        return {"round": rnd, "error": msg, "traceback_tail": traceback.format_exc().splitlines()[-3:]}
    s = res.stats
    out = {
        "round": rnd, "p50": s.p50, "p90": s.p90, "p99": s.p99, "mean": s.mean, "min": s.min, "max": s.max,
        "cv": s.cv, "unstable": s.unstable, "n": s.n, "p90_upper": s.p90_upper, "too_few_for": list(s.too_few_for),
        "cold_ms": res.cold_ms, "warmup_s": res.warmup_s, "duration_s": res.duration_s,
        "cut_short": res.cut_short, "n_distinct_samples": res.n_distinct_samples,
        "n_samples_visited": res.n_samples_visited, "loadavg_1m_before": load_before,
        "cell_wall_s": (time.perf_counter_ns() - t0) / 1e9, "info": info,
    }
    flag = " UNSTABLE" if s.unstable else ""
    _say(f"  round {rnd} {p.name} {cell_key(cell)}: p50 {s.p50:.3f} ms p90 {s.p90:.3f} ms "
         f"n={s.n} cv={s.cv:.1%}{flag} (load {load_before:.1f})")
    return out


# -- main ----------------------------------------------------------------------------------

BF16_FLAGS = ("avx512_bf16", "amx_bf16", "amx_tile")


def bf16_status() -> dict[str, Any]:
    """Whether this CPU runs bf16 natively: OpenVINO's capabilities and the CPU flags."""
    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    caps: list[str] = []
    try:
        from edgekit.core.lazy import require

        ov = require("openvino", purpose="reading the CPU's capabilities")
        caps = [str(c) for c in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")]
    except Exception as e:  # recorded, not fatal
        log.warning("cannot read OpenVINO's CPU capabilities: %s", e)
    return {"ov_capabilities": caps, "cpu_bf16_flags": sorted(flags & set(BF16_FLAGS)), "native": "BF16" in caps}



def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS), help="zoo names (default: %(default)s)")
    ap.add_argument("--seconds", type=float, default=5.0, help="minimum measured seconds per cell")
    ap.add_argument("--min-iterations", type=int, default=50, help="minimum measured inferences per cell")
    ap.add_argument("--max-seconds", type=float, default=120.0,
                    help="cap per cell; a cell stopped before both minimums is marked cut short")
    ap.add_argument("--warmup", type=float, default=1.0, help="time-based warm-up per cell, seconds")
    ap.add_argument("--threads", type=int, default=2, help="threads of every runtime (torch, ORT intra-op, OV)")
    ap.add_argument("--rounds", type=int, default=3, help="times each cell runs, interleaved")
    ap.add_argument("--seed", type=int, default=0, help="sample order and cell shuffling seed")
    ap.add_argument("--skip-torch", action="store_true", help="leave out the torch eager cells")
    ap.add_argument("--skip-latency", action="store_true", help="accuracy only")
    ap.add_argument("--skip-accuracy", action="store_true", help="latency only (no training, no evaluation)")
    ap.add_argument("--prepare", action="store_true",
                    help="export, profile and train into the cache, measure nothing, write no results")
    ap.add_argument("--epochs", type=int, default=10, help="training epochs for the accuracy table")
    ap.add_argument("--train-size", type=int, default=64, help="training (and evaluation) image size, px")
    ap.add_argument("--train-limit", type=int, default=None, help="train on this many images (smoke runs only)")
    ap.add_argument("--out-name", default="families", help="results/<name>.json and .md (default: %(default)s)")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    for k in ("seconds", "warmup", "max_seconds"):
        if getattr(args, k) < 0 or (k != "warmup" and getattr(args, k) == 0):
            ap.error(f"--{k.replace('_', '-')} must be positive")
    for k in ("min_iterations", "threads", "rounds", "epochs", "train_size"):
        if getattr(args, k) < 1:
            ap.error(f"--{k.replace('_', '-')} must be >= 1")
    if args.max_seconds < args.seconds:
        ap.error("--max-seconds must be >= --seconds")
    if args.out_name != Path(args.out_name).name or not args.out_name or args.out_name.startswith("."):
        ap.error("--out-name must be a plain file name")
    if args.skip_latency and args.skip_accuracy and not args.prepare:
        ap.error("nothing to do: both --skip-latency and --skip-accuracy")
    try:
        args.models = list(dict.fromkeys(get_model(m).name for m in args.models))
    except Exception as e:
        ap.error(str(e))
    return args


def latency_rounds(prepared: list[Prepared], cells: list[tuple[str, str, str]],
                   args: argparse.Namespace) -> tuple[dict[str, dict[str, list[dict[str, Any]]]], list[dict[str, Any]]]:
    raw: dict[str, dict[str, list[dict[str, Any]]]] = {p.name: {cell_key(c): [] for c in cells} for p in prepared}
    rounds_log = []
    for rnd in range(args.rounds):
        rng = random.Random(f"{args.seed}:{rnd}")
        order = prepared if rnd % 2 == 0 else prepared[::-1]
        t0, load0 = time.time(), os.getloadavg()
        _say(f"round {rnd + 1}/{args.rounds} (load average {load0[0]:.1f} {load0[1]:.1f} {load0[2]:.1f})")
        for p in order:
            shuffled = list(cells)
            rng.shuffle(shuffled)
            for c in shuffled:
                raw[p.name][cell_key(c)].append(run_cell(p, c, args, rnd))
        rounds_log.append({"round": rnd, "loadavg_start": list(load0), "loadavg_end": list(os.getloadavg()),
                           "wall_s": time.time() - t0})
    return raw, rounds_log


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING)
    with_torch = not args.skip_torch and not args.skip_latency
    if with_torch:
        import torch

        torch.set_num_threads(args.threads)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # already set once in this process
            pass
    cells = [c for c in CELLS if not (args.skip_torch and c[0] == "torch")]
    payload: dict[str, Any] = {"settings": {**vars(args), "cells": [cell_key(c) for c in cells],
                                            "latency_weights": LATENCY_WEIGHTS, "n_samples": N_SAMPLES,
                                            "command": " ".join(sys.argv)},
                              "bf16": bf16_status(), "cpu_count": os.cpu_count()}
    prepared: list[Prepared] = []
    if not args.skip_latency or args.prepare:
        failed: dict[str, str] = {}
        for m in args.models:
            try:
                prepared.append(prepare(m, with_torch=with_torch and not args.prepare))
            except Exception as e:  # one model that cannot be exported must not cost the others
                failed[m] = " ".join(f"{type(e).__name__}: {e}".split())[:400]
                _say(f"{m}: preparation FAILED, left out of the latency table: {failed[m]}")
        payload["models"] = {p.name: {"family": p.family, **p.size} for p in prepared}
        payload["prepare_errors"] = failed
    if not args.skip_accuracy:
        from families_accuracy import train_all

        train_all(args.models, args, say=_say)  # training before timing: all heavy CPU work first
    if args.prepare:
        _say("prepared: exports and trained models are cached; nothing measured")
        return
    if not args.skip_latency:
        raw, rounds_log = latency_rounds(prepared, cells, args)
        payload["rounds"] = rounds_log
        payload["latency"] = {"raw": raw, "summary": summarize(raw, cells)}
    if not args.skip_accuracy:
        from families_accuracy import evaluate_all

        payload["accuracy"] = evaluate_all(args.models, args, say=_say)
    _, md = write_results(args.out_name, payload, render_markdown(payload), script="families")
    print(Path(md).read_text())


if __name__ == "__main__":
    main()
