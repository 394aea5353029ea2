"""Demosaicing (Bayer CFA -> RGB): bilinear, Malvar–He–Cutler 2004 and a directional colour-difference method.

References:
- bilinear: the textbook baseline (e.g. Gunturk et al., "Demosaicking: Color filter array interpolation",
  IEEE Signal Processing Magazine 22(1), 2005).
- ``malvar2004``: Malvar, He, Cutler, "High-quality linear interpolation for demosaicing of Bayer-patterned color
  images", ICASSP 2004 (the 5x5 gradient-corrected kernels). Each kernel is the bilinear estimate plus a gain times
  a Laplacian of the site's own colour (the paper's eqs. 1-3: alpha for G at R/B, beta for R/B at G, gamma for R/B
  at B/R); the paper's 1/2, 5/8, 3/4 are Wiener-optimal on the noise-free Kodak set. The gains are tuning fields
  (``malvar_alpha``/``malvar_beta``/``malvar_gamma``): at night gains the correction also amplifies sensor noise
  (the Laplacian of noise is noise x sqrt(1.25) for alpha), so the best gains there are lower (the probe figures
  are in ``camlab/isp/tune/default_space.yaml``).
- ``colour_difference``: the same Hamilton–Adams estimates without a decision (both directions weighted 1/2; G at
  R/B is then Malvar's G kernel at alpha 1/2), each directional colour difference first smoothed along its direction
  with a 3-tap [s, 1, s] / (1 + 2 s) filter (``cd_smoothing`` = s; GBTF's directional filtering, linear), and R/B
  rebuilt from colour differences as in ``directional`` at a fixed weight 1/2: the constant-colour-difference
  assumption (Adams, "Design of practical color filter array interpolation algorithms for digital cameras", SPIE
  3028, 1997; Gunturk et al. 2005, section III). A linear method: it needs no weight pass and fits the line-buffered
  ISP pass like Malvar's kernels. At night gains it keeps most of the directional method's gain over Malvar (R/B by
  smoothed colour differences average out more chroma noise than Malvar's R/B kernels) at a fraction of its cost.
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

Method = Literal["bilinear", "malvar2004", "directional", "colour_difference"]
METHODS: tuple[Method, ...] = ("bilinear", "malvar2004", "directional", "colour_difference")
METHOD_CODES = {m: i for i, m in enumerate(METHODS)}
PATTERN_CODES = {p: i for i, p in enumerate(PATTERNS)}
PAD = 8          # reflection margin (the directional method reads up to 7 pixels away)
DIR_EPS = 1e-8   # regularizer of the squared 5x5 gradient sums in the directional weights


MALVAR_GAINS = (0.5, 0.625, 0.75)  # the paper's alpha, beta, gamma
MAX_MALVAR_GAIN = 1.5
CD_SMOOTHING = 0.5       # default neighbour weight of colour_difference's 3-tap smoothing (module docstring)
MAX_CD_SMOOTHING = 4.0


@dataclass(frozen=True)
class DemosaicParams:
    """``method``: one of :data:`METHODS`; ``malvar_alpha``/``malvar_beta``/``malvar_gamma``: the gradient-correction
    gains of ``malvar2004`` (the module docstring; 0 = bilinear; other methods ignore them); ``cd_smoothing``: the
    neighbour weight s of ``colour_difference``'s [s, 1, s] smoothing of the colour differences (0 = none)."""

    method: Method = "directional"
    malvar_alpha: float = MALVAR_GAINS[0]
    malvar_beta: float = MALVAR_GAINS[1]
    malvar_gamma: float = MALVAR_GAINS[2]
    cd_smoothing: float = CD_SMOOTHING

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise CamlabError(f"demosaic.method: unknown method {self.method!r}; expected one of {', '.join(METHODS)}")
        for name in ("malvar_alpha", "malvar_beta", "malvar_gamma"):
            v = getattr(self, name)
            if not 0.0 <= v <= MAX_MALVAR_GAIN:
                raise CamlabError(f"demosaic.{name}: expected a gain in 0..{MAX_MALVAR_GAIN}, got {v}")
        if not 0.0 <= self.cd_smoothing <= MAX_CD_SMOOTHING:
            raise CamlabError(f"demosaic.cd_smoothing: expected a weight in 0..{MAX_CD_SMOOTHING}, "
                              f"got {self.cd_smoothing}")

    @property
    def malvar_gains(self) -> tuple[float, float, float]:
        return (self.malvar_alpha, self.malvar_beta, self.malvar_gamma)


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


