"""Detector input from the NV12 substream, as firmware does it (RGA colour conversion + letterbox per manifest).

The substream frame is converted NV12 -> RGB with BT.709 limited-range coefficients (what the ISP wrote), then
letterboxed and normalised by :func:`camlab.contract.detection.preprocess` from the bundle manifest's ``inputs[0]``
block (size, resize method, pad value, mean/std), so the camera computes exactly the tensor the exporter calibrated.
"""
from __future__ import annotations

import numpy as np

from camlab.contract.detection import Letterbox, preprocess


def nv12_to_rgb_u8(nv12: np.ndarray) -> np.ndarray:
    """NV12 (H*3/2, W) uint8 -> RGB (H, W, 3) uint8 (BT.709 limited range, via the ISP's own CSC helper)."""
    from camlab.isp.stages.csc import nv12_to_rgb
    rgb = nv12_to_rgb(nv12)
    if rgb.dtype != np.uint8:
        rgb = np.clip(np.asarray(rgb, np.float32) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return rgb


def detector_input(nv12: np.ndarray, input_spec: dict) -> tuple[np.ndarray, Letterbox]:
    """Substream NV12 -> (NCHW float32 input tensor, letterbox geometry) per the manifest input spec."""
    rgb = nv12_to_rgb_u8(nv12)
    fmt = input_spec.get("color_format", "RGB")
    if fmt == "BGR":
        rgb = np.ascontiguousarray(rgb[..., ::-1])
    elif fmt != "RGB":
        raise ValueError(f"detector input color_format {fmt!r} is not an image format")
    return preprocess(rgb, input_spec)
