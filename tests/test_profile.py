"""``edgekit.graph.profile`` and ``edgekit profile``: parameters and MACs read from ONNX graphs.

Three layers of tests:

* small hand-built graphs whose parameters and MACs are known by construction
  (every counting rule, every MAC formula, quantized and FP16 forms, errors);
* the zoo's published configurations, exported with torch, against the
  published numbers (torchvision's weight metadata and timm's results tables)
  and against exact expectations computed from the torch model;
* the CLI through CliRunner.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

from edgekit.cli.profile import profile_cmd
from edgekit.core.errors import ArtifactError, UsageError
from edgekit.graph import GraphProfile, profile_onnx

RNG = np.random.default_rng(0)


def _w(name: str, *shape: int, dtype=np.float32) -> onnx.TensorProto:
    """A weight initializer with distinct values."""
    return numpy_helper.from_array(RNG.standard_normal(shape).astype(dtype), name)


def _vi(name: str, shape, elem=TensorProto.FLOAT) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, list(shape))


def _model(nodes, inputs, outputs, inits=(), opset: int = 17) -> onnx.ModelProto:
    graph = helper.make_graph(list(nodes), "g", list(inputs), list(outputs), initializer=list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def _conv_net(batch="N") -> onnx.ModelProto:
    """stem conv -> depthwise conv -> grouped strided conv -> global pool -> Gemm."""
    nodes = [
        helper.make_node("Conv", ["x", "w0", "b0"], ["c0"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c0"], ["r0"]),
        helper.make_node("Conv", ["r0", "w1"], ["c1"], group=32, pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["c1", "w2", "b2"], ["c2"], group=4, strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("GlobalAveragePool", ["c2"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "wfc", "bfc"], ["y"], transB=1),
    ]
    inits = [_w("w0", 32, 3, 3, 3), _w("b0", 32), _w("w1", 32, 1, 3, 3), _w("w2", 64, 8, 3, 3), _w("b2", 64)]
    inits += [_w("wfc", 10, 64), _w("bfc", 10)]
    return _model(nodes, [_vi("x", [batch, 3, 16, 16])], [_vi("y", [batch, 10])], inits)


#: what _conv_net holds and computes at batch 1, by construction
CONV_NET_PARAMS = 32 * 27 + 32 + 32 * 9 + 64 * 72 + 64 + 10 * 64 + 10
CONV_NET_MACS = {
    "Conv": 32 * 16 * 16 * 27  # stem: out elems * Cin * kH * kW
    + 32 * 16 * 16 * 9  # depthwise: out elems * (Cin / groups = 1) * 3 * 3
    + 64 * 8 * 8 * (8 * 9),  # grouped, stride 2: out elems * (32 / 4) * 3 * 3
    "Gemm": 10 * 64,
}


# --------------------------------------------------------------------------- MACs by construction


def test_conv_gemm_macs_and_params_by_construction():
    prof = profile_onnx(_conv_net())
    assert prof.macs_by_op_type == CONV_NET_MACS
    assert prof.macs == sum(CONV_NET_MACS.values())
    assert prof.macs_complete
    assert prof.params == CONV_NET_PARAMS
    assert prof.params_by_dtype == {"float32": CONV_NET_PARAMS}
    assert prof.weight_bytes == 4 * CONV_NET_PARAMS
    assert prof.opset == 17 and prof.num_nodes == 7
    assert prof.op_counts["Conv"] == 3
    assert [s.name for s in prof.inputs] == ["x"] and prof.inputs[0].shape == ("N", 3, 16, 16)
    assert prof.file_size_bytes is None  # a ModelProto has no file


def test_dynamic_batch_is_substituted_and_scales_macs():
    one = profile_onnx(_conv_net())
    four = profile_onnx(_conv_net(), batch=4)
    assert one.batch == 1 and four.batch == 4
    assert four.macs == 4 * one.macs
    assert four.params == one.params
    assert any("set to batch=4" in n for n in four.notes)
    static = profile_onnx(_conv_net(batch=2), batch=4)  # a static batch is not overridden
    assert static.batch == 2 and static.macs == 2 * one.macs


def test_unknown_spatial_dims_are_reported_then_resolved_by_input_shapes():
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])]
    model = _model(nodes, [_vi("x", ["N", 3, "H", "W"])], [_vi("y", ["N", 8, "H", "W"])], [_w("w", 8, 3, 3, 3)])
    prof = profile_onnx(model)
    assert not prof.macs_complete and prof.macs == 0
    assert any("axis 2" in n for n in prof.notes)
    fixed = profile_onnx(model, input_shapes={"x": [2, 3, 10, 12]})
    assert fixed.macs_complete and fixed.macs == 2 * 8 * 10 * 12 * 27
    with pytest.raises(UsageError, match="not inputs"):
        profile_onnx(model, input_shapes={"nope": [1, 3, 4, 4]})
    with pytest.raises(UsageError, match="does not fit"):
        profile_onnx(model, input_shapes={"x": [1, 3, 4]})


def test_matmul_einsum_convtranspose_macs():
    nodes = [
        # attention-style activation x activation products
        helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2]),
        helper.make_node("MatMul", ["q", "kt"], ["s"]),  # [N,4,16,8] x [N,4,8,16]
        helper.make_node("Einsum", ["s", "v"], ["o"], equation="bhij,bhjd->bhid"),
        # weight MatMul broadcast over a batch of rows
        helper.make_node("MatMul", ["o", "wm"], ["m"]),  # [N,4,16,8] x [8,5]
        helper.make_node("ConvTranspose", ["img", "wt"], ["up"], strides=[2, 2]),  # [N,8,4,4] -> [N,4,8,8]
    ]
    inputs = [_vi("q", ["N", 4, 16, 8]), _vi("k", ["N", 4, 16, 8]), _vi("v", ["N", 4, 16, 8]), _vi("img", ["N", 8, 4, 4])]
    outputs = [_vi("m", ["N", 4, 16, 5]), _vi("up", ["N", 4, 8, 8])]
    prof = profile_onnx(_model(nodes, inputs, outputs, [_w("wm", 8, 5), _w("wt", 8, 4, 2, 2)]))
    assert prof.macs_by_op_type == {
        "MatMul": 4 * 16 * 16 * 8 + 4 * 16 * 5 * 8,
        "Einsum": 4 * 16 * 16 * 8,
        "ConvTranspose": (8 * 4 * 4) * (4 * 2 * 2),  # in elems * (Cout / groups) * kH * kW
    }
    assert prof.params == 8 * 5 + 8 * 4 * 2 * 2


def test_reshape_targets_computed_at_run_time_are_folded():
    """Shape -> Gather -> Div -> Cast -> Concat -> Reshape (a channel shuffle) still resolves."""
    c = lambda name, v: numpy_helper.from_array(np.array(v, dtype=np.int64), name)  # noqa: E731
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "i1"], ["ch"], axis=0),
        helper.make_node("Div", ["ch", "two"], ["half"]),
        helper.make_node("Cast", ["half"], ["halfc"], to=TensorProto.INT64),
        helper.make_node("Unsqueeze", ["halfc", "ax0"], ["h1"]),
        helper.make_node("Concat", ["one", "two1", "h1", "m1"], ["shape"], axis=0),
        helper.make_node("Reshape", ["x", "shape"], ["r"]),  # [1, 2, C/2, H*W]
        helper.make_node("Transpose", ["r"], ["rt"], perm=[0, 1, 3, 2]),
        helper.make_node("MatMul", ["rt", "w"], ["y"]),  # [1,2,HW,C/2] x [C/2, 6]
    ]
    inits = [c("i1", 1), c("two", 2), c("ax0", [0]), c("one", [1]), c("two1", [2]), c("m1", [-1]), _w("w", 8, 6)]
    prof = profile_onnx(_model(nodes, [_vi("x", ["N", 16, 4, 4])], [_vi("y", ["N", 2, 16, 6])], inits))
    assert prof.macs_complete, prof.notes
    assert prof.macs == 2 * 16 * 6 * 8
    assert prof.params == 8 * 6  # the int64 shape constants are not parameters


def test_per_node_rows_add_up():
    prof = profile_onnx(_conv_net(), per_node=True)
    rows = {n.name or n.op_type: n for n in prof.nodes}
    assert sum(n.macs or 0 for n in prof.nodes) == prof.macs
    assert sum(n.params for n in prof.nodes) == prof.params
    assert len(rows) == 4  # 3 convs and the Gemm; the pool and activation have neither


# --------------------------------------------------------------------------- what counts as a parameter


def test_parameter_definition():
    """One graph with every rule of edgekit.graph.params; the expected count is spelled out."""
    q = numpy_helper.from_array(RNG.integers(-127, 127, (16, 3, 3, 3)).astype(np.int8), "wq")
    scale = numpy_helper.from_array(np.full(16, 0.02, np.float32), "wq_scale")
    zp = numpy_helper.from_array(np.zeros(16, np.int8), "wq_zp")
    w16 = numpy_helper.from_array(RNG.standard_normal((16, 4)).astype(np.float16), "w16")
    const_bias = helper.make_node(
        "Constant", [], ["cbias"], value=numpy_helper.from_array(RNG.standard_normal(4).astype(np.float32))
    )
    const_scalar = helper.make_node("Constant", [], ["three"], value_float=3.0)
    nodes = [
        const_bias,
        const_scalar,
        helper.make_node("DequantizeLinear", ["wq", "wq_scale", "wq_zp"], ["wdq"], axis=0),
        helper.make_node("Conv", ["x", "wdq"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "gamma", "beta", "mean", "var"], ["bn"]),
        helper.make_node("Identity", ["gamma"], ["gamma_copy"]),  # torchscript's dedup of equal values
        helper.make_node("Mul", ["bn", "three"], ["bn3"]),  # a scalar constant is not a parameter
        helper.make_node("Reshape", ["gamma_copy", "shape4"], ["gamma_copy_r"]),
        helper.make_node("Mul", ["bn3", "gamma_copy_r"], ["s"]),
        helper.make_node("GlobalAveragePool", ["s"], ["p"]),
        helper.make_node("Reshape", ["p", "shape2"], ["f"]),
        helper.make_node("Cast", ["w16"], ["w32"], to=TensorProto.FLOAT),  # an FP16 weight behind a Cast
        helper.make_node("MatMul", ["f", "w32"], ["m"]),
        helper.make_node("Add", ["m", "cbias"], ["m2"]),  # a bias stored as a Constant node
        helper.make_node("MatMul", ["m2", "tied"], ["t1"]),
        helper.make_node("MatMul", ["t1", "tied"], ["y"]),  # the same weight twice counts once
    ]
    inits = [q, scale, zp, w16, _w("gamma", 16), _w("beta", 16), _w("mean", 16), _w("var", 16), _w("tied", 4, 4)]
    inits += [numpy_helper.from_array(np.array([1, 16, 1, 1], np.int64), "shape4")]
    inits += [numpy_helper.from_array(np.array([-1, 16], np.int64), "shape2")]
    model = _model(nodes, [_vi("x", ["N", 3, 8, 8])], [_vi("y", ["N", 4])], inits)
    prof = profile_onnx(model)
    expected = {
        "int8": 16 * 27,  # the quantized conv weight, once; not its scale or zero point
        "float32": 16 + 16 + 16 + 4 + 16,  # gamma, beta, gamma's Identity copy, Constant bias, tied weight
        "float16": 16 * 4,
    }  # not: BN mean/var (buffers), the scalar 3.0, the int64 shapes
    assert prof.params_by_dtype == expected
    assert prof.params == sum(expected.values())
    assert prof.weight_bytes == 16 * 27 + 4 * expected["float32"] + 2 * 16 * 4
    assert prof.macs_by_op_type == {"Conv": 16 * 64 * 27, "MatMul": 16 * 4 + 4 * 4 * 2}


def test_expanded_table_counts_distinct_values():
    """A [(2W-1)^2, heads] relative-position table gathered at export into [1, heads, W^2, W^2]."""
    w, heads = 6, 2
    table = RNG.standard_normal(((2 * w - 1) ** 2, heads)).astype(np.float32)
    coords = np.stack(np.meshgrid(np.arange(w), np.arange(w), indexing="ij")).reshape(2, -1)
    rel = (coords[:, :, None] - coords[:, None, :]).transpose(1, 2, 0) + (w - 1)
    index = rel[..., 0] * (2 * w - 1) + rel[..., 1]
    folded = table[index.reshape(-1)].reshape(w * w, w * w, heads).transpose(2, 0, 1)[None]
    nodes = [
        helper.make_node("MatMul", ["q", "k"], ["s"]),
        helper.make_node("Add", ["s", "bias"], ["y"]),
    ]
    inputs = [_vi("q", [1, heads, w * w, 8]), _vi("k", [1, heads, 8, w * w])]
    assert table.size < folded.size // 2 and folded.size >= 1024
    out = [_vi("y", [1, heads, w * w, w * w])]
    prof = profile_onnx(_model(nodes, inputs, out, [numpy_helper.from_array(np.ascontiguousarray(folded), "bias")]))
    assert prof.params_stored == folded.size == heads * w**4
    assert prof.params == table.size  # every table entry is used, each counted once
    assert any("expanded table" in n for n in prof.notes)
    # the same bias gathered in the graph (as the dynamo exporter leaves it) counts the table itself
    nodes = [
        helper.make_node("Gather", ["table", "idx"], ["g"], axis=0),
        helper.make_node("Transpose", ["g"], ["gt"], perm=[2, 0, 1]),
        helper.make_node("Unsqueeze", ["gt", "ax"], ["bias"]),
    ] + nodes
    inits = [
        numpy_helper.from_array(table, "table"),
        numpy_helper.from_array(index.astype(np.int64), "idx"),
        numpy_helper.from_array(np.array([0], np.int64), "ax"),
    ]
    gathered = profile_onnx(_model(nodes, inputs, out, inits))
    assert gathered.params == gathered.params_stored == table.size


def _to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """Store every float weight as float16 behind a Cast back to float32 (what FP16 converters emit)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    casts = []
    for t in g.initializer:
        if t.data_type == TensorProto.FLOAT:
            arr = numpy_helper.to_array(t).astype(np.float16)
            t.CopyFrom(numpy_helper.from_array(arr, t.name + "_fp16"))
            casts.append(helper.make_node("Cast", [t.name], [t.name[: -len("_fp16")]], to=TensorProto.FLOAT))
    nodes = casts + list(g.node)
    del g.node[:]
    g.node.extend(nodes)
    return out