def malvar_coefficients(alpha: float, beta: float, gamma: float) -> np.ndarray:
    """The tap weights of the Malvar kernels in units of 1/8, float32: (8 alpha, 2 alpha, 8 gamma, 2 gamma, 8 beta,
    8 beta / 5, 8 beta / 10). At the paper's gains these are 4, 1, 6, 1.5, 5, 1, 0.5 exactly (Fig. 2 of the paper),
    and the fast path's arithmetic is the same as with those literals."""
    a, b, g = float(alpha), float(beta), float(gamma)
    return np.array([8 * a, 2 * a, 8 * g, 2 * g, 8 * b, 8 * b / 5, 8 * b / 10], np.float32)


def malvar_kernels(gains=MALVAR_GAINS) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(G at R/B, R/B at G on the colour's row, the same on its column, R/B at B/R), 5x5 float32 kernels."""
    a4, a1, g6, g15, b5, b1, bh = (float(v) for v in malvar_coefficients(*gains))
    g_at_rb = np.array([[0, 0, -a1, 0, 0], [0, 0, 2, 0, 0], [-a1, 2, a4, 2, -a1], [0, 0, 2, 0, 0],
                        [0, 0, -a1, 0, 0]], np.float32) / 8
    at_row = np.array([[0, 0, bh, 0, 0], [0, -b1, 0, -b1, 0], [-b1, 4, b5, 4, -b1], [0, -b1, 0, -b1, 0],
                       [0, 0, bh, 0, 0]], np.float32) / 8   # colour on the same row as the green site
    at_br = np.array([[0, 0, -g15, 0, 0], [0, 2, 0, 2, 0], [-g15, 0, g6, 0, -g15], [0, 2, 0, 2, 0],
                      [0, 0, -g15, 0, 0]], np.float32) / 8
    return g_at_rb, at_row, at_row.T.copy(), at_br


# Malvar–He–Cutler 2004 kernels at the paper's gains (Fig. 2 of the paper).
MALVAR_G_AT_RB, MALVAR_RB_AT_G_ROW, MALVAR_RB_AT_G_COL, MALVAR_RB_AT_BR = malvar_kernels()


def _malvar_rggb(c: np.ndarray, gains=MALVAR_GAINS) -> np.ndarray:
    isR, isB, isGr, isGb = _sites(c.shape)
    k_g, k_row, k_col, k_diag = malvar_kernels(gains)
    g_rb = _conv(c, k_g)
    at_row = _conv(c, k_row)
    at_col = _conv(c, k_col)
    diag = _conv(c, k_diag)
    out = np.empty(c.shape + (3,), np.float32)
    out[..., 0] = np.where(isR, c, np.where(isB, diag, np.where(isGr, at_row, at_col)))
    out[..., 1] = np.where(isR | isB, g_rb, c)
    out[..., 2] = np.where(isB, c, np.where(isR, diag, np.where(isGb, at_row, at_col)))
    return out


def _box5(a: np.ndarray) -> np.ndarray:
    v = _s(a, -2, 0) + _s(a, -1, 0) + a + _s(a, 1, 0) + _s(a, 2, 0)
    return _s(v, 0, -2) + _s(v, 0, -1) + v + _s(v, 0, 1) + _s(v, 0, 2)


def ha_differences(c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For a padded RGGB CFA: Hamilton–Adams horizontal/vertical estimates dH, dV of the colour difference G - C at
    every site (C the colour of the row resp. column: at a chroma site G estimate minus the sample, at a green site
    the sample minus the estimate of C)."""
    isR, isB, _, _ = _sites(c.shape)
    chroma = isR | isB
    f = np.float32
    hf = (f(2) * (_s(c, 0, -1) + c + _s(c, 0, 1)) - _s(c, 0, -2) - _s(c, 0, 2)) * f(0.25)
    vf = (f(2) * (_s(c, -1, 0) + c + _s(c, 1, 0)) - _s(c, -2, 0) - _s(c, 2, 0)) * f(0.25)
    dh = np.where(chroma, hf - c, c - hf).astype(np.float32)
    dv = np.where(chroma, vf - c, c - vf).astype(np.float32)
    return dh, dv


def directional_weights(c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For a padded RGGB CFA: (dH, dV, alpha).

    dH, dV: :func:`ha_differences`. alpha: weight of the horizontal direction, (kV^2 + eps) / (kH^2 + kV^2 + 2 eps),
    with kH, kV the 5x5 sums of |dH(x) - dH(x+1)| and |dV(y) - dV(y+1)| (Menon 2007's classifier, used as a soft
    decision)."""
    f = np.float32
    dh, dv = ha_differences(c)
    kh = _box5(np.abs(dh - _s(dh, 0, 1)))
    kv = _box5(np.abs(dv - _s(dv, 1, 0)))
    kh2 = kh * kh + f(DIR_EPS)
    kv2 = kv * kv + f(DIR_EPS)
    return dh, dv, (kv2 / (kh2 + kv2)).astype(np.float32)


def _directional_rggb(c: np.ndarray) -> np.ndarray:
    isR, isB, _, _ = _sites(c.shape)
    chroma = isR | isB
    dh, dv, a = directional_weights(c)
    one = np.float32(1)
    fifth = np.float32(0.2)
    # Colour differences are smooth along an edge: average the directional estimates over 5 sites along their
    # direction (as GBTF does with its directional filters) before blending.
    dh5 = (_s(dh, 0, -2) + _s(dh, 0, -1) + dh + _s(dh, 0, 1) + _s(dh, 0, 2)) * fifth
    dv5 = (_s(dv, -2, 0) + _s(dv, -1, 0) + dv + _s(dv, 1, 0) + _s(dv, 2, 0)) * fifth
    d = np.where(chroma, a * dh5 + (one - a) * dv5, 0).astype(np.float32)       # G - C at chroma sites
    return _from_differences(c, d, a)


def _from_differences(c: np.ndarray, d: np.ndarray, a) -> np.ndarray:
    """RGB from the padded RGGB CFA ``c`` and ``d`` = G - C at its chroma sites: G = C + d there; the opposite colour
    from the mean of the 4 diagonal neighbours' d; R and B at green sites from the neighbours' differences, the
    horizontal ones weighted ``a`` (per site or a scalar) and the vertical ones 1 - ``a``."""
    isR, isB, isGr, isGb = _sites(c.shape)
    chroma = isR | isB
    one = np.float32(1)
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


def _colour_difference_rggb(c: np.ndarray, smoothing: float = CD_SMOOTHING) -> np.ndarray:
    isR, isB, _, _ = _sites(c.shape)
    chroma = isR | isB
    dh, dv = ha_differences(c)
    s = np.float32(smoothing)
    k = np.float32(1.0 / (1.0 + 2.0 * smoothing))
    dhs = (dh + s * (_s(dh, 0, -1) + _s(dh, 0, 1))) * k
    dvs = (dv + s * (_s(dv, -1, 0) + _s(dv, 1, 0))) * k
    half = np.float32(0.5)
    d = np.where(chroma, half * (dhs + dvs), 0).astype(np.float32)
    return _from_differences(c, d, half)


_RGGB_IMPL = {"bilinear": _bilinear_rggb, "malvar2004": _malvar_rggb, "directional": _directional_rggb}


def demosaic(cfa: np.ndarray, pattern: Pattern | str = "RGGB", p: DemosaicParams | None = None) -> np.ndarray:
    """Linear CFA (H, W) float32 in [0, 1] -> linear RGB (H, W, 3) float32 (reference implementation)."""
    p = DemosaicParams() if p is None else p
    pat = parse_pattern(pattern, "demosaic: pattern")
    c = check_cfa(cfa)
    padded, top, left = pad_cfa(c, pat)
    if p.method == "malvar2004":
        out = _malvar_rggb(padded, p.malvar_gains)
    elif p.method == "colour_difference":
        out = _colour_difference_rggb(padded, p.cd_smoothing)
    else:
        out = _RGGB_IMPL[p.method](padded)
    h, w = c.shape
    return np.ascontiguousarray(out[top:top + h, left:left + w])


def demosaic_bilinear(cfa: np.ndarray, pattern: Pattern | str = "RGGB") -> np.ndarray:
    return demosaic(cfa, pattern, DemosaicParams("bilinear"))


def demosaic_malvar2004(cfa: np.ndarray, pattern: Pattern | str = "RGGB") -> np.ndarray:
    return demosaic(cfa, pattern, DemosaicParams("malvar2004"))


def demosaic_directional(cfa: np.ndarray, pattern: Pattern | str = "RGGB") -> np.ndarray:
    return demosaic(cfa, pattern, DemosaicParams("directional"))
