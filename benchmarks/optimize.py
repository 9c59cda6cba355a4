"""The optimization benchmark: FP32 vs BF16 vs INT8 (ONNX Runtime, NNCF-OpenVINO, NNCF-ONNX) vs pruned.

Runs the pipelines in ``benchmarks/pipelines/`` with ``edgekit run`` (six families trained from scratch on the
embedded animals dataset, each quantized three ways and pruned at two ratios with distilled recovery, every
artifact benched on this CPU with ONNX Runtime and OpenVINO on the whole held-out split), then turns their
``results.json`` into ``results/optimize.md`` and ``results/optimize.json``:

* per model, every artifact x runtime x precision: top-1, the paired drop against the FP32 reference with its
  95 % CI, the disagreement count and McNemar p, latency p50/p90, the speed against the FP32 artifact on the
  same runtime (called faster or slower only when the p50 confidence intervals do not overlap), size,
  params and MACs;
* the bars of the optimization issue, each with its measured verdict.

    python benchmarks/optimize.py                 # run (steps cached), then write the tables
    python benchmarks/optimize.py --report-only   # tables from the last runs

The steps are cached in ``~/.cache/edgekit/bench-steps`` (training takes most of the time); the bench always
runs, so run it on a quiet machine. The run directories go to ``~/.cache/edgekit/bench-runs``.
"""

from __future__ import annotations

import argparse
import functools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

import optimize_paired  # noqa: E402
from bars import INT8_BAR_PTS, INT8_DECLARED, PRUNE_BAR_PTS, bars, per_artifact, speed, upper_pts  # noqa: E402
from common import rewrite_results, write_results  # noqa: E402
from optimize_report import INTRO, markdown  # noqa: E402

HERE = Path(__file__).parent
PIPELINES = ("optimize", "optimize-coatnet")
#: every pipeline this script can run and report; `prune` and `presets` are reported on their own
#: (--pipelines prune --out-name prune, --pipelines presets --out-name presets)
ALL_PIPELINES = (*PIPELINES, "prune", "presets")
STEPS = Path.home() / ".cache" / "edgekit" / "bench-steps"
RUNS = Path.home() / ".cache" / "edgekit" / "bench-runs"


def run_pipelines(names: list[str], threads: int | None) -> None:
    exe = Path(sys.executable).with_name("edgekit")
    for name in names:
        cmd = [str(exe), "run", str(HERE / "pipelines" / f"{name}.toml"), "-o", str(RUNS / name),
               "--cache-dir", str(STEPS), "--no-history"]
        if threads:
            cmd += ["--threads", str(threads)]
        print("+", " ".join(cmd), flush=True)
        # exit 1 = a step's own check or the [gate] failed: the results are still written and reported here
        code = subprocess.call(cmd)
        if code not in (0, 1):
            raise SystemExit(f"edgekit run {name} exited {code}")


# -- reading the results -----------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _heldout() -> Any:
    from edgekit.data.embedded import load_embedded

    return load_embedded(split="heldout")


def _ac_unseen(doc: dict[str, Any], run_dir: Path, budget: float = INT8_BAR_PTS) -> dict[str, dict[str, Any]]:
    """Paired drops on the held-out images that accuracy control never saw, per result key.

    An INT8 recipe with ``max_drop`` picks its float fallbacks by measuring on ``eval_size`` held-out images
    (recorded in its manifest: count, seed, hash of the image list); the bench then reports on the whole
    held-out split, which includes them. The selection is recomputed here, checked against the recorded
    hash, and the drop is recomputed on the complement: the images the choice could not have been fitted to.
    """
    from edgekit.bench.paired import compare_paired
    from edgekit.data.sampling import evaluation_indices
    from edgekit.optimize.quant.data import _sha256_lines

    results = {r["key"]: r for r in doc["results"]}
    out: dict[str, dict[str, Any]] = {}
    for r in doc["results"]:
        if r["status"] != "ok" or not r.get("accuracy") or not r.get("reference") or r["reference"] == r["key"]:
            continue
        man = run_dir / "artifacts" / r["artifact"] / "edgekit.json"
        q = (json.loads(man.read_text(encoding="utf-8")).get("extra") or {}).get("quantization") if man.is_file() else None
        if not q or not q.get("accuracy_control") or not str(q["eval"].get("origin", "")).startswith("embedded held-out"):
            continue
        ds = _heldout()
        idx = evaluation_indices(ds.labels, int(q["eval"]["n"]), seed=int(q["eval"]["seed"]))
        if _sha256_lines([str(ds.source(int(i))) for i in idx]) != q["eval"]["sources_sha256"]:
            raise SystemExit(f"{r['artifact']}: cannot reproduce the accuracy-control image list (hash differs)")
        ref, acc = results[r["reference"]]["accuracy"], r["accuracy"]
        labels = np.asarray(acc["labels"])
        if len(labels) != len(ds) or not np.array_equal(labels, ds.labels):
            raise SystemExit(f"{r['key']}: the bench did not evaluate the whole held-out split in order")
        unseen = np.ones(len(ds), dtype=bool)
        unseen[idx] = False
        p = compare_paired(np.asarray(ref["predictions"])[unseen], np.asarray(acc["predictions"])[unseen],
                           labels[unseen], budget_pts=budget)
        out[r["key"]] = {"n": p.n, "drop_pts": p.drop_pts, "ci_pts": list(p.ci_pts), "disagreements": p.disagreements,
                         "ac_images": int(len(idx))}
    return out


