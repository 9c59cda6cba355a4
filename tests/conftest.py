"""Shared fixtures. Exports are cached per session: exporting is the slow part."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Tests never reach a model hub: the network is not there in CI, and a test
# that silently downloaded weights would prove nothing about offline use.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TIMM_USE_OLD_CACHE", "0")
# ``edgekit bench`` records every run in the history: tests record into a scratch database, never the user's.
os.environ.setdefault("EDGEKIT_HISTORY", str(Path(tempfile.mkdtemp(prefix="edgekit-tests-")) / "history.sqlite"))

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
