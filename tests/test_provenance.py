"""Committed results say where they came from, and a stale one cannot sit unnoticed.

Every ``benchmarks/results/*.json`` records its commit and the sha256 of the code paths it measured
(``benchmarks/provenance.py``). The hash is recomputed here: a result whose code changed since it was written
fails, unless it is marked ``"status": "stale"`` with its reason, the same marker heads its ``.md``, and
``benchmarks/README.md`` lists it as stale. ``benchmarks/regenerate.sh`` regenerates every result.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def _provenance():
    spec = importlib.util.spec_from_file_location("bench_provenance", ROOT / "benchmarks" / "provenance.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _results() -> list[Path]:
    return sorted(RESULTS.glob("*.json"))


def test_there_are_committed_results_and_one_script_regenerates_them_all():
    names = {p.stem for p in _results()}
    assert names, "no committed results"
    script = (ROOT / "benchmarks" / "regenerate.sh").read_text(encoding="utf-8")
    prov = _provenance()
    for name in names:
        assert name in prov.CODE_PATHS, f"{name}: no code paths in benchmarks/provenance.py"
        assert f"benchmarks/{name}.py" in script or f"--out-name {name}" in script, \
            f"benchmarks/regenerate.sh does not write results/{name}.json"


@pytest.mark.parametrize("path", _results(), ids=lambda p: p.stem)
def test_committed_result_matches_its_code_or_is_marked_stale_visibly(path: Path):
    prov = _provenance()
    d = json.loads(path.read_text(encoding="utf-8"))
    p = d.get("provenance")
    assert isinstance(p, dict), f"{path.name} records no provenance (commit, code hash)"
    if p.get("status") == "stale":
        assert p.get("reason"), f"{path.name} is marked stale without a reason"
        md = path.with_suffix(".md").read_text(encoding="utf-8")
        assert "**STALE:**" in md.split("\n", 3)[1], f"{path.with_suffix('.md').name} does not say it is stale"
        readme = (ROOT / "benchmarks" / "README.md").read_text(encoding="utf-8")
        stale = readme.split("### Stale results", 1)
        assert len(stale) == 2 and f"results/{path.stem}.md" in stale[1].split("\n## ", 1)[0], \
            f"benchmarks/README.md does not list {path.stem} under 'Stale results'"
        return
    assert p.get("status") == "current" and re.fullmatch(r"[0-9a-f]{40}(\+dirty)?", p.get("commit") or "")
    assert p["code_paths"] == prov.CODE_PATHS[path.stem]
    assert p["code_sha256"] == prov.code_hash(p["code_paths"]), (
        f"{path.name} was measured on other code than this (code paths {p['code_paths']}): regenerate it with "
        "benchmarks/regenerate.sh, or mark it stale with the reason")


def test_the_code_hash_moves_with_the_code(tmp_path: Path):
    prov = _provenance()
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.py").write_text("x = 1\n")
    h1 = prov.code_hash(["a/**/*.py"], root=tmp_path)
    (tmp_path / "a" / "x.py").write_text("x = 2\n")
    h2 = prov.code_hash(["a/**/*.py"], root=tmp_path)
    (tmp_path / "a" / "y.py").write_text("")
    assert len({h1, h2, prov.code_hash(["a/**/*.py"], root=tmp_path)}) == 3
