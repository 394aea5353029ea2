"""Unprocessing sRGB images into raw Bayer frames with known ground truth, and the forward steps that undo it.

Brooks, Mildenhall, Xue, Chen, Sharlet, Barron, "Unprocessing Images for Learned Raw Denoising", CVPR 2019
(inverse tone map, inverse gamma, inverse CCM from a random mix of camera matrices, inverse white balance with
highlight-preserving gains, mosaic, shot/read noise). sRGB transfer function: IEC 61966-2-1:1999.

IR night mode: under an 850 nm illuminator with the IR-cut filter out, all three Bayer filters pass the light with
nearly equal response, so the scene becomes a monochrome IR-reflectance image seen through the CFA with small
per-channel sensitivity differences (modelled by ``IR_CHANNEL_RESPONSE``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from camlab.errors import CamlabError
from camlab.sensor.cfa import Pattern, mosaic, parse_pattern
from camlab.sensor.noise import NoiseModel
from camlab.sensor.raw_io import SRGB_TO_XYZ, RawFrame

# XYZ -> camera matrices of four cameras (dcraw adobe_coeff, as used by Brooks et al. 2019).
XYZ_TO_CAMS = np.array([
    [[1.0234, -0.2969, -0.2266], [-0.5625, 1.6328, -0.0469], [-0.0703, 0.2188, 0.6406]],
    [[0.4913, -0.0541, -0.0202], [-0.613, 1.3513, 0.2906], [-0.1564, 0.2151, 0.7183]],
    [[0.838, -0.263, -0.0639], [-0.2887, 1.0725, 0.2496], [-0.0627, 0.1427, 0.5438]],
    [[0.6596, -0.2079, -0.0562], [-0.4782, 1.3016, 0.1933], [-0.097, 0.1581, 0.5181]],
])
# Relative response of the R, G, B photosites to an 850 nm IR illuminator (typical silicon Bayer sensor).
IR_CHANNEL_RESPONSE = np.array([1.0, 0.88, 0.93])


# --------------------------------------------------------------------------------------------------------------------
# transfer functions


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    """IEC 61966-2-1 sRGB decoding (display [0, 1] -> linear), float32."""
    x = np.clip(np.asarray(x, dtype=np.float32), 0.0, 1.0)
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    """IEC 61966-2-1 sRGB encoding (linear, clipped to [0, 1] -> display), float32."""
    x = np.clip(np.asarray(x, dtype=np.float32), 0.0, 1.0)
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * np.power(x, 1.0 / 2.4) - 0.055).astype(np.float32)


def smoothstep(x: np.ndarray) -> np.ndarray:
    """The global tone curve Brooks et al. assume: 3x^2 - 2x^3."""
    x = np.clip(x, 0.0, 1.0)
    return (3.0 * x ** 2 - 2.0 * x ** 3).astype(np.float32)


def inverse_smoothstep(y: np.ndarray) -> np.ndarray:
    """Inverse of :func:`smoothstep` on [0, 1]."""
    y = np.clip(np.asarray(y, dtype=np.float32), 0.0, 1.0)
    return (0.5 - np.sin(np.arcsin(1.0 - 2.0 * y) / 3.0)).astype(np.float32)


# --------------------------------------------------------------------------------------------------------------------
# random camera


def random_ccm(rng: np.random.Generator) -> np.ndarray:
    """Random white-balanced camera RGB -> linear sRGB matrix (rows sum to 1), Brooks et al. Sec. 3.2."""
    w = rng.uniform(1e-8, 1e8, size=len(XYZ_TO_CAMS))
    xyz2cam = np.tensordot(w / w.sum(), XYZ_TO_CAMS, axes=1)
    rgb2cam = xyz2cam @ SRGB_TO_XYZ
    rgb2cam = rgb2cam / rgb2cam.sum(axis=1, keepdims=True)
    return np.linalg.inv(rgb2cam)


def random_gains(rng: np.random.Generator) -> tuple[float, tuple[float, float, float]]:
    """(brightness gain, (r, 1, b) WB gains) as in Brooks et al.: 1/N(0.8, 0.1), U(1.9, 2.4), U(1.5, 1.9)."""
    rgb_gain = 1.0 / float(np.clip(rng.normal(0.8, 0.1), 0.5, 1.1))
    return rgb_gain, (float(rng.uniform(1.9, 2.4)), 1.0, float(rng.uniform(1.5, 1.9)))


# --------------------------------------------------------------------------------------------------------------------
# the steps (each a small pure function; its inverse is the forward ISP step)


def apply_ccm(rgb: np.ndarray, ccm: np.ndarray) -> np.ndarray:
    """``out[..., i] = sum_j ccm[i, j] * rgb[..., j]``, float32."""
    return np.einsum("ij,...j->...i", np.asarray(ccm, np.float32), rgb.astype(np.float32), optimize=True)


def safe_invert_gains(rgb: np.ndarray, gains: np.ndarray, inflection: float = 0.9) -> np.ndarray:
    """Divide by WB gains while keeping highlights from falling below white (Brooks et al. Sec. 3.3)."""
    gains = np.asarray(gains, np.float32)
    gray = rgb.mean(axis=-1, keepdims=True)
    mask = (np.maximum(gray - inflection, 0.0) / (1.0 - inflection)) ** 2
    safe = np.maximum(mask + (1.0 - mask) / gains, 1.0 / gains)
    return (rgb * safe).astype(np.float32)


@dataclass(frozen=True)
class UnprocessTruth:
    """Ground truth of an unprocessed frame.

    ``camera_rgb``: noise-free full-colour linear camera RGB (H, W, 3), normalized (black 0, white 1), i.e. the
    image the mosaic samples. ``linear_rgb``: linear sRGB (H, W, 3) after inverse tone + gamma. ``wb_gains``
    (r, 1, b) and ``exposure_gain`` (brightness) restore it: ``linear = ccm @ (camera_rgb * wb * exposure_gain)``.
    ``ccm``: white-balanced camera RGB -> linear sRGB.
    """

    camera_rgb: np.ndarray
    linear_rgb: np.ndarray
    wb_gains: tuple[float, float, float]
    ccm: np.ndarray
    exposure_gain: float
    ir_mode: bool
    gain: float


def _to_float_image(srgb: np.ndarray) -> np.ndarray:
    a = np.asarray(srgb)
    if a.ndim != 3 or a.shape[2] != 3 or a.shape[0] < 2 or a.shape[1] < 2:
        raise CamlabError(f"unprocess: expected an (H, W, 3) sRGB image, got shape {a.shape}")
    if a.dtype == np.uint8:
        return a.astype(np.float32) / 255.0
    if a.dtype == np.uint16:
        return a.astype(np.float32) / 65535.0
    a = a.astype(np.float32)
    if not np.isfinite(a).all():
        raise CamlabError("unprocess: the image contains NaN or infinite values")
    if a.min() < -1e-3 or a.max() > 1.0 + 1e-3:
        raise CamlabError(f"unprocess: float images must lie in [0, 1], got {a.min():.3f}..{a.max():.3f}")
    return np.clip(a, 0.0, 1.0)


def unprocess(srgb: np.ndarray, rng: np.random.Generator | None = None, *, gain: float = 1.0,
              iso: float | None = None, illuminant: tuple[float, float, float] | None = None,
              ccm: np.ndarray | None = None, exposure_gain: float | None = None, ir_mode: bool = False,
              pattern: Pattern | str = "RGGB", bits: int = 12, black_level: float | None = None,
              noise: NoiseModel | None = None, add_noise: bool = True, exposure_s: float | None = None,
              ) -> tuple[RawFrame, UnprocessTruth]:
    """Turn an sRGB image (uint8, uint16 or float in [0, 1]) into a raw Bayer frame with known ground truth.

    ``illuminant``: WB gains (r, 1, b) of the scene light; random as in Brooks et al. when None.
    ``ccm``: camera matrix (balanced camera RGB -> linear sRGB); random mix of four cameras when None.
    ``gain`` / ``iso``: analog gain (``iso`` = 100 * gain wins when given) for the noise. ``ir_mode``: a monochrome
    IR-lit scene (the image's luminance as IR reflectance) with the IR channel response; the truth's WB then
    equalizes the channels and the CCM is the identity. The returned frame has ``wb_gains`` and ``ccm`` set as a
    camera's as-shot metadata would.
    """
    rng = np.random.default_rng() if rng is None else rng
    pat = parse_pattern(pattern, "unprocess: pattern")
    if not isinstance(bits, int) or not 8 <= bits <= 16:
        raise CamlabError(f"unprocess: bits must be an integer in 8..16, got {bits!r}")
    if iso is not None:
        if not np.isfinite(iso) or iso <= 0:
            raise CamlabError(f"unprocess: iso must be positive, got {iso}")
        gain = float(iso) / 100.0
    if not np.isfinite(gain) or gain <= 0:
        raise CamlabError(f"unprocess: gain must be positive, got {gain}")
    img = _to_float_image(srgb)
    linear = srgb_to_linear(inverse_smoothstep(img))
    rand_exp, rand_wb = random_gains(rng)
    exp_gain = float(rand_exp if exposure_gain is None else exposure_gain)
    if exp_gain <= 0 or not np.isfinite(exp_gain):
        raise CamlabError(f"unprocess: exposure_gain must be positive, got {exposure_gain}")
    if ir_mode:
        luma = linear @ np.array([0.2126, 0.7152, 0.0722], np.float32)
        cam_bal = np.repeat(luma[..., None], 3, axis=2)
        resp = IR_CHANNEL_RESPONSE
        wb = (float(resp[1] / resp[0]), 1.0, float(resp[1] / resp[2]))
        cam_ccm = np.eye(3)
    else:
        cam_ccm = random_ccm(rng) if ccm is None else np.asarray(ccm, dtype=np.float64)
        if cam_ccm.shape != (3, 3) or not np.isfinite(cam_ccm).all():
            raise CamlabError(f"unprocess: ccm must be a finite 3x3 matrix, got shape {cam_ccm.shape}")
        wb = rand_wb if illuminant is None else tuple(float(v) for v in illuminant)  # type: ignore[assignment]
        if len(wb) != 3 or min(wb) <= 0:
            raise CamlabError(f"unprocess: illuminant must be three positive WB gains, got {illuminant}")
        cam_bal = apply_ccm(linear, np.linalg.inv(cam_ccm))
    gains = np.array(wb, np.float32) * np.float32(exp_gain)
    camera_rgb = np.clip(safe_invert_gains(cam_bal, gains), 0.0, 1.0).astype(np.float32)
    cfa = mosaic(camera_rgb, pat)
    nm = noise if noise is not None else NoiseModel()
    if add_noise:
        cfa = nm.apply(cfa, gain, rng)
    top = (1 << bits) - 1
    black = float(16 << (bits - 8)) if black_level is None else float(black_level)
    if not 0 <= black < top:
        raise CamlabError(f"unprocess: black_level must lie in [0, {top}), got {black_level}")
    dn = np.clip(np.rint(black + cfa * (top - black)), 0, top).astype(np.uint16)
    frame = RawFrame(data=dn, pattern=pat, black_level=black, white_level=float(top), bits=bits,
                     wb_gains=tuple(wb), ccm=cam_ccm, analog_gain=float(gain), exposure_s=exposure_s,
                     iso=100.0 * float(gain), source="unprocess")
    truth = UnprocessTruth(camera_rgb=camera_rgb, linear_rgb=linear, wb_gains=tuple(wb), ccm=cam_ccm,
                           exposure_gain=exp_gain, ir_mode=ir_mode, gain=float(gain))
    return frame, truth


def process(camera_rgb: np.ndarray, wb_gains: tuple[float, float, float], ccm: np.ndarray,
            exposure_gain: float = 1.0, tone: bool = True) -> np.ndarray:
    """The forward steps :func:`unprocess` inverts: WB (and brightness) gains, CCM, sRGB gamma, smoothstep tone.

    ``camera_rgb``: linear camera RGB (H, W, 3) -> display sRGB (H, W, 3) float32 in [0, 1].
    """
    gains = np.asarray(wb_gains, np.float32) * np.float32(exposure_gain)
    lin = np.clip(apply_ccm(camera_rgb * gains, ccm), 0.0, 1.0)
    out = linear_to_srgb(lin)
    return smoothstep(out) if tone else out
