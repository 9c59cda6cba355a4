"""edgekit: trained image classifiers in, measured and deployable edge engines out.

The package root imports nothing heavy: ``import edgekit`` and ``edgekit --help``
never pull in torch, onnxruntime or openvino. It does load the runtime registry
(plain data), so that every part of edgekit, the core included, knows the
installed backends' devices, extras and versions without naming a runtime.
"""

__version__ = "0.1.0"

import edgekit.runtime.registry  # noqa: E402,F401  (registers the built-in runtime backends)

__all__ = ["__version__"]
