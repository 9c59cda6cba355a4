"""The Markdown of ``benchmarks/optimize.py``: the bars with their verdicts and the per-model tables.

Kept apart from the runner/analysis so that each file stays readable; the bar thresholds live here because
the verdict text is where they are applied.
"""

from __future__ import annotations

from typing import Any

INT8_BAR_PTS = 0.5
PRUNE_BAR_PTS = 1.0
PRUNE_BAR_GAIN = 0.15
PRUNE_BAR_MODELS = ("mobilenetv3_large_100", "efficientnet_b0")


def _f(v: Any, fmt: str = "{:.2f}") -> str:
    return "" if v is None else fmt.format(v)


def _drop(r: dict[str, Any]) -> str:
    if r["reference"] == r["key"]:
        return "reference"
    if r["drop_pts"] is None:
        return ""
    lo, hi = r["ci_pts"]
    return f"{r['drop_pts']:+.2f} [{lo:+.2f}, {hi:+.2f}]"


def _unseen(r: dict[str, Any]) -> str:
    u = r.get("ac_unseen")
    return "" if not u else f"{u['drop_pts']:+.2f} [{u['ci_pts'][0]:+.2f}, {u['ci_pts'][1]:+.2f}] (n={u['n']})"


def _control(r: dict[str, Any]) -> str:
    c = r.get("vs_control")
    return "" if not c else f"{c['drop_pts']:+.2f} [{c['ci_pts'][0]:+.2f}, {c['ci_pts'][1]:+.2f}]"


def _drop_text(r: dict[str, Any]) -> str:
    """The drop a bar is judged on: on the images accuracy control never saw, where it chose on some."""
    u = r.get("ac_unseen")
    if u:
        return (f"{u['drop_pts']:+.2f} pts, 95% CI [{u['ci_pts'][0]:+.2f}, {u['ci_pts'][1]:+.2f}] on the {u['n']} "
                f"images accuracy control did not see ({r['drop_pts']:+.2f} on all)")
    return f"{r['drop_pts']:+.2f} pts, 95% CI [{r['ci_pts'][0]:+.2f}, {r['ci_pts'][1]:+.2f}]"


def _speed_cell(r: dict[str, Any]) -> str:
    if r.get("speedup_vs_fp32") is None:
        return "base" if r["recipe"] == "fp32" and r["precision"] == "fp32" else ""
    return f"{r['speedup_vs_fp32']:.2f}x {r['speed_verdict']}"


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
    "Accuracy is on all 2,000 held-out images; the drop is paired against the FP32 reference row (ONNX "
    "Runtime fp32), with a 95 % CI (Newcombe) and McNemar's exact p. "
    "'vs FP32' is the p50 speed-up against the FP32 artifact on the same runtime; it says faster or slower "
    "only when the two p50 confidence intervals do not overlap. Rows are measured one after another, not "
    "interleaved.")
AC_NOTE = (
    " The INT8 recipes with `max_drop = 0.5` chose their float fallbacks on 1,000 of those 2,000 images (their "
    "manifests record which); a drop measured on images a choice was fitted to is optimistic, so those rows also "
    "show the paired drop on the other 1,000 ('Δ unseen by AC'), and the INT8 bar and the 'fastest within' "
    "columns use that one.")
FP16_NOTE = (" FP16 is not in the table: neither runtime executes FP16 on this CPU (it is for Jetson and Intel "
             "GPUs).")


def markdown(rows: list[dict[str, Any]], per_model: dict[str, Any], runs: dict[str, Any], kind: str) -> str:
    title, intro = INTRO[kind]
    has_int8 = any(r["precision"] == "int8" for r in rows)
    has_ac = any(r.get("ac_unseen") for r in rows)
    out = [title, intro + COMMON + (AC_NOTE if has_ac else "") + (FP16_NOTE if has_int8 else "") + "\n"]
    out.append("## The bars\n")
    for line in bars(per_model, judge_prune=kind == "prune"):
        out.append(f"- {line}")
    out.append("")
    out.append("## Summary per model\n")
    out.append("| model | input | FP32 top-1 | best INT8 (drop, CI) | fastest within 0.5 pt | fastest within 1 pt |")
    out.append("|---|---|---|---|---|---|")
    for model, pm in per_model.items():
        ref = pm["reference"] or {}
        bi = pm["best_int8"]
        best = f"{bi['artifact']} {bi['runtime']}: {_drop_text(bi)}" if bi else ""
        cells = []
        for budget in (str(INT8_BAR_PTS), str(PRUNE_BAR_PTS)):
            f = pm["fastest_within"].get(budget)
            cells.append("" if f is None else f"{f['artifact']} {f['runtime']} {f['executed'] or f['precision']}: "
                         f"{f['p50_ms']:.3f} ms" + (f" ({f['speedup_vs_fp32']:.2f}x, {f['speed_verdict']})"
                                                   if f.get("speedup_vs_fp32") else ""))
        shape = "x".join(str(d) for d in (ref.get("input_shape") or [])[-2:])
        out.append(f"| {model} | {shape} | {_f(ref.get('top1'), '{:.2%}')} | {best} | {cells[0]} | {cells[1]} |")
    for model in per_model:
        out.append(f"\n## {model}\n")
        c = next((r["vs_control"] for r in rows if r["model"] == model and r.get("vs_control")), None)
        if c is not None:
            out.append(f"Same-recovery control (the parent after the same {c['epochs']} distilled epochs, no "
                       f"pruning; ONNX Runtime fp32): top-1 {c['control_top1']:.2%}.\n")
        extra_head = "Δ vs same-recovery control" if kind == "prune" else "Δ unseen by AC"
        out.append(f"| artifact | runtime | precision | top-1 | Δ pts vs FP32 [95% CI] | {extra_head} | disagree | "
                   "McNemar p | p50 ms | p90 ms | vs FP32 | size MB | params | MMACs |")
        out.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in (r for r in rows if r["model"] == model):
            prec = r["precision"] if r["executed"] in (None, r["precision"]) else f"{r['precision']} (ran {r['executed']})"
            if r["status"] != "ok":
                out.append(f"| {r['artifact']} | {r['runtime']} | {prec} | {r['status']}: {(r['reason'] or '')[:90]} "
                           "| | | | | | | | | | |")
                continue
            out.append(
                f"| {r['artifact']} | {r['runtime']} | {prec} | {_f(r['top1'], '{:.2%}')} | {_drop(r)} | {_unseen(r) or _control(r)} | "
                f"{_f(r['disagreements'], '{}')} | {_f(r['mcnemar_p'], '{:.3g}')} | {_f(r['p50_ms'], '{:.3f}')} | "
                f"{_f(r['p90_ms'], '{:.3f}')}{' (unstable)' if r['unstable'] else ''} | {_speed_cell(r)} | "
                f"{_f(r['size_mb'])} | {_f(r['params'], '{:,}')} | {_f(r['macs'] and r['macs'] / 1e6, '{:.1f}')} |")
    out.append("\n## Runs\n")
    for name, info in runs.items():
        out.append(f"- `{name}`: {info}")
    return "\n".join(out) + "\n"


