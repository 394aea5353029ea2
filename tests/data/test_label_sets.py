"""Federated labels (LVIS-style): each source declares the classes it labels; an unlabelled class is unknown, never
background, in the loss, the calibration and the evaluation."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from camlab.data.label_sets import label_set, registry, source_name
from camlab.data.yolo import load_yolo_folder
from camlab.errors import ConfigError, InputFileError
from camlab.train.synthetic import make_yolo_folder


def test_registry_declares_every_shared_source():
    reg = registry()
    assert reg["coco128"] == (True, True, True)
    assert reg["persons_cctv"] == (True, False, False)
    assert reg["vehicles_openimages"] == reg["vehicles_trafficcam"] == (False, False, True)
    assert reg["oxford_pets"] == reg["oxford_pets_more"] == (False, True, False)
    from camlab.data.splits import DEFAULT_FOLDERS
    for rel in DEFAULT_FOLDERS:
        assert source_name(rel) in reg, rel


def test_folder_without_declaration_is_refused_naming_it(tmp_path):
    root = make_yolo_folder(tmp_path / "mystery_cam", 4)
    (root / "label_set.txt").unlink()
    with pytest.raises(InputFileError, match="mystery_cam.*no declared label set"):
        load_yolo_folder(root)
    (root / "label_set.txt").write_text("# people only\nPerson\n")
    samples, _ = load_yolo_folder(root)
    assert all(s.labelled == (True, False, False) for s in samples)
    (root / "label_set.txt").write_text("person\nunicorn\n")
    with pytest.raises(ConfigError, match="unicorn"):
        label_set(root)


def _vehicle_only_target():
    return {"boxes": torch.tensor([[40.0, 40.0, 120.0, 100.0]]), "labels": torch.tensor([2])}


def test_person_in_vehicle_only_image_contributes_no_negative_loss():
    from camlab.models.detector import CamDet, DetectorConfig
    from camlab.train.detector_loss import detection_loss

    torch.manual_seed(0)
    model = CamDet(DetectorConfig(input_width=192, input_height=128))
    x = torch.rand(1, 3, 128, 192)

    def person_grad(labelled):
        model.zero_grad()
        outs = [o.retain_grad() or o for o in model(x)]
        tgt = _vehicle_only_target()
        if labelled is not None:
            tgt["labelled"] = torch.tensor(labelled)
        loss, _ = detection_loss(tuple(outs), [tgt], (8, 16, 32))
        loss.backward()
        return [outs[i].grad[:, 0] for i in (1, 3, 5)], [outs[i].grad[:, 2] for i in (1, 3, 5)]

    person, vehicle = person_grad([False, False, True])       # a vehicle-only source: person unknown ...
    from camlab.train.detector_loss import assign, grid_points
    shapes = [(128 // s, 192 // s) for s in (8, 16, 32)]
    pts, st, _ = grid_points(shapes, (8, 16, 32))
    on_car = (assign(pts, st, _vehicle_only_target()["boxes"]) >= 0)
    flat = torch.cat([g.flatten() for g in person])
    assert float(flat[~on_car].abs().max()) == 0.0               # ... no negative loss anywhere off the car
    assert float(flat[on_car].abs().max()) > 0                    # ... but the labelled car is not a person
    assert any(float(g.abs().max()) > 0 for g in vehicle)     # the labelled class still learns
    person_all, _ = person_grad(None)                           # exhaustive source: person is background
    assert any(float(g.abs().max()) > 0 for g in person_all)


def test_federated_evaluation_ignores_unlabelled_classes(tmp_path):
    """A person predicted in a vehicle-only source is not a false positive there (federated) but is in the naive
    figure; the same prediction in an all-class source is a false positive either way."""
    sys.path.insert(0, str(Path(__file__).parents[1] / "eval"))
    from test_detection_eval import _oracle

    from camlab.eval.detection import evaluate, resolve_data
    from camlab.models.detector import DetectorConfig, manifest_io

    io_ = manifest_io(DetectorConfig())
    root = make_yolo_folder(tmp_path / "road" / "train", 12, negatives=4, seed=3, size=(256, 160))
    (root / "label_set.txt").write_text("vehicle\n")
    samples, _ = resolve_data([root])
    res = evaluate(_oracle(samples, io_, extra_person=True), [root], io_spec=io_, hog=False, by_source=True)
    assert res["classes"]["person"]["n_scored_images"] == sum(s.has(0) for s in samples)
    assert res["classes"]["person"]["fp_rate"] is None
    assert res["classes_naive"]["person"]["fp_rate"] > 0
    assert res["classes"]["vehicle"] == {**res["classes_naive"]["vehicle"]}
    assert set(res["by_source"]) == {"road"}
    (root / "label_set.txt").write_text("person\npet\nvehicle\n")
    res2 = evaluate(_oracle(samples, io_, extra_person=True), [root], io_spec=io_, hog=False)
    assert res2["classes"]["person"]["fp_rate"] == res2["classes_naive"]["person"]["fp_rate"] > 0


def test_thresholds_count_negatives_only_where_the_class_is_labelled():
    from camlab.eval.detection import pick_thresholds

    present = np.zeros((100, 3), bool)
    present[:10, 0] = True
    best = np.zeros((100, 3), np.float32)
    best[:10, 0] = 0.8
    best[10:30, 0] = 0.9          # 20 high person scores on images of a source that does not label people
    known = np.ones((100, 3), bool)
    known[10:30, 0] = False
    thr_fed, rep = pick_thresholds(present, best, 0.02, fp_limited=["person"], known=known)
    thr_naive, _ = pick_thresholds(present, best, 0.02, fp_limited=["person"])
    assert rep["person"]["n_negatives"] == 70 and thr_fed[0] <= 0.8 < thr_naive[0]


def test_pseudo_labels_fill_only_unlabelled_classes(tmp_path, monkeypatch):
    from camlab.data.pseudo import add_pseudo_labels

    monkeypatch.setenv("CAMLAB_ROOT", str(tmp_path))      # the cache goes under tmp_path/.cache
    root = make_yolo_folder(tmp_path / "road" / "train", 3, negatives=0, seed=5)
    (root / "label_set.txt").write_text("vehicle\n")
    samples, _ = load_yolo_folder(root)

    class Teacher:   # a stand-in whose boxes are known: a person, a low-score person, a vehicle
        sha256 = "test-teacher"
        calls = 0

        def detect(self, rgb):
            Teacher.calls += 1
            h, w = rgb.shape[:2]
            boxes = np.array([[0.1, 0.1, 0.3, 0.6], [0.6, 0.1, 0.7, 0.3], [0.4, 0.4, 0.9, 0.9]]) * [w, h, w, h]
            return boxes.astype(np.float32), np.array([0.9, 0.4, 0.95], np.float32), np.array([0, 0, 2])

    from camlab.contract.detection import box_iou

    person = np.array([[0.1, 0.1, 0.3, 0.6]], np.float32)
    clear = [len(s.boxes) == 0 or box_iou(person, s.boxes).max() < 0.5 for s in samples]
    assert any(clear)
    out, rep = add_pseudo_labels(samples, Teacher(), 0.5)
    assert rep["boxes_added"] == {"person": sum(clear), "pet": 0, "vehicle": 0}
    for before, after, ok in zip(samples, out, clear):
        assert after.labelled == before.labelled == (False, False, True)   # person stays unknown for negatives
        assert np.sum(after.labels == 0) == np.sum(before.labels == 0) + int(ok)
        assert np.array_equal(after.labels[after.labels == 2], before.labels[before.labels == 2])
    add_pseudo_labels(samples, Teacher(), 0.5)
    assert Teacher.calls == len(samples)                     # second pass read the cache


def test_pseudo_label_score_can_differ_per_class(tmp_path, monkeypatch):
    """The teacher's person boxes are precise at a lower score than its vehicle boxes (coco128, 2026-12-07), so a
    recipe may set the score per class: here a 0.4 person passes a person threshold of 0.35 and not the default
    0.5; an unknown class name or a score outside (0, 1] is refused."""
    from camlab.data.pseudo import add_pseudo_labels, class_score_thresholds
    from camlab.errors import ConfigError as CE

    monkeypatch.setenv("CAMLAB_ROOT", str(tmp_path))
    root = make_yolo_folder(tmp_path / "road" / "train", 3, negatives=0, seed=5)
    (root / "label_set.txt").write_text("vehicle\n")
    samples, _ = load_yolo_folder(root)

    class Teacher:   # a person at 0.4 in a corner no labelled vehicle covers
        sha256 = "test-teacher-per-class"

        def detect(self, rgb):
            h, w = rgb.shape[:2]
            return (np.array([[0.0, 0.0, 0.05, 0.05]]) * [w, h, w, h]).astype(np.float32), \
                np.array([0.4], np.float32), np.array([0])

    _, plain = add_pseudo_labels(samples, Teacher(), 0.5)
    _, per_class = add_pseudo_labels(samples, Teacher(), 0.5, class_scores={"person": 0.35})
    assert plain["boxes_added"]["person"] == 0
    assert per_class["boxes_added"]["person"] == len(samples)
    assert per_class["score_threshold"] == {"person": 0.35, "pet": 0.5, "vehicle": 0.5}
    assert class_score_thresholds(0.5, {}).tolist() == [0.5, 0.5, 0.5]
    for bad, msg in [({"unicorn": 0.4}, "unicorn"), ({"person": 0.0}, "person"), ({"pet": 1.5}, "pet")]:
        with pytest.raises(CE, match=msg):
            class_score_thresholds(0.5, bad)


def test_teacher_verified_negatives_make_an_unlabelled_class_known_only_where_the_teacher_sees_none(tmp_path,
                                                                                                     monkeypatch):
    """A vehicle-only source: where the teacher's best person score is below the class's bound, the image becomes a
    known person negative; where it scores a person above it, person stays unknown; the labelled class and a
    not-exhaustive class are never touched; a class without a bound stays unknown."""
    import dataclasses

    from camlab.data.pseudo import add_pseudo_negatives

    monkeypatch.setenv("CAMLAB_ROOT", str(tmp_path))
    root = make_yolo_folder(tmp_path / "road" / "train", 4, negatives=0, seed=5)
    (root / "label_set.txt").write_text("vehicle\n")
    samples = [dataclasses.replace(s, labels=np.full_like(s.labels, 2)) for s in load_yolo_folder(root)[0]]
    samples[3] = dataclasses.replace(samples[3], labelled=(True, False, True), incomplete=(True, False, False))
    person_score = {samples[0].image.name: 0.12, samples[1].image.name: 0.6, samples[2].image.name: 0.0,
                    samples[3].image.name: 0.0}

    class Teacher:   # one person box at the score the test gives each picture (none when 0)
        sha256 = "test-teacher-negatives"

        def detect(self, rgb):
            h, w = rgb.shape[:2]
            sc = person_score[Teacher.current]
            if sc == 0:
                return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64)
            return (np.array([[0.1, 0.1, 0.3, 0.6]]) * [w, h, w, h]).astype(np.float32), \
                np.array([sc], np.float32), np.array([0])

    out = []
    for s in samples:
        Teacher.current = s.image.name
        got, rep = add_pseudo_negatives([s], Teacher(), {"person": 0.15})
        out += got
    assert [o.labelled for o in out] == [(True, False, True), (False, False, True), (True, False, True),
                                         (True, False, True)]
    assert out[3].incomplete == (True, False, False)          # a not-exhaustive class is left as it was
    assert all(np.array_equal(a.boxes, b.boxes) for a, b in zip(samples, out))
    with pytest.raises(ConfigError, match="unicorn"):
        add_pseudo_negatives(samples, Teacher(), {"unicorn": 0.1})


def test_pseudo_labels_fill_unboxed_instances_of_a_not_exhaustive_class(tmp_path, monkeypatch):
    """A teacher vehicle away from every labelled vehicle in a not-exhaustive vehicle source becomes a positive; one
    overlapping a labelled vehicle (IoU >= 0.3) does not; the class stays not exhaustive for negatives."""
    import dataclasses

    from camlab.contract.detection import box_iou
    from camlab.data.pseudo import add_pseudo_labels

    monkeypatch.setenv("CAMLAB_ROOT", str(tmp_path))
    root = make_yolo_folder(tmp_path / "road" / "train", 3, negatives=0, seed=5)
    (root / "label_set.txt").write_text("vehicle\n")
    loaded, _ = load_yolo_folder(root)
    samples = [dataclasses.replace(s, incomplete=(False, False, True)) for s in loaded]
    unboxed = np.array([[0.02, 0.02, 0.12, 0.1]], np.float32)

    class Teacher:   # one vehicle on top of each sample's first labelled box, one vehicle in a corner
        sha256 = "test-teacher-incomplete"

        def detect(self, rgb):
            h, w = rgb.shape[:2]
            s = next(x for x in samples if x.image.name == Teacher.current)
            boxes = np.concatenate([s.boxes[:1] * 1.02, unboxed]) * [w, h, w, h]
            return boxes.astype(np.float32), np.array([0.9, 0.8], np.float32)[-len(boxes):], np.array([2, 2])[-len(boxes):]

    out, off = [], []
    for s in samples:
        Teacher.current = s.image.name
        out += add_pseudo_labels([s], Teacher(), 0.5, fill_not_exhaustive=True)[0]
        off += add_pseudo_labels([s], Teacher(), 0.5)[0]
    assert [len(a.boxes) for a in off] == [len(b.boxes) for b in samples]    # off by default (the release recipe)
    for before, after in zip(samples, out):
        clear = len(before.boxes) == 0 or box_iou(unboxed, before.boxes).max() < 0.3
        assert len(after.boxes) == len(before.boxes) + int(clear)      # the overlapping copy is never added
        assert after.incomplete == (False, False, True) and after.labelled == before.labelled
    assert sum(len(a.boxes) - len(b.boxes) for b, a in zip(samples, out)) >= 1


def test_registry_line_can_mark_a_labelled_class_not_exhaustive(tmp_path, monkeypatch):
    """LVIS ``not_exhaustive``: persons_cctv boxes people but leaves passers-by unboxed (issue 19 audit)."""
    from camlab.data import label_sets

    assert label_sets.incomplete_set("persons_cctv/train") == (True, False, False)
    assert label_sets.incomplete_set("coco128/train2017") == (False, False, False)
    reg = tmp_path / "datasets" / "label_sets.yaml"
    reg.parent.mkdir()
    monkeypatch.setattr(label_sets.settings, "project_root", lambda: tmp_path)
    for bad, msg in [("cam: {labels: [person], not_exhaustive: [pet]}", "pet.*not in labels"),
                     ("cam: {labels: [person], partial: [person]}", "expected"),
                     ("cam: {not_exhaustive: [person]}", "expected"),
                     ("cam: {labels: [person], not_exhaustive: [unicorn]}", "unicorn")]:
        reg.write_text(bad + "\n")
        label_sets._registry.cache_clear()
        with pytest.raises(ConfigError, match=msg):
            label_sets.label_set("cam")
    reg.write_text("cam: {labels: [person, vehicle], not_exhaustive: [person]}\n")
    label_sets._registry.cache_clear()
    assert label_sets.label_set("cam/train") == (True, False, True)
    assert label_sets.incomplete_set("cam/train") == (True, False, False)
    label_sets._registry.cache_clear()


def test_samples_of_a_not_exhaustive_source_are_no_negatives():
    from camlab.data.yolo import Sample

    s = Sample(image=Path("x.jpg"), boxes=np.zeros((0, 4), np.float32), labels=np.zeros(0, np.int64), source="x",
               dataset="persons_cctv/train", labelled=(True, False, False), incomplete=(True, False, False))
    assert not s.negative_for(0) and not s.exhaustive(0)
    assert Sample(**{**s.__dict__, "incomplete": (False,) * 3}).negative_for(0)


def _cls_outputs(person_logit: float, shapes=((16, 24), (8, 12), (4, 6))):
    """Raw head outputs with every cell's person logit set (box outputs 0)."""
    outs = []
    for h, w in shapes:
        outs.append(torch.zeros(1, 4, h, w, requires_grad=True))
        c = torch.full((1, 3, h, w), -6.0)
        c[:, 0] = person_logit
        outs.append(c.requires_grad_(True))
    return tuple(outs)


