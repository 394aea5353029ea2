"""Spatial noise reduction driven by the sensor noise model at the frame's gain.

A bilateral filter (Tomasi & Manduchi, "Bilateral filtering for gray and color images", ICCV 1998) with a box
spatial support and a triangular range kernel ``max(0, 1 - |d| / (k sigma))``, where sigma is the expected noise
of the centre pixel. sigma comes from the Poisson-Gaussian model (Foi et al., "Practical Poissonian-Gaussian noise
modeling and fitting for single-image raw-data", IEEE TIP 17(10), 2008) at the frame's analog gain, carried through
the digital/WB gains, the CCM and the tone curve's slope into display luma (:func:`display_noise_lut`). Luma is
filtered at full resolution; chroma (Cb, Cr jointly, range distance = mean of |dCb| and |dCr|) on the 4:2:0
planes.

False-colour suppression (``median_c``): a 3x3 median of Cb and of Cr, each on its own, before the chroma bilateral.
Median-filtering the colour differences after demosaicing is Freeman's method ("Median filter for reconstructing
missing color samples", US patent 4,724,395, 1988; Cb and Cr are colour differences): it removes the isolated
false-colour samples that demosaicing leaves at fine detail and the impulsive part of chroma noise, which the
bilateral's range kernel keeps as if they were edges, while a chroma step edge passes unchanged.

Luma-guided chroma (``guide_c``): the chroma bilateral's range distance adds ``guide_c`` times the difference of
the co-sited mean luma, a joint (cross) bilateral filter (Petschnigg et al., "Digital photography with flash and
no-flash image pairs", SIGGRAPH 2004; Eisemann & Durand, "Flash photography enhancement via intrinsic
relighting", SIGGRAPH 2004). Luma carries 4x the samples and less noise than chroma at 4:2:0, so the weights find
object edges that the noisy chroma alone hides: chroma is averaged strongly inside objects and not across their
outlines.

Luma window (``window_y``): ``box`` is the (2 radius_y + 1)^2 square of the bilateral; ``cross`` adds the four taps
one step beyond it on the two axes (radius 1: the 3x3 plus the taps two away, 13 in all), a sparse support like the
chroma's spaced taps. At night gains a 3x3 average of the similar neighbours leaves visible grain; a 5x5 box costs 16
more taps and, at one range strength, flattens fine texture, while the four axial taps reach as far along the axes
for 4 more. The shape is our measured choice, not taken from a paper: the probe figures are in
``camlab/isp/tune/default_space.yaml``.
"""
from __future__ import annotations

import functools

from dataclasses import dataclass

import numpy as np

from camlab.isp.stages.ccm import LUMA_709
from camlab.isp.stages.tone import ToneParams, tone_map, tone_slope

SIGMA_LUT_SIZE = 256
LUMA_WINDOWS = ("box", "cross")


@dataclass(frozen=True)
class Nr2dParams:
    """``strength_y``/``strength_c``: k of the range kernel in units of the modelled noise sigma (0 = off for that
    plane); ``radius_y``/``radius_c``: half-size of the box window, in taps; ``step_c``: spacing of the chroma taps
    (1 = a dense box; 2 = every other sample, so a radius-1 window covers 5x5 chroma samples, 10x10 pixels, for the
    cost of 3x3: chroma noise after demosaicing is low-frequency blotches that a dense 3x3 window cannot average out,
    the "a trous" sampling of Dammertz et al., "Edge-avoiding A-Trous wavelet transform", HPG 2010); ``median_c``:
    a 3x3 median of each chroma plane before the chroma bilateral (false-colour suppression, see the module
    docstring; it runs whenever the stage is enabled, also with ``strength_c`` 0); ``guide_c``: weight of the
    co-sited mean luma difference in the chroma range distance (0 = chroma alone; see the module docstring);
    ``window_y``: the luma window, ``box`` or ``cross`` (the box plus the four axial taps at radius_y + 1, see the
    module docstring)."""

    enabled: bool = True
    strength_y: float = 2.0
    strength_c: float = 3.0
    radius_y: int = 1
    radius_c: int = 1
    step_c: int = 1
    median_c: bool = False
    guide_c: float = 0.0
    window_y: str = "box"

    def __post_init__(self):
        if self.strength_y < 0 or self.strength_c < 0:
            raise ValueError("strengths must be >= 0")
        if not (0 <= self.radius_y <= 4 and 0 <= self.radius_c <= 4):
            raise ValueError("radius_y and radius_c must be in 0..4")
        if not 1 <= self.step_c <= 4:
            raise ValueError("step_c must be in 1..4")
        if not 0 <= self.guide_c <= 16:
            raise ValueError("guide_c must be in 0..16")
        if self.window_y not in LUMA_WINDOWS:
            raise ValueError(f"window_y must be one of {LUMA_WINDOWS}, got {self.window_y!r}")