def bars(per_model: dict[str, Any], *, judge_prune: bool = True) -> list[str]:
    """The issue's bars with their verdicts; ``judge_prune=False`` lists the pruned rows without a verdict
    (their parents were not trained to the end of their schedule)."""
    lines = []
    has_int8 = any(pm["int8_rows"] for pm in per_model.values())
    for model, pm in per_model.items():
        bi, rows = pm["best_int8"], pm["int8_rows"]
        if not has_int8:
            continue
        if bi is None:
            lines.append(f"INT8 drop <= {INT8_BAR_PTS} pt, {model}: NOT MET (no INT8 row was measured)")
        else:
            ok = [r for r in rows if r["honest_drop_pts"] <= INT8_BAR_PTS]
            each = "; ".join(f"{r['recipe']} on {r['runtime']} {r['honest_drop_pts']:+.2f}"
                             + (" (unseen by AC)" if r.get("ac_unseen") else "") for r in rows)
            lines.append(f"INT8 drop <= {INT8_BAR_PTS} pt, {model}: {'met' if ok else 'NOT MET'} by {len(ok)} of "
                         f"{len(rows)} INT8 rows (best {bi['artifact']} on {bi['runtime']}: {_drop_text(bi)}; "
                         f"all: {each})")
        v = pm["int8_speed"]
        lines.append(f"INT8 never called faster where it measured slower, {model}: "
                     f"{'met' if pm['int8_never_called_faster_when_slower'] else 'NOT MET'} (against FP32 on the same "
                     f"runtime, called faster only when the p50 CIs separate: {v.get('faster', 0)} faster, "
                     f"{v.get('slower', 0)} slower, {v.get('within noise', 0)} within noise)")
    for model in PRUNE_BAR_MODELS:
        pm = per_model.get(model)
        if pm is None or not pm["pruned"]:
            continue
        found = []
        for ratio, prs in pm["pruned"].items():
            for p in prs:
                if p["drop_pts"] is None or p["speedup_vs_fp32"] is None:
                    continue
                gain = 1 - 1 / p["speedup_vs_fp32"]
                # judged on the larger of the drops against the parent and against the same-recovery control
                drop = max(p["drop_pts"], p["vs_control"]["drop_pts"] if p.get("vs_control") else -1e9)
                meets = drop <= PRUNE_BAR_PTS and gain >= PRUNE_BAR_GAIN and p["speed_verdict"] == "faster"
                found.append((meets, ratio, p, gain))
        met = [f for f in found if f[0]]

        def ctrl(p: dict[str, Any]) -> str:
            c = p.get("vs_control")
            return "" if not c else (f", vs the same-recovery control {c['drop_pts']:+.2f} "
                                     f"[{c['ci_pts'][0]:+.2f}, {c['ci_pts'][1]:+.2f}]")

        each = "; ".join(f"{r} on {p['runtime']}: drop vs parent {p['drop_pts']:+.2f} [{p['ci_pts'][0]:+.2f}, "
                         f"{p['ci_pts'][1]:+.2f}]{ctrl(p)}, p50 {-g:+.0%} ({p['speed_verdict']})"
                         for _, r, p, g in found)
        if not judge_prune:
            lines.append(f"pruning, {model}: not judged here (3-epoch parent; the bar is judged in prune.md): "
                         f"{each or 'no row'}")
            continue
        lines.append(f"pruning <= {PRUNE_BAR_PTS} pt and >= {PRUNE_BAR_GAIN:.0%} faster, {model}: "
                     f"{'met at ' + ', '.join(sorted({f[1] for f in met})) if met else 'NOT MET'} ({each or 'no row'})")
    return lines
