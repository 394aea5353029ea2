"""Image-quality measurement for the ISP: PSNR in display space and a deterministic set of real test images.

Display space follows the ISP's own colour path: white-balance gains, colour-correction matrix, then the sRGB
transfer function of IEC 61966-2-1:1999, clipped to [0, 1]. PSNR: 10 log10(peak^2 / MSE) over all three channels.
The camera-domain ground truth comes from unprocessing (Brooks et al., CVPR 2019; ``camlab.sensor.unprocess``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from camlab.errors import CamlabError, InputFileError
from camlab.sensor.unprocess import UnprocessTruth, apply_ccm, linear_to_srgb

# Folders the quality images are drawn from, in the order they are interleaved (round robin).
QUALITY_SOURCES: tuple[str, ...] = ("coco128/val2017/images", "oxford_pets/trainval/images",
                                    "persons_cctv/train/images", "coco128/train2017/images")
DEFAULT_BORDER = 8


def to_display(camera_rgb: np.ndarray, wb_gains: Sequence[float], ccm: np.ndarray,
               exposure_gain: float = 1.0) -> np.ndarray:
    """Linear camera RGB (H, W, 3) -> display sRGB (H, W, 3) float32 in [0, 1]: WB -> CCM -> sRGB gamma."""
    x = np.asarray(camera_rgb, dtype=np.float32)
    if x.ndim != 3 or x.shape[2] != 3:
        raise CamlabError(f"to_display: expected an (H, W, 3) image, got shape {x.shape}")
    gains = np.asarray(wb_gains, np.float32) * np.float32(exposure_gain)
    return linear_to_srgb(np.clip(apply_ccm(x * gains, ccm), 0.0, 1.0))


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 1.0, border: int = 0) -> float:
    """PSNR in dB between two images of the same shape, ignoring ``border`` pixels on each side."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise CamlabError(f"psnr: shapes differ: {a.shape} vs {b.shape}")
    if border:
        if min(a.shape[0], a.shape[1]) <= 2 * border:
            raise CamlabError(f"psnr: image {a.shape[:2]} too small for a {border}-pixel border")
        a = a[border:-border, border:-border]
        b = b[border:-border, border:-border]
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise CamlabError("psnr: images contain NaN or infinite values")
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else float(10.0 * np.log10(peak * peak / mse))


def display_psnr(camera_rgb: np.ndarray, truth: UnprocessTruth, border: int = DEFAULT_BORDER) -> float:
    """PSNR of a demosaiced/processed linear camera RGB against the unprocessing truth, both in display space."""
    ref = to_display(truth.camera_rgb, truth.wb_gains, truth.ccm, truth.exposure_gain)
    out = to_display(camera_rgb, truth.wb_gains, truth.ccm, truth.exposure_gain)
    return psnr(out, ref, border=border)


def quality_image_paths(n: int, data_root: Path | None = None) -> list[Path]:
    """``n`` real images, deterministic: sorted file lists of :data:`QUALITY_SOURCES` taken round robin."""
    from camlab import settings

    if not isinstance(n, int) or n < 1:
        raise CamlabError(f"n_images must be a positive integer, got {n!r}")
    root = Path(data_root) if data_root is not None else settings.data_root() / "images"
    lists = []
    for sub in QUALITY_SOURCES:
        d = root / sub
        if d.is_dir():
            lists.append(sorted(p for p in d.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")))
    if not any(lists):
        raise InputFileError(f"{root}: no quality images found under {', '.join(QUALITY_SOURCES)}")
    out: list[Path] = []
    i = 0
    while len(out) < n and any(i < len(lst) for lst in lists):
        for lst in lists:
            if i < len(lst) and len(out) < n:
                out.append(lst[i])
        i += 1
    if len(out) < n:
        raise InputFileError(f"{root}: only {len(out)} quality images available, {n} asked")
    return out


def load_image(path: Path, even: bool = True) -> np.ndarray:
    """An image file as uint8 RGB (H, W, 3); ``even`` crops to even height and width (whole CFA tiles)."""
    import cv2

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise InputFileError(f"{path}: cannot decode the image")
    rgb = np.ascontiguousarray(bgr[..., ::-1])
    if even:
        rgb = rgb[: rgb.shape[0] // 2 * 2, : rgb.shape[1] // 2 * 2]
    return rgb


def load_quality_images(n: int, data_root: Path | None = None) -> list[tuple[str, np.ndarray]]:
    """(name, uint8 RGB) of :func:`quality_image_paths`."""
    return [(p.name, load_image(p)) for p in quality_image_paths(n, data_root)]
