"""Sections of the HTML report beside the results table and the plot: precision-vs-precision
comparisons, per-class top-1 deltas, artifacts, and the environment each file was measured in."""

from __future__ import annotations

import json
from pathlib import PurePath
from typing import Any

import numpy as np

from edgekit.bench.results import BenchResult
from edgekit.core.lineage import LineageStep
from edgekit.report.html_base import e, fmt, kv, num, pct, precision_text, pvalue, ranges, table, td
from edgekit.report.merge import Source, TargetGroup

_MB = 1024 * 1024
_PRECISION_ORDER = {"fp32": 0, "bf16": 1, "fp16": 2, "int8": 3}


def _tag(src: Source, group: TargetGroup) -> str:
    return f'<span class="tag" title="{e(src.name)}">{e(src.tag)}</span> ' if group.merged else ""


def _p50(r: BenchResult | None) -> float | None:
    return r.latency.stats.p50 if r is not None and r.latency is not None else None


def _best(r: BenchResult | None) -> float | None:
    best = r.throughput.best if r is not None and r.throughput is not None else None
    return best.samples_per_s if best is not None else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b is not None and b > 0 else None


def fp32_baseline(rows: list[BenchResult], r: BenchResult) -> BenchResult | None:
    """The fp32 row of the same model on the same runtime and device (preferring one that ran fp32)."""
    same = [b for b in rows if b.model == r.model and b.precision == "fp32" and b.runtime == r.runtime
            and b.device == r.device and b.ok and b.latency is not None]
    same.sort(key=lambda b: b.executed_precision != "fp32")
    return same[0] if same else None


def drop_cell(r: BenchResult) -> str:
    p = r.paired
    if p is not None:
        cls = "neg" if p.ci_pts[0] > 0 else ""
        return td(f"{p.drop_pts:+.2f} [{p.ci_pts[0]:+.2f}, {p.ci_pts[1]:+.2f}]", v=p.drop_pts, cls=cls,
                  title=f"{p.level:.0%} CI ({p.ci_method}); positive = worse than the FP32 reference")
    if r.accuracy is not None and r.reference == r.key:
        return td("reference", v="", cls="ref")
    return td("", v="")


def verdict_cell(r: BenchResult) -> str:
    p = r.paired
    if p is not None:
        return td(p.verdict, cls=p.verdict, title=p.reason)
    return td("reference", cls="ref") if r.accuracy is not None and r.reference == r.key else td("")


def comparisons(group: TargetGroup) -> str:
    """Per model: every precision side by side with its speed-up over fp32 on the same runtime and its
    paired accuracy drop against the FP32 reference."""
    blocks = []
    for src in group.sources:
        ok = [r for r in src.report.results if r.ok]
        for model in dict.fromkeys(r.model for r in ok):
            mine = [r for r in ok if r.model == model]
            ref = next((r for r in mine if r.reference == r.key), mine[0])  # the reference's runtime first
            rows = sorted(mine, key=lambda r: ((r.runtime, r.device) != (ref.runtime, ref.device), r.runtime,
                                               r.device, _PRECISION_ORDER.get(r.precision, 9), r.artifact))
            if len(rows) > 1:
                blocks.append(_model_block(group, src, model, rows))
    if not blocks:
        return '<p class="note">No model was measured in more than one configuration.</p>'
    return "\n".join(blocks)


