"""camlab.models.pretrained: the MediaPipe SSD-MobileNetV2 read from its TFLite and replayed in torch.

The torch executor and the CamDet backbone are held to the TFLite runtime itself (ai-edge-litert, reference
kernels without XNNPACK so every intermediate tensor can be read), conv layer by conv layer."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from camlab.errors import InputFileError
from camlab.models import pretrained as pt


@pytest.fixture(scope="module")
def tflite_path():
    p = pt.pretrained_path()
    if not p.is_file():
        pytest.fail(f"{p} missing: `make venv` fetches it (scripts/fetch_pretrained.sh)")
    return pt.check_pretrained_file(p)


@pytest.fixture(scope="module")
def litert(tflite_path):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interp = Interpreter(model_path=str(tflite_path), experimental_preserve_all_tensors=True,
                         experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interp.allocate_tensors()
    x = np.random.default_rng(0).uniform(-1, 1, (1, 300, 300, 3)).astype(np.float32)
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    interp.invoke()
    return interp, x


def _ref(interp, idx: int) -> torch.Tensor:
    a = interp.get_tensor(idx)
    return torch.from_numpy(a.transpose(0, 3, 1, 2).copy() if a.ndim == 4 else a.copy())


def test_executor_matches_tflite_runtime_layer_by_layer(tflite_path, litert):
    interp, x = litert
    tm = pt.read_tflite(tflite_path)
    graph = pt.TfliteGraph(tm).eval()
    with torch.no_grad():
        vals = graph(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()), keep=True)
    convs = tm.convs()
    assert len(convs) == 72
    worst = 0.0
    for op in convs:
        ref, got = _ref(interp, op.outputs[0]), vals[op.outputs[0]]
        err = float((got - ref).abs().max() / (ref.abs().max() + 1e-6))
        worst = max(worst, err)
        assert err < 1e-3, f"{tm.names[op.outputs[0]]}: relative error {err:.2e}"
    for i in tm.outputs:                      # the SSD's raw box encodings and class logits
        np.testing.assert_allclose(vals[i].numpy(), interp.get_tensor(i), rtol=1e-3, atol=1e-3)
    assert worst < 1e-3


def test_backbone_weights_reproduce_the_trunk(tflite_path, litert):
    """CamDet's MobileNetV2Backbone with the loaded weights gives the TFLite trunk's stride 8/16/32 tensors when it
    is run with TF 'SAME' padding on the [-1, 1] input (the widened 24->32 channels carry zeros)."""
    interp, x = litert
    tm = pt.read_tflite(tflite_path)
    bb = pt.MobileNetV2Backbone().eval()
    pt.load_mobilenetv2_weights(bb, tflite_path, fold_input_range=False)

    def same_pad(mod, args):   # stride-2 3x3: TF pads (0, 1) here, torch would pad (1, 1)
        (a,) = args
        ph = pt.tf_same_pad(a.shape[2], 3, 2)
        pw = pt.tf_same_pad(a.shape[3], 3, 2)
        return (torch.nn.functional.pad(a, (pw[0], pw[1], ph[0], ph[1])),)

    for m in bb.modules():
        if isinstance(m, torch.nn.Conv2d) and m.stride[0] == 2:
            m.padding = (0, 0)
            m.register_forward_pre_hook(same_pad)
    with torch.no_grad():
        feats = bb(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()))
    trunk = tm.trunk_convs()
    by_name = {tm.names[op.outputs[0]]: op for op in tm.ops}
    # tap tensors: outputs of the Add/project ops of expanded_conv_5, _12 and _16 in the TFLite graph
    taps = []
    for block in ("expanded_conv_5/add", "expanded_conv_12/add", "expanded_conv_16/project"):
        idx = [op.outputs[0] for name, op in by_name.items() if f"MobilenetV2/{block}" in name]
        assert idx, block
        taps.append(idx[-1])
    for got, idx in zip(feats, taps):
        ref = _ref(interp, idx)
        assert got.shape[1] >= ref.shape[1] and got.shape[2:] == ref.shape[2:]
        np.testing.assert_allclose(got[:, :ref.shape[1]].numpy(), ref.numpy(), rtol=1e-3, atol=2e-3)
    assert len(trunk) >= 51


def test_folded_input_range_changes_only_the_scaling(tflite_path):
    """The deployable backbone takes [0, 1]: the stem folds x_tf = 2x - 1, equal away from the zero-padded border."""
    a, b = pt.MobileNetV2Backbone().eval(), pt.MobileNetV2Backbone().eval()
    pt.load_mobilenetv2_weights(a, tflite_path, fold_input_range=True)
    pt.load_mobilenetv2_weights(b, tflite_path, fold_input_range=False)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        ya, yb = a.stem(x), b.stem(2 * x - 1)
    torch.testing.assert_close(ya[:, :, 1:-1, 1:-1], yb[:, :, 1:-1, 1:-1], rtol=1e-4, atol=1e-4)


def test_wrong_hash_or_missing_file_is_one_line(tmp_path, tflite_path):
    bad = tmp_path / "ssd.tflite"
    shutil.copy(tflite_path, bad)
    with bad.open("r+b") as fh:
        fh.seek(5000)
        fh.write(b"\x00\x01\x02\x03")
    with pytest.raises(InputFileError, match="sha256") as ei:
        pt.check_pretrained_file(bad)
    assert "\n" not in str(ei.value)
    with pytest.raises(InputFileError, match="make venv"):
        pt.check_pretrained_file(tmp_path / "missing.tflite")


def test_training_refuses_a_bad_pretrained_file_before_any_work(tmp_path):
    from camlab.train.detector import _check_pretrained, load_train_config

    cfg = load_train_config("detector_full", overrides={"pretrained": str(tmp_path / "nope.tflite")})
    with pytest.raises(InputFileError, match="nope.tflite"):
        _check_pretrained(cfg)


def test_teacher_finds_people_on_real_frames(tflite_path):
    """The SSD teacher, decoded with the TF OD API anchors and box coder, finds the labelled people of real CCTV
    frames (demo slice): a wrong anchor order or coder scale drops this to ~0."""
    from camlab.contract.detection import box_iou
    from camlab.data.render import read_rgb
    from camlab.data.yolo import load_yolo_folder
    from camlab.settings import project_root

    assert pt.ssd_anchors().shape == (1917, 4)
    samples, _ = load_yolo_folder(project_root() / "datasets/demo/images/persons_cctv/train")
    samples = [s for s in samples if s.has(0)][:12]
    teacher = pt.SsdTeacher(tflite_path)
    found = total = 0
    for s in samples:
        rgb = read_rgb(s.image)
        h, w = rgb.shape[:2]
        boxes, scores, classes = teacher.detect(rgb)
        people = boxes[(classes == 0) & (scores >= 0.3)]
        gt = s.boxes[s.labels == 0] * [w, h, w, h]
        total += len(gt)
        if len(people):
            found += int(np.sum(box_iou(gt, people).max(axis=1) >= 0.5))
    assert total >= 12 and found / total >= 0.5, (found, total)