@pytest.mark.parametrize("person_logit, ignored", [(2.0, True), (-2.0, False)])
def test_confident_person_off_the_boxes_of_a_not_exhaustive_source_is_not_taught_as_background(person_logit, ignored):
    """Where a source does not box every person, a cell the model already scores as a person (>= the ignore score)
    may be an unboxed passer-by: no background loss there (Niitani et al., CVPR 2019, pseudo-label-guided
    sampling). A low-scoring cell stays a negative, and an exhaustive source teaches every cell."""
    from camlab.train.detector_loss import assign, detection_loss, grid_points

    box = torch.tensor([[40.0, 40.0, 120.0, 100.0]])
    shapes = [(16, 24), (8, 12), (4, 6)]
    pts, st, _ = grid_points(shapes, (8, 16, 32))
    off_box = assign(pts, st, box) < 0

    def person_grad(incomplete):
        outs = _cls_outputs(person_logit)
        tgt = {"boxes": box, "labels": torch.tensor([0]), "labelled": torch.tensor([True, False, False])}
        if incomplete is not None:
            tgt["incomplete"] = torch.tensor(incomplete)
        loss, _ = detection_loss(outs, [tgt], (8, 16, 32), ignore_score=0.4)
        loss.backward()
        return torch.cat([outs[i].grad[0, 0].flatten() for i in (1, 3, 5)])

    g_incomplete = person_grad([True, False, False])
    g_exhaustive = person_grad(None)
    assert float(g_exhaustive[off_box].abs().min()) > 0               # exhaustive: background everywhere
    if ignored:
        assert float(g_incomplete[off_box].abs().max()) == 0.0
    else:
        assert torch.allclose(g_incomplete, g_exhaustive)
    assert float(g_incomplete[~off_box].abs().min()) > 0               # the boxed person still learns


