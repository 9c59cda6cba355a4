"""Shared fixtures. Exports are cached per session: exporting is the slow part."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from sshd import REMOTE_BENCH

# Tests never reach a model hub: the network is not there in CI, and a test
# that silently downloaded weights would prove nothing about offline use.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TIMM_USE_OLD_CACHE", "0")
# ``edgekit bench`` records every run in the history: tests record into a scratch database, never the user's.
if "EDGEKIT_HISTORY" not in os.environ:
    _HISTORY_DIR = tempfile.mkdtemp(prefix="edgekit-tests-")
    os.environ["EDGEKIT_HISTORY"] = str(Path(_HISTORY_DIR) / "history.sqlite")
    atexit.register(shutil.rmtree, _HISTORY_DIR, ignore_errors=True)

_EXPORTS: dict[tuple, Path] = {}


@pytest.fixture(scope="session")
def export_artifact(tmp_path_factory: pytest.TempPathFactory):
    """Export a zoo model once per session and return the artifact directory."""
    pytest.importorskip("torch", reason="exporting needs the 'torch' extra")
    pytest.importorskip("onnxruntime", reason="export parity needs the 'onnxruntime' extra")
    from edgekit.export import ExportOptions, export_model

    def make(model: str, *, weights: str = "none", dynamic_batch: bool = False, **kw) -> Path:
        key = (model, weights, dynamic_batch, tuple(sorted(kw.items())))
        if key not in _EXPORTS:
            out = tmp_path_factory.mktemp("export") / f"{model}-{'dyn' if dynamic_batch else 'static'}"
            export_model(ExportOptions(model=model, output=out, weights=weights, dynamic_batch=dynamic_batch, **kw))
            _EXPORTS[key] = out
        return _EXPORTS[key]

    return make


# -- models fine-tuned on the embedded animals, once per session ---------------------------------

#: the fast default of ``trained_artifact``: mobilenetv3_small_100 from scratch at 48 px, 2 epochs of
#: batch 128 on all 8,000 training images, without augmentation (short schedules learn faster without
#: it). Measured: 88.2 % held-out top-1, ~68 CPU-seconds in all (training ~57). One thread: no OpenMP
#: spinning on a shared machine, and the same weights wherever the same kernels run.
TRAINED_DEFAULTS = {"weights": "none", "img_size": 48, "epochs": 2, "augment": False, "batch_size": 128,
                    "lr": 8e-3, "threads": 1, "seed": 0}
TRAINED_DEFAULT_MODEL = "mobilenetv3_small_100"
_TRAINED: dict[tuple, Path] = {}


class TrainedArtifacts:
    """``trained_artifact(name, img_size=..., epochs=..., **FinetuneOptions)`` -> artifact dir.

    Each distinct configuration is fine-tuned once per session (real training
    on the embedded dataset, held-out split untouched). The object is also
    path-like: ``Path(trained_artifact)`` / ``trained_artifact.path`` is the
    default model's artifact.
    """

    def __init__(self, factory: pytest.TempPathFactory) -> None:
        self._factory = factory

    def __call__(self, name: str = TRAINED_DEFAULT_MODEL, **kw) -> Path:
        from edgekit.optimize.train.finetune import FinetuneOptions, finetune

        opts = {**TRAINED_DEFAULTS, **kw}
        key = (name, tuple(sorted(opts.items())))
        if key not in _TRAINED:
            out = self._factory.mktemp("trained") / name
            finetune(FinetuneOptions(model=name, output=out, **opts))
            _TRAINED[key] = out
        return _TRAINED[key]

    @property
    def path(self) -> Path:
        return self()

    def __fspath__(self) -> str:
        return str(self())


@pytest.fixture(scope="session")
def trained_artifact(tmp_path_factory: pytest.TempPathFactory) -> TrainedArtifacts:
    """Fine-tune a zoo model on the embedded dataset once per session; see :class:`TrainedArtifacts`."""
    pytest.importorskip("torch", reason="fine-tuning needs the 'torch' extra")
    pytest.importorskip("onnxruntime", reason="the fine-tuned artifact's parity check needs 'onnxruntime'")
    return TrainedArtifacts(tmp_path_factory)


# -- a real OpenSSH server on 127.0.0.1 and the "device" behind it (tests/sshd.py) ----------------

@pytest.fixture(scope="session")
def sshd_server(tmp_path_factory: pytest.TempPathFactory):
    """Debian's sshd with a private config, host key, client key and known_hosts; stopped at the end."""
    from sshd import ensure_sshd, start_sshd

    if ensure_sshd() is None:
        reason = "no /usr/sbin/sshd and apt-get could not install openssh-server (not root, or no package index)"
        print(reason)
        pytest.skip(reason)
    server = start_sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()


#: the remote tests' bench settings (short windows; a fixed seed)
_INDEX: dict[str, str | None] = {}


def index_unreachable() -> str | None:
    """Why the package index cannot serve onnxruntime (checked with pip itself, once), or None."""
    import subprocess
    import sys
    import tempfile

    if "why" not in _INDEX:
        try:
            with tempfile.TemporaryDirectory(prefix="edgekit-index-check-") as tmp:
                p = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp,
                                    "onnxruntime", "--only-binary", ":all:"], capture_output=True, text=True,
                                   timeout=300)
            _INDEX["why"] = None if p.returncode == 0 else f"pip cannot download onnxruntime: {p.stderr.strip()[-200:]}"
        except (OSError, subprocess.SubprocessError) as e:
            _INDEX["why"] = f"pip failed: {e}"
    return _INDEX["why"]


@pytest.fixture(scope="session")
def device_registry(sshd_server, tmp_path_factory, monkeypatch_session):
    """EDGEKIT_DEVICES pointing at a file with 'lab' (the loopback device) registered through the CLI."""
    from click.testing import CliRunner

    from edgekit.cli.main import cli

    reg = tmp_path_factory.mktemp("registry") / "devices.toml"
    monkeypatch_session.setenv("EDGEKIT_DEVICES", str(reg))
    work = tmp_path_factory.mktemp("device") / "ek-work"
    s = sshd_server
    r = CliRunner().invoke(cli, ["devices", "add", "lab", "--host", f"{s.user}@127.0.0.1:{s.port}",
                                 "--workdir", str(work), "--ssh-config", str(s.ssh_config),
                                 "--identity", str(s.client_key), "--known-hosts", str(s.known_hosts)])
    assert r.exit_code == 0, r.output
    return reg, work


@pytest.fixture(scope="session")
def monkeypatch_session():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


@pytest.fixture(scope="session")
def labelled_artifact(export_artifact):
    """A small untrained model whose labels are the embedded set's, so accuracy is measured (deterministically)."""
    from edgekit.data.embedded import embedded_class_names

    names = embedded_class_names()
    return export_artifact("mobilenetv3_small_100", dynamic_batch=True, img_size=64, num_classes=len(names),
                           labels=names)


@pytest.fixture(scope="session")
def first_run(device_registry, labelled_artifact, tmp_path_factory):
    """The first remote bench of the session (it provisions the device): (results JSON, CLI output)."""
    import json

    from click.testing import CliRunner

    from edgekit.cli.main import cli

    why = index_unreachable()
    if why:
        print(why)
        pytest.skip(why)
    out = tmp_path_factory.mktemp("remote-run") / "results.json"
    r = CliRunner().invoke(cli, ["bench", "--device", "lab", *REMOTE_BENCH, "-o", str(out), str(labelled_artifact)])
    assert r.exit_code == 0, r.output
    return json.loads(out.read_text()), r.output

