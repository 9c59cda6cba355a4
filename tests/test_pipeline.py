"""``edgekit run``: pipeline files, cache keys, cached reruns, --force, resume after SIGKILL, damaged entries,
lineage, --dry-run and the pipeline's own [gate].

The runs use a tiny pipeline (MobileNetV3-small at 32 px, one epoch on 400
embedded images, INT8 through ONNX Runtime, a short ONNX Runtime bench); the
first run is shared by the tests through a module fixture and copied where a
test changes the cache.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgekit.cli.main import cli
from edgekit.core.errors import UsageError
from edgekit.core.manifest import MANIFEST_NAME, load_artifact
from edgekit.pipeline import cache as cache_mod
from edgekit.pipeline.cache import StepCache
from edgekit.pipeline.config import load_pipeline, parse_pipeline
from edgekit.pipeline.plan import make_plan

TINY = """\
[pipeline]
name = "tiny"
target = "cpu"
data = "embedded"
seed = 0

[bench]
min_duration = 0.1
min_iterations = 5
warmup = 0.0
eval_size = 64
batch = [1]
runtimes = ["onnxruntime"]

[[model]]
name = "mobilenetv3_small_100"
weights = "none"
finetune = { epochs = 1, img_size = 32, train_limit = 400, batch_size = 64 }

[[recipe]]
name = "fp32"

