"""The class target of a positive cell: the IoU of its predicted box (quality focal loss), or IoU**power with
``quality_target_power`` < 1 (a presence-leaning score: a well-recognised object with a loose box still scores
high), 0 giving the plain FCOS/focal 1.0 target."""
from __future__ import annotations

import pytest
import torch

from camlab.train.detector_loss import assign, box_iou_aligned, decode_boxes, detection_loss, grid_points

SHAPES = [(16, 24), (8, 12), (4, 6)]
STRIDES = (8, 16, 32)
BOX = torch.tensor([[40.0, 40.0, 120.0, 100.0]])


def _positive_cells_and_ious():
    pts, st, _ = grid_points(SHAPES, STRIDES)
    pos = torch.nonzero(assign(pts, st, BOX) >= 0).squeeze(1)
    pred = decode_boxes(torch.zeros(len(pos), 4), pts[pos], st[pos])   # box outputs 0: a stride-sized box
    iou, _ = box_iou_aligned(pred, BOX.expand(len(pos), 4))
    return pos, iou.clamp(min=0.01)


def _outputs_scoring(pos: torch.Tensor, score: torch.Tensor):
    """Raw head outputs (box 0) whose person probability at the positive cells is ``score`` (elsewhere ~0)."""
    flat = torch.full((sum(h * w for h, w in SHAPES),), -9.0)
    flat[pos] = torch.logit(score.clamp(max=1 - 1e-6))
    outs, i = [], 0
    for h, w in SHAPES:
        outs.append(torch.zeros(1, 4, h, w, requires_grad=True))
        c = torch.full((1, 3, h, w), -9.0)
        c[0, 0] = flat[i:i + h * w].reshape(h, w)
        outs.append(c.requires_grad_(True))
        i += h * w
    return tuple(outs)


def _person_grad_at(pos, outs, power):
    tgt = {"boxes": BOX, "labels": torch.tensor([0])}
    loss, _ = detection_loss(outs, [tgt], STRIDES, quality_power=power)
    loss.backward()
    return torch.cat([outs[i].grad[0, 0].flatten() for i in (1, 3, 5)])[pos]


@pytest.mark.parametrize("power", [1.0, 0.5, 0.0])
def test_the_class_loss_is_at_its_minimum_where_the_score_equals_iou_to_the_power(power):
    pos, iou = _positive_cells_and_ious()
    assert 0.05 < float(iou.min()) and float(iou.max()) < 0.9     # distinct targets for distinct powers
    g = _person_grad_at(pos, _outputs_scoring(pos, iou ** power), power)
    assert float(g.abs().max()) < 1e-6
    other = 1.0 if power != 1.0 else 0.5
    g_other = _person_grad_at(pos, _outputs_scoring(pos, iou ** other), power)
    assert float(g_other.abs().max()) > 1e-4


def test_power_outside_zero_to_one_is_refused():
    pos, iou = _positive_cells_and_ious()
    with pytest.raises(ValueError, match="quality_power"):
        _person_grad_at(pos, _outputs_scoring(pos, iou), 1.5)


