"""The HTML report: built from realistic bench results, checked as HTML, through the CLI, and in a real
headless browser (Debian's chromium, installed on first use when we are root with apt; see tests/browser.py).

"Loads nothing remote" is checked three ways. Statically: no src/href other than #fragments and data:,
no <link>, no <script src>, no CSS url()/@import (``remote_references``). By policy: the page carries a
Content-Security-Policy meta tag (default-src 'none', the inline style and script pinned by hash), so a
browser refuses any remote load. Dynamically: chromium, driven over the DevTools protocol on a pipe, records
every request the page makes (Network.requestWillBeSent) and every console/CSP message; the report must
request only its own file:// URL, with no CSP violation, console error or exception. The detectors are
themselves tested: a copy with an injected remote <img> and <script src> is flagged statically, blocked by
the CSP (with violations logged), and, with the CSP stripped, its request shows up in the network log.

The results are crafted from the library's own dataclasses: latency statistics from nanosecond samples,
accuracy from logits, references and paired comparisons from :func:`attach_references`, and the real
environment of this host for one file and a Jetson's for another, so the numbers on the page are the ones
the library computes, not typed in.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgekit.bench.accuracy import compute_accuracy
from edgekit.bench.environment import Environment, JetsonInfo, capture_environment
from edgekit.bench.harness import LatencyResult, ThroughputPoint, ThroughputResult
from edgekit.bench.memory import MemoryResult
from edgekit.bench.reference import attach_references
from edgekit.bench.results import ArtifactInfo, BenchReport, BenchResult, load_report, write_report
from edgekit.bench.stats import LatencyStats
from edgekit.cli.main import cli
from edgekit.report.html import RESULT_HEADERS, render_html, write_html
from edgekit.report.html_base import pvalue
from edgekit.report.svg import Point, pareto_front
from edgekit.runtime.base import RunnerInfo

CLASSES = ("cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "<b>bird & co</b>")
EVIL = "<script>alert('x')</script>&"


def _artifact(name: str, model: str, fmt: str, precision: str, size_mb: float, params: int, macs: int,
              parent: str | None = None) -> ArtifactInfo:
    lineage = ({"step": "quantize", "parent": {"path": f"/art/{parent}", "format": "onnx", "precision": "fp32"}},) \
        if parent else ()
    return ArtifactInfo(
        name=name, path=f"/art/{name}", model=model, format=fmt, precision=precision, model_file="model.onnx",
        model_sha256=hashlib.sha256(name.encode()).hexdigest(), files={}, size_bytes=int(size_mb * 1024 * 1024),
        input_shape=(1, 3, 224, 224), input_dtype="float32", num_classes=len(CLASSES), has_labels=True,
        weights_origin="imagenet", preprocess={}, profile={"params": params, "macs": macs, "macs_complete": True},
        lineage=lineage)


def _latency(rng: np.random.Generator, median_ms: float, spread: float) -> LatencyResult:
    ns = (rng.lognormal(np.log(median_ms), spread, size=400) * 1e6).astype(np.int64)
    stats = LatencyStats.from_ns(ns, cv_threshold=0.10)
    return LatencyResult(stats=stats, cold_ms=float(median_ms * 9), warmup_s=1.0, warmup_iterations=50,
                         duration_s=float(ns.sum() / 1e9), iterations=len(ns), cut_short=False, n_distinct_samples=64,
                         n_samples_visited=64, seed=0, settings={})


def _accuracy(rng: np.random.Generator, labels: np.ndarray, ref_pred: np.ndarray | None, flip: float):
    """Logits whose top-1 is the reference's prediction except for a ``flip`` fraction (or, for the
    reference itself, right 80 % of the time)."""
    n = labels.shape[0]
    if ref_pred is None:
        pred = np.where(rng.random(n) < 0.8, labels, rng.integers(0, len(CLASSES), n))
    else:
        pred = np.where(rng.random(n) < flip, rng.integers(0, len(CLASSES), n), ref_pred)
    logits = rng.normal(0, 1, (n, len(CLASSES))).astype(np.float32)
    logits[np.arange(n), pred] += 6.0
    acc = compute_accuracy(logits, labels, class_names=CLASSES)
    return dataclasses.replace(acc, extra={"eval_key": "embedded|300"})  # what bench records for its eval set


def _row(art: ArtifactInfo, runtime: str, device: str, precision: str, **kw) -> BenchResult:
    key = f"{art.name}/{runtime}:{device}/{precision}"
    return BenchResult(key=key, artifact=art.name, model=art.model, runtime=runtime, device=device,
                       precision=precision, **kw)


def build_report(*, target: str = "x86-avx512", seed: int = 0, jetson: bool = False) -> BenchReport:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(CLASSES)), 30)
    mnv3 = _artifact("mobilenetv3_large_100", "mobilenetv3_large_100", "onnx", "fp32", 21.1, 5_483_032, 216_600_000)
    mnv3_q = _artifact("mobilenetv3_large_100-int8", "mobilenetv3_large_100", "onnx", "int8", 5.6, 5_483_032,
                       216_600_000, parent="mobilenetv3_large_100")
    eff = _artifact(f"efficientnet_b0 {EVIL}", "efficientnet_b0", "onnx", "fp32", 20.3, 5_288_548, 385_300_000)
    ref_acc = _accuracy(rng, labels, None, 0)
    eff_acc = _accuracy(rng, labels, None, 0)
    rt = "tensorrt" if jetson else "onnxruntime"
    dev = "cuda" if jetson else "cpu"

    def ok(art, runtime, device, precision, ran, median, acc, *, spread=0.04, tput=None, rss=180.0):
        info = RunnerInfo(runtime=runtime, runtime_version="1.32.0" if runtime == "onnxruntime" else "2026.4.1",
                          device=device, precision=ran, threads=2, details={"providers": ["CPUExecutionProvider"]})
        points = tuple(ThroughputPoint(batch_size=b, samples_per_s=1000 / median * (1 + 0.3 * i), iterations=50,
                                       samples=50 * b, duration_s=1.0) for i, b in enumerate((1, 8)))
        mem = MemoryResult(rss_before_mb=rss - 20, rss_after_mb=rss - 5, peak_rss_mb=rss, hwm_before_mb=rss - 20,
                           hwm_after_mb=rss, samples=100, interval_s=0.01, source="procfs")
        return _row(art, runtime, device, precision, status="ok", runner=info, load_ms=120.0,
                    latency=_latency(rng, median, spread), throughput=ThroughputResult(points, {}), memory=mem,
                    accuracy=acc)

    rows = [
        ok(mnv3, rt, dev, "fp32", "fp32", 3.1, ref_acc),
        ok(mnv3, "openvino", "CPU", "fp32", "bf16", 1.9, _accuracy(rng, labels, ref_acc.predictions, 0.01)),
        ok(mnv3, rt, dev, "fp16", "fp16", 2.8, _accuracy(rng, labels, ref_acc.predictions, 0.005), spread=0.2),
        ok(mnv3_q, rt, dev, "int8", "int8", 1.7, _accuracy(rng, labels, ref_acc.predictions, 0.08)),
        ok(mnv3_q, "openvino", "CPU", "int8", "int8", 1.2, _accuracy(rng, labels, ref_acc.predictions, 0.06)),
        ok(eff, rt, dev, "fp32", "fp32", 5.2, eff_acc),
        ok(eff, rt, dev, "int8", "int8", 2.4, _accuracy(rng, labels, eff_acc.predictions, 0.03)),
        _row(eff, "openvino", "GPU", "fp16", status="unsupported", reason="OpenVINO has no GPU device on this host"),
        _row(mnv3_q, rt, dev, "fp16", status="skipped", reason="int8 artifact: fp16 not applicable"),
    ]
    results, warnings = attach_references(rows)
    env = capture_environment()
    if jetson:
        env = Environment(
            cpu_model="ARMv8 Processor rev 1 (v8l)", board="NVIDIA Jetson Orin Nano Developer Kit", arch="aarch64",
            physical_cores=6, logical_cores=6, affinity=(0, 1, 2, 3, 4, 5), cpu_flags=("neon", "asimddp"),
            governor=("schedutil",), memory_total_mb=7620.0, cpu_quota=None, os="Ubuntu 22.04.4 LTS",
            kernel="5.15.148-tegra", python="3.10.12", versions={"tensorrt": "10.3.0", "numpy": "1.26.4"},
            thread_env={}, thermal_c={"cpu-thermal": 48.5, "gpu-thermal": 47.9},
            jetson=JetsonInfo(model="NVIDIA Jetson Orin Nano Developer Kit", l4t="36.4.3", jetpack="6.2",
                              jetpack_source="inferred from L4T 36.4.3", cuda="12.6", nvpmodel_mode="MAXN_SUPER",
                              nvpmodel_id=2, jetson_clocks="locked",
                              jetson_clocks_raw="CPU Cluster Switching: Disabled\ncpu0: Online=1 Governor=schedutil "
                                                "MinFreq=1728000 MaxFreq=1728000 CurrentFreq=1728000"))
    return BenchReport(
        target={"name": target, "description": f"{target} <test> profile", "source": "builtin"},
        settings={"tier": "ci", "min_duration_s": 10.0, "min_iterations": 100, "warmup_s": 2.0,
                  "batch_sizes": [1, 8], "threads": None, "seed": 0, "cv_threshold": 0.10,
                  "accuracy_budget_rule": "1 % of the FP32 reference's top-1", "timer": "time.perf_counter_ns"},
        environment=env, artifacts=(mnv3, mnv3_q, eff), results=tuple(results),
        dataset={"source": "embedded (held-out split)", "n_images": 300, "classes": list(CLASSES), "eval_n": 300,
                 "latency_pool_n": 64},
        created="2025-01-01T00:00:00+00:00", edgekit_version="0.1.0", command=("edgekit", "bench"),
        warnings=tuple(warnings) + ("a warning with <markup> & ampersands",))


class _Dom(HTMLParser):
    """Tags with their attributes and the text inside, for assertions."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []
        self.style = self.script = ""
        self.rows: dict[str, list[str]] = {}  # data-key of a results row -> its cell texts
        self._in: str | None = None
        self._row: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        self.tags.append((tag, a))
        self._in = tag if tag in ("style", "script") else None
        if tag == "tr":
            self._row = self.rows.setdefault(a["data-key"], []) if "data-key" in a else None
        elif tag == "td" and self._row is not None:
            self._row.append("")

    def handle_endtag(self, tag):
        self._in = None
        if tag == "tr":
            self._row = None

    def handle_data(self, data):
        if self._in == "style":
            self.style += data
        elif self._in == "script":
            self.script += data
        else:
            self.text.append(data)
            if self._row:
                self._row[-1] += data

    def find(self, tag: str, **attrs: str) -> list[dict[str, str]]:
        return [a for t, a in self.tags if t == tag and all(v in a.get(k, "").split() for k, v in attrs.items())]


