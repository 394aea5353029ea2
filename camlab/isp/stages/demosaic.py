"""Demosaicing (Bayer CFA -> RGB): bilinear, Malvar–He–Cutler 2004 and a directional colour-difference method.

References:
- bilinear: the textbook baseline (e.g. Gunturk et al., "Demosaicking: Color filter array interpolation",
  IEEE Signal Processing Magazine 22(1), 2005).
- ``malvar2004``: Malvar, He, Cutler, "High-quality linear interpolation for demosaicing of Bayer-patterned color
  images", ICASSP 2004 (the 5x5 gradient-corrected kernels).
- ``directional`` (our default): Hamilton–Adams horizontal/vertical green estimates (Hamilton & Adams, US patent
  5,629,734, 1997) combined with Menon's colour-difference gradient classifier (Menon, Andriani, Calvagno,
  "Demosaicing with directional filtering and a posteriori decision", IEEE TIP 16(1), 2007) used as a soft decision:
  inverse-squared-gradient weights over a 5x5 window, and the directional colour differences averaged over 5 sites
  along their direction, as in Pekkucuksen & Altunbasak's GBTF ("Gradient based threshold free color filter array
  interpolation", ICASSP 2010). Red and blue are then rebuilt from colour differences (G - R, G - B): diagonal average at the opposite chroma site,
  the same directional weights at green sites.

The input is the white-balanced (or at least black-level-corrected) linear CFA, float32 (H, W), nominally [0, 1];
the output is linear RGB float32 (H, W, 3), not clipped (the gradient-corrected methods may overshoot slightly).
Borders are handled by whole-sample symmetric reflection, which keeps the Bayer phase. The fast path in
``camlab.isp.fast.demosaic`` computes exactly the same arithmetic and is held to this one by golden tests.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from camlab.errors import CamlabError
from camlab.sensor.cfa import PATTERNS, Pattern, channel_offsets, parse_pattern

Method = Literal["bilinear", "malvar2004", "directional"]
METHODS: tuple[Method, ...] = ("bilinear", "malvar2004", "directional")
METHOD_CODES = {m: i for i, m in enumerate(METHODS)}
PATTERN_CODES = {p: i for i, p in enumerate(PATTERNS)}
PAD = 8          # reflection margin (the directional method reads up to 7 pixels away)
DIR_EPS = 1e-8   # regularizer of the squared 5x5 gradient sums in the directional weights


@dataclass(frozen=True)
class DemosaicParams:
    """``method``: one of :data:`METHODS`."""

    method: Method = "directional"

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise CamlabError(f"demosaic.method: unknown method {self.method!r}; expected one of {', '.join(METHODS)}")


def check_cfa(cfa: np.ndarray, what: str = "demosaic: cfa") -> np.ndarray:
    """Validate a CFA image: 2-D, at least 2x2, finite; returned as C-contiguous float32."""
    a = np.asarray(cfa)
    if a.ndim != 2:
        raise CamlabError(f"{what}: expected a 2-D (H, W) Bayer image, got shape {a.shape}")
    if a.shape[0] < 2 or a.shape[1] < 2:
        raise CamlabError(f"{what}: image {a.shape} is smaller than one 2x2 CFA tile")
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise CamlabError(f"{what}: expected a numeric array, got dtype {a.dtype}")
    a = np.ascontiguousarray(a, dtype=np.float32)
    if not np.isfinite(a).all():
        raise CamlabError(f"{what}: contains {int((~np.isfinite(a)).sum())} NaN or infinite values")
    return a


def pad_offsets(pattern: Pattern) -> tuple[int, int]:
    """(top, left) reflection margins that put a red site at (even, even) of the padded image."""
    ry, rx = channel_offsets(pattern)["R"]
    return PAD + ry, PAD + rx


def pad_cfa(cfa: np.ndarray, pattern: Pattern) -> tuple[np.ndarray, int, int]:
    """Reflect-pad so that the padded CFA is RGGB; returns (padded, top, left)."""
    top, left = pad_offsets(pattern)
    return np.pad(cfa, ((top, PAD), (left, PAD)), mode="reflect").astype(np.float32), top, left


def _sites(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Masks of an RGGB grid: R, B, G on red rows, G on blue rows."""
    yy = (np.arange(shape[0]) % 2)[:, None]
    xx = (np.arange(shape[1]) % 2)[None, :]
    return (yy == 0) & (xx == 0), (yy == 1) & (xx == 1), (yy == 0) & (xx == 1), (yy == 1) & (xx == 0)


