"""camlab.models.pretrained_ir: Intel's person-vehicle-bike-detection-2000 trunk read from its OpenVINO IR into
CamDet's MobileNetV2 backbone, held to the OpenVINO runtime itself conv layer by conv layer (input folding
included: the torch trunk takes RGB in [0, 1], the IR BGR in [0, 255])."""
from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch
from torch import nn


from camlab.errors import ConfigError, InputFileError
from camlab.models import pretrained_ir as ir
from camlab.models.pretrained import ConvAct, MobileNetV2Backbone
from camlab.settings import project_root

XML = project_root() / ir.PVB2000_XML


def test_trunk_matches_the_openvino_runtime_conv_by_conv():
    ov = pytest.importorskip("openvino", reason="openvino is pinned in requirements.lock")
    trunk = ir.read_ir_trunk(XML)
    backbone = MobileNetV2Backbone(expand_first=True).eval()
    ir.load_ir_trunk_weights(backbone, XML)
    assert len(trunk.convs) == sum(isinstance(m, nn.Conv2d) for m in backbone.modules()) == 52

    core = ov.Core()
    model = core.read_model(XML)
    by_name = {op.get_friendly_name(): op for op in model.get_ops()}
    ids = {lay.get("id"): lay.get("name") for lay in ET.parse(XML).getroot().find("layers")}
    model.add_outputs([by_name[ids[c.out_node]].output(0) for c in trunk.convs])
    compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    x = np.random.default_rng(0).random((1, 3, 256, 256), dtype=np.float32)
    refs = list(compiled(np.ascontiguousarray(x[:, ::-1] * 255.0)).values())[1:]   # [0] is the SSD output

    got: list[np.ndarray] = []
    hooks = [m.register_forward_hook(lambda _m, _i, o: got.append(o.numpy().copy()))
             for m in backbone.modules() if isinstance(m, ConvAct)]
    with torch.no_grad():
        feats = backbone(torch.from_numpy(x))
    for h in hooks:
        h.remove()
    assert len(got) == len(refs) == 52
    for k, (a, ref) in enumerate(zip(got, refs)):
        a_real, a_pad = a[:, :ref.shape[1]], a[:, ref.shape[1]:]      # the 24-channel stage is padded to 32
        err = float(np.abs(a_real - ref).max() / (np.abs(ref).max() + 1e-6))
        assert err < 1e-4, f"conv {k} ({trunk.convs[k].name}): relative error {err:.2e}"
        assert not a_pad.any() or k == 0, f"conv {k}: padded channels not zero"
    assert [tuple(f.shape[1:]) for f in feats] == [(32, 32, 32), (96, 16, 16), (320, 8, 8)]


def test_a_backbone_of_the_wrong_layout_is_refused_with_the_conv_named():
    with pytest.raises(InputFileError, match=r"conv 1 .*has shape \(32, 32, 1, 1\)"):
        ir.load_ir_trunk_weights(MobileNetV2Backbone(expand_first=False), XML)


def test_a_tampered_weight_file_is_refused_before_reading(tmp_path):
    xml = tmp_path / XML.name
    shutil.copy(XML, xml)
    data = bytearray(XML.with_suffix(".bin").read_bytes())
    data[100] ^= 0xFF
    xml.with_suffix(".bin").write_bytes(bytes(data))
    with pytest.raises(InputFileError, match=r"\.bin: sha256 .* does not match"):
        ir.read_ir_trunk(xml)
    xml.with_suffix(".bin").unlink()
    with pytest.raises(InputFileError, match=r"\.bin: pretrained IR file missing"):
        ir.read_ir_trunk(xml)


def test_the_recipe_names_a_file_of_its_backbones_kind():
    from camlab.train.detector import _check_pretrained, load_train_config

    cfg = load_train_config("detector_pvb")
    assert _check_pretrained(cfg) == XML
    wrong = load_train_config("detector_pvb", {"model": {"backbone": "mobilenetv2"}})
    with pytest.raises(ConfigError, match=r"must be a \.tflite file"):
        _check_pretrained(wrong)