def _model_block(group: TargetGroup, src: Source, model: str, rows: list[BenchResult]) -> str:
    heads = ["artifact", "runtime:device", "precision", ("p50 ms", "single-stream median latency, batch 1"),
             ("speed-up vs fp32", "fp32 p50 / this p50, same runtime and device"),
             ("best img/s", "offline throughput, best batch"), ("img/s vs fp32", "this / fp32, same runtime"),
             ("size MiB", "model files on disk"), ("size vs fp32", "this / the fp32 row's artifact"),
             "top-1", ("Δtop-1 pts [CI]", "paired vs the FP32 reference on the same images; positive = worse"),
             ("agreement", "top-1 agreement with the FP32 reference"),
             ("flips", "images whose top-1 differs from the reference / images"), "McNemar p", "verdict"]
    body, notes = [], []
    for r in rows:
        base = fp32_baseline(rows, r)
        art, base_art = src.artifact(r.artifact), src.artifact(base.artifact) if base else None
        speed = _ratio(_p50(base), _p50(r))
        tput = _ratio(_best(r), _best(base))
        size = art.size_bytes / _MB if art else None
        size_ratio = _ratio(art.size_bytes if art else None, base_art.size_bytes if base_art else None)
        base_tip = f"vs {base.key}" if base else "no fp32 row on this runtime and device"
        odd = "" if base is None or base.executed_precision in (None, "fp32") else "warn"
        if odd:
            base_tip += f" (which the runtime ran in {base.executed_precision})"
        a, p = r.accuracy, r.paired
        flips = f"{p.disagreements}/{p.n}" if p is not None else ""  # (a PairedComparison is falsy unless it passed)
        body.append(
            "<tr>" + td(r.artifact) + td(f"{r.runtime}:{r.device}") + td(precision_text(r.precision,
                                                                                        r.executed_precision))
            + num(_p50(r)) + num(speed, ".2f", title=base_tip, cls=odd) + num(_best(r), ".1f")
            + num(tput, ".2f", title=base_tip, cls=odd)
            + num(size, ".2f") + num(size_ratio, ".2f", title=base_tip)
            + td(pct(a.top1) if a else "", v=100 * a.top1 if a else "")
            + drop_cell(r) + td(pct(a.agreement) if a else "", v=100 * a.agreement if a and a.agreement is not None
                                 else "")
            + td(flips, v=p.disagreements if p is not None else "")
            + td(pvalue(p.mcnemar_p) if p is not None else "", v=p.mcnemar_p if p is not None else "")
            + verdict_cell(r) + "</tr>\n")
        if p is not None and p.verdict != "pass":
            notes.append(f"{r.key}: {p.reason}")
    ref = next((r.reference for r in rows if r.reference), None)
    head = (f'<h4>{_tag(src, group)}{e(model)}</h4><p class="meta">speed-ups against the fp32 row on the same '
            f"runtime and device; accuracy against the FP32 reference {e(ref or '(none)')}; ratios above 1 mean "
            "faster (speed) or larger (size)</p>")
    note = "".join(f"<li>{e(n)}</li>" for n in notes)
    return head + table(heads, body) + (f'<ul class="notes">{note}</ul>' if note else "")


def _class_names(src: Source, ref: BenchResult) -> list[str]:
    a = ref.accuracy
    if a is None:
        return []
    if a.class_names is not None and len(a.class_names) == a.num_classes:
        return list(a.class_names)
    ds = (src.report.dataset or {}).get("classes") or []
    if len(ds) == a.num_classes:
        return [str(c) for c in ds]
    return [f"class {i}" for i in range(a.num_classes)]


def per_class(group: TargetGroup, *, max_classes: int = 30) -> str:
    """Per FP32 reference: each class's top-1 of the reference and of every candidate compared with it."""
    blocks = []
    for src in group.sources:
        results = src.report.results
        for ref in (r for r in results if r.accuracy is not None and r.reference == r.key):
            cands = [r for r in results if r.reference == ref.key and r is not ref and r.accuracy is not None
                     and np.array_equal(r.accuracy.labels, ref.accuracy.labels)]  # type: ignore[union-attr]
            if cands:
                blocks.append(_class_block(group, src, ref, cands, max_classes))
    if not blocks:
        return '<p class="note">No candidate was evaluated against an FP32 reference on the same images.</p>'
    return "\n".join(blocks)


