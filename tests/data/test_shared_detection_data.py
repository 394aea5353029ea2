"""The real detection folders load with the expected class mapping (skips when ../shared/data is absent)."""
from __future__ import annotations

from camlab.data.splits import load_folder


def test_shared_folders_map_to_targets(shared_data):
    s, rep = load_folder(shared_data / "images" / "vehicles_openimages" / "valid")
    assert rep.n_skipped == 0 and rep.boxes_per_class["vehicle"] > 100 and rep.boxes_per_class["person"] == 0
    s, rep = load_folder(shared_data / "images" / "coco128" / "val2017")
    assert rep.n_dropped_boxes > 0 and rep.n_negatives > 0 and rep.boxes_per_class["person"] > 50
    s, rep = load_folder(shared_data / "images" / "oxford_pets" / "trainval")
    assert rep.n_images >= 295 and all(len(x.labels) == 1 for x in s)
    # trimap boxes are full-body: larger than the VOC head box
    areas = [float((x.boxes[0, 2] - x.boxes[0, 0]) * (x.boxes[0, 3] - x.boxes[0, 1])) for x in s]
    assert sum(areas) / len(areas) > 0.2
