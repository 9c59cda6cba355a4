"""Summaries and the Markdown of benchmarks/families.py (numpy only; no runtime imported here)."""

from __future__ import annotations

import statistics
from typing import Any

#: (runtime, precision, graph); "eager" is torch's own module, the others are exported ONNX graphs
CELLS: tuple[tuple[str, str, str], ...] = (
    ("torch", "fp32", "eager"),
    ("onnxruntime", "fp32", "static"),
    ("onnxruntime", "fp32", "dynamic"),
    ("openvino", "f32", "static"),
    ("openvino", "f32", "dynamic"),
    ("openvino", "bf16", "static"),
    ("openvino", "bf16", "dynamic"),
)
BASELINE = "onnxruntime/fp32/static"
_RT = {"torch": "torch", "onnxruntime": "ORT", "openvino": "OV"}
_GRAPH = {"eager": "eager", "static": "static b1", "dynamic": "dyn batch"}


def cell_key(cell: tuple[str, str, str]) -> str:
    return "/".join(cell)


def cell_label(key: str) -> str:
    rt, prec, graph = key.split("/")
    return f"{_RT[rt]} {prec} {_GRAPH[graph]}"


def _ok(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if "error" not in r]


def _cell_summary(rows: list[dict[str, Any]], base_rows: list[dict[str, Any]]) -> dict[str, Any]:
    ok = _ok(rows)
    errors = sorted({r["error"] for r in rows if "error" in r})
    if not ok:
        return {"rounds_ok": 0, "errors": errors}
    p50s = [r["p50"] for r in ok]
    base = {r["round"]: r["p50"] for r in _ok(base_rows)}
    ratios = [base[r["round"]] / r["p50"] for r in ok if r["round"] in base and r["p50"] > 0]
    med = statistics.median(p50s)
    info = ok[0]["info"]
    details = info.get("details", {})
    return {
        "rounds_ok": len(ok),
        "errors": errors,
        "p50_median": med,
        "p50_min": min(p50s),
        "p50_max": max(p50s),
        "p50_spread_pct": 100 * (max(p50s) - min(p50s)) / med if med > 0 else None,
        "p50_rounds": p50s,
        "p90_median": statistics.median(r["p90"] for r in ok),
        "cv_median": statistics.median(r["cv"] for r in ok),
        "cold_ms_median": statistics.median(r["cold_ms"] for r in ok),
        "unstable_rounds": sum(bool(r["unstable"]) for r in ok),
        "cut_short_rounds": sum(bool(r["cut_short"]) for r in ok),
        "n_median": statistics.median(r["n"] for r in ok),
        "speedup_vs_baseline": statistics.median(ratios) if ratios else None,
        "speedup_vs_baseline_rounds": ratios,
        "precision_reported": info.get("precision"),
        "precision_note": details.get("precision_note"),
        "threads_reported": info.get("threads"),
        "runtime_version": info.get("runtime_version"),
    }


def _fastest(cells: dict[str, dict[str, Any]], rounds: int) -> dict[str, Any] | None:
    ranked = sorted((s["p50_median"], k) for k, s in cells.items() if s.get("rounds_ok"))
    if not ranked:
        return None
    best_p50, best = ranked[0]
    out: dict[str, Any] = {"cell": best, "p50_median": best_p50}
    if len(ranked) > 1:
        second_p50, second = ranked[1]
        out.update(runner_up=second, runner_up_p50_median=second_p50, lead=second_p50 / best_p50)
        # "clear" only when every round of the winner beat every round of the runner-up; with fewer than
        # 3 rounds two equal cells separate by chance too often (1 in 3 for 2 rounds) to say anything
        out["clear"] = (cells[best]["p50_max"] < cells[second]["p50_min"]) if rounds >= 3 else None
    torch = cells.get("torch/fp32/eager", {})
    if torch.get("rounds_ok"):
        out["vs_torch_eager"] = torch["p50_median"] / best_p50
    return out