def test_fp16_weights_behind_casts_count_the_same():
    fp32 = profile_onnx(_conv_net())
    fp16 = profile_onnx(_to_fp16(_conv_net()))
    assert fp16.params == fp32.params and fp16.macs == fp32.macs
    assert fp16.params_by_dtype == {"float16": CONV_NET_PARAMS}
    assert fp16.weight_bytes == 2 * CONV_NET_PARAMS


def test_nodes_out_of_topological_order_are_sorted():
    model = _conv_net()
    nodes = list(model.graph.node)[::-1]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    prof = profile_onnx(model)
    assert prof.macs == sum(CONV_NET_MACS.values()) and prof.params == CONV_NET_PARAMS
    assert any("topological" in n for n in prof.notes)


def test_external_data_is_loaded_and_sized(tmp_path: Path):
    path = tmp_path / "net.onnx"
    onnx.save_model(
        _conv_net(), str(path), save_as_external_data=True, all_tensors_to_one_file=True, location="net.data",
        size_threshold=0,
    )  # fmt: skip
    prof = profile_onnx(path)
    assert (tmp_path / "net.data").stat().st_size >= 4 * CONV_NET_PARAMS
    assert prof.file_size_bytes == path.stat().st_size + (tmp_path / "net.data").stat().st_size
    assert prof.params == CONV_NET_PARAMS and prof.macs == sum(CONV_NET_MACS.values())
    (tmp_path / "net.data").unlink()
    with pytest.raises(ArtifactError, match="missing"):
        profile_onnx(path)
    escaping = onnx.load(str(path), load_external_data=False)
    for t in escaping.graph.initializer:
        for kv in t.external_data:
            if kv.key == "location":
                kv.value = "../net.data"
    onnx.save_model(escaping, str(path))
    with pytest.raises(ArtifactError, match="outside its directory"):
        profile_onnx(path)


