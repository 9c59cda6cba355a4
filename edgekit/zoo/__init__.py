"""The model zoo: torch-free metadata, lazy builders and weights loading.

``edgekit.zoo.registry`` (names, aliases, preprocessing, published numbers) is
importable without torch. ``edgekit.zoo.builders`` and ``edgekit.zoo.weights``
import torch, timm and torchvision only when a model is built.
"""

from __future__ import annotations

from edgekit.zoo.registry import ModelEntry, get_model, list_models

__all__ = ["ModelEntry", "get_model", "list_models"]
