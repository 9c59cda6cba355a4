"""Shared fixtures. Exports are cached per session: exporting is the slow part."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Tests never reach a model hub: the network is not there in CI, and a test
# that silently downloaded weights would prove nothing about offline use.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TIMM_USE_OLD_CACHE", "0")

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