[[recipe]]
name = "int8-ort"
quantize = { precision = "int8", method = "onnxruntime", calib_size = 32, eval_size = 64 }
"""


def write(tmp_path: Path, text: str, name: str = "pipeline.toml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def minimal(**extra: object) -> dict:
    doc: dict = {"pipeline": {"name": "t"}, "model": [{"name": "mobilenetv3_small_100"}]}
    doc.update(extra)
    return doc


# --- configuration ---------------------------------------------------------------------------------------------------

class TestConfig:
    def test_embedded_default_loads(self) -> None:
        p = load_pipeline(None)
        assert p.name == "embedded-default" and p.data == "embedded" and p.target == "cpu"
        assert [r.name for r in p.recipes][0] == "fp32"
        assert {r.params.get("precision") for r in p.recipes if r.kind == "quantize"} == {"fp16", "int8"}
        assert p.models[0].finetune is not None and p.gate.enabled

    @pytest.mark.parametrize("text, field", [
        ("[pipeline]\nname='t'\ntargte='cpu'\n[[model]]\nname='m'\n", "pipeline.targte"),
        ("[pipeline]\nname='t'\n[[model]]\nname='m'\nfinetune={epochs=1, img_sise=32}\n", "model[0].finetune.img_sise"),
        ("[pipeline]\nname='t'\n[[model]]\nname='m'\n[[recipe]]\nname='q'\nquantize={calib_sise=64}\n",
         "recipe[0].quantize.calib_sise"),
        ("[pipeline]\nname='t'\n[[model]]\nname='m'\n[bench]\nevalsize=3\n", "bench.evalsize"),
        ("[pipeline]\nname='t'\n[[model]]\nname='m'\n[gate]\nmax_drop=1\n", "gate.max_drop"),
        ("[pipeline]\nname='t'\n[[model]]\nname='m'\n[extra]\nx=1\n", "extra"),
    ])
    def test_unknown_key_names_file_and_field(self, tmp_path: Path, text: str, field: str) -> None:
        path = write(tmp_path, text)
        with pytest.raises(UsageError) as e:
            load_pipeline(path)
        msg = e.value.message
        assert str(path) in msg and f"{field}:" in msg and "unknown key" in msg

    def test_typo_gets_a_suggestion(self, tmp_path: Path) -> None:
        path = write(tmp_path, "[pipeline]\nname='t'\n[[model]]\nname='m'\n[[recipe]]\nname='q'\n"
                               "quantize={calib_sise=64}\n")
        with pytest.raises(UsageError, match="did you mean 'calib_size'"):
            load_pipeline(path)

    @pytest.mark.parametrize("ratio", [0, 1, 1.5, -0.2, "0.3", True])
    def test_bad_prune_ratio(self, tmp_path: Path, ratio: object) -> None:
        value = json.dumps(ratio) if not isinstance(ratio, bool) else str(ratio).lower()
        path = write(tmp_path, f"[pipeline]\nname='t'\n[[model]]\nname='m'\n[[recipe]]\nname='p'\n"
                               f"prune={{ratio={value}}}\n")
        with pytest.raises(UsageError) as e:
            load_pipeline(path)
        assert "recipe[0].prune.ratio" in e.value.message and str(path) in e.value.message

    def test_prune_needs_a_ratio(self) -> None:
        with pytest.raises(UsageError, match=r"recipe\[0\]\.prune: missing key 'ratio'"):
            parse_pipeline(minimal(recipe=[{"name": "p", "prune": {"round_to": 8}}]), origin="x.toml")

    def test_duplicate_recipe_names(self, tmp_path: Path) -> None:
        path = write(tmp_path, "[pipeline]\nname='t'\n[[model]]\nname='m'\n[[recipe]]\nname='fp32'\n"
                               "[[recipe]]\nname='int8'\nquantize={precision='int8'}\n"
                               "[[recipe]]\nname='int8'\nquantize={precision='int8', method='nncf'}\n")
        with pytest.raises(UsageError) as e:
            load_pipeline(path)
        assert str(path) in e.value.message and "unique" in e.value.message and "'int8'" in e.value.message

    @pytest.mark.parametrize("doc, where", [
        (minimal(bench={"eval_size": 0}), "bench.eval_size"),
        (minimal(bench={"batch": []}), "bench.batch"),
        (minimal(bench={"batch": [1, 0]}), "bench.batch"),
        (minimal(bench={"min_duration": "2"}), "bench.min_duration"),
        (minimal(bench={"runtimes": "onnxruntime"}), "bench.runtimes"),
        (minimal(pipeline={"name": "t", "seed": -1}), "pipeline.seed"),
        (minimal(pipeline={"name": "t", "seed": True}), "pipeline.seed"),
        (minimal(recipe=[{"name": "q", "quantize": {"precision": "int4"}}]), "recipe[0].quantize.precision"),
        (minimal(recipe=[{"name": "q", "quantize": {"calib_size": 8}}]), "recipe[0].quantize.calib_size"),
        (minimal(recipe=[{"name": "a/b"}]), "recipe[0].name"),
        (minimal(recipe=[{"name": "x", "quantize": {}, "prune": {"ratio": 0.3}}]), "recipe[0]"),
        (minimal(gate={"min_agreement": 97}), "gate.min_agreement"),
        (minimal(gate={"max_top1_drop": 1, "max_rel_drop": 1}), "gate"),
        ({"pipeline": {"name": "t"}, "model": [{"name": "m", "finetune": {"epochs": 0}}]}, "model[0].finetune.epochs"),
        ({"pipeline": {"name": "t"}, "model": [{"name": "m", "weights": "nope.safetensors"}]}, "model[0].weights"),
        ({"pipeline": {"name": "t"}, "model": [{"name": "m"}, {"name": "m"}]}, "model"),
        ({"pipeline": {"name": "t"}, "model": []}, "model"),
        ({"model": [{"name": "m"}]}, "<top>"),
        # the tools' own ranges (once accepted here and refused only when the step ran)
        ({"pipeline": {"name": "t"}, "model": [{"name": "m", "finetune": {"opset": 9}}]}, "model[0].finetune.opset"),
        ({"pipeline": {"name": "t"}, "model": [{"name": "m", "finetune": {"train_limit": 1}}]},
         "model[0].finetune.train_limit"),
        ({"pipeline": {"name": "t"}, "model": [{"name": "m", "export": {"opset": 30}}]}, "model[0].export.opset"),
        ({"pipeline": {"name": "t"}, "model": [{"name": "m", "export": {"exporter": "onnxscript"}}]},
         "model[0].export.exporter"),
        (minimal(recipe=[{"name": "p", "prune": {"ratio": 0.3, "train_limit": 1}}]), "recipe[0].prune.train_limit"),
        (minimal(recipe=[{"name": "p", "prune": {"ratio": 0.3, "distill": True}}]), "recipe[0].prune"),
        (minimal(recipe=[{"name": "q", "quantize": {"precision": "fp16", "max_drop": 1.0}}]), "recipe[0].quantize"),
    ])
    def test_bad_values_name_the_field(self, doc: dict, where: str) -> None:
        with pytest.raises(UsageError) as e:
            parse_pipeline(doc, origin="my.toml")
        assert e.value.message.startswith(f"my.toml: {where}:"), e.value.message

    def test_relative_paths_are_relative_to_the_file(self, tmp_path: Path) -> None:
        (tmp_path / "ckpt.safetensors").write_bytes(b"x")
        (tmp_path / "imgs").mkdir()
        path = write(tmp_path, "[pipeline]\nname='t'\ndata='imgs'\n[[model]]\nname='m'\nweights='ckpt.safetensors'\n")
        p = load_pipeline(path)
        assert p.data == str(tmp_path / "imgs") and p.models[0].weights == str(tmp_path / "ckpt.safetensors")

    def test_not_toml(self, tmp_path: Path) -> None:
        path = write(tmp_path, "[pipeline\nname=")
        with pytest.raises(UsageError, match="not valid TOML"):
            load_pipeline(path)

    def test_bad_target_or_runtime_fails_before_any_step(self, tmp_path: Path) -> None:
        path = write(tmp_path, TINY)
        r = CliRunner().invoke(cli, ["run", str(path), "--target", "jetsn-orin", "--cache-dir", str(tmp_path / "c")])
        assert r.exit_code == 2 and "jetsn-orin" in r.output
        path = write(tmp_path, TINY.replace('runtimes = ["onnxruntime"]', 'runtimes = ["onnxrutime"]'))
        r = CliRunner().invoke(cli, ["run", str(path), "--cache-dir", str(tmp_path / "c")])
        assert r.exit_code == 2 and "onnxrutime" in r.output
        assert not (tmp_path / "c").exists()  # nothing ran

    def test_cli_bad_file_exit_2(self, tmp_path: Path) -> None:
        path = write(tmp_path, "[pipeline]\nname='t'\n[[model]]\nname='m'\n[[recipe]]\nname='x'\nprune={ratio=2}\n")
        r = CliRunner().invoke(cli, ["run", str(path), "--dry-run"])
        assert r.exit_code == 2 and "recipe[0].prune.ratio" in r.output
        r = CliRunner().invoke(cli, ["run", str(tmp_path / "missing.toml")])
        assert r.exit_code == 2 and "does not exist" in r.output


# --- cache keys ------------------------------------------------------------------------------------------------------

def keys(pipeline_text: str, tmp_path: Path, *, threads: int | None = None) -> dict[str, str]:
    path = write(tmp_path, pipeline_text, "k.toml")
    plan = make_plan(load_pipeline(path), StepCache(tmp_path / "cache"), threads=threads)
    return {s.label: s.key for s in plan.steps}


class TestCacheKeys:
    def test_same_inputs_same_key(self, tmp_path: Path) -> None:
        a, b = keys(TINY, tmp_path), keys(TINY, tmp_path)
        assert a == b and set(a) == {"mobilenetv3_small_100", "mobilenetv3_small_100/int8-ort"}
        assert all(len(k) == 64 for k in a.values())

    def test_recipe_change_changes_that_step_only(self, tmp_path: Path) -> None:
        a = keys(TINY, tmp_path)
        b = keys(TINY.replace("calib_size = 32", "calib_size = 64"), tmp_path)
        assert a["mobilenetv3_small_100"] == b["mobilenetv3_small_100"]
        assert a["mobilenetv3_small_100/int8-ort"] != b["mobilenetv3_small_100/int8-ort"]

    def test_training_change_changes_the_children(self, tmp_path: Path) -> None:
        a = keys(TINY, tmp_path)
        b = keys(TINY.replace("epochs = 1", "epochs = 2"), tmp_path)
        assert all(a[k] != b[k] for k in a)
        c = keys(TINY.replace("seed = 0", "seed = 1"), tmp_path)
        assert all(a[k] != c[k] for k in a)

    def test_weights_file_content(self, tmp_path: Path) -> None:
        ckpt = tmp_path / "w.safetensors"
        ckpt.write_bytes(b"weights v1")
        text = TINY.replace('weights = "none"', f'weights = "{ckpt}"')
        a = keys(text, tmp_path)
        assert keys(text, tmp_path) == a
        ckpt.write_bytes(b"weights v2")
        b = keys(text, tmp_path)
        assert all(a[k] != b[k] for k in a)

    def test_dataset_content(self, tmp_path: Path) -> None:
        data = tmp_path / "imgs"
        (data / "cat").mkdir(parents=True)
        (data / "cat" / "1.png").write_bytes(b"one")
        text = TINY.replace('data = "embedded"', f'data = "{data}"')
        a = keys(text, tmp_path)
        (data / "cat" / "2.png").write_bytes(b"two")
        b = keys(text, tmp_path)
        assert all(a[k] != b[k] for k in a)
        no_ft = TINY.replace("finetune = { epochs = 1, img_size = 32, train_limit = 400, batch_size = 64 }\n", "")
        a, b = keys(no_ft.replace('data = "embedded"', 'data = "embedded:all"'), tmp_path), keys(no_ft, tmp_path)
        assert a["mobilenetv3_small_100/int8-ort"] != b["mobilenetv3_small_100/int8-ort"]
        assert a["mobilenetv3_small_100"] == b["mobilenetv3_small_100"]  # an export reads no data
        # fine-tuning refuses embedded:all (nothing held out): the file check says so, as the step would
        with pytest.raises(UsageError, match=r"model\[0\]\.finetune: --data 'embedded:all'"):
            keys(TINY.replace('data = "embedded"', 'data = "embedded:all"'), tmp_path)

    def test_tool_version(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        a = keys(TINY, tmp_path)
        real = cache_mod.tool_versions

        def newer_onnxruntime(names: tuple[str, ...]) -> dict[str, str]:
            return {**real(names), "onnxruntime": "99.0"}

        monkeypatch.setattr(cache_mod, "tool_versions", newer_onnxruntime)
        b = keys(TINY, tmp_path)
        assert all(a[k] != b[k] for k in a)

    def test_training_threads(self, tmp_path: Path) -> None:
        a, b = keys(TINY, tmp_path, threads=1), keys(TINY, tmp_path, threads=2)
        assert a["mobilenetv3_small_100"] != b["mobilenetv3_small_100"]

    def test_bench_settings_are_not_in_the_keys(self, tmp_path: Path) -> None:
        assert keys(TINY, tmp_path) == keys(TINY.replace("eval_size = 64\nbatch", "eval_size = 32\nbatch"), tmp_path)


# --- the pipeline's own [gate] ---------------------------------------------------------------------------------------

def _report(*, fp32_wrong: int, cand_wrong: int, n: int = 1000, cand_status: str = "ok"):
    """An FP32 row and one INT8 row on the same images; the INT8 row gets ``cand_wrong`` extra images wrong."""
    from edgekit.bench.accuracy import compute_accuracy
    from edgekit.bench.reference import attach_references
    from edgekit.bench.results import BenchReport, BenchResult
    from edgekit.runtime.base import RunnerInfo

    labels = np.arange(n) % 10
    rng = np.random.default_rng(0)
    base = labels.copy()
    base[rng.choice(n, fp32_wrong, replace=False)] += 1
    base %= 10
    cand = base.copy()
    right = np.flatnonzero(cand == labels)
    cand[rng.choice(right, cand_wrong, replace=False)] += 1
    cand %= 10

    def row(pred: np.ndarray, precision: str, status: str = "ok") -> BenchResult:
        acc = compute_accuracy(np.eye(10, dtype=np.float32)[pred], labels)
        acc = acc.__class__(**{**acc.__dict__, "extra": {"eval_key": "k"}})
        return BenchResult(key=f"m-{precision}/onnxruntime:cpu/{precision}", artifact=f"m-{precision}", model="m",
                           runtime="onnxruntime", device="cpu", precision=precision, status=status,
                           reason=None if status == "ok" else "the runtime crashed",
                           runner=RunnerInfo("onnxruntime", "1", "cpu", precision, 2) if status == "ok" else None,
                           accuracy=acc if status == "ok" else None)

    results, _ = attach_references([row(base, "fp32"), row(cand, "int8", cand_status)])
    return BenchReport(target={"name": "cpu"}, settings={}, environment=None, artifacts=(), results=tuple(results))


class TestRunGate:
    def test_faithful_candidate_passes(self) -> None:
        from edgekit.pipeline.config import GateSettings
        from edgekit.pipeline.gate import check_run

        checks = check_run(_report(fp32_wrong=100, cand_wrong=2), GateSettings(max_top1_drop=1.0, min_agreement=0.97))
        assert [(c.row, c.name, c.passed) for c in checks] == [
            ("m-int8/onnxruntime:cpu/int8", "accuracy", True), ("m-int8/onnxruntime:cpu/int8", "agreement", True)]
        assert checks[0].reference == "m-fp32/onnxruntime:cpu/fp32" and checks[0].details["lost"] == 2

    def test_regression_fails_and_no_gate_checks_nothing(self) -> None:
        from edgekit.pipeline.config import GateSettings
        from edgekit.pipeline.gate import check_run

        report = _report(fp32_wrong=100, cand_wrong=60)
        checks = check_run(report, GateSettings(max_top1_drop=1.0, min_agreement=0.97))
        assert {c.name: c.outcome for c in checks} == {"accuracy": "fail", "agreement": "fail"}
        assert check_run(report, GateSettings()) == []

    def test_a_failed_paired_verdict_survives_the_results_file(self, tmp_path: Path) -> None:
        # PairedComparison is falsy unless it passes: the report must not drop a failing one
        from edgekit.bench.results import load_report, write_report

        report = _report(fp32_wrong=100, cand_wrong=60)
        back = load_report(write_report(report, tmp_path / "r.json"))
        (cand,) = [r for r in back.results if r.precision == "int8"]
        assert cand.paired is not None and cand.paired.verdict == "fail"
        assert cand.metrics()["accuracy_verdict"] == "fail" and cand.metrics()["top1_drop_pts"] > 5

    def test_a_row_that_errored_fails(self) -> None:
        from edgekit.pipeline.config import GateSettings
        from edgekit.pipeline.gate import check_run

        (c,) = check_run(_report(fp32_wrong=100, cand_wrong=0, cand_status="error"), GateSettings(max_top1_drop=1))
        assert c.name == "status" and not c.passed and "crashed" in c.message

    def test_cli_exit_1_when_the_gate_fails(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        from edgekit.bench.results import write_report
        from edgekit.pipeline import run as run_mod
        from edgekit.pipeline.config import GateSettings
        from edgekit.pipeline.gate import check_run

        report = _report(fp32_wrong=100, cand_wrong=60)
        results = write_report(report, tmp_path / "results.json")
        plan = make_plan(load_pipeline(write(tmp_path, TINY)), StepCache(tmp_path / "c"))
        failing = run_mod.RunResult(plan, (), results, {"results": str(results), "run": "run.json"}, None,
                                    tuple(check_run(report, GateSettings(max_top1_drop=1.0))), 1.0)
        monkeypatch.setattr(run_mod, "run_pipeline", lambda *a, **k: failing)
        r = CliRunner().invoke(cli, ["run", str(tmp_path / "pipeline.toml")])
        assert r.exit_code == 1 and "[gate] FAILED: 0 of 1 checks passed" in r.output
        assert "the pipeline's [gate] failed" in r.output


# --- runs ------------------------------------------------------------------------------------------------------------

def run_cli(*args: str) -> tuple[int, dict | list | None, str]:
    """``edgekit run ... --json`` in-process: (exit code, parsed JSON or None, output)."""
    r = CliRunner().invoke(cli, ["run", *args, "--json"])
    try:
        doc = json.loads(r.stdout)
    except (json.JSONDecodeError, ValueError):
        doc = None
    return r.exit_code, doc, r.output


def statuses(doc: dict) -> dict[str, str]:
    return {s["label"]: s["status"] for s in doc["steps"]}


def verify_cache(cache: Path) -> list[Path]:
    """Every entry directory of the cache is complete and verifies; returns them."""
    entries = [e for k in cache.iterdir() if k.is_dir() for e in k.iterdir() if not e.name.startswith(".")]
    for e in entries:
        assert (e / MANIFEST_NAME).is_file(), f"{e} has no manifest: a half-written entry"
        load_artifact(e, verify=True)
    return entries


def staging_dirs(cache: Path) -> list[Path]:
    return [d for k in cache.iterdir() if k.is_dir() for d in k.iterdir() if d.name.startswith(".")]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One run of the tiny pipeline in a fresh cache (shared; tests that change the cache copy it)."""
    pytest.importorskip("torch", reason="the pipeline's fine-tune step needs the 'torch' extra")
    pytest.importorskip("onnxruntime", reason="export parity and the bench need the 'onnxruntime' extra")
    root = tmp_path_factory.mktemp("tiny")
    pipe = write(root, TINY)
    code, doc, out = run_cli(str(pipe), "--cache-dir", str(root / "cache"), "-o", str(root / "out"), "--no-history")
    assert code == 0, out
    return {"root": root, "pipe": pipe, "cache": root / "cache", "doc": doc}


