#!/usr/bin/env bash
# The real-GPU check of the TensorRT backend, in one command (a few minutes):
#
#     tools/gpu_check.sh WHEEL_DIR [VENV_DIR]
#
# On a machine with an NVIDIA GPU and its driver, installs what the tests need from WHEEL_DIR only (no network:
# pip --no-index) into a fresh venv and runs every test marked `gpu` plus the real-TensorRT tests of
# tests/runtime/test_tensorrt.py. x86_64: TensorRT for CUDA 12 + its libcudart come from the wheels; a Jetson
# (JetPack 6): the venv is made with --system-site-packages and TensorRT/CUDA come from JetPack.
#
# Prepare WHEEL_DIR on a machine with network (same Python version and platform as the GPU machine):
#     pip download -d WHEEL_DIR -c constraints.txt numpy click rich Pillow onnx onnxruntime pytest \
#         tensorrt-cu12 tensorrt-cu12-libs tensorrt-cu12-bindings nvidia-cuda-runtime-cu12      # x86_64 only
# Exit status: pytest's (0 = all passed; skips print their reason).
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 WHEEL_DIR [VENV_DIR]" >&2; exit 2; }
WHEELS=$(cd "$1" && pwd)
VENV=${2:-${TMPDIR:-/tmp}/edgekit-gpu-check}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python3}

if [ -f /etc/nv_tegra_release ]; then
  "$PY" -m venv --system-site-packages "$VENV"   # TensorRT (python3-libnvinfer) and CUDA from JetPack
  TRT_PKGS=()
else
  "$PY" -m venv "$VENV"
  TRT_PKGS=(tensorrt-cu12 nvidia-cuda-runtime-cu12)
fi
"$VENV/bin/pip" install -q --no-index --find-links "$WHEELS" numpy click rich Pillow onnx onnxruntime pytest \
  "${TRT_PKGS[@]}"

echo "== machine"
(nvidia-smi --query-gpu=name,driver_version,compute_cap --format=csv 2>/dev/null || echo "nvidia-smi: not found")
[ -f /etc/nv_tegra_release ] && head -1 /etc/nv_tegra_release
cd "$ROOT"
PYTHONPATH="$ROOT" "$VENV/bin/python" - <<'PY'
import tensorrt
from edgekit.runtime.tensorrt import cuda, env
trt = env.import_tensorrt()
rt = cuda.load_cuda(trt)
print(f"TensorRT {trt.__version__}; libcudart {rt.path}; runtime CUDA {env._ver(rt.runtime_version())}; "
      f"driver CUDA {env._ver(rt.driver_version())}")
print("device:", env.device_environment(trt, cuda=rt))
PY

echo "== tests"
PYTHONPATH="$ROOT" timeout 600 "$VENV/bin/python" -m pytest -p no:cacheprovider -v -rs \
  tests/runtime/test_tensorrt_gpu.py "tests/runtime/test_tensorrt.py::test_real_build_and_parity" \
  "tests/runtime/test_tensorrt.py::test_real_int8_from_qdq"