def summarize(raw: dict[str, dict[str, list[dict[str, Any]]]], cells: list[tuple[str, str, str]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for model, by_cell in raw.items():
        base_rows = by_cell.get(BASELINE, [])
        s = {cell_key(c): _cell_summary(by_cell[cell_key(c)], base_rows) for c in cells}
        rounds = max((len(v) for v in by_cell.values()), default=0)
        out[model] = {"cells": s, "fastest": _fastest(s, rounds)}
    return out


# -- Markdown ------------------------------------------------------------------------------


def _f(x: float | None, nd: int = 2) -> str:
    return "n/a" if x is None else f"{x:.{nd}f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]


def _p50_cell(s: dict[str, Any], rounds: int) -> str:
    if not s.get("rounds_ok"):
        return "failed"
    txt = f"{s['p50_median']:.2f}"
    if rounds > 1:
        txt += f" [{s['p50_min']:.2f}–{s['p50_max']:.2f}]"
    if s["unstable_rounds"]:
        txt += " †"
    if s["cut_short_rounds"]:
        txt += " ‡"
    return txt


def _bf16_line(bf16: dict[str, Any] | None, summary: dict[str, Any]) -> str:
    notes = {s.get("precision_note") for m in summary.values() for k, s in m["cells"].items()
             if "/bf16/" in k and s.get("rounds_ok")}
    notes.discard(None)
    if bf16 is None:
        return ""
    caps = ", ".join(bf16.get("ov_capabilities") or []) or "not reported"
    flags = ", ".join(bf16.get("cpu_bf16_flags") or []) or "none"
    state = "NATIVE" if bf16.get("native") else "EMULATED"
    line = (f"**OpenVINO bf16 on this CPU is {state}.** OpenVINO's CPU OPTIMIZATION_CAPABILITIES: {caps}; "
            f"CPU bf16 flags (avx512_bf16, amx_bf16, amx_tile): {flags}.")
    if not bf16.get("native"):
        line += (" The bf16 columns therefore measure OpenVINO's emulation/conversion path, not what bf16 "
                 "does on a CPU with AMX or AVX512-BF16 (Sapphire Rapids and later), where it is usually faster "
                 "than f32; do not read them as bf16's speed.")
    if notes:
        line += f" The runner recorded: \"{sorted(notes)[0]}\"."
    return line


def render_latency(payload: dict[str, Any]) -> list[str]:
    st = payload["settings"]
    summary = payload["latency"]["summary"]
    models = payload.get("models", {})
    keys = st["cells"]
    rounds = int(st["rounds"])
    md = [
        "## Latency, batch 1, single stream\n",
        f"Every cell: {st['threads']} threads in the runtime (torch `set_num_threads`, ORT intra-op, OpenVINO "
        f"INFERENCE_NUM_THREADS; OpenVINO latency hint, 1 stream), {st['warmup']:g} s time-based warm-up, then "
        f"inferences until BOTH {st['seconds']:g} s and {st['min_iterations']} inferences (capped at "
        f"{st['max_seconds']:g} s), cycling through {st['n_samples']} real test-split images in a seeded order. "
        f"{rounds} round(s), interleaved: each round visits every model (reversed order on odd rounds) and each "
        "model's cells in a seeded shuffled order. Static b1 = the batch-1 graph; dyn batch = the graph exported "
        "with a dynamic batch axis, also run at batch 1 (OpenVINO compiles it as dynamic, no reshape).\n",
    ]
    rows = []
    for m, info in models.items():
        rows.append([m, info["family"], f"{info['params_graph'] / 1e6:.2f}", f"{info['params_published'] / 1e6:.2f}",
                     f"{info['macs_graph'] / 1e9:.3f}" + ("" if info.get("macs_complete", True) else " (partial)"),
                     f"{info['macs_published'] / 1e9:.3f}", f"{(info['onnx_bytes'] or 0) / 2**20:.1f}",
                     "x".join(str(v) for v in info["input_size"])])
    md += ["### Size\n"]
    md += _table(["model", "family", "params M (graph)", "params M (published)", "GMACs (graph)",
                  "GMACs (published)", "ONNX MiB", "input"], rows)
    md.append("\nGraph params are counted in the exported ONNX (BatchNorm folded into the convolutions, so a few "
              "thousand fewer than torch counts); published numbers are from timm/torchvision (see the JSON).\n")
    head = ["model", *[cell_label(k) for k in keys]]
    spread = " [min–max of the round p50s]" if rounds > 1 else ""
    md += [f"### p50 (ms): median of {rounds} round(s){spread}\n"]
    md += _table(head, [[m, *[_p50_cell(summary[m]["cells"][k], rounds) for k in keys]] for m in summary])
    md.append("\n† CV above the threshold in at least one round; "
              "‡ cut short at --max-seconds in at least one round.\n")
    md += [f"### p90 (ms): median of {rounds} round(s)\n"]
    md += _table(head, [[m, *[_f(summary[m]["cells"][k].get("p90_median")) for k in keys]] for m in summary])
    md += [f"\n### Speed relative to {cell_label(BASELINE)} (x; >1 is faster; per-round ratio, median over rounds)\n"]
    md += _table(head, [[m, *[_f(summary[m]["cells"][k].get("speedup_vs_baseline")) for k in keys]] for m in summary])
    md += ["\n### Fastest configuration per model on this CPU\n"]
    frows = []
    for m, s in summary.items():
        f = s["fastest"]
        if f is None:
            frows.append([m, "all cells failed", "", "", "", "", "", ""])
            continue
        clear = {True: "yes", False: "no: ranges overlap", None: "unknown (< 3 rounds)"}[f.get("clear")]
        frows.append([m, cell_label(f["cell"]), _f(f["p50_median"]),
                      cell_label(f["runner_up"]) if f.get("runner_up") else "", _f(f.get("runner_up_p50_median")),
                      _f(f.get("lead")), clear, _f(f.get("vs_torch_eager"))])
    md += _table(["model", "fastest", "p50 ms", "runner-up", "runner-up p50 ms", "lead (x)",
                  "lead beyond the round spread?", "x faster than torch eager"], frows)
    md.append("")
    flags = []
    for m, s in summary.items():
        for k, c in s["cells"].items():
            for e in c.get("errors", []):
                flags.append(f"- {m} {cell_label(k)} failed: {e}")
            if c.get("rounds_ok") and c.get("p50_spread_pct") is not None and c["p50_spread_pct"] > 20:
                flags.append(f"- {m} {cell_label(k)}: p50 varied {c['p50_spread_pct']:.0f}% across rounds")
    for m, e in (payload.get("prepare_errors") or {}).items():
        flags.append(f"- {m} left out: export or loading failed: {e}")
    if flags:
        md += ["### Flags\n", *flags, ""]
    loads = payload.get("rounds", [])
    if loads:
        md.append("Load average (1 min) at the start of each round: "
                  + ", ".join(f"{r['loadavg_start'][0]:.1f}" for r in loads)
                  + f" on {payload.get('cpu_count', '?')} logical CPUs; a load above the CPU count means other "
                  "work shared the cores and the numbers are pessimistic and noisy.\n")
        cpus = payload.get("cpu_count") or 0
        if cpus and any(r["loadavg_start"][0] > cpus for r in loads):
            md.append("**The machine was oversubscribed during this run: do not publish these numbers.** "
                      "torch eager suffers most: its OpenMP threads spin-wait at barriers, so with more runnable "
                      "threads than cores a 2-thread torch inference can take 10-20x longer (measured here under "
                      "load 12: mobilenetv3_small_100 33 ms with 1 thread, ~600 ms with 2, 51 ms with 2 and "
                      "OMP_WAIT_POLICY=PASSIVE).\n")
    return md


def render_markdown(payload: dict[str, Any]) -> str:
    st = payload["settings"]
    md = ["# Family comparison on this machine\n"]
    md.append(
        "**Two tables, two setups.** The latency table runs each model at its default ImageNet input size "
        "(224x224 for all default models) with **random-init weights** (efficientnet_lite0: its real ImageNet "
        "weights): latency does not depend on weight values. The accuracy table uses **the models trained on the "
        f"embedded animals data** at their training size ({st['train_size']}x{st['train_size']} px); its weights "
        "and input size differ from the latency table's, so its latency would differ too.\n"
    )
    if "latency" in payload:
        line = _bf16_line(payload.get("bf16"), payload["latency"]["summary"])
        if line:
            md.append(line + "\n")
        md += render_latency(payload)
    if "accuracy" in payload:
        from families_accuracy import render_accuracy

        md += render_accuracy(payload["accuracy"], st)
    else:
        md.append("**Accuracy** of models trained on the embedded data is not in this run (`--skip-accuracy`): see "
                  "`optimize.md`, whose FP32 rows give the test-split top-1 of six of the seven families trained from "
                  "scratch, on ONNX Runtime fp32 and OpenVINO f32/bf16, with paired comparisons.\n")
    md.append("This is a shared 2-core VM: prefer medians and ratios, and read the spread before the third digit. "
              "Per-round values, runner settings read back from each runtime, and hashes are in the JSON file.\n")
    return "\n".join(md)
