"""Colour-space conversion R'G'B' -> Y'CbCr (BT.601 / BT.709, full or limited range), 4:2:0 NV12 and I420 packing.

ITU-R BT.601-7 and ITU-R BT.709-6 (luma coefficients Kr, Kb; limited range Y' 16..235, C 16..240), full range as
in JFIF/JPEG (ITU-T T.871). NV12: the (H, W) Y plane followed by an (H/2, W) plane of interleaved Cb, Cr
(Microsoft "Recommended 8-Bit YUV Formats", FOURCC NV12); I420: Y, then the Cb plane, then the Cr plane, each
chroma plane (H/2, W/2). Chroma is subsampled by the mean of each 2x2 block (centre siting).

Float planes inside the ISP: Y in [0, 1], Cb and Cr in [-0.5, 0.5].
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Matrix = Literal["bt601", "bt709"]
Range = Literal["full", "limited"]
KR_KB = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722)}


@dataclass(frozen=True)
class CscParams:
    """YUV matrix and quantisation range of the output streams."""

    matrix: Matrix = "bt709"
    range: Range = "limited"


def rgb_to_yuv_matrix(matrix: Matrix = "bt709") -> np.ndarray:
    """3x3 float32: R'G'B' [0, 1] -> (Y' [0, 1], Cb, Cr [-0.5, 0.5])."""
    if matrix not in KR_KB:
        raise ValueError(f"unknown YUV matrix {matrix!r}; expected one of {sorted(KR_KB)}")
    kr, kb = KR_KB[matrix]
    kg = 1 - kr - kb
    return np.array([[kr, kg, kb],
                     [-kr / (2 * (1 - kb)), -kg / (2 * (1 - kb)), 0.5],
                     [0.5, -kg / (2 * (1 - kr)), -kb / (2 * (1 - kr))]], dtype=np.float64).astype(np.float32)


def rgb_to_yuv(rgb: np.ndarray, matrix: Matrix = "bt709") -> np.ndarray:
    """Display R'G'B' (H, W, 3) in [0, 1] -> float32 Y'CbCr (H, W, 3)."""
    return np.einsum("hwc,kc->hwk", rgb.astype(np.float32), rgb_to_yuv_matrix(matrix), optimize=True)


def yuv_to_rgb(yuv: np.ndarray, matrix: Matrix = "bt709") -> np.ndarray:
    """Float Y'CbCr (H, W, 3) -> R'G'B' float32 (H, W, 3), clipped to [0, 1]."""
    inv = np.linalg.inv(rgb_to_yuv_matrix(matrix).astype(np.float64)).astype(np.float32)
    return np.clip(np.einsum("hwc,kc->hwk", yuv.astype(np.float32), inv, optimize=True), 0.0, 1.0)


def subsample_420(c: np.ndarray) -> np.ndarray:
    """(H, W, ...) -> (H/2, W/2, ...) mean of each 2x2 block (H, W even)."""
    h, w = c.shape[:2]
    if h % 2 or w % 2:
        raise ValueError(f"4:2:0 needs even width and height, got {w}x{h}")
    return 0.25 * (c[0::2, 0::2] + c[1::2, 0::2] + c[0::2, 1::2] + c[1::2, 1::2])


def quantize_luma(y: np.ndarray, rng: Range = "limited") -> np.ndarray:
    """Y' [0, 1] -> uint8 code values."""
    v = 16.0 + 219.0 * y if rng == "limited" else 255.0 * y
    return np.clip(np.rint(v), 0, 255).astype(np.uint8)


def quantize_chroma(c: np.ndarray, rng: Range = "limited") -> np.ndarray:
    """Cb/Cr [-0.5, 0.5] -> uint8 code values."""
    v = 128.0 + (224.0 if rng == "limited" else 255.0) * c
    return np.clip(np.rint(v), 0, 255).astype(np.uint8)


def dequantize_luma(y8: np.ndarray, rng: Range = "limited") -> np.ndarray:
    y = y8.astype(np.float32)
    return (y - 16.0) / 219.0 if rng == "limited" else y / 255.0


def dequantize_chroma(c8: np.ndarray, rng: Range = "limited") -> np.ndarray:
    return (c8.astype(np.float32) - 128.0) / (224.0 if rng == "limited" else 255.0)