def test_json_round_trip(tmp_path: Path):
    path = tmp_path / "net.onnx"
    onnx.save_model(_conv_net(), str(path))
    prof = profile_onnx(path, per_node=True)
    d = json.loads(json.dumps(prof.to_json()))
    assert d["params"] == CONV_NET_PARAMS and d["file_size_bytes"] == path.stat().st_size
    assert GraphProfile.from_json(d) == prof


def test_bad_inputs_raise_edgekit_errors(tmp_path: Path):
    with pytest.raises(ArtifactError, match="does not exist"):
        profile_onnx(tmp_path / "missing.onnx")
    garbage = tmp_path / "notes.onnx"
    garbage.write_text("this is not a protobuf\n" * 20)
    with pytest.raises(ArtifactError, match="not an ONNX model"):
        profile_onnx(garbage)
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(ArtifactError, match="not an ONNX model"):
        profile_onnx(empty)
    with pytest.raises(ArtifactError, match="not a file"):
        profile_onnx(tmp_path)
    with pytest.raises(UsageError, match="batch"):
        profile_onnx(_conv_net(), batch=0)
    with pytest.raises(UsageError, match="ModelProto or a path"):
        profile_onnx(42)  # type: ignore[arg-type]


def test_profile_and_cli_run_without_torch(tmp_path: Path):
    """The device path: profiling and `edgekit profile --json` import neither torch nor a runtime."""
    import subprocess
    import sys

    path = tmp_path / "net.onnx"
    onnx.save_model(_conv_net(), str(path))
    code = (
        "import json, sys\n"
        "from click.testing import CliRunner\n"
        "from edgekit.cli.main import cli\n"
        f"r = CliRunner().invoke(cli, ['profile', {str(path)!r}, '--json'])\n"
        "assert r.exit_code == 0, r.output\n"
        "heavy = [m for m in ('torch', 'torchvision', 'timm', 'onnxruntime', 'openvino') if m in sys.modules]\n"
        "print(json.dumps({'params': json.loads(r.output)['params'], 'heavy': heavy}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"params": CONV_NET_PARAMS, "heavy": []}


# --------------------------------------------------------------------------- CLI


def _artifact(tmp_path: Path) -> Path:
    from edgekit.core.manifest import Manifest, WeightsInfo
    from edgekit.core.specs import PreprocessSpec, TensorSpec

    d = tmp_path / "artifact"
    d.mkdir()
    onnx.save_model(_conv_net(), str(d / "model.onnx"))
    manifest = Manifest(
        model="tiny_convnet",
        family="test",
        source="test",
        num_classes=10,
        weights=WeightsInfo(origin="none", random_init=True),
        inputs=(TensorSpec("x", ("N", 3, 16, 16)),),
        outputs=(TensorSpec("y", ("N", 10)),),
        preprocess=PreprocessSpec(input_size=(16, 16)),
    )
    manifest.with_files(d).write(d)
    return d


def test_cli_json_on_artifact_and_bare_file(tmp_path: Path):
    art = _artifact(tmp_path)
    runner = CliRunner()
    res = runner.invoke(profile_cmd, [str(art), "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    assert d["model"] == "tiny_convnet"
    assert d["params"] == CONV_NET_PARAMS and d["macs"] == sum(CONV_NET_MACS.values())
    assert d["macs_by_op_type"] == CONV_NET_MACS
    res2 = runner.invoke(profile_cmd, [str(art / "model.onnx"), "--json", "--batch", "2"])
    assert res2.exit_code == 0, res2.output
    d2 = json.loads(res2.output)
    assert d2["model"] is None and d2["batch"] == 2 and d2["macs"] == 2 * d["macs"]


def test_cli_table(tmp_path: Path):
    res = CliRunner().invoke(profile_cmd, [str(_artifact(tmp_path))])
    assert res.exit_code == 0, res.output
    assert "tiny_convnet" in res.output
    assert f"{CONV_NET_PARAMS:,}" in res.output
    assert f"{sum(CONV_NET_MACS.values()):,}" in res.output
    assert "x [N, 3, 16, 16] float32" in res.output  # shapes are not eaten as rich markup


def test_cli_errors(tmp_path: Path):
    runner = CliRunner()
    res = runner.invoke(profile_cmd, [str(tmp_path / "missing")])
    assert isinstance(res.exception, ArtifactError) and "does not exist" in str(res.exception)
    (tmp_path / "readme.txt").write_text("hello\n")
    res = runner.invoke(profile_cmd, [str(tmp_path / "readme.txt")])
    assert isinstance(res.exception, ArtifactError)
    art = _artifact(tmp_path)
    (art / "model.onnx").write_bytes(b"tampered")
    res = runner.invoke(profile_cmd, [str(art)])
    assert isinstance(res.exception, ArtifactError) and "sha256" in str(res.exception)
    # through the main group: a one-line message and the usage exit code
    from edgekit.cli.main import cli

    res = runner.invoke(cli, ["profile", str(tmp_path / "missing")])
    assert res.exit_code == 2
    assert "edgekit: error:" in res.output and "does not exist" in res.output


# --------------------------------------------------------------------------- the zoo, exported with torch

# timm: results/benchmark-infer-amp-nchw-pt291-cu128-4090.csv in huggingface/pytorch-image-models
# (columns param_count [M] and infer_gmacs at infer_img_size 224, both rounded to 2 decimals;
# the pt240-cu124-rtx3090 table has the same figures). torchvision: each weight's meta
# "num_params" and "_ops" (GMACs), read from the installed torchvision below.
TIMM_PUBLISHED = {
    "mobilenetv1_100": (4.23e6, 0.58e9),
    "mobilenetv2_100": (3.50e6, 0.31e9),
    "mobilenetv3_large_100": (5.48e6, 0.23e9),
    "mobilenetv3_small_100": (2.54e6, 0.06e9),
    "efficientnet_b0": (5.29e6, 0.40e9),
    "coatnet_0_rw_224": (27.44e6, 4.43e9),
}
TIMM_ROUNDING = 0.005  # half a unit of the last published digit (M params, GMACs)
TV_MODELS = [
    "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small", "shufflenet_v2_x1_0",
    "squeezenet1_0", "squeezenet1_1", "efficientnet_b0",
]  # fmt: skip
ZOO = [("torchvision", m) for m in TV_MODELS] + [
    pytest.param("timm", m, marks=[pytest.mark.slow] if m == "coatnet_0_rw_224" else [])
    for m in TIMM_PUBLISHED
]


@dataclass(frozen=True)
class Exported:
    path: Path
    torch_params: int  # sum(p.numel() for p in model.parameters())
    bn_channels: int  # channels of all BatchNorm layers
    norm_elements: dict[str, int]  # input elements of BN / LayerNorm / adaptive pools (fvcore's extra work)
    attention_macs: int  # Q @ K^T and attn @ V of timm's Attention2d, from the shapes seen in torch


_CACHE: dict[tuple[str, str, str], Exported] = {}


def _build(torch, source: str, name: str):
    if source == "timm":
        timm = pytest.importorskip("timm", reason="timm builds the timm configurations")
        model = timm.create_model(name, pretrained=False)
    else:
        tv = pytest.importorskip("torchvision", reason="torchvision builds the torchvision configurations")
        model = tv.models.get_model(name, weights=None)
    model.eval()
    # Distinct values in every parameter and buffer, as in a trained model: both exporters
    # merge initializers of equal value (freshly initialized BN/LN weights are all ones),
    # which a trained artifact never shows. Counts do not depend on the values otherwise.
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for t in [*model.parameters(), *(b for b in model.buffers() if b.is_floating_point())]:
            t.add_(torch.randn(t.shape, generator=gen) * 0.01)
    return model


def _torch_facts(torch, model) -> tuple[int, int, dict[str, int], int]:
    norm = {"batchnorm": 0, "layernorm": 0, "adaptive_pool": 0}
    attention = [0]

    def hook(mod, inputs, output):
        x = inputs[0]
        if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
            norm["batchnorm"] += x.numel()
        elif isinstance(mod, torch.nn.LayerNorm):
            norm["layernorm"] += x.numel()
        elif isinstance(mod, torch.nn.AdaptiveAvgPool2d):
            norm["adaptive_pool"] += x.numel()
        elif type(mod).__name__ == "Attention2d":  # timm maxxvit: x is [B, C, H, W]
            b, _, h, w = x.shape
            attention[0] += 2 * b * mod.num_heads * (h * w) ** 2 * mod.dim_head

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    with torch.no_grad():
        model(torch.zeros(1, 3, 224, 224))
    for h in handles:
        h.remove()
    bn = sum(m.num_features for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm))
    return sum(p.numel() for p in model.parameters()), bn, norm, attention[0]


@pytest.fixture(scope="session")
def zoo_onnx(tmp_path_factory: pytest.TempPathFactory):
    """Export a zoo configuration once per session (opset 17, batch dimension dynamic)."""
    torch = pytest.importorskip("torch", reason="exporting the zoo's models needs the 'torch' extra")

    def get(source: str, name: str, exporter: str = "torchscript") -> Exported:
        key = (source, name, exporter)
        if key not in _CACHE:
            torch.manual_seed(0)
            model = _build(torch, source, name)
            params, bn, norm, attention = _torch_facts(torch, model)
            path = tmp_path_factory.mktemp("profile") / f"{source}-{name}-{exporter}.onnx"
            x = torch.randn(1, 3, 224, 224)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if exporter == "torchscript":
                    torch.onnx.export(
                        model, (x,), str(path), dynamo=False, opset_version=17, do_constant_folding=True,
                        input_names=["input"], output_names=["logits"],
                        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                    )  # fmt: skip
                else:
                    program = torch.onnx.export(
                        model, (x,), dynamo=True, opset_version=18, input_names=["input"], output_names=["logits"],
                        dynamic_shapes=({0: torch.export.Dim("batch")},), verbose=False,
                    )  # fmt: skip
                    program.save(str(path))
            _CACHE[key] = Exported(path, params, bn, norm, attention)
        return _CACHE[key]

    return get


def _unfolded_bn_channels(path: Path) -> int:
    """Channels of the BatchNormalization nodes the exporter left in the graph (not folded)."""
    model = onnx.load(str(path), load_external_data=False)
    dims = {t.name: list(t.dims) for t in model.graph.initializer}
    return sum(dims[n.input[1]][0] for n in model.graph.node if n.op_type == "BatchNormalization")


def _published(source: str, name: str) -> tuple[float, float, float, float]:
    """(params, macs, params rounding, macs rounding) as published."""
    if source == "timm":
        params, macs = TIMM_PUBLISHED[name]
        return params, macs, TIMM_ROUNDING * 1e6, TIMM_ROUNDING * 1e9
    tv = pytest.importorskip("torchvision")
    meta = tv.models.get_model_weights(name).DEFAULT.meta
    ops = meta["_ops"]
    decimals = len(repr(float(ops)).split(".")[1])
    return float(meta["num_params"]), ops * 1e9, 0.5, 0.5 * 10.0**-decimals * 1e9


@pytest.mark.parametrize(("source", "name"), ZOO)
def test_zoo_params_match_published_and_torch(zoo_onnx, source: str, name: str):
    exp = zoo_onnx(source, name)
    prof = profile_onnx(exp.path)
    pub_params, _, rounding, _ = _published(source, name)
    # Published counts are torch's parameters, BN's gamma and beta included. The exporter folds
    # each BN that follows a bias-free conv into that conv: 2C values become a C bias.
    folded = exp.bn_channels - _unfolded_bn_channels(exp.path)
    expected = exp.torch_params - folded
    if any("expanded table" in n for n in prof.notes):
        # CoAtNet's relative-position tables, counted by distinct values: two float32 entries
        # of a table may be equal by chance (a handful in 27 M)
        assert abs(prof.params - expected) <= 1e-5 * expected
    else:
        assert prof.params == expected
    assert abs(prof.params - pub_params) <= max(0.005 * pub_params, rounding), (prof.params, pub_params)


@pytest.mark.parametrize(("source", "name"), ZOO)
def test_zoo_macs_match_published(zoo_onnx, source: str, name: str):
    exp = zoo_onnx(source, name)
    prof = profile_onnx(exp.path)
    _, pub_macs, _, rounding = _published(source, name)
    assert prof.macs_complete, prof.notes
    if source == "torchvision":
        # torchvision's _ops count the dot products only, as we do
        assert abs(prof.macs - pub_macs) <= max(0.03 * pub_macs, rounding), (prof.macs, pub_macs)
    else:
        # timm's infer_gmacs come from fvcore (benchmark.py: profile_fvcore when deepspeed is
        # absent), which also counts 2 per BatchNorm input element (eval, affine), 5 per
        # LayerNorm input element and 1 per adaptive-pool input element. The exported graph
        # has no BN left (folded) and we count dot products only; adding fvcore's extra work,
        # measured in torch, must reproduce timm's rounded figure.
        extra = 2 * exp.norm_elements["batchnorm"] + 5 * exp.norm_elements["layernorm"]
        extra += exp.norm_elements["adaptive_pool"]
        assert abs(prof.macs + extra - pub_macs) <= rounding, (prof.macs, extra, pub_macs)
        # and the dot products alone are within 3 % plus that normalization work
        assert abs(prof.macs - pub_macs) <= 0.03 * pub_macs + extra


@pytest.mark.slow
def test_coatnet_attention_matmuls_are_counted(zoo_onnx):
    exp = zoo_onnx("timm", "coatnet_0_rw_224")
    prof = profile_onnx(exp.path)
    assert exp.attention_macs > 0
    assert prof.macs_by_op_type["MatMul"] == exp.attention_macs  # QK^T and AV, activation x activation
    assert prof.op_counts["MatMul"] == 18  # 9 transformer blocks, 2 products each


@pytest.mark.slow
def test_dynamo_export_counts_like_torchscript(zoo_onnx):
    pytest.importorskip("onnxscript", reason="the dynamo exporter needs onnxscript")
    ts = profile_onnx(zoo_onnx("torchvision", "mobilenet_v3_small").path)
    dyn = profile_onnx(zoo_onnx("torchvision", "mobilenet_v3_small", exporter="dynamo").path)
    assert dyn.params == ts.params
    assert dyn.macs == ts.macs and dyn.macs_by_op_type == ts.macs_by_op_type
    assert dyn.opset == 18 and ts.opset == 17


# --------------------------------------------------------------------------- quantized and FP16 artifacts


def _calibration_images() -> list[np.ndarray]:
    """Three real photographs, preprocessed as torchvision's classifiers expect (224 crop of 256)."""
    data = pytest.importorskip("skimage.data", reason="scikit-image ships the calibration photographs")
    from PIL import Image

    mean = np.array([0.485, 0.456, 0.406], np.float32)
    std = np.array([0.229, 0.224, 0.225], np.float32)
    out = []
    for load in (data.chelsea, data.coffee, data.astronaut):
        im = Image.fromarray(load()).convert("RGB")
        s = 256 / min(im.size)
        im = im.resize((round(im.width * s), round(im.height * s)), Image.BILINEAR)
        left, top = (im.width - 224) // 2, (im.height - 224) // 2
        x = np.asarray(im.crop((left, top, left + 224, top + 224)), np.float32) / 255.0
        out.append(((x - mean) / std).transpose(2, 0, 1)[None].astype(np.float32))
    return out


@pytest.mark.parametrize("form", ["qdq", "qoperator", "dynamic"])
def test_quantized_models_keep_params_and_macs(zoo_onnx, tmp_path: Path, form: str):
    q = pytest.importorskip("onnxruntime.quantization", reason="quantizing needs the 'onnxruntime' extra")
    src = zoo_onnx("torchvision", "mobilenet_v3_small").path
    fp32 = profile_onnx(src)
    out = tmp_path / f"{form}.onnx"
    if form == "dynamic":
        q.quantize_dynamic(str(src), str(out), weight_type=q.QuantType.QUInt8)
    else:

        class Reader(q.CalibrationDataReader):
            def __init__(self) -> None:
                self._it = iter([{"input": x} for x in _calibration_images()])

            def get_next(self):
                return next(self._it, None)

        fmt = q.QuantFormat.QDQ if form == "qdq" else q.QuantFormat.QOperator
        q.quantize_static(str(src), str(out), Reader(), quant_format=fmt, per_channel=True)
    prof = profile_onnx(out)
    assert prof.macs_complete, prof.notes
    assert prof.params == fp32.params
    assert prof.macs == fp32.macs
    quantized = prof.params_by_dtype.get("int8", 0) + prof.params_by_dtype.get("uint8", 0)
    # every conv and Gemm weight is 8-bit; what stays wider is biases (int32 or float32)
    assert quantized >= 0.99 * fp32.params
    ops = set(prof.macs_by_op_type)
    expected_ops = {"qdq": {"Conv", "Gemm"}, "qoperator": {"QLinearConv", "com.microsoft.QGemm"}}
    assert ops == expected_ops.get(form, {"ConvInteger", "MatMulInteger"})
    assert prof.file_size_bytes < 0.4 * fp32.file_size_bytes  # int8 weights: about a quarter


def test_onnxruntime_fp16_conversion_keeps_params_and_macs(zoo_onnx):
    f16 = pytest.importorskip("onnxruntime.transformers.float16", reason="the FP16 converter ships with onnxruntime")
    src = zoo_onnx("torchvision", "mobilenet_v3_small").path
    fp32 = profile_onnx(src)
    model = f16.convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    prof = profile_onnx(model)
    assert prof.params == fp32.params and prof.macs == fp32.macs
    assert prof.params_by_dtype == {"float16": fp32.params}
    assert math.isclose(prof.weight_bytes, fp32.weight_bytes / 2)
    assert prof.inputs[0].dtype == "float32"  # keep_io_types: Casts at the graph's edges
