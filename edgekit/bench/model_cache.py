"""``edgekit bench --model NAME``: export a zoo model once into a cache, then benchmark the artifact.

Host only: exporting needs the ``torch`` extra, imported through
:mod:`edgekit.export` inside :func:`cached_export` and nowhere else in
:mod:`edgekit.bench` (a device benchmarks artifact paths and never gets here).

The cache directory is ``cache_dir``, else ``$EDGEKIT_CACHE``, else
``$EDGEKIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/edgekit`` (``~/.cache/edgekit``);
artifacts live in ``<cache>/artifacts/<model>-<key>``, where ``key`` hashes
everything the export depends on: the model, the weights (a checkpoint by
its sha256), the image size, the export settings, and the edgekit, torch,
timm, torchvision and onnx versions. A cached artifact is reused only after
:func:`~edgekit.core.manifest.load_artifact` verified every file's sha256.
Benchmark exports have a dynamic batch axis, so ONNX Runtime can sweep batch
sizes; OpenVINO still compiles a static shape per batch size.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgekit.core.atomic import sha256_file
from edgekit.core.cache import cache_root
from edgekit.core.errors import ArtifactError, MissingDependencyError, WeightsError
from edgekit.core.manifest import MANIFEST_NAME, load_artifact
from edgekit.core.versions import package_version

log = logging.getLogger(__name__)

EXPORT_OPSET = 17


def export_key(model: str, *, weights: str, img_size: int | None) -> dict[str, object]:
    """What a cached benchmark export depends on."""
    w = weights.strip()
    weights_id: str = w.lower() if w.lower() in ("imagenet", "none") else ""
    if not weights_id:
        p = Path(w).expanduser()
        if not p.is_file():
            raise WeightsError(f"weights file {p} does not exist",
                               hint="give a checkpoint path, 'imagenet' or 'none'")
        weights_id = f"sha256:{sha256_file(p)}"
    return {"model": model, "weights": weights_id, "img_size": img_size, "dynamic_batch": True,
            "opset": EXPORT_OPSET, **{k: package_version(k) for k in ("edgekit", "torch", "torchvision", "timm", "onnx")}}


def cache_path(model: str, *, weights: str, img_size: int | None,
               cache_dir: str | os.PathLike[str] | None) -> tuple[Any, Path]:
    """(zoo entry, the cache directory its export with these settings lives in)."""
    from edgekit.zoo.registry import get_model  # torch-free metadata

    entry = get_model(model)
    key = export_key(entry.name, weights=weights, img_size=img_size)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    root = Path(cache_dir).expanduser() if cache_dir is not None else cache_root()
    return entry, root / "artifacts" / f"{entry.name}-{digest}"


def cached_export(model: str, *, weights: str = "imagenet", img_size: int | None = None,
                  cache_dir: str | os.PathLike[str] | None = None,
                  progress: Callable[[str], None] | None = None) -> Path:
    """The artifact directory of ``model`` exported with ``weights``: from the cache, or exported now."""
    say = progress or (lambda msg: log.info("%s", msg))
    entry, out = cache_path(model, weights=weights, img_size=img_size, cache_dir=cache_dir)
    if (out / MANIFEST_NAME).is_file():
        try:
            load_artifact(out)
            say(f"using the cached export {out}")
            return out
        except ArtifactError as e:
            log.warning("cached export %s is damaged (%s); exporting again", out, e.one_line())
    try:
        from edgekit.export import ExportOptions, export_model

        say(f"exporting {entry.name} (weights {weights}) into {out}")
        export_model(ExportOptions(model=entry.name, output=out, weights=weights, img_size=img_size,
                                   dynamic_batch=True, opset=EXPORT_OPSET, overwrite=True), progress=say)
    except MissingDependencyError as e:
        raise MissingDependencyError(e.module, e.extra,
                                     purpose="--model exports the model first, on the host; on a device "
                                             "benchmark an exported artifact directory instead") from None
    except WeightsError as e:
        raise WeightsError(f"cannot load {weights} weights for {entry.name}: {e.message}",
                           hint="pass --weights PATH (a checkpoint) or --weights none, or benchmark an exported "
                                "artifact directory instead of --model") from None
    return out


def _export_child(model: str, weights: str, img_size: int | None, cache_dir: str | None) -> tuple[str, ...]:
    """Run in a spawned child: ("ok", path) or ("error", exit code, one line)."""
    from edgekit.core.errors import EdgekitError

    try:
        return ("ok", str(cached_export(model, weights=weights, img_size=img_size, cache_dir=cache_dir)))
    except EdgekitError as e:
        return ("error", str(e.exit_code), e.one_line())


def cached_export_isolated(model: str, *, weights: str = "imagenet", img_size: int | None = None,
                           cache_dir: str | os.PathLike[str] | None = None,
                           progress: Callable[[str], None] | None = None) -> Path:
    """:func:`cached_export` in a spawned child process, so torch never loads into the benchmarking process
    (its few hundred MB would otherwise count as the model's peak RSS). A cache hit needs no child."""
    say = progress or (lambda msg: log.info("%s", msg))
    entry, out = cache_path(model, weights=weights, img_size=img_size, cache_dir=cache_dir)
    if (out / MANIFEST_NAME).is_file():
        try:
            load_artifact(out)
            say(f"using the cached export {out}")
            return out
        except ArtifactError:
            pass  # the child exports it again and says so
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from edgekit.core.errors import CheckFailed, UsageError

    say(f"exporting {entry.name} (weights {weights}) in a child process")
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        res = pool.submit(_export_child, model, weights, img_size,
                          os.fspath(cache_dir) if cache_dir is not None else None).result()
    if res[0] == "ok":
        return Path(res[1])
    raise (CheckFailed if res[1] == "1" else UsageError)(res[2])
