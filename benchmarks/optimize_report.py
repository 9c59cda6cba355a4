"""The Markdown of ``benchmarks/optimize.py``: the bars with their verdicts and the per-model tables.

Kept apart from the runner/analysis so that each file stays readable; the bars and their rules are
``benchmarks/bars.py``.
"""

from __future__ import annotations

from typing import Any

from bars import INT8_BAR_PTS, INT8_DECLARED, PRUNE_BAR_PTS, bars, speed_text


def _f(v: Any, fmt: str = "{:.2f}") -> str:
    return "" if v is None else fmt.format(v)


def _drop(r: dict[str, Any]) -> str:
    if r["reference"] == r["key"]:
        return "reference"
    if r["drop_pts"] is None:
        return ""
    lo, hi = r["ci_pts"]
    return f"{r['drop_pts']:+.2f} [{lo:+.2f}, {hi:+.2f}]"


def _control(r: dict[str, Any]) -> str:
    c = r.get("vs_control")
    return "" if not c else f"{c['drop_pts']:+.2f} [{c['ci_pts'][0]:+.2f}, {c['ci_pts'][1]:+.2f}]"


def _declared_text(a: dict[str, Any] | None) -> str:
    if not a or a["upper_pts"] is None:
        return ""
    return (f"{a['artifact']}: upper 95 % bound {a['upper_pts']:+.2f} pts (point {a['point_pts']:+.2f}), worst "
            f"of {len(a['runtimes'])} runtime(s): {a['worst']}")


def _speed_cell(r: dict[str, Any]) -> str:
    if r.get("speed") is None:
        return "base" if r["recipe"] == "fp32" and r["precision"] == "fp32" else ""
    return speed_text(r["speed"])


INTRO = {
    "optimize": (
        "# Optimization: FP32 vs BF16 vs INT8 vs pruned, on models trained on the embedded data\n",
        "Every model was trained from scratch (seeded) on the embedded animals training split by the pipelines in "
        "`benchmarks/pipelines/` (five families at 48x48 px, 3 epochs; CoAtNet-0 at 64x64 px on 3,000 images), then "
        "quantized and pruned. The pruning rows here start from those 3-epoch parents, which were still improving "
        "(a pruned child with 2 more epochs can beat its parent): the pruning bar is judged in `prune.md`, on "
        "parents trained to the end of their schedule. "),
    "prune": (
        "# Pruning: MobileNetV3-large and EfficientNet-B0, parents trained to the end of their schedule\n",
        "Both models were trained from scratch (seeded) for 8 epochs on the embedded animals training split at "
        "48x48 px by `benchmarks/pipelines/prune.toml` (warm-up then a cosine schedule run to its end), pruned "
        "with Torch-Pruning at 20 % and 30 % (channels rounded to 16) and recovered by 4 epochs distilled from "
        "the parent. Those 4 epochs are training the parent never had, so each pruned row is also compared with "
        "the same-recovery control (`benchmarks/prune_control.py`: the parent put through the identical 4 "
        "distilled epochs with no pruning, evaluated on the same images with ONNX Runtime); the bar is judged on "
        "the larger of the two drops. "),
    "presets": (
        "# INT8 presets: what keeping squeeze-excite, the classifier or depthwise convolutions in float does\n",
        "MobileNetV3-large (SE, hard-swish) and EfficientNet-B0 (SE, SiLU), trained from scratch (seeded) for 8 "
        "epochs at 48x48 px (the parents of `prune.md`), quantized by `benchmarks/pipelines/presets.toml` with no "
        "accuracy control under three presets (docs/quantization-presets.md): `default` (everything quantizable "
        "in INT8), `auto` (the family preset: SE blocks and the classifier in float; NNCF MIXED and full bias "
        "correction) and `depthwise-float`, each with ONNX Runtime Q/DQ (U8S8) and NNCF for OpenVINO, from the "
        "same 300 calibration images. "),
}
COMMON = (
    "Every artifact was benched by `edgekit run` on this CPU (2 threads, batch 1, real held-out samples, "
    "time-based warm-up, at least 3 s and 200 inferences per latency window). "
    "Accuracy is on all 2,000 images of the embedded test split, which nothing trained on or selected with "
    "(training used the 7,000-image train split; best epochs, pruning recovery and accuracy control's choices "
    "used the 1,000-image validation split); the drop is paired against the FP32 reference row (ONNX "
    "Runtime fp32), with a 95 % CI (Newcombe) and McNemar's exact p. "
    "'vs FP32' is the p50 speed-up against the FP32 artifact on the same runtime. A speed verdict (faster, "
    "slower, within noise) comes only from paired, interleaved rounds against that FP32 artifact (the 95 % "
    "interval of the median per-round ratio excludes 1, `benchmarks/bars.py`); a ratio of two rows measured "
    "one after another is shown as 'unpaired, no verdict' and supports no claim. The bars are judged on the "
    "upper end of the drop's 95 % interval (the point beside it is labelled), one verdict per artifact (its "
    "worst runtime), on the recipe declared for each bar, never the best of several rows (benchmarks/README.md).")
