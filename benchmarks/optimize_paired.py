"""Paired, interleaved latency of every optimized row against the FP32 artifact on the same runtime.

``edgekit run`` benches the rows one after another; minutes of drift separate a row from its FP32 base, so
those p50s cannot say faster or slower (``benchmarks/bars.py``). After the runs, ``optimize.py`` measures
each (candidate, FP32) pair here in alternating windows (ABBA, :func:`edgekit.bench.paired_latency.paired_windows`)
on the same real held-out samples, threads and runtime, and stores the per-round ratios in the row
(``row["paired"]``), from which the bars take their speed verdicts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

ROUNDS = 8
WINDOW_S = 1.0
SAMPLES = 32


def _runner(artifact: Any, runtime: str, precision: str, threads: int | None) -> Any:
    from edgekit.bench.cell import open_runner
    from edgekit.core.target_schema import RuntimeSpec

    spec = RuntimeSpec(runtime=runtime, device="CPU", precisions=(precision,))
    return open_runner(artifact, spec, precision, threads=threads, streams=None, batch=1)


def measure(rows: list[dict[str, Any]], run_dir: Path, *, threads: int | None, rounds: int = ROUNDS,
            window_s: float = WINDOW_S) -> None:
    """Set ``row["paired"]`` (PairedLatency JSON, ratios candidate/FP32) on every ok non-FP32-base row."""
    from common import real_samples

    from edgekit.bench.paired_latency import paired_windows
    from edgekit.core.manifest import load_artifact

    bases = {(r["model"], r["runtime"]): r for r in rows
             if (r["recipe"], r["precision"], r["status"]) == ("fp32", "fp32", "ok")}
    for r in rows:
        base = bases.get((r["model"], r["runtime"]))
        if r["status"] != "ok" or base is None or base is r:
            continue
        a = load_artifact(run_dir / "artifacts" / r["artifact"])
        b = load_artifact(run_dir / "artifacts" / base["artifact"])
        x = real_samples(b.manifest.preprocess, SAMPLES)
        with _runner(b, r["runtime"], "fp32", threads) as rb, _runner(a, r["runtime"], r["precision"], threads) as ra:
            fb = [{rb.inputs[0].name: x[i:i + 1]} for i in range(len(x))]
            fa = [{ra.inputs[0].name: x[i:i + 1]} for i in range(len(x))]
            # one sample list, two feeds: the windows pick the same indices for both (same seed per round)
            res = paired_windows(lambda i, rb=rb, fb=fb: rb.infer(fb[i]), lambda i, ra=ra, fa=fa: ra.infer(fa[i]),
                                 list(range(len(x))),
                                 rounds=rounds, window_s=window_s)
        r["paired"] = res.to_json()
        print(f"paired {r['key']}: median ratio {res.median_ratio:.3f} over {rounds} rounds", flush=True)
