"""Build zoo models with timm or torchvision (imported lazily).

``build_model`` returns an ``nn.Module`` in eval mode, randomly initialized or
with the published ImageNet weights fetched through timm's and torchvision's
own mechanisms (Hugging Face cache, torch hub cache). When a cached weight
file exists it is used directly, without touching the network.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from edgekit.core.errors import WeightsError
from edgekit.core.lazy import available, require
from edgekit.zoo.registry import ModelEntry

log = logging.getLogger(__name__)

IMAGENET_CLASSES = 1000


def _timm() -> Any:
    return require("timm", purpose="building timm models")


def _torchvision() -> Any:
    return require("torchvision.models", purpose="building torchvision models")


def timm_pretrained_cfg(entry: ModelEntry) -> Any:
    """timm's PretrainedCfg of the registered tag (or the untrained default)."""
    timm = _timm()
    name = f"{entry.builder}.{entry.pretrained_tag}" if entry.pretrained_tag else entry.builder
    cfg = timm.models.get_pretrained_cfg(name)
    if cfg is None:  # pragma: no cover - a timm upgrade dropped a registered tag
        raise WeightsError(f"timm {timm.__version__} has no pretrained config {name}", hint="pin timm>=1.0.9")
    return cfg


def classifier_name(entry: ModelEntry) -> str:
    """Module name of the classification head (``classifier``, ``head.fc``, ``fc``...).

    timm names it in the pretrained config; for torchvision the model is built
    on the meta device (no memory, no init cost) and the head is the last
    Linear/Conv2d producing ``entry.num_classes`` outputs.
    """
    if entry.source == "timm":
        return str(timm_pretrained_cfg(entry).classifier)
    torch = require("torch")
    with torch.device("meta"):
        model = _torchvision().get_model(entry.builder, weights=None)
    head = None
    for name, mod in model.named_modules():
        out = getattr(mod, "out_features", None) or getattr(mod, "out_channels", None)
        if isinstance(mod, (torch.nn.Linear, torch.nn.Conv2d)) and out == entry.num_classes:
            head = name
    if head is None:  # pragma: no cover - only a new torchvision layout gets here
        raise WeightsError(f"cannot find the classifier of torchvision {entry.builder}")
    return head


def pretrained_cache_file(entry: ModelEntry) -> Path | None:
    """The cached file holding ``entry``'s published weights, or None when not cached."""
    if not entry.pretrained:
        return None
    if entry.source == "timm":
        cfg = timm_pretrained_cfg(entry)
        if cfg.hf_hub_id and available("huggingface_hub"):
            hub = require("huggingface_hub")
            names = [cfg.hf_hub_filename] if cfg.hf_hub_filename else ["model.safetensors", "pytorch_model.bin"]
            for fname in names:
                found = hub.try_to_load_from_cache(cfg.hf_hub_id, fname)
                if isinstance(found, str) and Path(found).is_file():
                    return Path(found)
        url = cfg.url
    else:
        url = _torchvision().get_weight(entry.pretrained_tag).url
    if not url:
        return None
    torch = require("torch")
    path = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name
    return path if path.is_file() else None


def cache_locations() -> str:
    """Where the hubs look for cached weights, for error messages."""
    parts = []
    if available("huggingface_hub"):  # without it timm falls back to the torch hub
        parts.append(f"HF cache {require('huggingface_hub.constants').HF_HUB_CACHE}")
    torch = require("torch")
    parts.append(f"torch hub {Path(torch.hub.get_dir()) / 'checkpoints'}")
    return ", ".join(parts)


def build_model(entry: ModelEntry, *, num_classes: int | None = None, pretrained: bool = False) -> Any:
    """Build ``entry`` in eval mode.

    ``pretrained=True`` loads the published ImageNet weights (1000 classes; for
    timm a different ``num_classes`` keeps the backbone and re-initializes the
    head, torchvision refuses it). Weights that cannot be fetched raise
    :class:`WeightsError`.
    """
    n = entry.num_classes if num_classes is None else int(num_classes)
    if n < 1:
        raise WeightsError(f"num_classes must be >= 1, got {n}")
    if pretrained:
        model = _build_pretrained(entry, n)
    elif entry.source == "timm":
        model = _timm().create_model(entry.builder, pretrained=False, num_classes=n)
    else:
        model = _torchvision().get_model(entry.builder, weights=None, num_classes=n)
    return model.eval()


