"""Which input slots of which ONNX ops hold weights, configuration or values.

Used by :mod:`edgekit.graph.params` to decide which constant tensors are
learned parameters. Keys are op types of any domain (``com.microsoft``'s
contrib ops included).
"""

from __future__ import annotations

#: (op_type) -> input slots whose constant values are learned weights of a linear op
WEIGHT_SLOTS: dict[str, frozenset[int]] = {
    "Conv": frozenset({1, 2}),
    "ConvTranspose": frozenset({1, 2}),
    "Gemm": frozenset({0, 1, 2}),
    "MatMul": frozenset({0, 1}),
    "Einsum": frozenset(range(64)),
    "BatchNormalization": frozenset({1, 2}),
    "LayerNormalization": frozenset({1, 2}),
    "InstanceNormalization": frozenset({1, 2}),
    "GroupNormalization": frozenset({1, 2}),
    "RMSNormalization": frozenset({1}),
    "PRelu": frozenset({1}),
    "ConvInteger": frozenset({1}),
    "MatMulInteger": frozenset({0, 1}),
    "QLinearConv": frozenset({3, 8}),
    "QLinearMatMul": frozenset({0, 3}),
    # onnxruntime contrib ops (com.microsoft)
    "FusedConv": frozenset({1, 2, 3}),
    "FusedMatMul": frozenset({0, 1}),
    "QGemm": frozenset({0, 3, 6}),
    "SkipLayerNormalization": frozenset({2, 3, 4}),
}

#: (op_type) -> input slots that hold configuration, never parameters
CONFIG_SLOTS: dict[str, frozenset[int]] = {
    "BatchNormalization": frozenset({3, 4}),
    "QuantizeLinear": frozenset({1, 2}),
    "DequantizeLinear": frozenset({1, 2}),
    "QLinearConv": frozenset({1, 2, 4, 5, 6, 7}),
    "QLinearMatMul": frozenset({1, 2, 4, 5, 6, 7}),
    "ConvInteger": frozenset({2, 3}),
    "MatMulInteger": frozenset({2, 3}),
    "QGemm": frozenset({1, 2, 4, 5, 7, 8}),
    "QLinearAdd": frozenset({1, 2, 4, 5, 6, 7}),
    "QLinearMul": frozenset({1, 2, 4, 5, 6, 7}),
    "QLinearSigmoid": frozenset({1, 2, 3, 4}),
    "QLinearGlobalAveragePool": frozenset({1, 2, 3, 4}),
    "QLinearConcat": frozenset(range(64)),
    "Reshape": frozenset({1}),
    "Expand": frozenset({1}),
    "Tile": frozenset({1}),
    "Slice": frozenset({1, 2, 3, 4}),
    "Gather": frozenset({1}),
    "GatherElements": frozenset({1}),
    "GatherND": frozenset({1}),
    "ScatterElements": frozenset({1}),
    "ScatterND": frozenset({1}),
    "Squeeze": frozenset({1}),
    "Unsqueeze": frozenset({1}),
    "Split": frozenset({1}),
    "TopK": frozenset({1}),
    "Pad": frozenset({1, 2, 3}),
    "Resize": frozenset({1, 2, 3}),
    "Upsample": frozenset({1}),
    "Clip": frozenset({0, 1, 2}),
    "Dropout": frozenset({1, 2}),
    "CumSum": frozenset({1}),
    "Trilu": frozenset({1}),
    "OneHot": frozenset({1, 2}),
    "Range": frozenset({0, 1, 2}),
    "ConstantOfShape": frozenset({0}),
    "RoiAlign": frozenset({1, 2}),
    "Where": frozenset({0}),
    "ReduceMean": frozenset({1}),
    "ReduceSum": frozenset({1}),
    "ReduceMax": frozenset({1}),
    "ReduceMin": frozenset({1}),
    "ReduceProd": frozenset({1}),
    "ReduceL2": frozenset({1}),
    "ReduceL1": frozenset({1}),
    "ReduceSumSquare": frozenset({1}),
    "ReduceLogSumExp": frozenset({1}),
}

#: ops through which only input 0 carries values into the output
VALUE_INPUT0 = frozenset(
    {
        "QuantizeLinear", "DequantizeLinear", "Cast", "CastLike", "Reshape", "Expand", "Tile",
        "Slice", "Gather", "GatherElements", "GatherND", "Squeeze", "Unsqueeze", "Split", "Pad",
        "Resize", "Clip", "Dropout", "Transpose", "Flatten", "Identity", "DepthToSpace", "SpaceToDepth",
    }
)  # fmt: skip
#: ops whose output carries no value of any input (shape queries)
NO_VALUE = frozenset({"Shape", "Size", "ConstantOfShape", "Range", "EyeLike", "RandomNormalLike", "RandomUniformLike"})

#: ops whose operands are combined element by element (a non-scalar constant operand is a parameter)
ELEMENTWISE = frozenset(
    {"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean", "Where", "Concat", "Expand", "Tile"}
)
