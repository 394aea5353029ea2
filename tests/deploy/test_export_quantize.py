"""Export to static ONNX and INT8 QDQ quantization: the toolchain rules hold on the produced graphs."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from camlab.deploy.export import check_static, export_onnx
from camlab.deploy.quantize import compare_outputs, cosine, ensure_output_qdq, load_onnx, quantize_qdq, session
from camlab.errors import CamlabError, InputFileError

from deploy_nets import images, tiny_detector


def test_fp32_export_is_static_simplified_opset13(tiny_onnx):
    fp32, _, _ = tiny_onnx
    m = onnx.load(str(fp32))
    assert m.opset_import[0].version == 13 and m.ir_version <= 10
    assert [i.name for i in m.graph.input] == ["images"]
    assert [o.name for o in m.graph.output] == ["box_s4", "cls_s4", "box_s8", "cls_s8"]
    assert check_static(m) == []
    ops = {n.op_type for n in m.graph.node}
    assert "BatchNormalization" not in ops and "Identity" not in ops  # folded / slimmed
    assert not ops & {"Sigmoid", "Shape", "Cast"}
    # numerics match torch
    import torch

    x = images(1)
    with torch.no_grad():
        want = [t.numpy() for t in tiny_detector()(torch.from_numpy(x))]
    got = session(fp32).run(None, {"images": x})
    for a, b in zip(want, got):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("shape, msg", [((1, 3, 60, 96), "multiples of 32"), ((2, 3, 64, 96), "batch must be 1")])
def test_export_rejects_bad_shapes(tmp_path, shape, msg):
    with pytest.raises(CamlabError, match=msg):
        export_onnx(tiny_detector(), shape, tmp_path / "x.onnx")


def test_int8_qdq_rules(tiny_onnx):
    _, int8, _ = tiny_onnx
    m = onnx.load(str(int8))
    inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    producers = {o: n for n in m.graph.node for o in n.output}
    for out in m.graph.output:  # every output through Q -> DQ
        dq = producers[out.name]
        assert dq.op_type == "DequantizeLinear"
        assert producers[dq.input[0]].op_type == "QuantizeLinear"
    n_weights = 0
    for n in m.graph.node:
        if n.op_type == "Conv":
            wdq = producers[n.input[1]]
            w, scale, zp = inits[wdq.input[0]], inits[wdq.input[1]], inits[wdq.input[2]]
            assert w.dtype == np.int8 and scale.shape == (w.shape[0],) and np.all(zp == 0)
            axis = [a.i for a in wdq.attribute if a.name == "axis"]
            assert axis == [0]  # per-channel on the output-channel axis
            n_weights += 1
        if n.op_type == "QuantizeLinear":
            assert inits[n.input[1]].size == 1 and inits[n.input[2]].dtype == np.int8  # per-tensor int8
    assert n_weights == 9
    assert not {n.op_type for n in m.graph.node} & {"QLinearConv", "ConvInteger"}


def test_int8_close_to_fp32(tiny_onnx):
    fp32, int8, _ = tiny_onnx
    res = compare_outputs(fp32, int8, images(4, seed=7))
    assert res["count"] == 4
    assert min(res["cosine"].values()) > 0.99
    assert set(res["cosine"]) == {"box_s4", "cls_s4", "box_s8", "cls_s8"}


def test_ensure_output_qdq_adds_pair_with_bounded_error(tiny_onnx):
    fp32, _, calib = tiny_onnx
    m = load_onnx(fp32)
    fixed = ensure_output_qdq(m, {"box_s4": (-2.0, 2.0), "cls_s4": (-2.0, 2.0), "box_s8": (-2.0, 2.0),
                                  "cls_s8": (-2.0, 2.0)})
    assert fixed == ["box_s4", "cls_s4", "box_s8", "cls_s8"]
    onnx.checker.check_model(m, full_check=True)
    import onnxruntime as ort

    s = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    ref = session(fp32).run(None, {"images": calib[:1]})
    got = s.run(None, {"images": calib[:1]})
    step = 4.0 / 255
    for a, b in zip(ref, got):
        inside = np.abs(a) < 1.9
        assert np.max(np.abs(a - b)[inside]) <= step / 2 + 1e-6
    assert ensure_output_qdq(m, {}) == []  # idempotent: outputs already come from DQ


def test_quantize_input_errors(tiny_onnx, tmp_path):
    fp32, _, calib = tiny_onnx
    with pytest.raises(CamlabError, match="calibration samples have shape"):
        quantize_qdq(fp32, tmp_path / "q.onnx", calib[:, :, :32])
    bad = calib.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(CamlabError, match="NaN"):
        quantize_qdq(fp32, tmp_path / "q.onnx", bad)
    (tmp_path / "corrupt.onnx").write_bytes(b"\x08\x07garbage" * 10)
    with pytest.raises(InputFileError, match="corrupt.onnx: not a readable ONNX model"):
        load_onnx(tmp_path / "corrupt.onnx")


def test_cosine_values():
    a = np.array([1.0, 0.0])
    assert cosine(a, a) == pytest.approx(1.0)
    assert cosine(a, np.array([0.0, 2.0])) == pytest.approx(0.0)
    assert cosine(a, -a) == pytest.approx(-1.0)