def _class_block(group: TargetGroup, src: Source, ref: BenchResult, cands: list[BenchResult], limit: int) -> str:
    ra = ref.accuracy
    cands = [c for c in cands if c.accuracy is not None]
    if ra is None or not cands:
        return ""
    names, support, ref_acc = _class_names(src, ref), ra.support, ra.per_class_accuracy
    rc = ra.correct
    present = [c for c in range(ra.num_classes) if support[c] > 0]
    cols: list[tuple[list[float | None], np.ndarray, np.ndarray]] = []
    for c in cands:
        ca = c.accuracy
        if ca is None:
            continue
        cc = ca.correct
        lost = np.bincount(ra.labels[rc & ~cc], minlength=ra.num_classes)
        gained = np.bincount(ra.labels[~rc & cc], minlength=ra.num_classes)
        cols.append((ca.per_class_accuracy, lost, gained))

    def worst(k: int) -> float:
        return min(((acc[k] or 0.0) - (ref_acc[k] or 0.0)) for acc, _, _ in cols)

    shown = sorted(present, key=lambda k: (worst(k), k))[:limit]
    heads: list[str | tuple[str, str]] = ["class", ("support", "images of this class in the eval set"),
                                          (f"{ref.precision} top-1", f"reference {ref.key}")]
    for c in cands:
        label = f"{c.precision}@{c.runtime}:{c.device}" + (f" {c.artifact}" if c.artifact != ref.artifact else "")
        heads += [(f"{label} top-1", c.key), (f"Δ pts (lost/gained) {c.precision}", c.key)]
    body = []
    for k in shown:
        cells = [td(names[k]), num(int(support[k]), "d"), td(pct(ref_acc[k], 1), v=100 * (ref_acc[k] or 0.0))]
        for acc, lost, gained in cols:
            d = 100 * ((acc[k] or 0.0) - (ref_acc[k] or 0.0))
            cells.append(td(pct(acc[k], 1), v=100 * (acc[k] or 0.0)))
            cls = "neg" if d < 0 else ("pos" if d > 0 else "")
            cells.append(td(f"{d:+.1f} (−{lost[k]}/+{gained[k]})", v=d, cls=cls))
        body.append("<tr>" + "".join(cells) + "</tr>\n")
    more = (f"; showing the {len(shown)} classes with the largest drops of {len(present)} classes with images"
            if len(shown) < len(present) else "")
    head = (f'<h4>{_tag(src, group)}{e(ref.model)}: reference {e(ref.key)}</h4><p class="meta">top-1 per class '
            f"(recall) on {ra.n} images; Δ = candidate − reference in points, lost = images the reference got right "
            f"and the candidate wrong, gained = the reverse{e(more)}</p>")
    return head + table(heads, body)


def _lineage(lineage: tuple[dict[str, Any], ...]) -> str:
    """'finetune of mobilenetv3_small_100 from imagenet weights [epochs 4] → quantize from mnv3s (onnx fp32)'."""
    steps = []
    for raw in lineage:
        step = LineageStep.from_json(raw)  # results keep the manifest's JSON, in whichever shape it was written
        text, parent, recipe = step.step, step.parent, step.recipe
        if parent is not None and parent.path:
            text += f" from {PurePath(parent.path).name}"
            if parent.format or parent.precision:
                text += f" ({parent.format or '?'} {parent.precision or '?'})"
        elif parent is not None and parent.model:
            origin = (parent.weights or {}).get("origin")
            text += f" of {parent.model}" + (f" from {origin} weights" if origin else "")
        keys = [f"{k} {recipe[k]}" for k in ("precision", "method", "preset", "epochs", "img_size")
                if recipe.get(k) is not None]
        steps.append(text + (f" [{', '.join(keys)}]" if keys else ""))
    return " → ".join(steps)


def artifacts(group: TargetGroup) -> str:
    heads = (["source"] if group.merged else []) + [
        "artifact", "model", "format", "precision (manifest)", "input", "size MiB", "params (M)",
        ("GMACs", "multiply-accumulates per image; ≥ when some ops were not counted"), "weights", "sha256", "lineage"]
    body = []
    for src in group.sources:
        for a in src.report.artifacts:
            prof = a.profile or {}
            macs = a.macs
            gmacs = (("" if prof.get("macs_complete", True) else "≥ ") + f"{macs / 1e9:.3f}") if macs else "-"
            cells = ([td(src.tag, title=src.name)] if group.merged else []) + [
                td(a.name, title=a.path), td(a.model), td(a.format), td(a.precision),
                td("×".join(str(d) for d in a.input_shape) + f" {a.input_dtype}", cls="nowrap"),
                num(a.size_bytes / _MB, ".2f"),
                num(a.params / 1e6 if a.params else None, ".3f", title=a.profile_error),
                td(gmacs, v=macs / 1e9 if macs else "", title=a.profile_error),
                td(a.weights_origin), td((a.model_sha256 or "-")[:12], title=a.model_sha256),
                td(_lineage(a.lineage), title=json.dumps(list(a.lineage), default=str)[:2000] if a.lineage else None)]
            body.append("<tr>" + "".join(cells) + "</tr>\n")
    return table(heads, body)


