"""Torch-free graph analysis of ONNX artifacts (numpy + onnx only)."""

from __future__ import annotations

from edgekit.graph.profile import GraphProfile, NodeProfile, profile_onnx

__all__ = ["GraphProfile", "NodeProfile", "profile_onnx"]
