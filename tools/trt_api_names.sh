#!/usr/bin/env bash
# Re-derive the per-version TensorRT names the strict fake allows (tests/runtime/trt_api_names.py) from the
# compiled bindings on PyPI, without a GPU: prints, for each name the fake offers, whether each wheel's
# tensorrt.so registers it (pybind11 keeps every attribute / method / enum member name as a string).
# Short enum names that share bytes with others (INT8, GPU, ...) need `grep -w` on the raw strings: done below.
set -euo pipefail
OUT=${1:-${TMPDIR:-/tmp}/trt-api-names}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$OUT" && cd "$OUT"
WHEELS=("tensorrt-bindings==8.6.1" "tensorrt-cu12-bindings==10.3.0" "tensorrt-cu13-bindings==11.4.0.106")
for w in "${WHEELS[@]}"; do pip download -q --no-deps -d . "$w"; done
for whl in *.whl; do
  d=${whl%%-cp*}; mkdir -p "$d"; (cd "$d" && unzip -qo "../$whl")
  strings "$d/tensorrt_bindings/tensorrt.so" > "$d.strings"
done
NAMES=$(python3 - "$ROOT" <<'PY'
import sys; sys.path.insert(0, sys.argv[1] + "/tests/runtime")
import trt_api_names as t
names = set(t._MODULE)
for v in (t._BUILDER, t._NETWORK, t._LAYER, t._CONFIG, t._PARSER, t._RUNTIME, t._ENGINE, t._INSPECTOR,
          t._CONTEXT, t._PROFILE, t._TIMING_CACHE):
    names |= v
for e in (t._ENUMS_8, t._ENUMS_10, t._ENUMS_11):
    for members in e.values():
        names |= set(members)
print("\n".join(sorted(names)))
PY
)
printf "%-32s" name; for d in */; do printf " %-28s" "${d%/}"; done; echo
for n in $NAMES; do
  printf "%-32s" "$n"
  for d in */; do
    if grep -qw -- "$n" "${d%/}.strings"; then printf " %-28s" yes; else printf " %-28s" no; fi
  done
  echo
done
