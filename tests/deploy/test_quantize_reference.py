"""INT8 figures come from the QDQ graph's arithmetic, not from x86 kernels that saturate (no VNNI: VPMADDUBSW)."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

C = K = 16   # 3x3 conv over 16 channels: 144 products per output, int8 values at full scale


def _full_scale_qdq_conv(path):
    """x (all 1.0) -> Q/DQ (int8, scale 1/255, zp -128: q = 127) -> Conv with int8 weights 127 (scale 1/127: 1.0)
    -> Q/DQ. Exact output in the interior: 9 * 16 * 1.0 = 144."""
    y_scale = (9 * C + 1) / 255
    inits = [numpy_helper.from_array(np.array(1 / 255, np.float32), "xs"),
             numpy_helper.from_array(np.array(-128, np.int8), "xz"),
             numpy_helper.from_array(np.full((K, C, 3, 3), 127, np.int8), "wq"),
             numpy_helper.from_array(np.full(K, 1 / 127, np.float32), "ws"),
             numpy_helper.from_array(np.zeros(K, np.int8), "wz"),
             numpy_helper.from_array(np.array(y_scale, np.float32), "ys"),
             numpy_helper.from_array(np.array(-128, np.int8), "yz")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
             helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"], axis=0),
             helper.make_node("Conv", ["xd", "wd"], ["y"], pads=[1, 1, 1, 1]),
             helper.make_node("QuantizeLinear", ["y", "ys", "yz"], ["yq"]),
             helper.make_node("DequantizeLinear", ["yq", "ys", "yz"], ["out"])]
    graph = helper.make_graph(nodes, "full_scale_conv",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, C, 8, 8])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, K, 8, 8])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return y_scale


def test_reference_session_computes_the_exact_int8_result(tmp_path):
    from camlab.deploy.quantize import session

    path = tmp_path / "conv.onnx"
    y_scale = _full_scale_qdq_conv(path)
    x = np.ones((1, C, 8, 8), np.float32)
    out = session(path).run(None, {"x": x})[0]
    assert abs(float(out[0, 0, 3, 3]) - 144.0) <= y_scale   # one output step


def test_every_int8_evaluator_uses_the_reference_options(tmp_path):
    from camlab.eval.detection import onnx_predictor

    path = tmp_path / "conv.onnx"
    _full_scale_qdq_conv(path)
    out = onnx_predictor(path)(np.ones((1, C, 8, 8), np.float32))["out"]
    assert abs(float(out[0, 0, 3, 3]) - 144.0) < 1.0


def test_cry_bundle_scorer_uses_the_reference_options(tmp_path):
    import onnxruntime as ort

    from camlab.contract.audio_features import CryAlarm, FeatureConfig
    from camlab.eval.audio import OnnxScorer

    path = tmp_path / "conv.onnx"
    _full_scale_qdq_conv(path)
    scorer = OnnxScorer(path, FeatureConfig(), CryAlarm(0.5, 1, 1, 1.0, 0.5))
    level = scorer.session.get_session_options().graph_optimization_level
    assert level == ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