def _dom(text: str) -> _Dom:
    d = _Dom()
    d.feed(text)
    return d


@pytest.fixture(scope="module")
def reports() -> list[BenchReport]:
    return [build_report(), build_report(seed=1), build_report(target="jetson-orin-nano", seed=2, jetson=True)]


def _expected_front(report: BenchReport) -> set[str]:
    pts = [(r.latency.stats.p50, r.accuracy.top1, r.key) for r in report.results
           if r.ok and r.latency and r.accuracy]
    return {k for x, y, k in pts if not any((x2 <= x and y2 >= y) and (x2 < x or y2 > y) for x2, y2, _ in pts)}


def test_pareto_front_is_the_non_dominated_points():
    pts = [Point(1, 70, "a", "fp32", "", ""), Point(2, 75, "a", "fp16", "", ""), Point(1.5, 69, "a", "int8", "", ""),
           Point(3, 75, "a", "int8", "", ""), Point(1, 72, "b", "int8", "", ""), Point(4, 80, "b", "fp32", "", "")]
    assert pareto_front(pts) == [4, 1, 5]


def test_plot_axes_ticks_and_log_scale():
    from edgekit.report.svg import log_ticks, nice_ticks, scatter_svg

    assert nice_ticks(71.2, 80.4) == [70, 72, 74, 76, 78, 80, 82]
    assert log_ticks(0.8, 40) == [0.5, 1, 2, 5, 10, 20, 50]
    near = [Point(1.0, 70, "ort", "fp32", "a", "t <1>"), Point(3.0, 75, "ort", "int8", "b", "t")]
    far = [Point(0.5, 70, "ort", "fp32", "a", "t"), Point(40.0, 75, "ort", "int8", "b", "t")]
    assert "(log scale)" not in scatter_svg(near, title="x", x_label="ms", y_label="%")
    svg = scatter_svg(far, title="x", x_label="ms", y_label="%")
    assert "ms (log scale)" in svg and "<title>t</title>" in svg
    assert "<title>t &lt;1&gt;</title>" in scatter_svg(near, title="x", x_label="ms", y_label="%")