def _settings(src: Source) -> str:
    st, ds = src.report.settings, src.report.dataset or {}
    rep = src.report
    data = (f"{ds.get('source')}: {ds.get('n_images')} images, {len(ds.get('classes') or [])} classes; eval "
            f"{ds.get('eval_n')}, latency pool {ds.get('latency_pool_n')}") if ds else None
    return kv([
        ("file", src.name), ("created", rep.created), ("edgekit", rep.edgekit_version),
        ("command", " ".join(rep.command)), ("target source", rep.target.get("source")),
        ("tier", st.get("tier")), ("warm-up s", st.get("warmup_s")), ("min duration s", st.get("min_duration_s")),
        ("min iterations", st.get("min_iterations")), ("max duration s", st.get("max_duration_s")),
        ("batch sizes", st.get("batch_sizes")), ("threads asked", st.get("threads") or "target default"),
        ("seed", st.get("seed")), ("accuracy budget", st.get("accuracy_budget_pts") or st.get("accuracy_budget_rule")),
        ("CV threshold", st.get("cv_threshold")), ("timer", st.get("timer")), ("data", data),
    ])


def environment(group: TargetGroup) -> str:
    """Per file: settings, host, versions, threading, thermals, Jetson state, and what each runtime reported."""
    out = []
    for src in group.sources:
        env = src.report.environment
        title = f"{_tag(src, group)}{e(src.name)}" if group.merged else e(src.name)
        out.append(f'<h4>{title}</h4><div class="env"><div><h5>Run</h5>{_settings(src)}</div><div><h5>Host</h5>')
        if env is None:
            out.append('<p class="note">this file recorded no environment</p>')
        else:
            j = env.jetson
            out.append(kv([
                ("CPU", env.cpu_model), ("board", env.board), ("arch", env.arch),
                ("cores", f"{env.physical_cores or '?'} physical, {env.logical_cores or '?'} logical"),
                ("affinity", ranges(env.affinity) if env.affinity else None),
                ("CPU flags", " ".join(env.cpu_flags)), ("governor", ", ".join(env.governor or ())),
                ("memory", fmt(env.memory_total_mb / 1024, ".1f", suffix=" GiB") if env.memory_total_mb else None),
                ("cgroup cpu.max", env.cpu_quota), ("OS", env.os), ("kernel", env.kernel), ("Python", env.python),
                ("versions", ", ".join(f"{k} {v}" for k, v in env.versions.items())),
                ("thread environment", " ".join(f"{k}={v}" for k, v in env.thread_env.items()) or "none set"),
                ("temperatures", ", ".join(f"{k} {v:.1f} °C" for k, v in env.thermal_c.items())),
            ]))
            if j is not None:
                out.append("<h5>Jetson</h5>" + kv([
                    ("model", j.model), ("L4T", j.l4t), ("JetPack", f"{j.jetpack} ({j.jetpack_source})" if j.jetpack
                                                         else None), ("CUDA", j.cuda),
                    ("nvpmodel", f"{j.nvpmodel_mode} (id {j.nvpmodel_id})" if j.nvpmodel_mode else None),
                    ("jetson_clocks", j.jetson_clocks)]))
                if j.jetson_clocks_raw:
                    out.append(f"<details><summary>jetson_clocks --show</summary><pre>{e(j.jetson_clocks_raw)}"
                               "</pre></details>")
        out.append("</div></div>")
        out.append(_runner_table(src))
    return "\n".join(out)


def _runner_table(src: Source) -> str:
    body = []
    for r in src.report.results:
        if r.runner is None:
            continue
        ri = r.runner
        details = json.dumps(ri.details, sort_keys=True, default=str)
        ran_cls = "warn" if ri.precision != r.precision else ""
        body.append("<tr>" + td(r.key) + td(f"{ri.runtime} {ri.runtime_version}") + td(ri.device)
                    + num(ri.threads, "d") + td(r.precision) + td(ri.precision, cls=ran_cls)
                    + num(r.load_ms, ".0f") + td(details[:300] + ("…" if len(details) > 300 else ""), title=details)
                    + "</tr>\n")
    if not body:
        return ""
    heads = ["row", "runtime", "device", "threads", "precision asked",
             ("precision executed", "as the runtime reports it"),
             ("load ms", "runner creation + compile"), "runtime details"]
    return "<h4>What each runtime reported</h4>" + table(heads, body)
