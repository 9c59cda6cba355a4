"""edgekit: trained image classifiers in, measured and deployable edge engines out.

The package root imports nothing heavy: ``import edgekit`` and ``edgekit --help``
never pull in torch, onnxruntime or openvino.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