def test_ensure_chromium_skips_with_its_reason_when_it_cannot_install(monkeypatch):
    import browser

    monkeypatch.setattr(browser, "find_chromium", lambda: None)
    monkeypatch.setattr(browser.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(browser.shutil, "which", lambda name: "/usr/bin/apt-get" if name == "apt-get" else None)
    with pytest.raises(pytest.skip.Exception, match="needs root"):
        browser.ensure_chromium()
    monkeypatch.setattr(browser.shutil, "which", lambda name: None)
    with pytest.raises(pytest.skip.Exception, match="apt-get is not available"):
        browser.ensure_chromium()


def test_page_has_every_section_escaped_and_self_contained(reports):
    rep = reports[0]
    page = render_html(rep, names=["run.json"], generated="2025-01-02T00:00:00+00:00")
    dom = _dom(page)
    # results table: one row per result, with the columns the brief lists
    table = dom.find("table", **{"class": "results"})
    assert len(table) == 1
    rows = [a for a in dom.find("tr") if "data-key" in a]
    assert [a["data-key"] for a in rows] == [r.key for r in rep.results]
    text = " ".join(dom.text)
    for head in ("p50 ms", "p90 ms", "p99 ms", "CV", "throughput img/s", "peak RSS MB", "size MiB", "params (M)",
                 "GMACs", "top-1", "top-5", "agreement", "Δtop-1 pts [95 % CI]", "McNemar p", "verdict"):
        assert head in text, head
    # the unstable row (fp16, spread 0.2) is flagged, and the bf16 execution of an fp32 request is shown
    unstable = [r for r in rep.results if r.unstable]
    assert unstable and "unstable" in text
    # the numbers in the cells are the report's: latency, verdicts and McNemar p of every compared row
    heads = [h if isinstance(h, str) else h[0] for h in RESULT_HEADERS]
    for r in rep.results:
        cells = dict(zip(heads, dom.rows[r.key]))
        assert cells["status"].startswith(r.status)
        if r.latency is not None:
            assert cells["p50 ms"] == f"{r.latency.stats.p50:.3f}" and cells["p99 ms"] == f"{r.latency.stats.p99:.3f}"
        if r.paired is not None:  # failing and inconclusive rows too (a PairedComparison is falsy unless it passed)
            assert cells["verdict"] == r.paired.verdict and cells["McNemar p"] == pvalue(r.paired.mcnemar_p)
            assert cells["Δtop-1 pts [95 % CI]"].startswith(f"{r.paired.drop_pts:+.2f} [")
    assert {r.paired.verdict for r in rep.results if r.paired is not None} >= {"fail", "inconclusive"}
    assert "fp32 (ran bf16)" in text
    # the plot: one point per row with latency and accuracy, front = the non-dominated rows
    plotted = [r for r in rep.results if r.ok and r.latency and r.accuracy]
    points = dom.find("g", **{"class": "pt"})
    assert sorted(p["data-key"] for p in points) == sorted(r.key for r in plotted)
    assert {p["data-key"] for p in dom.find("g", **{"class": "front"})} == _expected_front(rep)
    assert "latency p50, batch 1 (ms)" in text and "top-1 accuracy (%)" in text
    assert len(dom.find("svg", **{"class": "plot"})) == 1
    # comparisons, per-class deltas, environment
    assert "speed-up vs fp32" in text and "Δ pts (lost/gained) int8" in text
    assert "<b>bird & co</b>" in text  # a class name, shown as text
    env = rep.environment
    assert env is not None and (env.cpu_model or env.arch) in text
    # everything escaped: the artifact and class names with markup never become tags
    assert "<script>alert" not in page and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;&amp;" in page
    assert not dom.find("b")
    assert [t for t, _ in dom.tags].count("script") == 1
    # self-contained: nothing to fetch, and the CSP pins the inline style and script by hash
    from browser import remote_references

    assert remote_references(page) == []
    policy = dom.find("meta", **{"http-equiv": "Content-Security-Policy"})[0]["content"]
    assert "default-src 'none'" in policy and "unsafe-inline" not in policy
    for block in (dom.style, dom.script):
        digest = base64.b64encode(hashlib.sha256(block.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in policy
    assert " style=" not in page


def test_files_of_one_target_merge_and_others_get_their_own_section(reports, tmp_path):
    page = render_html(reports, names=["a.json", "b.json", "jetson.json"])
    dom = _dom(page)
    sections = dom.find("section", **{"class": "target"})
    assert [s["id"] for s in sections] == ["target-x86-avx512", "target-jetson-orin-nano"]
    assert len(dom.find("table", **{"class": "results"})) == 2
    keys = [a["data-key"] for a in dom.find("tr") if "data-key" in a]
    assert len(keys) == sum(len(r.results) for r in reports)
    text = " ".join(dom.text)
    assert "source" in text and "MAXN_SUPER (id 2)" in text and "JetPack" in text and "inferred from L4T" in text
    assert len(dom.find("svg", **{"class": "plot"})) == 2
    out = write_html(reports, tmp_path / "r.html", names=["a", "b", "c"])
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert [p.name for p in tmp_path.iterdir()] == ["r.html"]  # atomic: no temp file left


@pytest.fixture(scope="module")
def result_files(reports, tmp_path_factory) -> list[Path]:
    d = tmp_path_factory.mktemp("results")
    return [write_report(r, d / f"{n}.json") for r, n in zip(reports, ("a", "b", "jetson"))]


def test_cli_writes_html_md_csv(result_files, tmp_path):
    runner = CliRunner()
    html, md = tmp_path / "out" / "report.html", tmp_path / "report.md"
    res = runner.invoke(cli, ["report", *map(str, result_files), "--html", str(html), "--md", str(md), "--csv"])
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[0].startswith("source,target,key,artifact")
    assert len(lines) == 1 + sum(len(load_report(p).results) for p in result_files)
    assert "wrote" in res.stderr and str(html) in res.stderr
    assert html.read_text(encoding="utf-8").count('<section class="target"') == 2
    assert md.read_text(encoding="utf-8").count("## edgekit bench:") == 3
    # one file: exactly what bench --csv writes; the default output is the table
    one = runner.invoke(cli, ["report", str(result_files[0]), "--csv"])
    assert one.exit_code == 0 and one.stdout.startswith("key,artifact,model")
    table = runner.invoke(cli, ["report", str(result_files[0])])
    assert table.exit_code == 0 and "mobilenetv3_large_100" in table.stdout


@pytest.mark.parametrize("args, message", [
    (["--md", "--csv"], "cannot both go to stdout"),
    (["--md", "{results}"], "refusing to overwrite"),
    (["--html", "-"], "--html needs a FILE"),
])
def test_cli_refuses_bad_usage(result_files, args, message):
    args = [a.replace("{results}", str(result_files[1])) for a in args]
    res = CliRunner().invoke(cli, ["report", str(result_files[0]), *args])
    assert res.exit_code == 2 and message in res.stderr


def test_cli_reports_a_bad_results_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"schema": "something-else"}))
    res = CliRunner().invoke(cli, ["report", str(bad), "--html", str(tmp_path / "x.html")])
    assert res.exit_code == 2 and "not an edgekit bench results file" in res.stderr
    assert not (tmp_path / "x.html").exists()