def copy_cache(tiny: dict, tmp_path: Path) -> Path:
    dst = tmp_path / "cache"
    shutil.copytree(tiny["cache"], dst)
    return dst


@pytest.mark.slow
class TestRuns:
    def test_first_run_runs_every_step_and_writes_the_reports(self, tiny: dict) -> None:
        doc, out = tiny["doc"], tiny["root"] / "out"
        assert statuses(doc) == {"mobilenetv3_small_100": "ran", "mobilenetv3_small_100/int8-ort": "ran"}
        for name in ("results.json", "report.md", "report.html", "run.json"):
            assert (out / name).is_file() and (out / name).stat().st_size > 0
        assert doc["history_run_id"] is None
        results = json.loads((out / "results.json").read_text())
        precisions = {(r["runtime"], r["precision"]): r["status"] for r in results["results"]}
        assert precisions[("onnxruntime", "fp32")] == "ok" and precisions[("onnxruntime", "int8")] == "ok"
        published = sorted(p.name for p in (out / "artifacts").iterdir())
        assert published == ["mobilenetv3_small_100-fp32", "mobilenetv3_small_100-int8-ort"]
        for p in (out / "artifacts").iterdir():
            load_artifact(p, verify=True)
        # the report names the rows by the published copies, not by cache keys
        assert sorted(a["name"] for a in results["artifacts"]) == published
        run = json.loads((out / "run.json").read_text())
        assert run["schema"] == "edgekit.run" and [s["status"] for s in run["steps"]] == ["ran", "ran"]
        assert len(verify_cache(tiny["cache"])) == 2 and staging_dirs(tiny["cache"]) == []

    def test_the_run_ends_with_a_verdict_per_model(self, tiny: dict) -> None:
        """What to ship, from the real run's numbers: stored in results.json and run.json, rendered in report.md
        and report.html, every row accounted for with its reason."""
        from edgekit.bench.results import load_report
        from edgekit.verdict import Outcome, report_verdicts

        out = tiny["root"] / "out"
        rep = load_report(out / "results.json")
        assert rep.extra["verdict"]["metric"] == "p50" and len(rep.extra["verdict"]["models"]) == 1
        (v,) = report_verdicts(rep)
        rows = {r.key: r for r in rep.results}
        assert {c.key for c in v.candidates} == set(rows) and all(c.reason for c in v.candidates)
        if v.ship is None:  # a noisy window (0.1 s here) may leave nothing to ship: the note says what to do
            assert "rerun" in v.note or "no FP32" in v.note
        else:  # the rules hold for what this machine measured
            assert [c.outcome for c in v.candidates].count(Outcome.SHIP) == 1
            shipped = rows[v.ship.key]
            assert shipped.ok and not shipped.unstable
            assert shipped.paired is None or shipped.paired.ci_pts[1] <= shipped.paired.budget_pts
        assert tiny["doc"]["verdict"][0]["summary"] == v.summary()
        assert json.loads((out / "run.json").read_text())["verdict"][0]["summary"] == v.summary()
        assert "Verdict: what to ship" in (out / "report.md").read_text() and v.summary() in (out / "report.md").read_text()
        html = (out / "report.html").read_text()
        assert "Verdict: what to ship" in html and ('data-outcome="ship"' in html) == (v.ship is not None)

    def test_a_fleet_run_benches_every_artifact_on_every_target(self, tiny: dict, tmp_path: Path) -> None:
        """targets = cpu + two (fake) devices: the steps stay cached, the cpu benches for real, each device one job
        at a time; per-target results with verdicts, one report over all, a device lost mid-sweep fails the run
        (exit 1) with its rows invalid, and a rerun redoes only its jobs."""
        from edgekit.pipeline.devices import BenchSpec
        from edgekit.pipeline.run import run_pipeline
        from edgekit.pipeline.targets import FleetOptions, bench_spec
        from tests.fleet_fakes import FakeFactory, MixedFactory

        pipe = load_pipeline(tiny["pipe"])
        spec: BenchSpec = bench_spec(pipe, threads=None)
        devices = {"a": {"delay_s": 0.05, "die_after": 1}, "b": {"delay_s": 0.05, "int8_ratio": 1.3}}
        fleet = FleetOptions(targets=("cpu", "device:a", "device:b"),
                             sessions=MixedFactory(spec, FakeFactory(str(tmp_path / "dev"), devices)))
        cache = copy_cache(tiny, tmp_path)
        out = tmp_path / "o"
        res = run_pipeline(pipe, output=out, cache_root=cache, history=False, fleet=fleet)
        assert {o.status for o in res.outcomes} == {"cached"}
        assert res.invalid_jobs and all(j.startswith("device:a/") for j in res.invalid_jobs) and not res.passed
        for t in ("cpu", "device-a", "device-b"):
            assert (out / "targets" / t / "results.json").is_file()
        cpu = json.loads((out / "targets" / "cpu" / "results.json").read_text())
        assert {r["status"] for r in cpu["results"]} == {"ok"} and cpu["extra"]["verdict"]["models"]
        dev_a = json.loads((out / "targets" / "device-a" / "results.json").read_text())
        assert [r["status"] for r in dev_a["results"]] == ["ok", "invalid"]
        html = (out / "report.html").read_text()
        assert "Across targets: what to ship where" in html and html.count('<section class="target"') == 3
        md = (out / "report.md").read_text()
        assert "| model | recipe | cpu | device:a | device:b |" in md
        run = json.loads((out / "run.json").read_text())
        assert run["targets"] == ["cpu", "device:a", "device:b"] and run["invalid_jobs"]
        # the device is back: the rerun redoes its invalid job only
        (tmp_path / "dev" / "a" / "unplugged").unlink()
        res2 = run_pipeline(pipe, output=out, cache_root=cache, history=False, fleet=FleetOptions(
            targets=fleet.targets, sessions=MixedFactory(spec, FakeFactory(str(tmp_path / "dev"),
                                                                           {"a": {"delay_s": 0.05}}))))
        assert not res2.invalid_jobs
        assert int((tmp_path / "dev" / "a" / "count").read_text()) == 3  # 2 in the first run, 1 now

    def test_lineage_in_every_artifact(self, tiny: dict) -> None:
        arts = {s["label"]: load_artifact(s["path"]) for s in tiny["doc"]["steps"]}
        ft, q = arts["mobilenetv3_small_100"], arts["mobilenetv3_small_100/int8-ort"]
        assert [s.step for s in ft.manifest.lineage] == ["finetune"]
        assert ft.manifest.lineage[0].recipe["epochs"] == 1 and ft.manifest.lineage[0].recipe["seed"] == 0
        assert [s.step for s in q.manifest.lineage] == ["finetune", "quantize"]
        parent = q.manifest.lineage[-1].parent
        assert parent.sha256 == ft.manifest.files[ft.manifest.model_file]
        assert Path(parent.path) == ft.path.resolve()
        assert q.manifest.lineage[-1].recipe["precision"] == "int8"
        results = json.loads((tiny["root"] / "out" / "results.json").read_text())
        for a in results["artifacts"]:
            assert a["lineage"] and a["lineage"][0]["step"] == "finetune"

    def test_a_failed_step_does_not_stop_the_matrix(self, tiny: dict, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
        """make -k: a recipe whose own check fails (here: its quantization budget) is reported, the rest
        is benched and reported, and the exit status is 1."""
        import edgekit.pipeline.run as run_mod
        from edgekit.core.errors import CheckFailed

        real = run_mod.run_step

        def failing(step, *a, **kw):  # noqa: ANN001, ANN202 - the real signature, passed through
            if step.label.endswith("/int8-bad"):
                raise CheckFailed("the INT8 model drops 3.00 pts of top-1 on 64 images, over the 0.5 pt budget")
            return real(step, *a, **kw)

        monkeypatch.setattr(run_mod, "run_step", failing)
        pipe = write(tmp_path, TINY + '\n[[recipe]]\nname = "int8-bad"\n'
                     'quantize = { precision = "int8", method = "onnxruntime", calib_size = 33, max_drop = 0.5 }\n')
        cache = copy_cache(tiny, tmp_path)
        code, doc, out = run_cli(str(pipe), "--cache-dir", str(cache), "-o", str(tmp_path / "o"), "--no-history")
        assert code == 1 and "1 step(s) failed" in out and "over the 0.5 pt budget" in out
        assert statuses(doc) == {"mobilenetv3_small_100": "cached", "mobilenetv3_small_100/int8-ort": "cached",
                                 "mobilenetv3_small_100/int8-bad": "failed"}
        results = json.loads((tmp_path / "o" / "results.json").read_text())
        assert sorted(a["name"] for a in results["artifacts"]) == ["mobilenetv3_small_100-fp32",
                                                                   "mobilenetv3_small_100-int8-ort"]
        run = json.loads((tmp_path / "o" / "run.json").read_text())
        (bad,) = [s for s in run["steps"] if s["status"] == "failed"]
        assert "budget" in bad["note"] and not Path(bad["path"]).exists()  # nothing half-made in the cache

    def test_progress_lines_off_a_terminal_and_none_with_quiet(self, tiny: dict, tmp_path: Path) -> None:
        args = ["run", str(tiny["pipe"]), "--cache-dir", str(tiny["cache"]), "--no-history"]
        r = CliRunner().invoke(cli, [*args, "-o", str(tmp_path / "a")])
        assert r.exit_code == 0, r.output
        assert "[1/2] finetune mobilenetv3_small_100: cached" in r.stderr and "benchmarking 2 artifact(s)" in r.stderr
        # the answer in the terminal: what to ship, or (a window too noisy to tell) no verdict and why
        assert re.search(r"(^|\n)(verdict: mobilenetv3_small_100 on cpu: ship |no verdict: mobilenetv3_small_100 on cpu: "
                         r"\S)", r.stdout)
        q = CliRunner().invoke(cli, ["-q", *args, "-o", str(tmp_path / "b")])
        assert q.exit_code == 0 and "[1/2]" not in q.stderr

    def test_rerun_is_all_cached(self, tiny: dict, tmp_path: Path) -> None:
        code, doc, out = run_cli(str(tiny["pipe"]), "--cache-dir", str(tiny["cache"]), "-o", str(tmp_path / "o"),
                                 "--no-history")
        assert code == 0, out
        assert set(statuses(doc).values()) == {"cached"}
        assert json.loads((tmp_path / "o" / "results.json").read_text())["results"]

    def test_dry_run_shows_cache_hits(self, tiny: dict, tmp_path: Path) -> None:
        code, rows, out = run_cli(str(tiny["pipe"]), "--cache-dir", str(tiny["cache"]), "--dry-run")
        assert code == 0, out
        steps = [r for r in rows if r["step"] != "bench"]
        assert [r["cached"] for r in steps] == [True, True] and {r["action"] for r in steps} == {"skip (cached)"}
        assert [r["label"] for r in rows if r["step"] == "bench"] == ["mobilenetv3_small_100/fp32",
                                                                     "mobilenetv3_small_100/int8-ort"]
        # a changed recipe: its step runs, the fine-tune stays cached; nothing is written by a dry run
        changed = write(tmp_path, TINY.replace("calib_size = 32", "calib_size = 48"))
        before = sorted(p.name for p in (tiny["cache"] / "quantize").iterdir())
        code, rows2, out = run_cli(str(changed), "--cache-dir", str(tiny["cache"]), "--dry-run")
        assert code == 0, out
        actions = {r["label"]: r["action"] for r in rows2 if r["step"] != "bench"}
        assert actions == {"mobilenetv3_small_100": "skip (cached)", "mobilenetv3_small_100/int8-ort": "run"}
        r = CliRunner().invoke(cli, ["run", str(changed), "--cache-dir", str(tiny["cache"]), "--dry-run"])
        assert r.exit_code == 0 and "skip (cached)" in r.output and "bench on cpu" in r.output
        assert "1 of 2 step(s) to run, 2 artifact(s) to bench; nothing was run" in r.output
        assert sorted(p.name for p in (tiny["cache"] / "quantize").iterdir()) == before

    def test_force_redoes_and_training_is_reproducible(self, tiny: dict, tmp_path: Path) -> None:
        from safetensors.numpy import load_file

        cache = copy_cache(tiny, tmp_path)
        old = {s["label"]: load_artifact(Path(s["path"].replace(str(tiny["cache"]), str(cache))))
               for s in tiny["doc"]["steps"]}
        w_old = load_file(str(old["mobilenetv3_small_100"].path / "checkpoint.safetensors"))
        code, doc, out = run_cli(str(tiny["pipe"]), "--cache-dir", str(cache), "-o", str(tmp_path / "o"),
                                 "--no-history", "--force")
        assert code == 0, out
        assert set(statuses(doc).values()) == {"ran"}
        new = {s["label"]: load_artifact(s["path"]) for s in doc["steps"]}
        ft_old, ft_new = old["mobilenetv3_small_100"].manifest, new["mobilenetv3_small_100"].manifest
        # seeded training on the same machine and thread count gives the same weights and the same ONNX
        # (the checkpoint file's bytes are not compared: safetensors writes its metadata in no fixed order)
        assert ft_new.files[ft_new.model_file] == ft_old.files[ft_old.model_file]
        w_new = load_file(str(new["mobilenetv3_small_100"].path / "checkpoint.safetensors"))
        assert w_old.keys() == w_new.keys() and all(np.array_equal(w_old[k], w_new[k]) for k in w_old)
        assert verify_cache(cache) and staging_dirs(cache) == []

    def test_damaged_entry_is_redone(self, tiny: dict, tmp_path: Path) -> None:
        cache = copy_cache(tiny, tmp_path)
        (q_entry,) = (cache / "quantize").iterdir()
        q = load_artifact(q_entry)
        model = q_entry / q.manifest.model_file
        model.write_bytes(model.read_bytes() + b"\0")  # a file no longer matches its manifest
        code, doc, out = run_cli(str(tiny["pipe"]), "--cache-dir", str(cache), "-o", str(tmp_path / "o"),
                                 "--no-history")
        assert code == 0, out
        assert statuses(doc) == {"mobilenetv3_small_100": "cached", "mobilenetv3_small_100/int8-ort": "ran"}
        (note,) = [s["note"] for s in doc["steps"] if s["status"] == "ran"]
        assert "damaged" in note
        verify_cache(cache)

    def test_damaged_parent_is_redone_and_its_child_checked(self, tiny: dict, tmp_path: Path) -> None:
        cache = copy_cache(tiny, tmp_path)
        (ft_entry,) = (cache / "finetune").iterdir()
        (ft_entry / "checkpoint.safetensors").write_bytes(b"not the weights")
        code, doc, out = run_cli(str(tiny["pipe"]), "--cache-dir", str(cache), "-o", str(tmp_path / "o"),
                                 "--no-history")
        assert code == 0, out
        st = statuses(doc)
        assert st["mobilenetv3_small_100"] == "ran"
        # the child is reused only because the redone parent is byte-identical (its recorded parent hash matches)
        ft = load_artifact(ft_entry)
        q = load_artifact(next((cache / "quantize").iterdir()))
        assert q.manifest.lineage[-1].parent.sha256 == ft.manifest.files[ft.manifest.model_file]
        assert st["mobilenetv3_small_100/int8-ort"] == "cached"
        verify_cache(cache)

    def test_resume_after_sigkill(self, tmp_path: Path) -> None:
        pipe = write(tmp_path, TINY)
        cache, out = tmp_path / "cache", tmp_path / "out"
        cmd = [sys.executable, "-m", "edgekit.cli.main", "run", str(pipe), "--cache-dir", str(cache), "-o", str(out),
               "--no-history"]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 600
            # wait until the fine-tune entry is complete and the quantize step has started staging its entry
            while time.monotonic() < deadline and proc.poll() is None:
                done = list((cache / "finetune").glob(f"*/{MANIFEST_NAME}")) if (cache / "finetune").is_dir() else []
                staging = list((cache / "quantize").glob(".*staging*")) if (cache / "quantize").is_dir() else []
                if done and staging:
                    break
                time.sleep(0.05)
            assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read()!r}"
            assert time.monotonic() < deadline, "the quantize step never started"
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == -signal.SIGKILL
        # what the kill left: one complete entry, a stale staging directory, no half entry anywhere
        entries = verify_cache(cache)
        assert [e.parent.name for e in entries] == ["finetune"]
        assert staging_dirs(cache), "the killed quantize step left no staging directory to clean"
        assert not (out / "results.json").exists()

        code, doc, text = run_cli(str(pipe), "--cache-dir", str(cache), "-o", str(out), "--no-history")
        assert code == 0, text
        assert statuses(doc) == {"mobilenetv3_small_100": "cached", "mobilenetv3_small_100/int8-ort": "ran"}
        assert staging_dirs(cache) == []
        assert sorted(e.parent.name for e in verify_cache(cache)) == ["finetune", "quantize"]
        assert (out / "results.json").is_file()


