"""``edgekit run`` measures energy like ``edgekit bench``: the pipeline's ``[bench] power`` (default auto) and
``edgekit run --power`` reach the bench's telemetry, so pipeline results carry energy per inference."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from edgekit.cli.main import cli
from edgekit.core.errors import UsageError
from edgekit.pipeline import run as run_mod
from edgekit.pipeline.config import load_pipeline, parse_pipeline
from edgekit.pipeline.run import RunProgress
from edgekit.telemetry import session as session_mod

BASE = """\
[pipeline]
name = "p"
target = "cpu"

[bench]
min_duration = 1.0
min_iterations = 20
warmup = 0.1
eval_size = 64
runtimes = ["onnxruntime"]
{extra}

[[model]]
name = "mobilenetv3_small_100"
"""


def pipeline(tmp_path: Path, extra: str = ""):
    p = tmp_path / "pipeline.toml"
    p.write_text(BASE.format(extra=extra), encoding="utf-8")
    return load_pipeline(p)


def bench_options(monkeypatch: pytest.MonkeyPatch, pipe, power: str | None = None):
    """The BenchOptions the pipeline's bench step hands to run_bench (``power``: as ``run_pipeline(power=)``)."""
    import edgekit.bench.runner as runner_mod

    seen = []
    monkeypatch.setattr(runner_mod, "run_bench", lambda options, **k: seen.append(options))
    run_mod._bench(SimpleNamespace(target="cpu"), run_mod.with_power(pipe, power), [], threads=None,
                   progress=RunProgress())
    (options,) = seen
    return options


def test_power_defaults_to_auto_like_bench(tmp_path, monkeypatch):
    pipe = pipeline(tmp_path)
    assert pipe.bench.power == "auto"
    t = bench_options(monkeypatch, pipe).telemetry
    assert t is not None and t.power == "auto"


def test_pipeline_key_and_the_override(tmp_path, monkeypatch):
    pipe = pipeline(tmp_path, 'power = "off"')
    assert bench_options(monkeypatch, pipe).telemetry.power == "off"
    assert bench_options(monkeypatch, pipe, power="rapl").telemetry.power == "rapl"  # --power wins


def test_a_bad_power_key_names_the_field(tmp_path):
    with pytest.raises(UsageError, match=r"bench\.power"):
        parse_pipeline({"pipeline": {"name": "t"}, "model": [{"name": "m"}], "bench": {"power": "watts"}},
                       origin="t.toml")


def test_a_run_over_several_targets_measures_power_too(tmp_path):
    """The multi-target (fleet) path builds its own bench options: local jobs and a device's own bench."""
    from edgekit.pipeline.targets import bench_spec

    spec = bench_spec(run_mod.with_power(pipeline(tmp_path, 'power = "off"'), "rapl"), threads=None)
    assert spec.options("cpu", "a").telemetry.power == "rapl"
    args = spec.cli_args()
    assert args[args.index("--power") + 1] == "rapl"
    assert bench_spec(pipeline(tmp_path), threads=None).options("cpu", "a").telemetry.power == "auto"


def test_a_bad_override_fails_before_any_step(tmp_path, monkeypatch):
    monkeypatch.setattr(run_mod, "StepCache", lambda *a, **k: pytest.fail("a step cache was opened"))
    with pytest.raises(UsageError, match="unknown power source"):
        run_mod.run_pipeline(pipeline(tmp_path), output=tmp_path / "out", power="watts")


def test_cli_power_reaches_the_run(tmp_path, monkeypatch):
    got = {}

    def fake(pipe, **kw):
        got.update(kw)
        raise UsageError("stopped here")

    monkeypatch.setattr(run_mod, "run_pipeline", fake)
    pipeline(tmp_path)
    r = CliRunner().invoke(cli, ["run", str(tmp_path / "pipeline.toml"), "--power", "off"])
    assert r.exit_code == 2 and got["power"] == "off"
    r = CliRunner().invoke(cli, ["run", str(tmp_path / "pipeline.toml")])
    assert got["power"] is None  # the pipeline's [bench] power decides
    r = CliRunner().invoke(cli, ["run", str(tmp_path / "pipeline.toml"), "--power", "watts"])
    assert r.exit_code == 2 and "watts" in r.output


def test_pipeline_bench_results_carry_energy(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime", reason="the bench runs the artifact with the 'onnxruntime' extra")
    from test_bench import _train_linear_artifact
    from test_telemetry_bench import StepSource

    linear = _train_linear_artifact(tmp_path / "linear")
    src = StepSource()
    src.step_at = 0  # a steady 4 W
    monkeypatch.setattr(session_mod, "open_source", lambda *a, **k: (src, []))
    report = run_mod._bench(SimpleNamespace(target="cpu"), pipeline(tmp_path), [linear], threads=None,
                            progress=RunProgress())
    (row,) = [r for r in report.results if r.status == "ok"]
    lat = row.latency
    assert row.telemetry is not None and row.telemetry.energy_mj == pytest.approx(
        4000 * lat.duration_s / lat.iterations, rel=0.01)


# --- which targets run on a GPU: the runtime registry says, not a runtime's name ---------------------------------


def test_the_backend_records_say_which_devices_are_gpus():
    from edgekit.runtime.registry import resolve_runtime

    trt, ort, ov = (resolve_runtime(n) for n in ("tensorrt", "onnxruntime", "openvino"))
    assert trt.uses_gpu("GPU") and trt.uses_gpu("DLA")
    assert ort.uses_gpu("CUDA") and ort.uses_gpu("TensorRT") and not ort.uses_gpu("CPU")
    assert ort.uses_gpu("CPU", "CUDAExecutionProvider")  # the provider names the device
    assert not ov.uses_gpu("GPU")  # an Intel GPU: RAPL's package covers it, NVML does not


def test_bench_asks_the_registry_whether_a_target_uses_a_gpu(monkeypatch):
    from edgekit.bench import runner as bench_runner
    from edgekit.core.target_schema import RuntimeSpec
    from edgekit.runtime import registry
    from edgekit.runtime.backend import Backend

    asked = []
    monkeypatch.setattr(bench_runner.Telemetry, "open", classmethod(
        lambda cls, opts, *, prefer_gpu: asked.append(prefer_gpu) or SimpleNamespace(source=None)))
    registry.register(Backend(name="fakeaccel", runner="x:Y", requires="fakeaccel_mod", extra="fakeaccel",
                              devices=("CPU", "XPU"), gpu_devices=("XPU",)))
    try:
        opts = session_mod.TelemetryOptions(power="auto")
        for device, want in (("XPU", True), ("CPU", False)):
            target = SimpleNamespace(runtimes=(RuntimeSpec(runtime="fakeaccel", device=device, precisions=("fp32",)),))
            bench_runner._open_telemetry(opts, target, lambda *a: None)
            assert asked.pop() is want
    finally:
        registry.unregister("fakeaccel")