# -- in a real browser ---------------------------------------------------------------------------------------------

_INJECT = ('<img id="remote-img" src="http://example.invalid/x.png">'
           '<script src="https://example.invalid/x.js"></script>')


@pytest.mark.slow
def test_report_in_headless_chromium(reports, tmp_path):
    from browser import (DevTools, dump_dom, ensure_chromium, load_page, png_size, remote_references,
                               screenshot)

    chromium = ensure_chromium()
    page = write_html(reports, tmp_path / "report.html", names=["a.json", "b.json", "jetson.json"])
    n_rows = sum(len(r.results) for r in reports)
    n_points = sum(1 for r in reports for x in r.results if x.ok and x.latency and x.accuracy)

    # 1. the DOM chromium built: the tables and the plots are there
    dom = _dom(dump_dom(chromium, page))
    assert len(dom.find("table", **{"class": "results"})) == 2
    assert len([a for a in dom.find("tr") if "data-key" in a]) == n_rows
    assert len(dom.find("svg", **{"class": "plot"})) == 2 and len(dom.find("g", **{"class": "pt"})) == n_points

    # 2. loading it requests nothing but the file itself, violates no CSP, throws nothing; sorting works
    with DevTools(chromium) as dt:
        session, log = dt.open(page.resolve().as_uri())
        assert log.loaded
        assert log.requests == [page.resolve().as_uri()], log.requests
        assert log.csp_violations() == [] and log.exceptions == []
        assert [m for m in log.messages if m.get("level") == "error"] == []
        assert dt.evaluate(session, "getComputedStyle(document.body).fontFamily").startswith("system-ui")
        assert dt.evaluate(session, "document.querySelectorAll('svg.plot g.pt title').length") == n_points
        col = 6  # source, artifact, runtime, device, precision, status, p50 ms
        assert dt.evaluate(session, f"document.querySelector('table.results').tHead.rows[0].cells[{col}]"
                                    ".textContent") == "p50 ms"
        p50s = dt.evaluate(session, f"""(() => {{
            const t = document.querySelector('table.results');
            t.tHead.rows[0].cells[{col}].click();
            return Array.from(t.tBodies[0].rows).map(r => r.cells[{col}].getAttribute('data-v'));
        }})()""")
        values = [float(v) for v in p50s if v]
        assert len(values) >= 5 and values == sorted(values) and p50s[-1] == ""  # missing values last
        shot = dt.full_screenshot(session, tmp_path / "report-full.png")
    width, height = png_size(shot)
    assert width == 1400 and height > 2000

    # 3. chromium's own --screenshot switch works too (first screen of the page)
    first = screenshot(chromium, page, tmp_path / "report.png")
    assert png_size(first) == (1400, 2400)
    keep = os.environ.get("EDGEKIT_SCREENSHOT_DIR")
    if keep:  # for a human look: EDGEKIT_SCREENSHOT_DIR=/tmp/shots pytest -m slow tests/test_report_html.py
        for p in (shot, first, page):
            shutil.copy(p, Path(keep) / p.name)

    # 4. the detectors work: remote loads injected into copies are seen, statically and in the browser
    text = page.read_text(encoding="utf-8")
    injected = tmp_path / "injected.html"
    injected.write_text(text.replace("<main>", "<main>" + _INJECT, 1), encoding="utf-8")
    assert len(remote_references(injected.read_text(encoding="utf-8"))) == 2
    blocked = load_page(chromium, injected)
    assert blocked.blocked == {"http://example.invalid/x.png": "csp", "https://example.invalid/x.js": "csp"}
    assert len(blocked.csp_violations()) == 2
    no_csp = tmp_path / "no-csp.html"
    no_csp.write_text(re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", injected.read_text()),
                      encoding="utf-8")
    opened = load_page(chromium, no_csp)
    assert "http://example.invalid/x.png" in opened.remote_requests and not opened.blocked


