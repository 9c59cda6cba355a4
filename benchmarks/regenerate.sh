#!/usr/bin/env bash
# Regenerate every committed result in benchmarks/results/ (each stamped with its commit and code hash by
# benchmarks/provenance.py). Run on a quiet machine from the repository root; about two hours of CPU on 2 cores
# (training dominates; trained models are cached in ~/.cache/edgekit/bench-artifacts/).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
"$PY" benchmarks/overhead.py
"$PY" benchmarks/families.py --prepare          # training and exports, not timing-sensitive
"$PY" benchmarks/families.py --rounds 5
"$PY" benchmarks/optimize.py
"$PY" benchmarks/optimize.py --pipelines prune --out-name prune --paired-rounds 0   # pairs after the control
"$PY" benchmarks/prune_control.py
"$PY" benchmarks/optimize.py --pipelines prune --out-name prune --report-only
"$PY" benchmarks/optimize.py --pipelines presets --out-name presets
"$PY" benchmarks/remote_overhead.py
"$PY" benchmarks/fleet_overhead.py
echo "regenerated: $(ls benchmarks/results/*.json | tr '\n' ' ')"
