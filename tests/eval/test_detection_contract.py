"""camlab.contract.detection: letterbox geometry, numpy resize vs OpenCV, decode of raw outputs, NMS."""
from __future__ import annotations

import numpy as np
import pytest

from camlab.contract import detection as cd
from camlab.models.detector import DetectorConfig, manifest_io


def encode_oracle(boxes_px: np.ndarray, labels: np.ndarray, io_: dict, logit: float = 6.0) -> dict:
    """Raw head outputs that decode to exactly ``boxes_px`` (input pixels): the FCOS encoding, inverted."""
    outs = {}
    for o in io_["outputs"]:
        fill = -10.0 if o["name"].startswith("cls") else 0.0
        outs[o["name"]] = np.full(o["shape"], fill, np.float32)
    for b, c in zip(boxes_px, labels):
        size = max(b[2] - b[0], b[3] - b[1])
        s = 8 if size < 128 else 16 if size < 256 else 32
        cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
        box, cls = outs[f"box_s{s}"], outs[f"cls_s{s}"]
        j = min(int(cx // s), box.shape[3] - 1)
        i = min(int(cy // s), box.shape[2] - 1)
        px, py = (j + 0.5) * s, (i + 0.5) * s
        box[0, :, i, j] = np.log(np.maximum([px - b[0], py - b[1], b[2] - px, b[3] - py], 1e-3) / s)
        cls[0, int(c), i, j] = logit
    return outs


def test_letterbox_geometry_round_trip():
    lb = cd.letterbox_geometry(640, 360, 320, 192)
    assert (lb.new_w, lb.new_h, lb.pad_x, lb.pad_y) == (320, 180, 0, 6)
    lb = cd.letterbox_geometry(512, 512, 320, 192)
    assert (lb.new_w, lb.new_h, lb.pad_x, lb.pad_y) == (192, 192, 64, 0)
    b = np.array([[10, 20, 300, 400]], np.float32)
    np.testing.assert_allclose(lb.to_source(lb.to_input(b)), b, atol=1e-3)
    with pytest.raises(ValueError):
        cd.letterbox_geometry(0, 10, 320, 192)


@pytest.mark.parametrize("src", [(37, 53), (360, 640), (512, 512), (100, 40)])
def test_numpy_resize_matches_opencv(src):
    import cv2

    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, src + (3,), dtype=np.uint8)
    for nw, nh in ((64, 48), (320, 180), (src[1] * 2, src[0] * 2)):
        ours = cd.resize_bilinear(img, nw, nh)
        ref = cv2.resize(img.astype(np.float32), (nw, nh), interpolation=cv2.INTER_LINEAR)
        assert np.abs(ours - ref).max() < 0.05


def test_decode_inverts_oracle_encoding_and_thresholds():
    io_ = manifest_io(DetectorConfig())
    boxes = np.array([[20, 30, 60, 150], [100, 40, 300, 180], [150, 60, 170, 80]], np.float32)
    labels = np.array([0, 2, 1])
    outs = encode_oracle(boxes, labels, io_)
    det = cd.postprocess(outs, io_["decode"])
    order = np.argsort(det.classes)
    np.testing.assert_allclose(det.boxes[order], boxes[[0, 2, 1]], atol=1e-3)
    assert det.classes[order].tolist() == [0, 1, 2]
    assert np.allclose(det.scores, 1 / (1 + np.exp(-6.0)), atol=1e-5)
    dec = dict(io_["decode"], score_thresholds={"person": 0.999, "pet": 0.3, "vehicle": 0.3})
    assert sorted(cd.postprocess(outs, dec).classes.tolist()) == [1, 2]
    with pytest.raises(ValueError, match="lacks class"):
        cd.score_thresholds(dict(dec, score_thresholds={"person": 0.5}))
    with pytest.raises(ValueError, match="box_encoding"):
        cd.decode_raw(outs, dict(dec, box_encoding="yolo"))
    with pytest.raises(ValueError, match="missing"):
        cd.decode_raw({}, dec)


def test_nms_per_class():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60], [0, 0, 10, 10]], np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.6], np.float32)
    assert cd.nms(boxes, scores, 0.5).tolist() == [0, 2]
    assert cd.batched_nms(boxes, scores, np.array([0, 0, 0, 1]), 0.5).tolist() == [0, 2, 3]
    iou = cd.box_iou(boxes[:1], boxes[1:2])[0, 0]
    assert iou == pytest.approx(81 / 119)


def test_preprocess_normalizes_per_manifest():
    io_ = manifest_io(DetectorConfig())
    rgb = np.full((360, 640, 3), 255, np.uint8)
    x, lb = cd.preprocess(rgb, io_["inputs"][0])
    assert x.shape == (1, 3, 192, 320) and x.dtype == np.float32
    assert x[0, :, 100, 100] == pytest.approx([1.0, 1.0, 1.0])
    assert x[0, 0, 0, 0] == pytest.approx(114 / 255)  # pad row


def test_nms_early_stop_keeps_the_same_first_boxes():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 300, (400, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(5, 60, (400, 2))], 1).astype(np.float32)
    scores = rng.random(400)
    full = cd.nms(boxes, scores, 0.5)
    assert len(full) > 100 and np.array_equal(cd.nms(boxes, scores, 0.5, max_keep=100), full[:100])
