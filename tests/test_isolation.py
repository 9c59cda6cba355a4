"""The device path imports no torch: proven in fresh interpreters."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("torch", "torchvision", "timm")

DEVICE_MODULES = [
    "edgekit",
    "edgekit.core.errors",
    "edgekit.core.manifest",
    "edgekit.core.atomic",
    "edgekit.core.specs",
    "edgekit.core.targets",
    "edgekit.core.host",
    "edgekit.data",
    "edgekit.data.embedded",
    "edgekit.data.imagefolder",
    "edgekit.data.preprocess",
    "edgekit.data.sampling",
    "edgekit.data.recorded",
    "edgekit.bench",
    "edgekit.bench.budget",
    "edgekit.gate.ratio",
    "edgekit.gate.canary",
    "edgekit.graph.profile",
    "edgekit.zoo.registry",
    "edgekit.cli.main",
    "edgekit.gate",
    "edgekit.history",
    "edgekit.cli.gate",
    "edgekit.cli.history",
    "edgekit.cli.bench",
    "edgekit.bench.runner",
    "edgekit.report.html",
    "edgekit.verdict",
    "edgekit.verdict.render",
    "edgekit.pipeline.executors",
    "edgekit.pipeline.devices",
    "edgekit.pipeline.fleet",
    "edgekit.pipeline.ray_executor",
    "edgekit.pipeline.ray_steps",
    "edgekit.report.fleet",
    "edgekit.pipeline.config",
    "edgekit.api",
    "edgekit.classify",
    "edgekit.cli.predict",
    "edgekit.export.import_onnx",
    "edgekit.cli.import_onnx",
    "edgekit.bench.hosting",
    "edgekit.report.speed",
    "edgekit.zoo.hub",
    "edgekit.cli.devices",
]

#: every module of the runtime backends and of the engine builder, found on disk: a new backend is covered
_PKG = Path(__file__).resolve().parents[1] / "edgekit"
DEVICE_MODULES += sorted(
    ".".join(("edgekit", *f.relative_to(_PKG).with_suffix("").parts)).removesuffix(".__init__")
    for sub in ("runtime", "engines", "telemetry", "remote")
    for f in (_PKG / sub).rglob("*.py")
)


def _imported_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


@pytest.mark.parametrize("module", DEVICE_MODULES)
def test_device_module_imports_no_torch(module):
    assert _imported_after(f"import {module}") == set()


def test_help_and_device_commands_import_no_torch():
    code = (
        "from click.testing import CliRunner\n"
        "from edgekit.cli.main import cli\n"
        "for args in (['--help'], ['models', '--json'], ['targets'], ['export', '--help'], ['predict', '--help'],\n"
        "             ['import', '--help']):\n"
        "    r = CliRunner().invoke(cli, args)\n"
        "    assert r.exit_code == 0, (args, r.output)\n"
    )
    assert _imported_after(code) == set()


def test_a_heavy_import_is_lazy_and_names_the_extra(monkeypatch):
    import importlib.util

    from edgekit.core.errors import MissingDependencyError
    from edgekit.core.lazy import require

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "openvino" else real(n, *a))
    with pytest.raises(MissingDependencyError) as e:
        require("openvino", purpose="the OpenVINO backend")
    assert "pip install 'edgekit[openvino]'" in str(e.value)
    assert e.value.exit_code == 2


#: device-side packages that must not reach the host-side "torch -> ONNX" package, not even lazily
#: (bench is not listed: bench/model_cache.py exports a zoo model for `edgekit bench --model`, on the host)
_NO_EXPORT = ("runtime", "engines", "data", "core")


@pytest.mark.parametrize("module", ["edgekit.engines", "edgekit.engines.build", "edgekit.runtime.compare"])
def test_device_side_build_does_not_import_the_export_package(module):
    probe = f"import {module}\nimport sys\nprint('edgekit.export' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("sub", _NO_EXPORT)
def test_no_device_module_imports_the_export_package_even_lazily(sub):
    import ast

    offenders = []
    for f in sorted((_PKG / sub).rglob("*.py")):
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{f.relative_to(_PKG)}:{node.lineno}" for n in names if n.split(".")[:2] == ["edgekit", "export"]]
    assert not offenders, f"device-side modules import edgekit.export: {offenders}"
