"""camlab.eval.detection: COCO AP through pycocotools and event metrics, checked against oracle predictors."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from camlab.contract import detection as cd
from camlab.eval.detection import METRIC_KEYS, evaluate, resolve_data
from camlab.models.detector import DetectorConfig, manifest_io
from camlab.train.synthetic import make_yolo_folder

sys.path.insert(0, str(Path(__file__).parent))
from test_detection_contract import encode_oracle  # noqa: E402


def _oracle(samples, io_, drop_class=None, extra_person=False, strips_fire=False):
    """predict fn that knows the ground truth of each preprocessed input (looked up by its bytes); any other input
    (an empty-scene strip) gets no detection, or a person (``strips_fire``)."""
    from camlab.data.render import read_rgb

    table = {}
    for s in samples:
        rgb = read_rgb(s.image)
        x, lb = cd.preprocess(rgb, io_["inputs"][0])
        h, w = rgb.shape[:2]
        keep = s.labels != drop_class if drop_class is not None else np.ones(len(s.labels), bool)
        boxes = lb.to_input(s.boxes[keep] * [w, h, w, h])
        labels = s.labels[keep]
        if extra_person and len(s.labels) == 0:
            boxes, labels = np.array([[10, 10, 40, 120]], np.float32), np.array([0])
        table[x.tobytes()] = encode_oracle(boxes, labels, io_)
    other = encode_oracle(*((np.array([[10, 10, 40, 120]], np.float32), np.array([0])) if strips_fire
                            else (np.zeros((0, 4), np.float32), np.zeros(0, np.int64))), io_)
    return lambda x: table.get(x.tobytes(), other)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_yolo_folder(tmp_path_factory.mktemp("ev") / "y", 16, negatives=4, seed=11, size=(256, 160))


def test_oracle_scores_perfect(folder):
    io_ = manifest_io(DetectorConfig())
    samples, _ = resolve_data([folder])
    res = evaluate(_oracle(samples, io_), [folder], io_spec=io_, hog=False, details=True)
    assert set(res["classes"]) == {"person", "pet", "vehicle"}
    for name, m in res["classes"].items():
        assert tuple(m) == METRIC_KEYS
        assert m["ap50"] == pytest.approx(1.0) and m["ap50_95"] > 0.95, name
        assert m["presence_recall"] == 1.0 and m["presence_precision"] == 1.0 and m["fp_rate"] == 0.0
    assert res["n_images"] == 16 and res["counts"]["negatives"] >= 4
    assert res["classes"]["person"]["n_boxes"] == res["counts"]["person"]["boxes"]
    conf = np.array(res["details"]["confusion"]["matrix"])
    assert conf[:3, 3].sum() == 0 and conf[3, :3].sum() == 0   # no misses, no false positives
    assert np.trace(conf) == sum(res["classes"][c]["n_boxes"] for c in ("person", "pet", "vehicle"))


def test_missed_class_and_false_alarms_are_counted(folder):
    io_ = manifest_io(DetectorConfig())
    samples, _ = resolve_data([folder])
    res = evaluate(_oracle(samples, io_, drop_class=2, extra_person=True), [folder], io_spec=io_, hog=False)
    veh = res["classes"]["vehicle"]
    assert veh["ap50"] == 0.0 and veh["presence_recall"] == 0.0 and veh["presence_precision"] is None
    n_neg_person = res["n_images"] - res["classes"]["person"]["n_images"]
    n_empty = sum(1 for s in samples if len(s.labels) == 0)
    assert res["classes"]["person"]["fp_rate"] == pytest.approx(n_empty / n_neg_person)
    assert res["classes"]["person"]["presence_precision"] < 1.0
    assert res["classes"]["pet"]["ap50"] == pytest.approx(1.0)


def test_empty_scene_strips_count_false_positives(folder):
    """Every image holding objects contributes its largest object-free strip as an empty scene of the classes its
    source labels; a detector that fires a person there scores empty_scene_fp_rate 1.0, one that does not 0.0."""
    from camlab.eval.detection import empty_scene_box

    io_ = manifest_io(DetectorConfig())
    samples, _ = resolve_data([folder])
    n_strips = sum(empty_scene_box(s.boxes) is not None for s in samples)
    assert 0 < n_strips < len(samples)
    quiet = evaluate(_oracle(samples, io_), [folder], io_spec=io_, hog=False)["classes"]["person"]
    loud = evaluate(_oracle(samples, io_, strips_fire=True), [folder], io_spec=io_, hog=False)["classes"]["person"]
    assert quiet["n_empty_scenes"] == loud["n_empty_scenes"] == n_strips
    assert quiet["empty_scene_fp_rate"] == 0.0 and loud["empty_scene_fp_rate"] == 1.0
    assert quiet["ap50"] == loud["ap50"]   # the whole-image figures are untouched by the strips


def test_empty_scene_box_is_clear_of_every_box():
    from camlab.eval.detection import empty_scene_box

    assert empty_scene_box(np.zeros((0, 4), np.float32)) is None          # no object: the image is the negative
    assert empty_scene_box(np.array([[0.0, 0.0, 0.9, 1.0]])) is None      # nothing left that is large enough
    left = empty_scene_box(np.array([[0.6, 0.2, 0.8, 0.9]]))
    assert left == pytest.approx((0.0, 0.0, 0.58, 1.0))                   # the widest gap, 0.02 clear of the box
    between = empty_scene_box(np.array([[0.0, 0.1, 0.1, 0.5], [0.7, 0.1, 1.0, 0.5]]))
    assert between == pytest.approx((0.12, 0.0, 0.68, 1.0))               # the gap between them (0.56 > 0.48 below)
    rng = np.random.default_rng(0)
    for _ in range(200):
        xy = np.sort(rng.uniform(0, 1, (3, 2, 2)), axis=1)
        boxes = np.stack([xy[:, 0, 0], xy[:, 0, 1], xy[:, 1, 0], xy[:, 1, 1]], 1)
        strip = empty_scene_box(boxes)
        if strip is not None:
            sx0, sy0, sx1, sy1 = strip
            assert (sx1 - sx0) * (sy1 - sy0) >= 0.3 - 1e-9
            for x0, y0, x1, y1 in boxes:   # no overlap with any box grown by the margin
                assert sx1 <= x0 - 0.02 + 1e-9 or sx0 >= x1 + 0.02 - 1e-9 or sy1 <= y0 - 0.02 + 1e-9 \
                    or sy0 >= y1 + 0.02 - 1e-9


def test_hog_anchor_and_bad_input(folder, tmp_path):
    io_ = manifest_io(DetectorConfig())
    samples, _ = resolve_data([folder])
    res = evaluate(_oracle(samples, io_), [folder], io_spec=io_, hog=True)
    hog = res["anchors"]["hog_person"]
    assert set(METRIC_KEYS) <= set(hog) and hog["n_images"] == res["classes"]["person"]["n_images"]
    assert hog["ap50"] < res["classes"]["person"]["ap50"]
    from camlab.errors import InputFileError
    with pytest.raises(InputFileError, match="not found"):
        evaluate(_oracle(samples, io_), [tmp_path / "nope"], io_spec=io_, hog=False)
    with pytest.raises(InputFileError, match="not a YOLO folder"):
        evaluate(_oracle(samples, io_), [tmp_path], io_spec=io_, hog=False)


def test_cli_eval_checkpoint(folder, tmp_path):
    from camlab.cli import main
    from camlab.models.detector import CamDet
    from camlab.train.checkpoint import save_checkpoint

    cfg = DetectorConfig(input_width=128, input_height=96, widths=(16, 16, 32, 32), depths=(1, 1, 1, 1), neck=16)
    ck = save_checkpoint(tmp_path / "m.pt", kind="detector", model_config=cfg.to_dict(),
                         state_dict=CamDet(cfg).state_dict())
    out = tmp_path / "eval.json"
    assert main(["eval", "detector", "--model", str(ck), "--data", str(folder), "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert set(res["classes"]) == {"person", "pet", "vehicle"} and "hog_person" in res["anchors"]
    assert res["n_images"] == 16 and res["classes"]["person"]["ap50"] < 0.5   # untrained model
    assert main(["eval", "detector", "--model", str(tmp_path / "none.pt"), "--data", str(folder),
                 "--json", str(out)]) == 2


def test_pick_thresholds_meets_the_false_positive_target():
    from camlab.eval.detection import pick_thresholds

    rng = np.random.default_rng(0)
    n = 400
    present = np.zeros((n, 3), bool)
    present[:100, 0] = True                      # person in 100 images, never pet; vehicle in the last 50
    present[-50:, 2] = True
    best = rng.uniform(0.0, 0.6, (n, 3)).astype(np.float32)
    best[:100, 0] = rng.uniform(0.5, 1.0, 100)
    thr, rep = pick_thresholds(present, best, target_fp_rate=0.02, floor=0.15, fp_limited=["person", "pet"])
    neg = best[~present[:, 0], 0]
    assert np.mean(neg >= thr[0]) <= 0.02 and rep["person"]["fp_rate"] <= 0.02
    # the lowest such threshold: one step lower admits more than the allowed false positives
    assert np.mean(neg >= np.sort(neg)[::-1][int(0.02 * len(neg))]) > 0.02
    assert rep["person"]["presence_recall"] == pytest.approx(np.mean(best[:100, 0] >= thr[0]))
    assert rep["pet"]["n_positives"] == 0 and rep["pet"]["presence_recall"] is None
    assert all(0.15 <= t <= 0.95 for t in thr)
    # vehicle is not FP-limited: its threshold maximises presence accuracy over a 0.01 grid
    grid = np.round(np.arange(0.15, 0.95 + 1e-9, 0.01), 4)
    accs = [np.mean((best[:, 2] >= g) == present[:, 2]) for g in grid]
    assert rep["vehicle"]["presence_accuracy"] == pytest.approx(max(accs))
    assert rep["vehicle"]["rule"] == "highest presence accuracy"
    # a class no image lacks gets the floor; unknown class names are an error
    thr2, _ = pick_thresholds(np.ones((5, 3), bool), best[:5], 0.02)
    assert thr2 == [0.15, 0.15, 0.15]
    with pytest.raises(ValueError, match="unknown class"):
        pick_thresholds(present, best, 0.02, fp_limited=["dog"])


def test_release_targets_are_checked_against_measured_values():
    from camlab.eval.detection import RELEASE_TARGETS, check_targets, verdict_table

    def block(recall, fp, ap):
        return {"presence_recall": recall, "fp_rate": fp, "ap50": ap}

    ev = {"classes": {"person": block(0.95, 0.03, 0.71), "pet": block(0.96, 0.0, 0.9),
                      "vehicle": block(None, 0.01, 0.5)}}
    res = check_targets(ev)
    assert set(res) == set(RELEASE_TARGETS)
    assert res["person presence recall"]["met"] is True and res["person FP rate"]["met"] is False
    assert res["vehicle presence recall"]["met"] is None and res["pet FP rate"]["met"] is True
    table = verdict_table(res)
    assert "NOT MET" in table and "not measured" in table and len(table.splitlines()) == len(RELEASE_TARGETS)


class _FiresPersonEverywhere:
    """A whole-image detector (the SSD teacher's interface) that sees a person in every image and strip."""
    thresholds = {"person": 0.5, "pet": 0.5, "vehicle": 0.5}

    def detect(self, rgb):
        return np.array([[1, 1, 20, 40]], np.float32), np.array([0.9], np.float32), np.array([0])


@pytest.fixture
def not_exhaustive_cam(tmp_path, monkeypatch):
    """A registry under tmp_path declaring source ``cam`` labelled for all classes but not exhaustive for person;
    yields the folder of its 'train' split."""
    from camlab.data import label_sets

    root = make_yolo_folder(tmp_path / "cam" / "train", 16, negatives=4, seed=11, size=(256, 160))
    (root / "label_set.txt").unlink()
    reg = tmp_path / "datasets" / "label_sets.yaml"
    reg.parent.mkdir()
    reg.write_text("cam: {labels: [person, pet, vehicle], not_exhaustive: [person]}\n")
    monkeypatch.setattr(label_sets.settings, "project_root", lambda: tmp_path)
    label_sets._registry.cache_clear()
    yield root
    label_sets._registry.cache_clear()


def test_a_not_exhaustive_source_gives_no_negatives_of_that_class(not_exhaustive_cam):
    """A source that boxes people but not every person (LVIS not_exhaustive): a person fired on its empty strips or
    person-free frames is no federated false positive (the naive figure keeps it), its persons still count for
    recall, and calibration takes its frames only because no exhaustive source has a person negative."""
    from camlab.eval.detection import calibration_scores, empty_scene_box

    io_ = manifest_io(DetectorConfig())
    samples, _ = resolve_data([not_exhaustive_cam])
    assert all(s.incomplete == (True, False, False) for s in samples)
    res = evaluate(_oracle(samples, io_, extra_person=True, strips_fire=True), [not_exhaustive_cam], io_spec=io_,
                   hog=False)
    person, naive = res["classes"]["person"], res["classes_naive"]["person"]
    assert person["fp_rate"] is None and person["n_empty_scenes"] == 0 and person["empty_scene_fp_rate"] is None
    assert naive["fp_rate"] > 0 and naive["empty_scene_fp_rate"] == 1.0
    assert person["presence_recall"] == 1.0 and person["n_images"] == sum(s.has(0) for s in samples)
    assert res["classes"]["pet"]["n_empty_scenes"] == sum(empty_scene_box(s.boxes) is not None for s in samples)
    present, best, known, n_strips, negatives = calibration_scores(_FiresPersonEverywhere(), samples)
    # no exhaustive person negative: the not-exhaustive frames and strips serve, flagged as over-counting
    assert n_strips > 0 and known[:, 0][~present[:, 0]].sum() == (~present[:, 0]).sum()
    assert negatives["person"].startswith("not exhaustive") and negatives["pet"] == "exhaustively labelled"


def test_calibration_prefers_exhaustive_negatives(not_exhaustive_cam, tmp_path):
    """With an exhaustively labelled source beside a not-exhaustive one, only the former gives person negatives."""
    from camlab.eval.detection import calibration_scores, empty_scene_box

    full_root = make_yolo_folder(tmp_path / "full" / "train", 8, negatives=3, seed=12, size=(256, 160))
    samples, _ = resolve_data([not_exhaustive_cam, full_root])
    present, best, known, n_strips, negatives = calibration_scores(_FiresPersonEverywhere(), samples)
    full = [s for s in samples if s.dataset.startswith("full")]
    full_negatives = sum(s.negative_for(0) for s in full) + sum(empty_scene_box(s.boxes) is not None for s in full)
    assert negatives["person"] == "exhaustively labelled"
    assert int((known[:, 0] & ~present[:, 0]).sum()) == full_negatives


def test_image_scores_give_each_images_best_score_and_its_labels(folder):
    """``image_scores``: per image and class the highest score (0 with none), presence and whether the source labels
    the class; the false person on each empty image is its best person score there."""
    io_ = manifest_io(DetectorConfig())
    samples, _ = resolve_data([folder])
    res = evaluate(_oracle(samples, io_, drop_class=2, extra_person=True), [folder], io_spec=io_, hog=False,
                   image_scores=True)
    sc = res["image_scores"]
    best, present, known = (np.asarray(sc[k]) for k in ("best", "present", "known"))
    assert best.shape == present.shape == known.shape == (res["n_images"], 3)
    assert np.all(best[:, 2] == 0.0)                                   # vehicles dropped: no score at all
    assert np.all(best[present[:, 0], 0] > 0.5)                        # every labelled person is found
    empty = ~present.any(axis=1)
    assert empty.any() and np.all(best[empty, 0] > 0.5) and np.all(known[empty])   # the false persons
    assert "image_scores" not in evaluate(_oracle(samples, io_), [folder], io_spec=io_, hog=False)
