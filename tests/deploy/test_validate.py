"""The chip checklist: each rule fires on a graph built to break it, naming the node; clean graphs pass."""
from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from camlab.deploy.chips import load_chip
from camlab.deploy.validate import validate_model
from camlab.errors import InputFileError


def qdq_conv_graph(*, cin=16, cout=16, k=3, group=1, h=32, w=32, out_qdq=True, extra_nodes=(), extra_inits=(),
                   output_from="y", opset=13, w_zero_point=0, per_channel=True, act_dtype=TensorProto.INT8):
    """images -> Q -> DQ -> Conv (int8 per-channel weights) -> Q -> DQ -> y, plus optional extra nodes."""
    rng = np.random.default_rng(0)
    wq = rng.integers(-127, 127, (cout, cin // group, k, k)).astype(np.int8)
    np_act = np.int8 if act_dtype == TensorProto.INT8 else np.uint8
    inits = [numpy_helper.from_array(wq, "w_q"),
             numpy_helper.from_array(np.full(cout if per_channel else 1, 0.01, np.float32).reshape(
                 (cout,) if per_channel else ()), "w_s"),
             numpy_helper.from_array(np.full(cout if per_channel else 1, w_zero_point, np.int8).reshape(
                 (cout,) if per_channel else ()), "w_zp"),
             numpy_helper.from_array(np.array(0.02, np.float32), "a_s"),
             numpy_helper.from_array(np.array(0, np_act), "a_zp"),
             *extra_inits]
    nodes = [helper.make_node("QuantizeLinear", ["images", "a_s", "a_zp"], ["x_q"], name="in_q"),
             helper.make_node("DequantizeLinear", ["x_q", "a_s", "a_zp"], ["x"], name="in_dq"),
             helper.make_node("DequantizeLinear", ["w_q", "w_s", "w_zp"], ["w"], name="w_dq", axis=0),
             helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[k // 2] * 4, group=group)]
    if out_qdq:
        nodes += [helper.make_node("QuantizeLinear", ["c", "a_s", "a_zp"], ["c_q"], name="out_q"),
                  helper.make_node("DequantizeLinear", ["c_q", "a_s", "a_zp"], ["y"], name="out_dq")]
    else:
        nodes += [helper.make_node("Identity", ["c"], ["y"], name="out_id")]
    nodes += list(extra_nodes)
    g = helper.make_graph(nodes, "t", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, cin, h, w])],
                          [helper.make_tensor_value_info(output_from, TensorProto.FLOAT, None)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    try:  # give the output its inferred type (broken graphs keep the bare one)
        inferred = onnx.shape_inference.infer_shapes(m)
        vi = {v.name: v for v in list(inferred.graph.value_info) + list(inferred.graph.output)}[output_from]
        if vi.type.tensor_type.HasField("shape"):
            m.graph.output[0].CopyFrom(vi)
    except Exception:
        pass
    return m


def rules(rep):
    return {(v.rule, v.node) for v in rep.violations}


def test_clean_graph_passes_every_chip_rule():
    rep = validate_model(qdq_conv_graph(), "rv1106")
    assert rep.violations == [], rep.violations
    assert rep.cost["macs"] == 16 * 16 * 9 * 32 * 32
    assert rep.latency["npu_latency_ms"] > 0 and rep.latency["source"] == "model"


@pytest.mark.parametrize("kwargs, expected", [
    ({"out_qdq": False}, ("qdq_output", "y")),
    ({"w_zero_point": 3}, ("qdq_weights", "w_dq")),
    ({"per_channel": False}, ("qdq_weights", "w_dq")),
    ({"act_dtype": TensorProto.UINT8}, ("qdq_activation", "in_q")),
    ({"opset": 11}, ("opset", "<graph>")),
    ({"cin": 16, "cout": 16, "k": 5, "group": 16}, ("depthwise_kernel", "conv")),
    ({"h": 48}, ("input_shape", "images")),
])
def test_rule_fires_with_node_name(kwargs, expected):
    rep = validate_model(qdq_conv_graph(**kwargs), "rv1106")
    assert expected in rules(rep), rep.violations


def test_channel_multiple_inside_the_network():
    w2 = numpy_helper.from_array(np.ones((16, 24, 1, 1), np.int8), "w2_q")
    s2 = numpy_helper.from_array(np.full(16, 0.01, np.float32), "w2_s")
    z2 = numpy_helper.from_array(np.zeros(16, np.int8), "w2_zp")
    nodes = [helper.make_node("DequantizeLinear", ["w2_q", "w2_s", "w2_zp"], ["w2"], name="w2_dq", axis=0),
             helper.make_node("Conv", ["y", "w2"], ["z"], name="conv2"),
             helper.make_node("QuantizeLinear", ["z", "a_s", "a_zp"], ["z_q"], name="z_q"),
             helper.make_node("DequantizeLinear", ["z_q", "a_s", "a_zp"], ["zz"], name="z_dq")]
    m = qdq_conv_graph(cin=16, cout=24, extra_nodes=nodes, extra_inits=[w2, s2, z2], output_from="zz")
    rep = validate_model(m, "rv1106")
    msgs = {(v.rule, v.node, v.message) for v in rep.violations}
    assert ("channel_multiple", "conv", "24 output channels, not a multiple of 16") in msgs
    assert ("channel_multiple", "conv2", "24 input channels, not a multiple of 16") in msgs
    assert len(rep.violations) == 2


def test_depthwise_3x3_and_head_channels_allowed():
    rep = validate_model(qdq_conv_graph(cin=16, cout=16, k=3, group=16), "rv1106")
    assert rep.violations == []
    # 7 output channels on a head conv (feeds a graph output) is allowed; the t40xp wants 32-multiples inside
    rep = validate_model(qdq_conv_graph(cin=32, cout=7, k=1), "t40xp")
    assert rep.violations == []


@pytest.mark.parametrize("op", ["Shape", "NonZero", "Cast", "Where", "TopK"])
def test_banned_ops(op):
    extra_inits = []
    if op == "Cast":
        node = helper.make_node("Cast", ["y"], ["z"], name="bad_op", to=TensorProto.FLOAT)
    elif op == "Where":
        extra_inits = [numpy_helper.from_array(np.array(True), "cond")]
        node = helper.make_node("Where", ["cond", "y", "y"], ["z"], name="bad_op")
    elif op == "TopK":
        extra_inits = [numpy_helper.from_array(np.array([3], np.int64), "kk")]
        node = helper.make_node("TopK", ["y", "kk"], ["z", "zi"], name="bad_op")
    else:
        node = helper.make_node(op, ["y"], ["z"], name="bad_op")
    m = qdq_conv_graph(extra_nodes=[node], extra_inits=extra_inits, output_from="z")
    rep = validate_model(m, "rv1106")
    assert ("banned_op", "bad_op") in rules(rep)


def test_decode_in_graph_sigmoid_and_concat():
    sig = helper.make_node("Sigmoid", ["y"], ["s"], name="head_sigmoid")
    rep = validate_model(qdq_conv_graph(extra_nodes=[sig], output_from="s"), "rv1106")
    assert ("decode_in_graph", "head_sigmoid") in rules(rep)
    assert ("qdq_output", "s") in rules(rep)
    cat = helper.make_node("Concat", ["y", "y2"], ["cc"], name="box_score_concat", axis=1)
    relu = helper.make_node("Relu", ["x"], ["y2"], name="other_branch")
    rep = validate_model(qdq_conv_graph(extra_nodes=[relu, cat], output_from="cc"), "rv1106")
    assert ("decode_in_graph", "box_score_concat") in rules(rep)


def test_resize_with_computed_scales_and_qoperator():
    shape = helper.make_node("Shape", ["y"], ["shp"], name="shape_op")
    cast = helper.make_node("Cast", ["shp"], ["scl"], name="cast_op", to=TensorProto.FLOAT)
    rs = helper.make_node("Resize", ["y", "", "scl"], ["r"], name="dyn_resize", mode="nearest")
    rep = validate_model(qdq_conv_graph(extra_nodes=[shape, cast, rs], output_from="r"), "rv1106")
    assert ("resize_constant", "dyn_resize") in rules(rep)
    assert ("banned_op", "shape_op") in rules(rep)
    qc = helper.make_node("QLinearConv", ["c_q", "a_s", "a_zp", "w_q", "w_s", "w_zp", "a_s", "a_zp"], ["qo"],
                          name="qlinear")
    rep = validate_model(qdq_conv_graph(extra_nodes=[qc], output_from="qo"), "rv1106")
    assert ("qoperator", "qlinear") in rules(rep)


def test_dynamic_input_and_ir_version():
    m = qdq_conv_graph()
    m.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "H"
    m.ir_version = 11
    found = rules(validate_model(m, "rv1106"))
    assert ("ir_version", "<graph>") in found
    assert any(r == "static_shapes" for r, _ in found)
    assert ("input_shape", "images") in found


def test_budgets_from_chip_profile():
    chip = dataclasses.replace(load_chip("rv1106"), ai_ram_bytes=1000, weights_ram_bytes=100,
                               flash_partition_bytes=500)
    found = {r for r, _ in rules(validate_model(qdq_conv_graph(), chip))}
    assert {"budget_activations", "budget_weights", "budget_flash"} <= found


def test_unquantized_conv_is_reported():
    m = qdq_conv_graph()
    conv = next(n for n in m.graph.node if n.name == "conv")
    conv.input[0] = "images"
    assert ("qdq_unquantized_op", "conv") in rules(validate_model(m, "rv1106"))


def test_corrupt_file_is_clear_error(tmp_path):
    p = tmp_path / "bad.onnx"
    p.write_bytes(b"not a protobuf at all \xff\xfe")
    with pytest.raises(InputFileError, match="bad.onnx: not a readable ONNX model"):
        validate_model(p, "rv1106")


def test_real_export_passes_rv1106_and_ssc377(tiny_onnx):
    _, int8, _ = tiny_onnx
    for chip in ("rv1106", "ssc377"):
        rep = validate_model(int8, chip)
        assert rep.violations == [], (chip, rep.violations)
    # the t40xp wants channel multiples of 32: the 16-channel stem is flagged by name
    rep = validate_model(int8, "t40xp")
    assert {v.rule for v in rep.violations} == {"channel_multiple"}
    assert all(v.node for v in rep.violations)
    onnx.checker.check_model(onnx.load(str(int8)), full_check=True)
