"""Harness overhead bars: edgekit's runners against the runtimes' own loops.

* ONNX Runtime: edgekit's OnnxRuntimeRunner + measure_latency against a bare
  ``InferenceSession.run`` loop with identical SessionOptions (bar: p50 within 3%).
* OpenVINO: edgekit's OpenVINORunner + measure_latency against OpenVINO's own
  ``benchmark_app`` (sync API, no hint with 1 stream (what the latency hint means), same threads, same
  inference precision; bar: p50 within 3%).

The two sides alternate in ABAB rounds on the same artifact so that drift on a
shared machine hits both; the reported ratio is the median over rounds.

    python benchmarks/overhead.py [--model mobilenetv3_large_100] [--seconds 10] [--rounds 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import artifact_for, real_samples, write_results  # noqa: E402

from edgekit.bench.harness import measure_latency  # noqa: E402
from edgekit.runtime.onnxruntime import OnnxRuntimeRunner  # noqa: E402
from edgekit.runtime.openvino import OpenVINORunner  # noqa: E402

BAR = 1.03


def bare_ort_p50(path: Path, x: np.ndarray, seconds: float, threads: int) -> float:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    feeds = [{name: x[i : i + 1]} for i in range(len(x))]
    sess.run(None, feeds[0])
    end = time.perf_counter_ns() + int(1e9)  # 1 s warm-up, as the edgekit side
    while time.perf_counter_ns() < end:
        sess.run(None, feeds[0])
    lat = []
    stop = time.perf_counter_ns() + int(seconds * 1e9)
    i = 0
    while time.perf_counter_ns() < stop or len(lat) < 100:
        f = feeds[i % len(feeds)]
        t0 = time.perf_counter_ns()
        sess.run(None, f)
        lat.append(time.perf_counter_ns() - t0)
        i += 1
    return float(np.median(lat)) / 1e6


def edgekit_p50(runner_factory, x: np.ndarray, seconds: float) -> tuple[float, str]:
    with runner_factory() as r:
        name = r.inputs[0].name
        samples = [{name: x[i : i + 1]} for i in range(len(x))]
        res = measure_latency(r.infer, samples, warmup_s=1.0, min_duration_s=seconds, min_iterations=100)
        return res.stats.p50, r.info.precision


def benchmark_app_p50(path: Path, seconds: float, threads: int, precision: str) -> float:
    exe = shutil.which("benchmark_app") or str(Path(sys.executable).parent / "benchmark_app")
    cmd = [
        exe, "-m", str(path), "-d", "CPU", "-api", "sync", "-hint", "none", "-nstreams", "1",
        "-nthreads", str(threads), "-infer_precision", precision, "-t", str(int(seconds)),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    m = re.search(r"Median:\s+([\d.]+)\s*ms", out)
    if not m:
        raise RuntimeError(f"could not parse benchmark_app output:\n{out[-2000:]}")
    return float(m.group(1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="mobilenetv3_large_100")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    art = artifact_for(args.model)
    x = real_samples(art.manifest.preprocess, 64)
    path = art.model_path
    rows: dict[str, list[dict[str, float]]] = {"onnxruntime": [], "openvino": []}
    for rnd in range(args.rounds):
        order = (0, 1) if rnd % 2 == 0 else (1, 0)
        ort_pair = [0.0, 0.0]
        for side in order:
            if side == 0:
                ort_pair[0] = bare_ort_p50(path, x, args.seconds, args.threads)
            else:
                ort_pair[1], _ = edgekit_p50(lambda: OnnxRuntimeRunner(path, threads=args.threads), x, args.seconds)
        rows["onnxruntime"].append({"reference_p50_ms": ort_pair[0], "edgekit_p50_ms": ort_pair[1]})
        ov_pair = [0.0, 0.0]
        for side in order:
            if side == 0:
                ov_pair[0] = benchmark_app_p50(path, args.seconds, args.threads, "f32")
            else:
                ov_pair[1], prec = edgekit_p50(
                    lambda: OpenVINORunner(path, precision="f32", hint="latency", streams=1, threads=args.threads),
                    x,
                    args.seconds,
                )
        rows["openvino"].append({"reference_p50_ms": ov_pair[0], "edgekit_p50_ms": ov_pair[1]})
        print(f"round {rnd}: ORT {ort_pair}, OV {ov_pair}", flush=True)

    summary = {}
    md = [
        f"# Harness overhead: {args.model}, batch 1, {args.threads} threads, {args.seconds:.0f} s windows, "
        f"{args.rounds} ABAB rounds\n",
        "| runtime | reference | reference p50 (ms) | edgekit p50 (ms) | ratio (median of rounds) | bar | met |",
        "|---|---|---|---|---|---|---|",
    ]
    refs = {"onnxruntime": "bare InferenceSession.run loop", "openvino": "benchmark_app -api sync -hint none -nstreams 1 (f32)"}
    for rt, rs in rows.items():
        ratios = [r["edgekit_p50_ms"] / r["reference_p50_ms"] for r in rs]
        ratio = statistics.median(ratios)
        ref = statistics.median(r["reference_p50_ms"] for r in rs)
        ek = statistics.median(r["edgekit_p50_ms"] for r in rs)
        summary[rt] = {"rounds": rs, "ratios": ratios, "median_ratio": ratio, "bar": BAR, "met": ratio <= BAR}
        md.append(f"| {rt} | {refs[rt]} | {ref:.3f} | {ek:.3f} | {ratio:.3f} | <= {BAR} | {'yes' if ratio <= BAR else 'NO'} |")
    md.append(
        "\nInputs: 64 real held-out embedded images cycled in a seeded order (edgekit and the bare ORT loop); "
        "benchmark_app fills its own inputs. Per-round values are in the JSON file."
    )
    j, m = write_results(
        "overhead",
        {"model": args.model, "artifact_sha256": art.manifest.files[art.manifest.model_file],
         "settings": vars(args), "results": summary},
        "\n".join(md) + "\n",
    )
    print(Path(m).read_text())


if __name__ == "__main__":
    main()