def test_registry_line_can_restore_an_exporters_stretch(tmp_path, monkeypatch):
    """persons_cctv's exporter stretched 16:9 video frames to 640x640 (../shared/data/SOURCES.md): its registry line
    declares `display_aspect: "16:9"`, the loader carries it on every sample, and every reader (training,
    calibration, evaluation, teacher) sees the frame at that aspect, width kept, boxes unchanged (they are
    normalized); a malformed aspect is refused naming the source and the field."""
    import dataclasses

    from camlab.data import label_sets
    from camlab.data.render import sample_rgb

    assert label_sets.display_aspect("persons_cctv/train") == pytest.approx(16 / 9)
    assert label_sets.display_aspect("coco128/train2017") is None
    tuning = label_sets.settings.project_root() / "camlab" / "isp" / "tuning"
    reg = tmp_path / "datasets" / "label_sets.yaml"
    reg.parent.mkdir()
    monkeypatch.setattr(label_sets.settings, "project_root", lambda: tmp_path)
    for bad in ('"16x9"', '"0:9"', "1.7", '"16:9:1"', '"-4:3"'):
        reg.write_text(f'cam: {{labels: [person], display_aspect: {bad}}}\n')
        label_sets._registry.cache_clear()
        with pytest.raises(ConfigError, match=r"cam.*display_aspect.*W:H"):
            label_sets.display_aspect("cam/train")
    reg.write_text('cam: {labels: [person], display_aspect: "16:9"}\n')
    label_sets._registry.cache_clear()
    try:
        root = make_yolo_folder(tmp_path / "cam" / "train", 3, negatives=0, seed=7, size=(160, 160))
        (root / "label_set.txt").unlink()
        samples, _ = load_yolo_folder(root)
        assert label_sets.label_set("cam/train") == (True, False, False)
        for s in samples:
            assert s.display_aspect == pytest.approx(16 / 9)
            rgb = sample_rgb(s)
            assert rgb.shape == (90, 160, 3)           # 160x160 stored -> 160x90 shown, never upsampled
            tall = dataclasses.replace(s, display_aspect=9 / 16)
            assert sample_rgb(tall).shape == (160, 90, 3)
            assert sample_rgb(dataclasses.replace(s, display_aspect=None)).shape == (160, 160, 3)

        # the readers go through sample_rgb: the training set, a camera-domain rendering, the teacher
        from camlab.data.pseudo import add_pseudo_labels
        from camlab.train.detector import DetectionDataset, load_train_config

        ds = DetectionDataset(samples, load_train_config({"render": {
            "p_original": 0.0, "variants": 1, "day_tuning": str(tuning / "sc3336_day.yaml"),
            "ir_tuning": str(tuning / "sc3336_ir.yaml")}}),
                              train=False, seed=0)
        assert ds._image(0, np.random.default_rng(0)).shape == (90, 160, 3)
        ds.train = True     # the rendered variant (sensor + ISP at the stored size) is restored as well
        assert ds._image(0, np.random.default_rng(0)).shape == (90, 160, 3)

        class Teacher:
            sha256 = "test-teacher-aspect"
            shapes: list = []

            def detect(self, rgb):
                Teacher.shapes.append(rgb.shape)
                return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64)

        add_pseudo_labels(samples, Teacher(), 0.5)
        assert Teacher.shapes == [(90, 160, 3)] * len(samples)
    finally:
        label_sets._registry.cache_clear()