def _s(a: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``out[y, x] = a[y + dy, x + dx]`` with zeros outside (only the padded margin is affected)."""
    out = np.zeros_like(a)
    h, w = a.shape
    ys, yd = (slice(dy, h), slice(0, h - dy)) if dy >= 0 else (slice(0, h + dy), slice(-dy, h))
    xs, xd = (slice(dx, w), slice(0, w - dx)) if dx >= 0 else (slice(0, w + dx), slice(-dx, w))
    out[yd, xd] = a[ys, xs]
    return out


def _conv(a: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Correlation with a small odd kernel (zeros outside)."""
    r = k.shape[0] // 2
    out = np.zeros_like(a)
    for i in range(k.shape[0]):
        for j in range(k.shape[1]):
            if k[i, j] != 0:
                out += np.float32(k[i, j]) * _s(a, i - r, j - r)
    return out


def _bilinear_rggb(c: np.ndarray) -> np.ndarray:
    isR, isB, isGr, isGb = _sites(c.shape)
    isG = isGr | isGb
    k_g = np.array([[0, 1, 0], [1, 4, 1], [0, 1, 0]], np.float32) / 4
    k_rb = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], np.float32) / 4
    out = np.empty(c.shape + (3,), np.float32)
    out[..., 0] = _conv(np.where(isR, c, 0).astype(np.float32), k_rb)
    out[..., 1] = _conv(np.where(isG, c, 0).astype(np.float32), k_g)
    out[..., 2] = _conv(np.where(isB, c, 0).astype(np.float32), k_rb)
    return out


# Malvar–He–Cutler 2004 kernels (Fig. 2 of the paper), in units of 1/8.
MALVAR_G_AT_RB = np.array([[0, 0, -1, 0, 0], [0, 0, 2, 0, 0], [-1, 2, 4, 2, -1], [0, 0, 2, 0, 0],
                           [0, 0, -1, 0, 0]], np.float32) / 8
MALVAR_RB_AT_G_ROW = np.array([[0, 0, 0.5, 0, 0], [0, -1, 0, -1, 0], [-1, 4, 5, 4, -1], [0, -1, 0, -1, 0],
                               [0, 0, 0.5, 0, 0]], np.float32) / 8   # colour on the same row as the green site
MALVAR_RB_AT_G_COL = MALVAR_RB_AT_G_ROW.T.copy()                    # colour on the same column
MALVAR_RB_AT_BR = np.array([[0, 0, -1.5, 0, 0], [0, 2, 0, 2, 0], [-1.5, 0, 6, 0, -1.5], [0, 2, 0, 2, 0],
                            [0, 0, -1.5, 0, 0]], np.float32) / 8


def _malvar_rggb(c: np.ndarray) -> np.ndarray:
    isR, isB, isGr, isGb = _sites(c.shape)
    g_rb = _conv(c, MALVAR_G_AT_RB)
    at_row = _conv(c, MALVAR_RB_AT_G_ROW)
    at_col = _conv(c, MALVAR_RB_AT_G_COL)
    diag = _conv(c, MALVAR_RB_AT_BR)
    out = np.empty(c.shape + (3,), np.float32)
    out[..., 0] = np.where(isR, c, np.where(isB, diag, np.where(isGr, at_row, at_col)))
    out[..., 1] = np.where(isR | isB, g_rb, c)
    out[..., 2] = np.where(isB, c, np.where(isR, diag, np.where(isGb, at_row, at_col)))
    return out


def _box5(a: np.ndarray) -> np.ndarray:
    v = _s(a, -2, 0) + _s(a, -1, 0) + a + _s(a, 1, 0) + _s(a, 2, 0)
    return _s(v, 0, -2) + _s(v, 0, -1) + v + _s(v, 0, 1) + _s(v, 0, 2)


