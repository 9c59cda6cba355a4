"""``edgekit build``: ONNX artifact + target profile -> OpenVINO IR or TensorRT engine artifact."""

from edgekit.build.pipeline import BuildOptions, BuildPlan, NothingToBuild, build_artifact, plan_build

__all__ = ["BuildOptions", "BuildPlan", "NothingToBuild", "build_artifact", "plan_build"]