def test_every_cache_follows_one_root(monkeypatch, tmp_path):
    """Step cache, benchmark exports and TensorRT timing caches resolve the same root, same precedence."""
    from edgekit.bench import model_cache
    from edgekit.runtime.tensorrt import build as tensorrt_engine
    from edgekit.core.cache import cache_root
    from edgekit.pipeline.cache import StepCache

    def step_root() -> object:
        return StepCache(None).root.parent

    resolvers = (cache_root, step_root, model_cache.cache_root, tensorrt_engine.cache_root)
    for var in ("EDGEKIT_CACHE", "EDGEKIT_CACHE_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert {f() for f in resolvers} == {tmp_path / "home" / ".cache" / "edgekit"}
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert {f() for f in resolvers} == {tmp_path / "xdg" / "edgekit"}
    monkeypatch.setenv("EDGEKIT_CACHE_DIR", str(tmp_path / "alias"))
    assert {f() for f in resolvers} == {tmp_path / "alias"}
    monkeypatch.setenv("EDGEKIT_CACHE", str(tmp_path / "main"))
    assert {f() for f in resolvers} == {tmp_path / "main"}


def test_an_artifact_left_by_a_failed_check_is_set_aside_never_a_cache_hit(tmp_path):
    """quantize/prune keep an artifact whose accuracy verdict failed (marked failed, exit 1); in a pipeline it must
    not sit at the step's cache path, where the next run would take it as done."""
    from edgekit.pipeline.run import _set_aside

    step = tmp_path / "cache" / "quantize-abc"
    step.mkdir(parents=True)
    (step / "edgekit.json").write_text("{}")
    kept = _set_aside(step)
    assert kept == tmp_path / "cache" / "quantize-abc.failed" and (kept / "edgekit.json").is_file()
    assert not step.exists() and _set_aside(step) is None
    step.mkdir()
    assert _set_aside(step) == kept and not step.exists()  # an older failed one is replaced