@functools.lru_cache(maxsize=16)
def _display_grid(tone: ToneParams, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The linear grey level that displays as each of ``size`` display levels, and the tone curve's slope there
    (fixed per tuning, so computed once rather than per frame; read-only arrays)."""
    ydisp = np.linspace(0.0, 1.0, size)
    lin_grid = np.linspace(0.0, 1.0, 4097)
    disp_grid = tone_map(np.repeat(lin_grid[:, None], 3, axis=1)[None], tone)[0, :, 1].astype(np.float64)
    disp_grid = np.maximum.accumulate(disp_grid) + np.arange(disp_grid.size) * 1e-9
    x = np.interp(ydisp, disp_grid, lin_grid)  # linear grey level that displays as ydisp
    slope = np.asarray(tone_slope(x, tone), dtype=np.float64)
    x.setflags(write=False)
    slope.setflags(write=False)
    return x, slope


def display_noise_lut(shot: float, read: float, wb_gains=(1.0, 1.0, 1.0), ccm=None, digital_gain: float = 1.0,
                      tone: ToneParams = ToneParams(), size: int = SIGMA_LUT_SIZE) -> np.ndarray:
    """(size,) float32: std of display luma noise as a function of display luma (index = round(y * (size - 1))).

    ``shot`` and ``read`` are the raw variance terms at the frame's analog gain in normalised units
    (var = shot * s + read, s in [0, 1] = black..white), i.e. the noise model evaluated at that gain.
    """
    x, slope = _display_grid(tone, int(size))
    m = np.eye(3) if ccm is None else np.asarray(ccm, dtype=np.float64).reshape(3, 3)
    row = LUMA_709.astype(np.float64) @ m  # luma weights on white-balanced camera RGB
    var = np.zeros_like(x)
    for j, g in enumerate(wb_gains):
        k = float(g) * float(digital_gain)
        s = np.clip(x / k, 0.0, 1.0)  # raw signal of channel j
        var += (row[j] * k) ** 2 * (shot * s + read)
    sig = slope * np.sqrt(var)
    return sig.astype(np.float32)


def luma_offsets(radius: int, window: str = "box") -> list[tuple[int, int]]:
    """(dy, dx) taps of the luma window: the square of ``radius``, and for ``cross`` the four axial taps at
    radius + 1 (in that order, the order the fast path sums them)."""
    taps = [(dy, dx) for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1)]
    if window == "cross" and radius > 0:
        e = radius + 1
        taps += [(-e, 0), (0, -e), (0, e), (e, 0)]
    return taps


def _sigma_of(v: np.ndarray, lut: np.ndarray) -> np.ndarray:
    idx = np.clip(np.floor(v * (lut.size - 1) + 0.5), 0, lut.size - 1).astype(np.intp)
    return lut[idx]


def denoise_luma(y: np.ndarray, sigma_lut: np.ndarray, p: Nr2dParams = Nr2dParams()) -> np.ndarray:
    """Display luma (H, W) float32 -> denoised luma (edges replicate)."""
    if not p.enabled or p.strength_y == 0 or p.radius_y == 0:
        return y.astype(np.float32, copy=True)
    taps = luma_offsets(p.radius_y, p.window_y)
    e = max(max(abs(dy), abs(dx)) for dy, dx in taps)
    h, w = y.shape
    pad = np.pad(y, e, mode="edge")
    inv = 1.0 / np.maximum(np.float32(p.strength_y) * _sigma_of(y, sigma_lut), np.float32(1e-6))
    num = np.zeros_like(y, dtype=np.float32)
    den = np.zeros_like(y, dtype=np.float32)
    for dy, dx in taps:
        v = pad[e + dy:e + dy + h, e + dx:e + dx + w]
        wgt = np.maximum(np.float32(0.0), np.float32(1.0) - np.abs(v - y) * inv)
        num += wgt * v
        den += wgt
    return (num / den).astype(np.float32)


def median3_chroma(uv: np.ndarray) -> np.ndarray:
    """(h, w, 2) chroma -> the 3x3 median of each plane (edges replicate), float32."""
    h, w = uv.shape[:2]
    pad = np.pad(np.asarray(uv, np.float32), ((1, 1), (1, 1), (0, 0)), mode="edge")
    taps = np.stack([pad[dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)], axis=0)
    return np.median(taps, axis=0).astype(np.float32)


def denoise_chroma(uv: np.ndarray, y_half: np.ndarray, sigma_lut: np.ndarray,
                   p: Nr2dParams = Nr2dParams()) -> np.ndarray:
    """4:2:0 chroma (h, w, 2) with the co-sited mean luma (h, w) -> denoised chroma (Cb, Cr share the weights; the
    range distance is the mean of |dCb| and |dCr| plus ``guide_c`` times |d luma|)."""
    if p.enabled and p.median_c:
        uv = median3_chroma(uv)
    if not p.enabled or p.strength_c == 0 or p.radius_c == 0:
        return uv.astype(np.float32, copy=True)
    r, s = p.radius_c, p.step_c
    h, w = uv.shape[:2]
    e = r * s
    pad = np.pad(uv, ((e, e), (e, e), (0, 0)), mode="edge")
    guide = np.float32(p.guide_c)
    ypad = np.pad(np.asarray(y_half, np.float32), e, mode="edge") if guide > 0 else None
    inv = 1.0 / np.maximum(np.float32(p.strength_c) * _sigma_of(y_half, sigma_lut), np.float32(1e-6))
    num = np.zeros_like(uv, dtype=np.float32)
    den = np.zeros((h, w), dtype=np.float32)
    for dy in range(-e, e + 1, s):
        for dx in range(-e, e + 1, s):
            v = pad[e + dy:e + dy + h, e + dx:e + dx + w]
            d = np.float32(0.5) * (np.abs(v[..., 0] - uv[..., 0]) + np.abs(v[..., 1] - uv[..., 1]))
            if ypad is not None:
                d = d + guide * np.abs(ypad[e + dy:e + dy + h, e + dx:e + dx + w] - y_half)
            wgt = np.maximum(np.float32(0.0), np.float32(1.0) - d * inv)
            num += wgt[..., None] * v
            den += wgt
    return (num / den[..., None]).astype(np.float32)