def _build_pretrained(entry: ModelEntry, n: int) -> Any:
    if not entry.pretrained or not entry.pretrained_tag:
        raise WeightsError(
            f"{entry.name} has no published pretrained weights",
            hint="give your checkpoint with --weights PATH, or --weights none for random init",
        )
    cached = pretrained_cache_file(entry)
    what = f"{entry.source} {entry.builder}.{entry.pretrained_tag}" if entry.source == "timm" else (
        f"torchvision {entry.pretrained_tag}"
    )
    log.info("loading %s (%s)", what, f"cached at {cached}" if cached else "not cached: the hub will download it")
    if cached is None:
        _require_hub(entry, what)
    try:
        if entry.source == "timm":
            kw: dict[str, Any] = {"pretrained": True, "num_classes": n}
            if cached is not None:
                kw["pretrained_cfg_overlay"] = {"file": str(cached)}
            return _timm().create_model(f"{entry.builder}.{entry.pretrained_tag}", **kw)
        if n != IMAGENET_CLASSES:
            raise WeightsError(
                f"torchvision ImageNet weights for {entry.name} have {IMAGENET_CLASSES} classes, "
                f"not num_classes={n}",
                hint="omit --num-classes, or give your fine-tuned checkpoint with --weights PATH",
            )
        tv = _torchvision()
        return tv.get_model(entry.builder, weights=tv.get_weight(entry.pretrained_tag))
    except (OSError, RuntimeError, ValueError, pickle.UnpicklingError) as e:
        retries = "" if _hf_offline() else "; HF_HUB_OFFLINE=1 skips the network retries"
        raise WeightsError(
            f"pretrained weights for {entry.name} ({what}) could not be loaded offline or from the cache "
            f"({cache_locations()}): {type(e).__name__}: {_first_sentence(e)}",
            hint=f"give a local checkpoint with --weights PATH, or fill the cache once on a machine with network{retries}",
        ) from e


def _require_hub(entry: ModelEntry, what: str) -> None:
    """Weights not cached: fail in about a second, in one line, when the hub that has them is unreachable
    (instead of huggingface_hub's retry storm), and make huggingface_hub skip the network when offline."""
    from edgekit.zoo.hub import hf_endpoint, unreachable

    if entry.source == "timm" and _hf_offline():
        why: str | None = "HF_HUB_OFFLINE is set"
    else:
        url = hf_endpoint() if entry.source == "timm" and timm_pretrained_cfg(entry).hf_hub_id else (
            timm_pretrained_cfg(entry).url if entry.source == "timm" else _torchvision().get_weight(entry.pretrained_tag).url
        )
        why = unreachable(url)
    if why is None:
        return
    raise WeightsError(
        f"pretrained weights for {entry.name} ({what}) could not be loaded offline: not in the cache "
        f"({cache_locations()}) and the hub is unreachable ({why})",
        hint="give a local checkpoint with --weights PATH, or fill the cache once on a machine with network",
    )


def _first_sentence(e: BaseException, limit: int = 120) -> str:
    text = " ".join(str(e).split())
    text = text.split(". ")[0]
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _hf_offline() -> bool:
    return available("huggingface_hub") and bool(require("huggingface_hub.constants").HF_HUB_OFFLINE)


def imagenet_labels(entry: ModelEntry) -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names, offline, from the entry's own library."""
    if entry.source == "torchvision":
        meta = _torchvision().get_weight(entry.pretrained_tag).meta if entry.pretrained_tag else None
        if meta and len(meta.get("categories", ())) == IMAGENET_CLASSES:
            return tuple(meta["categories"])
    info = require("timm.data").ImageNetInfo()
    return tuple(info.index_to_description(i) for i in range(info.num_classes()))


def param_count(model: Any) -> int:
    """Exact number of parameters (sum of ``p.numel()``)."""
    return int(sum(p.numel() for p in model.parameters()))