def _vs_control(doc: dict[str, Any], run_dir: Path) -> dict[str, dict[str, Any]]:
    """Paired drops of the pruned rows against the same-recovery control (prune_control.py), per result key."""
    from edgekit.bench.paired import compare_paired

    path = run_dir / "control.json"
    if not path.is_file():
        return {}
    control = json.loads(path.read_text(encoding="utf-8"))["models"]
    out: dict[str, dict[str, Any]] = {}
    for r in doc["results"]:
        c = control.get(r["model"])
        if c is None or r["status"] != "ok" or not r.get("accuracy") or "-pruned-" not in r["artifact"]:
            continue
        labels = np.asarray(r["accuracy"]["labels"])
        if not np.array_equal(labels, np.asarray(c["labels"])):
            raise SystemExit(f"{r['key']}: the control was not evaluated on the same images in the same order")
        p = compare_paired(np.asarray(c["predictions"]), np.asarray(r["accuracy"]["predictions"]), labels,
                           budget_pts=PRUNE_BAR_PTS)
        out[r["key"]] = {"control_top1": p.reference_top1, "drop_pts": p.drop_pts, "ci_pts": list(p.ci_pts),
                         "disagreements": p.disagreements, "mcnemar_p": p.mcnemar_p, "epochs": c["epochs"]}
    return out


