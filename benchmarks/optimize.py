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
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

import optimize_paired  # noqa: E402
from bars import (  # noqa: E402
    INT8_BAR_PTS,
    INT8_DECLARED,
    PRUNE_BAR_PTS,
    ac_out_of_sample,
    bars,
    per_artifact,
    speed,
    upper_pts,
)
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

def _ac_outcomes(run_dir: Path) -> list[dict[str, Any]]:
    """Every accuracy-controlled quantize step of a run and what its control decided on the validation split.

    Read from each step's manifest (``extra.quantization.budget``): the budget, the confidence, the upper
    bound of the paired drop on the validation split and whether that accepted the candidate. A step whose
    check failed set its artifact aside as ``<path>.failed`` (read from there); one that left nothing is still
    listed, with its failure note. Which recipes asked for control comes from the pipeline (``max_drop``).
    The test-split numbers come from the bench rows (:func:`bars.ac_out_of_sample`).
    """
    run = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    asked = {r["name"]: (r.get("params") or {}).get("max_drop") for r in run["pipeline"].get("recipes", [])
             if r.get("kind") == "quantize"}
    out: list[dict[str, Any]] = []
    for s in run["steps"]:
        model, _, recipe = s["label"].split(" ", 1)[-1].partition("/")
        if s["kind"] != "quantize" or asked.get(recipe) is None:
            continue  # not a quantization with accuracy control
        path = Path(s["path"])
        man = next((d / "edgekit.json" for d in (path, path.with_name(path.name + ".failed"))
                    if (d / "edgekit.json").is_file()), None)
        q = (json.loads(man.read_text(encoding="utf-8")).get("extra") or {}).get("quantization") if man else None
        b = (q or {}).get("budget") or {}
        val, test = b.get("validation") or {}, b.get("test") or {}
        out.append({"model": model, "recipe": recipe, "artifact": f"{model}-{recipe}", "step": s["status"],
                    "note": s.get("note"), "method": (q or {}).get("method"), "for": (q or {}).get("for"),
                    "budget_pts": b.get("budget_pts", asked[recipe]), "confidence": b.get("confidence"),
                    "accepted": b.get("accepted"), "validation_n": val.get("n"),
                    "validation_point_pts": val.get("drop_pts"), "validation_upper_pts": b.get("validation_upper_pts"),
                    # the quantize step's own test check (a subset of the test split): used only where it failed the
                    # step, so that the bench never ran (breaks_on_test)
                    "step_test": {"n": test.get("n"), "drop_pts": test.get("drop_pts"), "ci_pts": test.get("ci_pts"),
                                  "runtime": ((q or {}).get("reference") or {}).get("runtime")} if test else None,
                    "breaks_on_test": b.get("breaks_on_test")})
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


def _rows(doc: dict[str, Any], control: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    arts = {a["name"]: a for a in doc["artifacts"]}
    control = control or {}
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
            "input_shape": art.get("input_shape"),
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
    j, m = rewrite_results(name, doc, markdown(rows, per_model, doc["runs"], kind, doc.get("accuracy_control")))
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
    outcomes: list[dict[str, Any]] = []
    runs: dict[str, Any] = {}
    for name in args.pipelines:
        res = RUNS / name / "results.json"
        if not res.is_file():
            raise SystemExit(f"no results for {name} at {res}: run without --report-only first")
        doc = json.loads(res.read_text(encoding="utf-8"))
        these = _rows(doc, _vs_control(doc, RUNS / name))
        outcomes += _ac_outcomes(RUNS / name)
        if args.paired_rounds:
            optimize_paired.measure(these, RUNS / name, threads=args.threads, rounds=args.paired_rounds)
        rows += these
        run = json.loads((RUNS / name / "run.json").read_text(encoding="utf-8"))
        failed = [s for s in run["steps"] if s["status"] in ("failed", "skipped")]
        ds = doc.get("dataset") or {}
        runs[name] = (f"results created {doc['created']}, {len(doc['results'])} rows, accuracy on "
                      f"{ds.get('eval_n')} images of {ds.get('source')} (splits {', '.join(ds.get('splits') or [])}), steps "
                      f"{sum(s['status'] == 'ran' for s in run['steps'])} ran / "
                      f"{sum(s['status'] == 'cached' for s in run['steps'])} cached"
                      + (f"; FAILED steps: {', '.join(s['label'] + ' (' + str(s['note']) + ')' for s in failed)}"
                         if failed else ""))
    per_model = analyse(rows)
    ac = ac_out_of_sample(outcomes, rows)
    kind = args.pipelines[0] if len(args.pipelines) == 1 and args.pipelines[0] in INTRO else "optimize"
    payload = {"pipelines": {n: (HERE / "pipelines" / f"{n}.toml").read_text(encoding="utf-8") for n in args.pipelines},
               "runs": runs, "bars": bars(rows, judge_prune=kind == "prune") if kind != "presets" else [], "per_model": per_model,
               "accuracy_control": ac, "rows": rows}
    j, m = write_results(args.out_name, payload, markdown(rows, per_model, runs, kind, ac), script="optimize")
    print(f"wrote {j} and {m}")


if __name__ == "__main__":
    main()
