"""CamDet: budgets (params, MACs), NPU-friendly graph, outputs matching manifest_io, checkpoint round trip."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from camlab.models.detector import (MAC_BUDGET, PARAM_BUDGET, CamDet, DetectorConfig, count_macs, count_params,
                                    load_checkpoint, manifest_io)

ALLOWED_OPS = {"Conv", "Relu", "Add", "Concat", "MaxPool", "Resize", "Constant", "Identity"}


def _trained_configs():
    from camlab.train.detector import load_train_config

    return [load_train_config(n).model for n in ("detector_demo", "detector_full")]


@pytest.mark.parametrize("cfg", [DetectorConfig(), DetectorConfig(input_width=640, input_height=352)]
                         + _trained_configs())
def test_budgets(cfg):
    m = CamDet(cfg)
    assert count_params(m) <= PARAM_BUDGET
    assert count_macs(m) <= MAC_BUDGET
    # every conv: channels multiple of 16 except the RGB input and the raw head outputs; depthwise only 3x3
    for name, mod in m.named_modules():
        if isinstance(mod, torch.nn.Conv2d):
            if mod.groups > 1:
                assert mod.kernel_size == (3, 3) and mod.groups == mod.in_channels, name
            if "box_out" not in name and "cls_out" not in name:
                assert mod.out_channels % 16 == 0, name


def test_macs_counted_by_hand_for_stem():
    cfg = DetectorConfig(input_width=64, input_height=64, stem=16, widths=(16, 16, 16, 16), depths=(1, 1, 1, 1),
                         neck=16)
    m = CamDet(cfg)
    stem = 32 * 32 * 16 * 3 * 3 * 3
    assert count_macs(m) > stem
    one = torch.nn.Sequential(m.stem)
    one.config = cfg  # count_macs only needs .config and forward
    assert count_macs(one) == stem


def test_outputs_match_manifest_io_and_graph_ops(tmp_path):
    import onnx

    cfg = DetectorConfig(input_width=160, input_height=96, widths=(16, 32, 48, 64), depths=(1, 1, 1, 1), neck=32)
    m = CamDet(cfg).eval()
    io_ = manifest_io(cfg.to_dict())
    outs = m(torch.zeros(1, 3, 96, 160))
    assert [tuple(o.shape) for o in outs] == [tuple(o["shape"]) for o in io_["outputs"]]
    assert [o["name"] for o in io_["outputs"]] == m.output_names
    assert io_["inputs"][0]["shape"] == [1, 3, 96, 160]
    assert io_["decode"]["strides"] == [8, 16, 32] and io_["decode"]["classes"] == ["person", "pet", "vehicle"]
    path = tmp_path / "m.onnx"
    torch.onnx.export(m, torch.zeros(1, 3, 96, 160), str(path), input_names=["images"],
                      output_names=m.output_names, opset_version=17, dynamo=False)
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert ops <= ALLOWED_OPS, ops - ALLOWED_OPS
    assert "Sigmoid" not in ops and "Exp" not in ops


def test_bad_config_rejected():
    with pytest.raises(ValueError, match="multiples of 32"):
        DetectorConfig(input_width=300)
    with pytest.raises(ValueError, match="multiple of 16"):
        DetectorConfig(neck=40)
    with pytest.raises(ValueError, match="substream"):
        DetectorConfig(input_width=1280, input_height=736)


def test_checkpoint_round_trip(tmp_path):
    from camlab.errors import InputFileError
    from camlab.train.checkpoint import save_checkpoint

    cfg = DetectorConfig(input_width=96, input_height=64, widths=(16, 16, 32, 32), depths=(1, 1, 1, 1), neck=16)
    m = CamDet(cfg).eval()
    path = save_checkpoint(tmp_path / "d.pt", kind="detector", model_config=cfg.to_dict(),
                           state_dict=m.state_dict(), meta={"mlflow_run_id": "abc"})
    m2, meta = load_checkpoint(path)
    x = torch.rand(1, 3, 64, 96)
    for a, b in zip(m(x), m2(x)):
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
    assert meta["mlflow_run_id"] == "abc" and meta["model_config"]["input_width"] == 96
    save_checkpoint(tmp_path / "c.pt", kind="cry", model_config={}, state_dict={})
    with pytest.raises(InputFileError, match="expected 'detector'"):
        load_checkpoint(tmp_path / "c.pt")


def test_fold_batchnorm_preserves_outputs():
    from camlab.models.blocks import fold_batchnorm

    cfg = DetectorConfig(input_width=96, input_height=64, widths=(16, 16, 32, 32), depths=(1, 2, 1, 1), neck=16)
    m = CamDet(cfg)
    m.train()
    for _ in range(3):
        m(torch.rand(2, 3, 64, 96))       # move the BN running statistics away from identity
    m.eval()
    x = torch.rand(1, 3, 64, 96)
    ref = [o.detach().clone() for o in m(x)]
    fold_batchnorm(m)
    assert not any(isinstance(mod, torch.nn.BatchNorm2d) for mod in m.modules())
    for a, b in zip(ref, m(x)):
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=1e-4, atol=1e-4)


def test_class_thresholds_reach_the_manifest_and_are_validated():
    from camlab.models.detector import DetectorConfig, manifest_io

    cfg = DetectorConfig(class_score_thresholds=(0.4, 0.5, 0.6))
    assert manifest_io(cfg)["decode"]["score_thresholds"] == {"person": 0.4, "pet": 0.5, "vehicle": 0.6}
    assert DetectorConfig.from_dict(cfg.to_dict()) == cfg
    assert manifest_io(DetectorConfig())["decode"]["score_thresholds"]["pet"] == DetectorConfig().score_threshold
    with pytest.raises(ValueError, match="3 classes"):
        DetectorConfig(class_score_thresholds=(0.4, 0.5))
    with pytest.raises(ValueError, match="in \\(0, 1\\)"):
        DetectorConfig(class_score_thresholds=(0.4, 1.5, 0.2))
