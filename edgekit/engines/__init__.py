"""``edgekit build``: ONNX artifact + target profile -> OpenVINO IR or TensorRT engine artifact.

A thin orchestrator: each backend's engine build lives in its runtime package
(``edgekit.runtime.openvino.build``, ``edgekit.runtime.tensorrt.build``).
"""

from edgekit.engines.build import BuildOptions, BuildPlan, NothingToBuild, build_artifact, plan_build

__all__ = ["BuildOptions", "BuildPlan", "NothingToBuild", "build_artifact", "plan_build"]
