"""edgekit's cache directory, one rule for every cache (steps, benchmark exports, TensorRT timing caches).

``$EDGEKIT_CACHE``, else ``$EDGEKIT_CACHE_DIR`` (an alias some early docs used), else
``$XDG_CACHE_HOME/edgekit``, else ``~/.cache/edgekit``.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VARS = ("EDGEKIT_CACHE", "EDGEKIT_CACHE_DIR")


def cache_root() -> Path:
    """The root of edgekit's caches (see the module docstring); not created here."""
    for var in ENV_VARS:
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "edgekit"
