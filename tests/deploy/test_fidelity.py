"""INT8 fidelity as FP32/INT8 agreement: box matching, the agreement score, and a real bundle on real images."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from deploy_nets import images, tiny_detector, tiny_io

from camlab.deploy.fidelity import agreement, detector_fidelity, match_count

ROOT = Path(__file__).resolve().parents[2]
DEMO_FOLDER = ROOT / "datasets" / "demo" / "images" / "vehicles_openimages" / "valid"


def test_boxes_match_one_to_one_by_class_and_iou():
    a = np.array([[0, 0, 10, 10], [20, 20, 30, 30], [50, 50, 60, 60]], np.float32)
    b = np.array([[1, 1, 10, 10], [20, 20, 30, 30], [0, 0, 10, 10]], np.float32)
    # same boxes, same classes: a[0]~b[0] and b[2], but each box matches once; a[1]=b[1]; a[2] has no partner
    assert match_count(a, np.array([0, 1, 2]), b, np.array([0, 1, 0])) == 2
    # a class mismatch is no match even at IoU 1
    assert match_count(a[1:2], np.array([1]), b[1:2], np.array([2])) == 0
    # IoU below 0.5 is no match
    assert match_count(a[:1], np.array([0]), np.array([[5, 5, 15, 15]], np.float32), np.array([0])) == 0
    assert match_count(a, np.array([0, 1, 2]), np.zeros((0, 4)), np.zeros(0)) == 0


def test_agreement_score():
    assert agreement(3, 3, 3) == 1.0
    assert agreement(0, 4, 0) == 0.0
    assert agreement(2, 4, 2) == pytest.approx(2 / 3)
    assert agreement(0, 0, 0) is None  # nothing detected on either side: no evidence either way


def test_detector_fidelity_on_a_real_bundle_and_real_images(tmp_path):
    from camlab.deploy.bundle import BundleRequest, build_bundle

    io = tiny_io()
    io["decode"]["box_encoding"] = "fcos_ltrb_exp"  # the camera's decode (camlab.contract.detection)
    req = BundleRequest(model=tiny_detector(), io=io, name="detector", task="detection",
                        calibration=images(16), holdout=images(4, seed=9), calibration_source="synthetic (test)",
                        out_root=tmp_path, evaluator=None, oracle=False, register=False, version="f1")
    bundle = build_bundle(req)
    res = detector_fidelity(bundle, [DEMO_FOLDER], max_images=6)
    assert res["images"] == 6
    assert set(res["output_cosine"]) == {"box_s4", "cls_s4", "box_s8", "cls_s8"}
    assert 0.9 < res["output_cosine_min"] <= 1.0
    assert res["detections_fp32"] > 0 and res["detections_int8"] > 0
    assert res["matched"] <= min(res["detections_fp32"], res["detections_int8"])
    assert res["detections"] == res["detections_fp32"] + res["detections_int8"]
    assert res["detection_agreement_strict"] == pytest.approx(2 * res["matched"] / res["detections"], abs=1e-4)
    # the score tolerance only adds matches
    assert res["detection_agreement_strict"] <= res["detection_agreement"] <= 1.0
    assert 0.0 <= res["presence_agreement"] <= 1.0
