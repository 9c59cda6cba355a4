"""torch -> ONNX export, graph checks and parity against the source model."""

from edgekit.export.pipeline import ExportOptions, export_model

__all__ = ["ExportOptions", "export_model"]