def test_every_builtin_detector_recipe_loads_and_each_trial_changes_one_knob():
    import dataclasses

    from camlab.errors import ConfigError
    from camlab.train.detector import CONFIG_DIR, load_train_config

    NEG = {"person": 0.15, "pet": 0.1, "vehicle": 0.1}
    names = sorted(p.stem for p in CONFIG_DIR.glob("detector_*.yaml"))
    cfgs = {n: load_train_config(n) for n in names}
    assert cfgs["detector_full"].quality_target_power == 1.0        # the release recipe is plain QFL
    assert not cfgs["detector_full"].calibrate.presence_gate        # the gate trials were not shipped
    trials = {("detector_presence", "detector_full"): ("quality_target_power", 0.5),
              ("detector_loso_presence", "detector_loso"): ("quality_target_power", 0.5),
              ("detector_frozen13", "detector_full"): ("freeze_blocks", 13),
              ("detector_loso_frozen13", "detector_loso"): ("freeze_blocks", 13),
              ("detector_person04", "detector_full"): ("pseudo_label_class_scores", {"person": 0.4}),
              ("detector_loso_person04", "detector_loso"): ("pseudo_label_class_scores", {"person": 0.4}),
              ("detector_negatives", "detector_full"): ("pseudo_negative_scores", NEG),
              ("detector_loso_negatives", "detector_loso"): ("pseudo_negative_scores", NEG),
              ("detector_calneg", "detector_full"): ("calibrate", {**dataclasses.asdict(cfgs["detector_full"].calibrate),
                                                                   "teacher_negatives": NEG}),
              ("detector_loso_calneg", "detector_loso"): ("calibrate", {
                  **dataclasses.asdict(cfgs["detector_loso"].calibrate), "teacher_negatives": NEG}),
              ("detector_gate", "detector_full"): ("calibrate", {
                  **dataclasses.asdict(cfgs["detector_full"].calibrate), "presence_gate": ("person", "pet", "vehicle")}),
              ("detector_loso_gate", "detector_loso"): ("calibrate", {
                  **dataclasses.asdict(cfgs["detector_loso"].calibrate), "presence_gate": ("person", "pet", "vehicle")}),
              ("detector_gate_pv", "detector_full"): ("calibrate", {
                  **dataclasses.asdict(cfgs["detector_full"].calibrate), "presence_gate": ("pet", "vehicle")}),
              ("detector_loso_gate_pv", "detector_loso"): ("calibrate", {
                  **dataclasses.asdict(cfgs["detector_loso"].calibrate), "presence_gate": ("pet", "vehicle")}),
              ("detector_ema", "detector_full"): ("optim", {**dataclasses.asdict(cfgs["detector_full"].optim),
                                                            "ema_epochs": 1.0}),
              ("detector_loso_ema", "detector_loso"): ("optim", {**dataclasses.asdict(cfgs["detector_loso"].optim),
                                                                 "ema_epochs": 1.0})}
    for (trial, base), (knob, value) in trials.items():
        a, b = dataclasses.asdict(cfgs[trial]), dataclasses.asdict(cfgs[base])
        changed = {k for k in a if a[k] != b[k]}
        assert changed <= {"name", "out_dir", knob}, (trial, changed)
        assert a[knob] == value
    # the pretrained start is one knob spread over two keys: the trunk's layout and its file
    for trial, base in (("detector_pvb", "detector_full"), ("detector_loso_pvb", "detector_loso")):
        a, b = dataclasses.asdict(cfgs[trial]), dataclasses.asdict(cfgs[base])
        assert {k for k in a if a[k] != b[k]} <= {"name", "out_dir", "pretrained", "model"}, trial
        assert {k for k in a["model"] if a["model"][k] != b["model"][k]} == {"backbone"}, trial
        assert (a["model"]["backbone"], a["pretrained"]) == (
            "mobilenetv2_pvb", "models/pretrained/person-vehicle-bike-detection-2000.xml"), trial
    with pytest.raises(ConfigError, match="quality_target_power"):
        load_train_config("detector_full", overrides={"quality_target_power": -0.1})
    with pytest.raises(ConfigError, match="pseudo_label_class_scores.*unicorn"):
        load_train_config("detector_full", overrides={"pseudo_label_class_scores": {"unicorn": 0.4}})
    with pytest.raises(ConfigError, match="pseudo_negative_scores.*person"):
        load_train_config("detector_full", overrides={"pseudo_negative_scores": {"person": 1.5}})
    with pytest.raises(ConfigError, match="calibrate.teacher_negatives.*unicorn"):
        load_train_config("detector_full", overrides={"calibrate": {"teacher_negatives": {"unicorn": 0.1}}})


def test_recalibration_is_refused_unless_only_the_calibration_differs(tmp_path):
    """A calibration trial may reuse a finished run's weights (training is bit-reproducible) only when the two
    recipes train the same weights; anything else must be trained."""
    from camlab.errors import ConfigError, InputFileError
    from camlab.train.detector import load_train_config, only_calibration_differs, recalibrate

    full, calneg = load_train_config("detector_full"), load_train_config("detector_calneg")
    assert only_calibration_differs(calneg, full)
    assert not only_calibration_differs(load_train_config("detector_negatives"), full)
    with pytest.raises(ConfigError, match="differ in more than calibrate"):
        recalibrate(tmp_path / "a.pt", tmp_path / "b.pt", load_train_config("detector_negatives"), full)
    assert not (tmp_path / "b.pt").exists()
    with pytest.raises(InputFileError, match="a.pt not found; train detector_full first"):
        recalibrate(tmp_path / "a.pt", tmp_path / "b.pt", calneg, full)