FP16_NOTE = (" FP16 is not in the table: neither runtime executes FP16 on this CPU (it is for Jetson and Intel "
             "GPUs).")


AC_VERDICTS = ("holds", "not resolved", "BROKEN", "refused", "not benched")


def accuracy_control_section(ac: list[dict[str, Any]]) -> list[str]:
    """How often an accuracy-controlled recipe's budget held on the test split, with every decision listed."""
    if not ac:
        return []
    n = len(ac)
    counts = {v: sum(a["verdict"] == v for a in ac) for v in AC_VERDICTS}
    out = ["## Accuracy control out of sample\n",
           "Each recipe with `max_drop` accepted a candidate only when the upper 95 % bound (one-sided) of its paired "
           "drop on the 1,000-image validation split was within the budget, and was then benched on the 2,000-image "
           "test split it never saw. 'holds': the upper end of the test drop's two-sided 95 % interval (a one-sided "
           "97.5 % bound, stricter than the one that accepted; worst runtime) is within the budget; 'not resolved': the point drop is within but the bound is past it (2,000 images cannot resolve a "
           "few tenths of a point); 'BROKEN': the point drop on test is past the budget; 'refused': the control "
           "accepted no candidate on validation (the step failed with exit 1; nothing benched).\n",
           f"**Out of {n} accuracy-controlled artifacts: the budget holds (upper bound) for {counts['holds']}, "
           f"the point drop is within it but not resolved for {counts['not resolved']}, BROKEN for "
           f"{counts['BROKEN']}, refused on validation for {counts['refused']}"
           + (f", not benched for {counts['not benched']}" if counts["not benched"] else "") + ".**\n",
           "| model | recipe | budget | validation: point [upper] (n) | accepted | test: point [95% CI] (n), worst "
           "runtime | runtimes | verdict |",
           "|---|---|---|---|---|---|---|---|"]
    for a in ac:
        val = ("" if a["validation_upper_pts"] is None else
               f"{a['validation_point_pts']:+.2f} [{a['validation_upper_pts']:+.2f}] ({a['validation_n']})")
        ci = a.get("test_ci_pts") or [None, None]
        test = ("" if a["test_point_pts"] is None or ci[0] is None else
                f"{a['test_point_pts']:+.2f} [{ci[0]:+.2f}, {ci[1]:+.2f}] ({a['test_n']}), {a['test_worst_runtime']}"
                + (" (the quantize step's own check; the step failed, nothing benched)"
                   if a.get("test_source") == "quantize step" else ""))
        verdict = a["verdict"] if a["verdict"] != "BROKEN" else "**BROKEN**"
        if a["verdict"] == "refused" and a.get("note"):  # the step's own message, up to its numbers (shown)
            verdict += f": {str(a['note']).split(': validation', 1)[0][:160]}"
        out.append(f"| {a['model']} | {a['recipe']} | {_f(a['budget_pts'])} | {val} | {a['accepted']} | {test} | "
                   f"{', '.join(a['runtimes'])} | {verdict} |")
    out.append("")
    return out


