"""Detector outputs -> detections in normalised frame coordinates (decode + NMS from the manifest's ``decode``).

All decoding is :func:`camlab.contract.detection.postprocess`: FCOS-style box decode, per-class thresholds, greedy
per-class NMS and top-k, mapped back through the letterbox. This module only names the outputs and normalises.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from camlab.contract.detection import Letterbox, postprocess


@dataclass(frozen=True)
class Detection:
    label: str
    score: float
    box: tuple[float, float, float, float]   # normalised xyxy in the frame


def detections(output_names: list[str], outputs: list[np.ndarray], decode: dict, lb: Letterbox
               ) -> list[Detection]:
    dets = postprocess(dict(zip(output_names, outputs)), decode, lb)
    out = []
    for b, s, c in zip(dets.boxes, dets.scores, dets.classes):
        box = (float(b[0]) / lb.src_w, float(b[1]) / lb.src_h, float(b[2]) / lb.src_w, float(b[3]) / lb.src_h)
        out.append(Detection(dets.class_names[int(c)], float(s), box))
    return out
