"""#15.8: output that fits: report tables at 80 columns keep p50; a gate pass is short; advice fits the command."""

from __future__ import annotations

import io

import pytest
from click.testing import CliRunner
from rich.console import Console

from edgekit.bench.paired import compare_paired
from edgekit.bench.results import write_report
from edgekit.cli.main import cli
from edgekit.gate import baseline_from_report, write_baseline
from edgekit.report.table import bench_table
from test_gate import labels_for, latency, predictions, report, row


def _wide_report():
    lab = labels_for(400)
    rows = [row(pred=predictions(lab, wrong=40, seed=s), labels=lab, lat=latency(5.0 + s, 0.02, seed=s),
                precision=p, runtime=rt, artifact=f"mobilenetv3-{p}")
            for s, (rt, p) in enumerate([("onnxruntime", "fp32"), ("onnxruntime", "int8"), ("openvino", "fp32"),
                                         ("openvino", "bf16")])]
    return report(*rows)


def _terminal(width: int) -> Console:
    return Console(width=width, force_terminal=True, file=io.StringIO(), color_system=None, legacy_windows=False)


@pytest.mark.parametrize("width", [80, 100, 120])
def test_report_table_fits_the_terminal_and_keeps_p50(tmp_path, monkeypatch, width):
    import edgekit.cli.ui as ui

    results = tmp_path / "r.json"
    write_report(_wide_report(), results)
    console = _terminal(width)
    monkeypatch.setattr(ui, "table_console", lambda: console)
    r = CliRunner().invoke(cli, ["report", str(results)])
    assert r.exit_code == 0, r.output
    text = console.file.getvalue()
    table = [ln for ln in text.splitlines() if ln.startswith(("┃", "│", "┏", "┡", "└"))]
    assert table and all(len(ln) <= width for ln in table), "\n".join(table)
    assert "…" not in "\n".join(table)  # no cell collapsed into an ellipsis
    header = next(ln for ln in table if ln.startswith("┃"))
    assert "p50 ms" in header and "top-1" in header and "precision" in header


def test_bench_table_drops_optional_columns_first():
    rep = _wide_report()
    for width in (80, 100):
        console = _terminal(width)
        console.print(bench_table(rep, width=width))
        header = next(ln for ln in console.file.getvalue().splitlines() if ln.startswith("┃"))
        assert "p50 ms" in header, header
    wide = _terminal(250)
    wide.print(bench_table(rep, width=250))
    assert "p99 ms" in wide.file.getvalue()


def test_nothing_changed_promises_no_image_count():
    lab = labels_for(300)
    pred = predictions(lab, wrong=30)
    same = compare_paired(pred, pred.copy(), lab, budget_pts=0.5)
    assert same.verdict == "inconclusive" and same.needed_n is None
    assert "would resolve" not in same.reason and "0 lost, 0 gained" in same.reason


def test_gate_pass_with_unchanged_predictions_is_short(tmp_path):
    rep = _wide_report()
    results, base = tmp_path / "r.json", tmp_path / "b.json"
    write_report(rep, results)
    write_baseline(baseline_from_report(rep), base)
    r = CliRunner().invoke(cli, ["gate", str(results), "-b", str(base), "--max-top1-drop", "0.5"])
    assert r.exit_code == 0, r.output
    after_table = r.output.split("└")[-1]
    assert "would resolve" not in r.output and "warning:" not in after_table
    assert after_table.count("same top-1 correctness") == 1 and "4 row(s)" in after_table
    assert len([ln for ln in after_table.splitlines() if ln.strip()]) <= 3, after_table


def test_failing_gate_against_fp32_never_suggests_replacing_the_baseline(tmp_path):
    lab = labels_for(2000)
    fp32 = row(pred=predictions(lab, wrong=200), labels=lab, lat=latency(5.0, 0.02, seed=1), precision="fp32",
               artifact="mnv3")
    bad = row(pred=predictions(lab, wrong=350), labels=lab, lat=latency(2.0, 0.02, seed=3), artifact="mnv3-int8")
    results, base = tmp_path / "r.json", tmp_path / "b.json"
    write_report(report(bad), results)
    write_baseline(baseline_from_report(report(fp32)), base)
    r = CliRunner().invoke(cli, ["gate", str(results), "-b", str(base), "--against", "fp32", "--max-top1-drop", "1"])
    assert r.exit_code == 1, r.output
    assert "--update-baseline" not in r.output and "fp32 rows are the reference" in r.output
    # without --against the usual advice stands
    r = CliRunner().invoke(cli, ["gate", str(results), "-b", str(results.with_name("b2.json"))])
    assert r.exit_code == 2 and "--update-baseline" in r.output


def test_summary_says_when_int8_was_slower_than_fp32():
    from edgekit.report.speed import slower_than_fp32

    lab = labels_for(100)
    fast = row(pred=predictions(lab, wrong=10), labels=lab, lat=latency(5.0, 0.02, seed=1), precision="fp32",
               artifact="m")
    slow = row(pred=predictions(lab, wrong=10), labels=lab, lat=latency(7.0, 0.02, seed=2), precision="int8",
               artifact="m-int8")
    quick = row(pred=predictions(lab, wrong=10), labels=lab, lat=latency(2.0, 0.02, seed=3), precision="int8",
                runtime="openvino", artifact="m-int8")
    ov32 = row(pred=predictions(lab, wrong=10), labels=lab, lat=latency(4.0, 0.02, seed=4), precision="fp32",
               runtime="openvino", artifact="m")
    (line,) = slower_than_fp32(report(fast, slow, quick, ov32))
    assert line.startswith("INT8 was slower than FP32 for mobilenetv3 on onnxruntime:cpu") and "1.4" in line
    assert slower_than_fp32(report(fast, quick, ov32)) == []


def test_did_not_learn_advice_fits_how_the_model_started():
    pytest.importorskip("torch", reason="the fine-tune module needs the torch extra")
    from edgekit.optimize.train.finetune import did_not_learn_advice

    scratch = did_not_learn_advice("m", 0.1, 0.1, 5e-3, random_init=True, n_train=300)
    assert "from scratch on 300 images" in scratch and "--weights imagenet" in scratch and "--lr 0.001" in scratch
    pre = did_not_learn_advice("m", 0.1, 0.1, 1e-3, random_init=False, n_train=300)
    assert "started from pretrained weights" in pre and "--freeze-backbone" in pre
    assert "--weights imagenet" not in pre