@pytest.mark.slow
def test_a_real_bench_renders(export_artifact, tmp_path):
    """The producer's own output: a short real bench of an exported model, through JSON, into the page."""
    pytest.importorskip("onnxruntime", reason="edgekit bench needs the onnxruntime extra")
    from edgekit.bench.runner import BenchOptions, run_bench

    art = export_artifact("mobilenetv3_small_100", dynamic_batch=True, img_size=64)
    rep = run_bench(BenchOptions(target="cpu", artifacts=(art,), runtimes=("ort",), batch_sizes=(1, 2),
                                 min_duration_s=0.2, min_iterations=20, warmup_s=0.05))
    back = load_report(write_report(rep, tmp_path / "r.json"))
    dom = _dom(render_html(back, names=["r.json"]))
    assert list(dom.rows) == [r.key for r in rep.results] and all(r.ok for r in rep.results)
    for r in rep.results:
        cells = dict(zip([h if isinstance(h, str) else h[0] for h in RESULT_HEADERS], dom.rows[r.key]))
        assert cells["p50 ms"] == f"{r.latency.stats.p50:.3f}"
        assert cells["params (M)"] == f"{back.artifacts[0].params / 1e6:.3f}"
    text = " ".join(dom.text)
    # a random-init model has no labels: nothing to plot, and the page says why
    assert "Nothing to plot" in text and "no accuracy" in text
    assert (back.environment.cpu_model or back.environment.arch) in text
