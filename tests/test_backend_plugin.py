"""A runtime backend registered from outside the library is benched end to end.

The proof that each backend owns its knowledge: this file defines a numpy
"runtime" (a linear classifier stored as ``model.npz``, its own manifest
format ``npz-linear``), registers it with :func:`edgekit.runtime.registry.register`
and nothing else, and then a target profile naming it validates, ``run_bench``
plans and measures it (latency, the batch sweep, accuracy) and ``edgekit bench
--runtime dummy`` prints its row. No library file names it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from edgekit.bench.runner import BenchOptions, run_bench
from edgekit.cli.main import cli
from edgekit.core.errors import UsageError
from edgekit.core.manifest import Manifest, WeightsInfo, load_artifact
from edgekit.core.specs import PreprocessSpec, TensorSpec
from edgekit.core.targets import load_target
from edgekit.runtime import registry
from edgekit.runtime.backend import Backend, BatchMode, OpenRequest
from edgekit.runtime.base import Runner, RunnerInfo

SIZE, CLASSES = 16, 10
FORMAT = "npz-linear"
FAST_KW = {"min_duration_s": 0.2, "min_iterations": 10, "warmup_s": 0.02}


class NumpyLinearRunner(Runner):
    """logits = flatten(x) @ W + b, with W and b from ``model.npz``."""

    name = "dummy"

    def __init__(self, model_path: str | Path, *, scale: float = 1.0) -> None:
        super().__init__(model_path)
        self.scale = scale
        self._w: np.ndarray | None = None
        self._b: np.ndarray | None = None

    def _activate_impl(self) -> None:
        with np.load(self.model_path) as z:
            self._w, self._b = z["W"] * np.float32(self.scale), z["b"]

    def _inputs_impl(self) -> tuple[TensorSpec, ...]:
        return (TensorSpec("input", ("batch", 3, SIZE, SIZE), "float32", "NCHW"),)

    def _outputs_impl(self) -> tuple[TensorSpec, ...]:
        return (TensorSpec("logits", ("batch", CLASSES), "float32"),)

    def _info_impl(self) -> RunnerInfo:
        return RunnerInfo(runtime="dummy", runtime_version=np.__version__, device="CPU", precision="fp32")

    def _infer_impl(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = feeds["input"]
        return {"logits": x.reshape(len(x), -1) @ self._w + self._b}


def _options(request: OpenRequest) -> dict[str, Any]:
    return {"scale": 1.0}  # the hook a backend uses to turn a bench cell into runner options


DUMMY = Backend(name="dummy", runner=NumpyLinearRunner, requires="numpy", extra="core", aliases=("np",),
                formats=(FORMAT,), devices=("CPU",), batching=BatchMode.DECLARED, takes_threads=False,
                options=_options)


@pytest.fixture
def dummy():
    registry.register(DUMMY)
    yield DUMMY
    registry.unregister(DUMMY.name)


@pytest.fixture(scope="module")
def artifact(tmp_path_factory) -> Path:
    """A seeded random linear classifier with the embedded dataset's labels, as an npz-linear artifact."""
    from edgekit.data import embedded_class_names

    out = tmp_path_factory.mktemp("dummy") / "linear"
    out.mkdir()
    rng = np.random.default_rng(0)
    np.savez(out / "model.npz", W=rng.normal(0, 0.05, (3 * SIZE * SIZE, CLASSES)).astype(np.float32),
             b=np.zeros(CLASSES, np.float32))
    Manifest(model="numpy_linear", family="linear", source="tests/test_backend_plugin.py", num_classes=CLASSES,
             weights=WeightsInfo(origin="none", random_init=True),
             inputs=(TensorSpec("input", ("batch", 3, SIZE, SIZE), "float32", "NCHW"),),
             outputs=(TensorSpec("logits", ("batch", CLASSES), "float32"),),
             preprocess=PreprocessSpec(input_size=(SIZE, SIZE), crop_pct=1.0), labels=embedded_class_names(),
             format=FORMAT, model_file="model.npz").with_files(out).write(out)
    return out


@pytest.fixture
def target(tmp_path) -> Path:
    path = tmp_path / "numpy-box.toml"
    path.write_text('schema_version = 1\nname = "numpy-box"\ndescription = "a host with the numpy runtime"\n'
                    'family = "cpu"\n[peak_compute]\nnote = "none published"\n'
                    '[[runtimes]]\nruntime = "dummy"\ndevice = "CPU"\nprecisions = ["fp32"]\n')
    return path


def _numpy_reference(art: Path, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Predictions and model-space labels on the eval subset bench uses, computed here with numpy."""
    from edgekit.data import check_labels_match, evaluation_indices, load_embedded, preload

    m = load_artifact(art).manifest
    ds = load_embedded(split="heldout")
    idx = evaluation_indices(ds.labels, n, seed=0)
    x = preload(ds, idx, m.preprocess).reshape(len(idx), -1)
    with np.load(art / "model.npz") as z:
        logits = x @ z["W"] + z["b"]
    mapping = check_labels_match(ds.classes, m.labels, num_classes=m.num_classes)
    return logits.argmax(1), mapping[np.asarray(ds.labels)[idx]]


def test_a_registered_backend_is_benched_end_to_end(dummy, artifact, target):
    assert load_target(target).runtimes[0].key == "dummy:CPU"  # the profile validates against the registry
    rep = run_bench(BenchOptions(target=str(target), artifacts=(artifact,), batch_sizes=(1, 4), eval_size=60,
                                 **FAST_KW))
    (row,) = rep.results
    assert (row.status, row.runtime, row.device, row.precision) == ("ok", "dummy", "CPU", "fp32"), row.reason
    assert row.runner.runtime == "dummy" and row.runner.threads is None  # takes_threads=False
    assert row.latency is not None and row.latency.iterations >= 10
    assert [p.batch_size for p in row.throughput.points] == [1, 4]
    assert all(p.error is None and p.samples_per_s > 0 for p in row.throughput.points)
    pred, y = _numpy_reference(artifact, 60)
    assert row.accuracy.n == 60 and np.array_equal(row.accuracy.predictions, pred)
    assert row.accuracy.top1 == pytest.approx(float(np.mean(pred == y)))


def test_the_cli_benches_it_by_name_and_alias(dummy, artifact, target):
    res = CliRunner().invoke(cli, ["bench", str(artifact), "--target", str(target), "--runtime", "np",
                                   "--batch", "1", "--min-duration", "0.2", "--min-iterations", "10",
                                   "--warmup", "0.02", "--eval-size", "20", "--json", "--quiet"])
    assert res.exit_code == 0, res.output
    (row,) = json.loads(res.stdout)["results"]
    assert row["key"] == f"{artifact.name}/dummy:CPU/fp32" and row["status"] == "ok"


def test_other_runtimes_say_who_reads_the_format(dummy, artifact):
    from edgekit.bench.plan import plan_cells

    cells = plan_cells([load_artifact(artifact).manifest], load_target("cpu"))
    assert cells and all(not c.runs for c in cells)
    assert all(f"cannot read a {FORMAT} artifact (read by: dummy)" in (c.reason or "") for c in cells)


def test_unregistered_it_is_unknown_again(artifact, target):
    assert "dummy" not in registry.RUNTIMES
    with pytest.raises(UsageError, match="'dummy' is not one of"):
        load_target(target)
    with pytest.raises(UsageError, match="unknown runtime 'dummy'"):
        registry.resolve_runtime("dummy")