def markdown(rows: list[dict[str, Any]], per_model: dict[str, Any], runs: dict[str, Any], kind: str,
             ac: list[dict[str, Any]] | None = None) -> str:
    title, intro = INTRO[kind]
    has_int8 = any(r["precision"] == "int8" for r in rows)
    out = [title, intro + COMMON + (FP16_NOTE if has_int8 else "") + "\n"]
    out.append("## The bars\n")
    if kind == "presets":  # a comparison of presets: judging a bar here would pick the best of them
        out.append("None judged here: the presets are compared with each other, and the INT8 bar is judged in "
                   f"`optimize.md` on its declared recipe ({INT8_DECLARED}).")
    for line in (bars(rows, judge_prune=kind == "prune") if kind != "presets" else []):
        out.append(f"- {line}")
    out.append("")
    out += accuracy_control_section(ac or [])
    out.append("## Summary per model\n")
    out.append("The 'fastest within' columns pick among the rows on the reported images (upper bound within the "
               "budget): descriptive, not a bar.\n")
    out.append(f"| model | input | FP32 top-1 | declared INT8 ({INT8_DECLARED}) | fastest within {INT8_BAR_PTS} pt | "
               f"fastest within {PRUNE_BAR_PTS} pt |")
    out.append("|---|---|---|---|---|---|")
    for model, pm in per_model.items():
        ref = pm["reference"] or {}
        best = _declared_text(pm.get("declared_int8"))
        cells = []
        for budget in (str(INT8_BAR_PTS), str(PRUNE_BAR_PTS)):
            f = pm["fastest_within"].get(budget)
            cells.append("" if f is None else f"{f['artifact']} {f['runtime']} {f['executed'] or f['precision']}: "
                         f"{f['p50_ms']:.3f} ms" + (f" ({speed_text(f['speed'])})" if f.get("speed") else ""))
        shape = "x".join(str(d) for d in (ref.get("input_shape") or [])[-2:])
        out.append(f"| {model} | {shape} | {_f(ref.get('top1'), '{:.2%}')} | {best} | {cells[0]} | {cells[1]} |")
    for model in per_model:
        out.append(f"\n## {model}\n")
        c = next((r["vs_control"] for r in rows if r["model"] == model and r.get("vs_control")), None)
        if c is not None:
            out.append(f"Same-recovery control (the parent after the same {c['epochs']} distilled epochs, no "
                       f"pruning; ONNX Runtime fp32): top-1 {c['control_top1']:.2%}.\n")
        ctl = kind == "prune"  # the same-recovery control column
        out.append("| artifact | runtime | precision | top-1 | Δ pts vs FP32 [95% CI] | "
                   + ("Δ vs same-recovery control | " if ctl else "")
                   + "disagree | McNemar p | p50 ms | p90 ms | vs FP32 | size MB | params | MMACs |")
        out.append("|---" * (14 if ctl else 13) + "|")
        for r in (r for r in rows if r["model"] == model):
            prec = r["precision"] if r["executed"] in (None, r["precision"]) else f"{r['precision']} (ran {r['executed']})"
            if r["status"] != "ok":
                out.append(f"| {r['artifact']} | {r['runtime']} | {prec} | {r['status']}: {(r['reason'] or '')[:90]} "
                           + "| " * (10 if ctl else 9) + "|")
                continue
            out.append(
                f"| {r['artifact']} | {r['runtime']} | {prec} | {_f(r['top1'], '{:.2%}')} | {_drop(r)} | "
                + (f"{_control(r)} | " if ctl else "")
                + f"{_f(r['disagreements'], '{}')} | {_f(r['mcnemar_p'], '{:.3g}')} | {_f(r['p50_ms'], '{:.3f}')} | "
                f"{_f(r['p90_ms'], '{:.3f}')}{' (unstable)' if r['unstable'] else ''} | {_speed_cell(r)} | "
                f"{_f(r['size_mb'])} | {_f(r['params'], '{:,}')} | {_f(r['macs'] and r['macs'] / 1e6, '{:.1f}')} |")
    out.append("\n## Runs\n")
    for name, info in runs.items():
        out.append(f"- `{name}`: {info}")
    return "\n".join(out) + "\n"