def directional_weights(c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For a padded RGGB CFA: (dH, dV, alpha).

    dH, dV: Hamilton–Adams horizontal/vertical estimates of the colour difference G - C at every site (C the colour
    of the row resp. column: at a chroma site G estimate minus the sample, at a green site the sample minus the
    estimate of C). alpha: weight of the horizontal direction, (kV^2 + eps) / (kH^2 + kV^2 + 2 eps), with kH, kV the
    5x5 sums of |dH(x) - dH(x+1)| and |dV(y) - dV(y+1)| (Menon 2007's classifier, used as a soft decision)."""
    isR, isB, _, _ = _sites(c.shape)
    chroma = isR | isB
    f = np.float32
    hf = (f(2) * (_s(c, 0, -1) + c + _s(c, 0, 1)) - _s(c, 0, -2) - _s(c, 0, 2)) * f(0.25)
    vf = (f(2) * (_s(c, -1, 0) + c + _s(c, 1, 0)) - _s(c, -2, 0) - _s(c, 2, 0)) * f(0.25)
    dh = np.where(chroma, hf - c, c - hf).astype(np.float32)
    dv = np.where(chroma, vf - c, c - vf).astype(np.float32)
    kh = _box5(np.abs(dh - _s(dh, 0, 1)))
    kv = _box5(np.abs(dv - _s(dv, 1, 0)))
    kh2 = kh * kh + f(DIR_EPS)
    kv2 = kv * kv + f(DIR_EPS)
    return dh, dv, (kv2 / (kh2 + kv2)).astype(np.float32)


def _directional_rggb(c: np.ndarray) -> np.ndarray:
    isR, isB, isGr, isGb = _sites(c.shape)
    chroma = isR | isB
    dh, dv, a = directional_weights(c)
    one = np.float32(1)
    fifth = np.float32(0.2)
    # Colour differences are smooth along an edge: average the directional estimates over 5 sites along their
    # direction (as GBTF does with its directional filters) before blending.
    dh5 = (_s(dh, 0, -2) + _s(dh, 0, -1) + dh + _s(dh, 0, 1) + _s(dh, 0, 2)) * fifth
    dv5 = (_s(dv, -2, 0) + _s(dv, -1, 0) + dv + _s(dv, 1, 0) + _s(dv, 2, 0)) * fifth
    d = np.where(chroma, a * dh5 + (one - a) * dv5, 0).astype(np.float32)       # G - C at chroma sites
    g = np.where(chroma, c + d, c)
    q = np.float32(0.25)
    # Opposite-colour difference at chroma sites: mean of the 4 diagonal neighbours' d.
    x = (_s(d, -1, -1) + _s(d, -1, 1) + _s(d, 1, -1) + _s(d, 1, 1)) * q
    half = np.float32(0.5)
    hz_d = (_s(d, 0, -1) + _s(d, 0, 1)) * half
    vt_d = (_s(d, -1, 0) + _s(d, 1, 0)) * half
    hz_x = (_s(x, 0, -1) + _s(x, 0, 1)) * half
    vt_x = (_s(x, -1, 0) + _s(x, 1, 0)) * half
    # At Gr (red row): red difference from left/right R (d) and up/down B (x); blue the other way round.
    r_gr = c - (a * hz_d + (one - a) * vt_x)
    b_gr = c - (a * hz_x + (one - a) * vt_d)
    r_gb = c - (a * hz_x + (one - a) * vt_d)
    b_gb = c - (a * hz_d + (one - a) * vt_x)
    out = np.empty(c.shape + (3,), np.float32)
    out[..., 0] = np.where(isR, c, np.where(isB, g - x, np.where(isGr, r_gr, r_gb)))
    out[..., 1] = g
    out[..., 2] = np.where(isB, c, np.where(isR, g - x, np.where(isGr, b_gr, b_gb)))
    return out


_RGGB_IMPL = {"bilinear": _bilinear_rggb, "malvar2004": _malvar_rggb, "directional": _directional_rggb}


def demosaic(cfa: np.ndarray, pattern: Pattern | str = "RGGB", p: DemosaicParams | None = None) -> np.ndarray:
    """Linear CFA (H, W) float32 in [0, 1] -> linear RGB (H, W, 3) float32 (reference implementation)."""
    p = DemosaicParams() if p is None else p
    pat = parse_pattern(pattern, "demosaic: pattern")
    c = check_cfa(cfa)
    padded, top, left = pad_cfa(c, pat)
    out = _RGGB_IMPL[p.method](padded)
    h, w = c.shape
    return np.ascontiguousarray(out[top:top + h, left:left + w])


def demosaic_bilinear(cfa: np.ndarray, pattern: Pattern | str = "RGGB") -> np.ndarray:
    return demosaic(cfa, pattern, DemosaicParams("bilinear"))


def demosaic_malvar2004(cfa: np.ndarray, pattern: Pattern | str = "RGGB") -> np.ndarray:
    return demosaic(cfa, pattern, DemosaicParams("malvar2004"))


def demosaic_directional(cfa: np.ndarray, pattern: Pattern | str = "RGGB") -> np.ndarray:
    return demosaic(cfa, pattern, DemosaicParams("directional"))