def pack_nv12(y: np.ndarray, uv: np.ndarray, rng: Range = "limited") -> np.ndarray:
    """Float Y (H, W) and 4:2:0 chroma (H/2, W/2, 2) -> NV12 uint8 buffer of shape (H * 3 / 2, W)."""
    h, w = y.shape
    if uv.shape != (h // 2, w // 2, 2):
        raise ValueError(f"chroma plane shape {uv.shape} does not match luma {y.shape}")
    out = np.empty((h + h // 2, w), dtype=np.uint8)
    out[:h] = quantize_luma(y, rng)
    out[h:] = quantize_chroma(uv, rng).reshape(h // 2, w)
    return out


def unpack_nv12(nv12: np.ndarray, rng: Range = "limited") -> tuple[np.ndarray, np.ndarray]:
    """NV12 (H * 3 / 2, W) uint8 -> float Y (H, W), chroma (H/2, W/2, 2)."""
    rows, w = nv12.shape
    if nv12.dtype != np.uint8 or rows % 3 or w % 2:
        raise ValueError(f"not an NV12 buffer: dtype {nv12.dtype}, shape {nv12.shape}")
    h = rows * 2 // 3
    return dequantize_luma(nv12[:h], rng), dequantize_chroma(nv12[h:].reshape(h // 2, w // 2, 2), rng)


def rgb_to_nv12(rgb: np.ndarray, matrix: Matrix = "bt709", rng: Range = "limited") -> np.ndarray:
    """Display R'G'B' (H, W, 3) float in [0, 1] (or uint8) -> NV12 uint8 (H * 3 / 2, W)."""
    rgb = _as_float_rgb(rgb)
    yuv = rgb_to_yuv(rgb, matrix)
    return pack_nv12(yuv[..., 0], subsample_420(yuv[..., 1:]), rng)


def nv12_to_rgb(nv12: np.ndarray, matrix: Matrix = "bt709", rng: Range = "limited") -> np.ndarray:
    """NV12 uint8 (H * 3 / 2, W) -> display R'G'B' float32 (H, W, 3) in [0, 1] (chroma upsampled by replication)."""
    y, uv = unpack_nv12(nv12, rng)
    return planes_to_rgb(y, uv, matrix)


def planes_to_rgb(y: np.ndarray, uv: np.ndarray, matrix: Matrix = "bt709") -> np.ndarray:
    """Float Y (H, W) + chroma (H/2, W/2, 2) -> R'G'B' float32 (H, W, 3)."""
    c = np.repeat(np.repeat(uv, 2, axis=0), 2, axis=1)
    return yuv_to_rgb(np.concatenate([y[..., None], c], axis=2), matrix)


def rgb_to_i420(rgb: np.ndarray, matrix: Matrix = "bt709", rng: Range = "limited") -> np.ndarray:
    """Display R'G'B' (H, W, 3) -> I420 flat uint8 buffer of length H * W * 3 / 2 (Y, then Cb, then Cr planes)."""
    rgb = _as_float_rgb(rgb)
    yuv = rgb_to_yuv(rgb, matrix)
    uv = subsample_420(yuv[..., 1:])
    return np.concatenate([quantize_luma(yuv[..., 0], rng).ravel(), quantize_chroma(uv[..., 0], rng).ravel(),
                           quantize_chroma(uv[..., 1], rng).ravel()])


def i420_to_rgb(buf: np.ndarray, width: int, height: int, matrix: Matrix = "bt709",
                rng: Range = "limited") -> np.ndarray:
    """I420 flat uint8 buffer -> display R'G'B' float32 (H, W, 3)."""
    n, q = width * height, (width // 2) * (height // 2)
    if buf.size != n + 2 * q:
        raise ValueError(f"I420 buffer of {buf.size} bytes does not match {width}x{height} ({n + 2 * q} expected)")
    y = dequantize_luma(buf[:n].reshape(height, width), rng)
    u = dequantize_chroma(buf[n:n + q].reshape(height // 2, width // 2), rng)
    v = dequantize_chroma(buf[n + q:].reshape(height // 2, width // 2), rng)
    return planes_to_rgb(y, np.stack([u, v], axis=2), matrix)


def _as_float_rgb(rgb: np.ndarray) -> np.ndarray:
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) image, got shape {rgb.shape}")
    if rgb.dtype == np.uint8:
        return rgb.astype(np.float32) / 255.0
    return np.clip(rgb.astype(np.float32), 0.0, 1.0)
