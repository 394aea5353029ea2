"""Cost model (MACs, params, liveness peak, latency) and chip profiles."""
from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from camlab.config import load_config
from camlab.deploy.chips import ChipProfile, available_chips, load_chip
from camlab.deploy.cost import graph_cost, npu_latency_ms
from camlab.errors import ConfigError


def _conv(name, x, y, w, cout, cin, k=3, stride=1):
    return (helper.make_node("Conv", [x, w], [y], name=name, pads=[k // 2] * 4, strides=[stride, stride]),
            numpy_helper.from_array(np.zeros((cout, cin, k, k), np.float32), w))


def skip_graph():
    """x(1,8,16,16) -> a=conv(16ch) -> b=conv(16ch) -> c = a + b -> out (a stays live across b)."""
    n1, w1 = _conv("c1", "x", "a", "w1", 16, 8)
    n2, w2 = _conv("c2", "a", "b", "w2", 16, 16)
    add = helper.make_node("Add", ["a", "b"], ["out"], name="add")
    g = helper.make_graph([n1, n2, add], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 16, 16])],
                          [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 16, 16, 16])], [w1, w2])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


def test_macs_params_and_liveness_peak():
    c = graph_cost(skip_graph(), act_bytes=1)
    assert c.macs == 16 * 16 * 16 * (8 * 9) + 16 * 16 * 16 * (16 * 9)
    assert c.params == 16 * 8 * 9 + 16 * 16 * 9
    # at the Add: a, b and out are live (x freed after c1): 3 x 4096 bytes
    assert c.peak_activation_bytes == 3 * 16 * 16 * 16
    assert c.peak_at == "add"
    c4 = graph_cost(skip_graph(), act_bytes=4)
    assert c4.peak_activation_bytes == 4 * c.peak_activation_bytes


def test_reshape_aliases_its_input():
    m = skip_graph()
    shape = numpy_helper.from_array(np.array([1, -1], np.int64), "shp")
    m.graph.initializer.append(shape)
    m.graph.node.append(helper.make_node("Reshape", ["out", "shp"], ["flat"], name="flatten"))
    m.graph.output[0].CopyFrom(helper.make_tensor_value_info("flat", TensorProto.FLOAT, [1, 4096]))
    assert graph_cost(m).peak_activation_bytes == 3 * 4096


def test_latency_roofline_and_rknn_basis():
    chip = load_chip("rv1106")
    c = graph_cost(skip_graph())
    est = npu_latency_ms(c, chip)
    assert est["source"] == "model" and est["cycles"] > 0
    assert est["npu_latency_ms"] == pytest.approx(2.0 * est["cycles"] / 1e9 * 1e3 + chip.latency.overhead_ms,
                                                  abs=1e-3)
    r = npu_latency_ms(c, chip, rknn_cycles=4_000_000)
    assert r == {"npu_latency_ms": 8.0, "cycles": 4_000_000, "basis": chip.latency.basis, "source": "rknn"}
    # a chip with twice the MAC array is never slower
    fast = dataclasses.replace(chip, macs_per_cycle=chip.macs_per_cycle * 2)
    assert npu_latency_ms(c, fast)["cycles"] <= est["cycles"]


def test_every_chip_profile_loads_with_a_basis():
    names = available_chips()
    assert {"rv1106", "ssc337de", "ssc377", "t40xp"} <= set(names)
    for n in names:
        chip = load_chip(n)
        assert chip.name == n and chip.flash_partition_bytes > 0 and chip.latency.basis
        assert "Shape" in chip.banned_ops and "NonMaxSuppression" in chip.banned_ops
        assert 13 <= chip.opset_min <= chip.opset_max <= 19


def test_chip_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown chip 'nope'; expected one of: .*rv1106"):
        load_chip("nope")
    bad = tmp_path / "x.yaml"
    text = (load_chip.__globals__["CHIPS_DIR"] / "rv1106.yaml").read_text() + "\nturbo: true\n"
    bad.write_text(text)
    with pytest.raises(ConfigError, match="unknown key 'turbo'"):
        load_chip(bad)
    bad.write_text(text.replace("turbo: true", "").replace("opset_min: 13", "opset_min: 20"))
    with pytest.raises(ConfigError, match="opset_min 20 > opset_max 19"):
        load_config(ChipProfile, bad)


def test_cost_of_exported_model_matches_torch_count(tiny_onnx):
    import torch
    from deploy_nets import tiny_detector

    fp32, int8, _ = tiny_onnx
    total = 0

    def hook(mod, _i, out):
        nonlocal total
        total += out.numel() * mod.kernel_size[0] * mod.kernel_size[1] * (mod.in_channels // mod.groups)

    net = tiny_detector()
    for mod in net.modules():
        if isinstance(mod, torch.nn.Conv2d):
            mod.register_forward_hook(hook)
    with torch.no_grad():
        net(torch.zeros(1, 3, 64, 96))
    assert graph_cost(onnx.load(str(fp32))).macs == total
    assert graph_cost(onnx.load(str(int8))).macs == total
    # BatchNorm folds into the conv biases: ONNX params = conv weights + biases
    conv_params = sum(m.weight.numel() + m.bias.numel() for m in net.modules() if isinstance(m, torch.nn.Conv2d))
    assert graph_cost(onnx.load(str(fp32))).params == conv_params
    assert graph_cost(onnx.load(str(int8))).params == conv_params