def _rows(doc: dict[str, Any], unseen: dict[str, dict[str, Any]] | None = None,
          control: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    arts = {a["name"]: a for a in doc["artifacts"]}
    unseen, control = unseen or {}, control or {}
    out = []
    for r in doc["results"]:
        m = r.get("metrics") or {}
        art = arts.get(r["artifact"], {})
        stats = (r.get("latency") or {}).get("stats") or {}
        recipe = r["artifact"][len(r["model"]) + 1:] if r["artifact"].startswith(r["model"] + "-") else r["artifact"]
        out.append({
            "model": r["model"], "recipe": recipe, "artifact": r["artifact"], "runtime": r["runtime"],
            "precision": r["precision"], "executed": r.get("executed_precision"), "status": r["status"],
            "reason": r.get("reason"), "reference": r.get("reference"), "key": r["key"],
            "top1": m.get("top1"), "n": m.get("accuracy_n"), "agreement": m.get("agreement"),
            "drop_pts": m.get("top1_drop_pts"), "ci_pts": [m.get("top1_drop_ci_low_pts"), m.get("top1_drop_ci_high_pts")],
            "disagreements": m.get("disagreements"), "mcnemar_p": m.get("mcnemar_p"),
            "p50_ms": m.get("latency_p50_ms"), "p90_ms": m.get("latency_p90_ms"), "p50_ci": stats.get("p50_ci"),
            "cv": m.get("latency_cv"), "unstable": m.get("latency_unstable"), "latency_n": m.get("latency_n"),
            "size_mb": m.get("model_size_mb"), "params": m.get("params"), "macs": m.get("macs"),
            "input_shape": art.get("input_shape"), "ac_unseen": unseen.get(r["key"]),
            "vs_control": control.get(r["key"]),
        })
    return out


def _fp32_base(rows: list[dict[str, Any]], model: str, runtime: str) -> dict[str, Any] | None:
    for r in rows:
        if (r["model"], r["recipe"], r["runtime"], r["precision"], r["status"]) == (model, "fp32", runtime, "fp32", "ok"):
            return r
    return None


def analyse(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Speed against FP32 per row (``benchmarks/bars.py``: a verdict only from paired rounds), and per model
    the reference, the declared INT8 artifact, one entry per INT8 / pruned artifact and the fastest rows
    whose upper bound is within each budget (descriptive: chosen on the reported images)."""
    models = list(dict.fromkeys(r["model"] for r in rows))
    per_model: dict[str, Any] = {}
    for model in models:
        mine = [r for r in rows if r["model"] == model and r["status"] == "ok"]
        for r in mine:
            base = _fp32_base(rows, model, r["runtime"])
            if base is None or base is r:
                r["speed"], r["speed_verdict"], r["speedup_vs_fp32"] = None, "", None
                continue
            r["fp32_p50_ms"] = base["p50_ms"]
            sp = speed(r)
            r["speed"], r["speed_verdict"] = sp, sp["verdict"]
            r["speedup_vs_fp32"] = 1 / sp["ratio"] if sp["ratio"] else None
        ref = next((r for r in mine if r["reference"] == r["key"]), None)
        fastest = {}
        for budget in (INT8_BAR_PTS, PRUNE_BAR_PTS):
            ok = [r for r in mine if r["p50_ms"] and (r is ref or (upper_pts(r) is not None
                                                                  and upper_pts(r) <= budget))]
            if ok:
                f = min(ok, key=lambda r: r["p50_ms"])
                fastest[str(budget)] = {**{k: f.get(k) for k in ("artifact", "runtime", "precision", "executed",
                                                                 "p50_ms", "drop_pts", "speed")},
                                        "upper_pts": None if f is ref else upper_pts(f)}
        int8 = per_artifact(mine, precision="int8")
        pruned = per_artifact([r for r in mine if r["recipe"].startswith("pruned-")], precision="fp32")
        per_model[model] = {
            "reference": ref and {k: ref[k] for k in ("artifact", "runtime", "top1", "n", "input_shape")},
            "declared_int8": next((a for a in int8.values() if a["recipe"] == INT8_DECLARED), None),
            "int8_artifacts": list(int8.values()), "pruned_artifacts": list(pruned.values()),
            "fastest_within": fastest}
    return per_model


def _rerender(name: str) -> None:
    """Re-analyse ``results/<name>.json``'s committed rows under the current bars; measurements, machine,
    date and provenance (its stale marker included) are kept."""
    path = HERE / "results" / f"{name}.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    rows = doc["rows"]
    per_model = analyse(rows)
    kind = name if name in INTRO else "optimize"
    doc.update({"bars": bars(rows, judge_prune=kind == "prune") if kind != "presets" else [], "per_model": per_model, "rows": rows})
    j, m = rewrite_results(name, doc, markdown(rows, per_model, doc["runs"], kind))
    print(f"rewrote {j} and {m} from the committed rows")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--report-only", action="store_true", help="only write the tables from the last runs")
    ap.add_argument("--pipelines", nargs="+", default=list(PIPELINES), choices=ALL_PIPELINES)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out-name", default="optimize")
    ap.add_argument("--from-committed", action="store_true",
                    help="re-analyse the committed results/<out-name>.json (no run directories needed)")
    ap.add_argument("--paired-rounds", type=int, default=optimize_paired.ROUNDS,
                    help="paired latency rounds per row against FP32 (0 skips: no speed verdicts)")
    args = ap.parse_args()
    if args.from_committed:
        _rerender(args.out_name)
        return
    if not args.report_only:
        run_pipelines(args.pipelines, args.threads)
    rows: list[dict[str, Any]] = []
    runs: dict[str, Any] = {}
    for name in args.pipelines:
        res = RUNS / name / "results.json"
        if not res.is_file():
            raise SystemExit(f"no results for {name} at {res}: run without --report-only first")
        doc = json.loads(res.read_text(encoding="utf-8"))
        these = _rows(doc, _ac_unseen(doc, RUNS / name), _vs_control(doc, RUNS / name))
        if args.paired_rounds:
            optimize_paired.measure(these, RUNS / name, threads=args.threads, rounds=args.paired_rounds)
        rows += these
        run = json.loads((RUNS / name / "run.json").read_text(encoding="utf-8"))
        failed = [s for s in run["steps"] if s["status"] in ("failed", "skipped")]
        runs[name] = (f"results created {doc['created']}, {len(doc['results'])} rows, steps "
                      f"{sum(s['status'] == 'ran' for s in run['steps'])} ran / "
                      f"{sum(s['status'] == 'cached' for s in run['steps'])} cached"
                      + (f"; FAILED steps: {', '.join(s['label'] + ' (' + str(s['note']) + ')' for s in failed)}"
                         if failed else ""))
    per_model = analyse(rows)
    kind = args.pipelines[0] if len(args.pipelines) == 1 and args.pipelines[0] in INTRO else "optimize"
    payload = {"pipelines": {n: (HERE / "pipelines" / f"{n}.toml").read_text(encoding="utf-8") for n in args.pipelines},
               "runs": runs, "bars": bars(rows, judge_prune=kind == "prune") if kind != "presets" else [], "per_model": per_model, "rows": rows}
    j, m = write_results(args.out_name, payload, markdown(rows, per_model, runs, kind), script="optimize")
    print(f"wrote {j} and {m}")


if __name__ == "__main__":
    main()
