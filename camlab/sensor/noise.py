"""Poisson–Gaussian sensor noise: model per analog gain, simulation, calibration from flat/dark frames or one image.

Foi, Trimeche, Katkovnik, Egiazarian, "Practical Poissonian-Gaussian noise modeling and fitting for single-image
raw-data", IEEE TIP 17(10), 2008; Healey & Kondepudy, "Radiometric CCD camera calibration and noise estimation",
IEEE TPAMI 16(3), 1994 (photon transfer); EMVA Standard 1288 release 4.0 (flat/dark pair method).

In normalized linear units (black = 0, white = 1) a pixel with noise-free value ``x`` reads
``z = a * Poisson(x / a) + N(0, b)``, so ``var(z | x) = a * x + b``. With analog gain ``g`` (1 = base ISO) the shot
term scales as ``a(g) = shot_1 * g`` and the read variance as ``b(g) = (read_pre * g)**2 + read_post**2`` (noise
before the amplifier is multiplied by the gain, ADC noise after it is not).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from camlab.errors import CamlabError


@dataclass(frozen=True)
class NoiseModel:
    """Poisson–Gaussian noise in normalized units: ``var = shot(g) * x + read(g)``.

    ``shot_1``: shot-noise slope at gain 1 (= 1 / full-well electrons). ``read_pre``: read-noise std at gain 1 before
    the amplifier; ``read_post``: read-noise std after it (ADC), both as fractions of the white level.
    """

    shot_1: float = 1.0 / 9000.0
    read_pre: float = 2.5 / 9000.0
    read_post: float = 0.6 / 4095.0

    def __post_init__(self) -> None:
        for name in ("shot_1", "read_pre", "read_post"):
            v = getattr(self, name)
            if not np.isfinite(v) or v < 0:
                raise CamlabError(f"NoiseModel.{name}: expected a finite value >= 0, got {v}")

    def shot(self, gain: float = 1.0) -> float:
        """Shot-noise variance slope ``a`` at analog gain ``gain`` (variance per unit of normalized signal)."""
        _check_gain(gain)
        return float(self.shot_1 * gain)

    def read(self, gain: float = 1.0) -> float:
        """Signal-independent read-noise variance ``b`` at analog gain ``gain`` (normalized units squared)."""
        _check_gain(gain)
        return float((self.read_pre * gain) ** 2 + self.read_post ** 2)

    def variance(self, x: np.ndarray | float, gain: float = 1.0) -> np.ndarray:
        """Noise variance at noise-free normalized level ``x`` (negative levels count as 0)."""
        return self.shot(gain) * np.maximum(np.asarray(x, dtype=np.float32), 0.0) + np.float32(self.read(gain))

    def std(self, x: np.ndarray | float, gain: float = 1.0) -> np.ndarray:
        return np.sqrt(self.variance(x, gain))

    def apply(self, cfa_linear: np.ndarray, gain: float = 1.0, rng: np.random.Generator | None = None,
              *, gaussian: bool = False) -> np.ndarray:
        """Add noise to a noise-free normalized linear CFA (or image); returns float32, not clipped.

        ``gaussian=True`` uses the heteroscedastic Gaussian approximation instead of exact Poisson sampling.
        """
        x = np.asarray(cfa_linear, dtype=np.float32)
        if not np.isfinite(x).all():
            raise CamlabError("NoiseModel.apply: cfa_linear contains NaN or infinite values")
        rng = np.random.default_rng() if rng is None else rng
        a, b = self.shot(gain), self.read(gain)
        xp = np.maximum(x, 0.0)
        if a <= 0:
            shot = xp
        elif gaussian:
            shot = xp + rng.standard_normal(x.shape, dtype=np.float32) * np.sqrt(a * xp).astype(np.float32)
        else:
            shot = (rng.poisson(xp.astype(np.float64) / a) * a).astype(np.float32)
        out = shot + (x - xp) + rng.standard_normal(x.shape, dtype=np.float32) * np.float32(np.sqrt(b))
        return out.astype(np.float32)


def _check_gain(gain: float) -> None:
    if not np.isfinite(gain) or gain <= 0:
        raise CamlabError(f"analog gain must be a positive finite number, got {gain}")


def gain_from_iso(iso: float, base_iso: float = 100.0) -> float:
    """Analog gain for an ISO setting (ISO ``base_iso`` = gain 1)."""
    if not np.isfinite(iso) or iso <= 0:
        raise CamlabError(f"iso must be positive, got {iso}")
    return float(iso) / float(base_iso)


@dataclass(frozen=True)
class NoiseFit:
    """Fitted ``var = a * x + b`` at one gain, with the points the fit used (level means and variances)."""

    a: float
    b: float
    means: np.ndarray
    variances: np.ndarray

    def to_model(self, gain: float = 1.0, read_post: float = 0.0) -> NoiseModel:
        """A :class:`NoiseModel` that reproduces this fit at ``gain`` (read noise attributed before the amplifier)."""
        _check_gain(gain)
        pre_var = max(self.b - read_post ** 2, 0.0)
        return NoiseModel(shot_1=max(self.a, 0.0) / gain, read_pre=float(np.sqrt(pre_var)) / gain,
                          read_post=read_post)


def _planes(cfa: np.ndarray) -> list[np.ndarray]:
    """The four CFA sub-images (one colour each); the noise model is the same on all four."""
    return [cfa[r::2, c::2] for r in (0, 1) for c in (0, 1)]


def _check_frame(x: np.ndarray, what: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim not in (2, 3) or x.shape[-1] < 8 or x.shape[-2] < 8:
        raise CamlabError(f"{what}: expected an (H, W) or (N, H, W) normalized CFA of at least 8x8, got {x.shape}")
    if not np.isfinite(x).all():
        raise CamlabError(f"{what}: contains NaN or infinite values")
    return x


def _box(x: np.ndarray, k: int) -> np.ndarray:
    """k x k mean filter (valid region)."""
    c = np.cumsum(np.cumsum(np.pad(x, ((1, 0), (1, 0))), 0), 1)
    return (c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]) / (k * k)


def _temporal_or_spatial_var(frames: np.ndarray) -> tuple[float, float]:
    """Mean level and noise variance of a flat (or dark) capture: temporal variance over N >= 2 frames (fixed
    pattern cancels), else the variance of the residual after a 5x5 local mean per CFA plane (illumination
    fall-off cancels; the residual variance is scaled by 25/24 for the mean's own share)."""
    if frames.ndim == 3 and frames.shape[0] >= 2:
        mean = float(frames.mean())
        var = float(frames.var(axis=0, ddof=1).mean())
        return mean, var
    f = frames[0] if frames.ndim == 3 else frames
    means, vars_ = [], []
    for p in _planes(f):
        if min(p.shape) < 5:
            raise CamlabError(f"flat/dark frame too small for a 5x5 local mean per CFA plane: {f.shape}")
        res = p[2:-2, 2:-2] - _box(p, 5)
        vars_.append(res.var() * 25.0 / 24.0)
        means.append(p.mean())
    return float(np.mean(means)), float(np.mean(vars_))


def calibrate_flat_dark(flat: np.ndarray, dark: np.ndarray) -> NoiseFit:
    """Photon-transfer calibration at one gain from a flat-field capture and a dark capture (EMVA 1288 style).

    ``flat``/``dark``: normalized linear CFA (black subtracted if known; the dark's mean is subtracted anyway),
    each (H, W) or a burst (N, H, W). Read variance ``b`` = dark noise variance; shot slope
    ``a = (var_flat - b) / (mean_flat - mean_dark)``.
    """
    flat = _check_frame(flat, "calibrate_flat_dark: flat")
    dark = _check_frame(dark, "calibrate_flat_dark: dark")
    mu_d, b = _temporal_or_spatial_var(dark)
    mu_f, var_f = _temporal_or_spatial_var(flat)
    signal = mu_f - mu_d
    if signal <= 1e-6:
        raise CamlabError(f"calibrate_flat_dark: flat mean {mu_f:.5f} is not above the dark mean {mu_d:.5f}")
    if mu_f > 0.9:
        raise CamlabError(f"calibrate_flat_dark: flat mean {mu_f:.3f} is near saturation; expose the flat at "
                          "20-70 % of white")
    a = (var_f - b) / signal
    return NoiseFit(a=float(a), b=float(b), means=np.array([0.0, signal]), variances=np.array([b, var_f]))


def calibrate_single_image(cfa: np.ndarray, *, block: int = 8, n_levels: int = 24,
                           clip_low: float = 0.002, clip_high: float = 0.95) -> NoiseFit:
    """Estimate ``var = a * x + b`` from one normalized raw CFA (Foi et al. 2008, simplified).

    Per CFA plane, a one-level Haar transform gives the approximation (2x2 mean) and the diagonal detail
    ``(z00 - z01 - z10 + z11) / 2`` (unit gain on white noise, blind to planes and ramps). Non-overlapping blocks of
    detail coefficients that are smooth in the approximation (low local gradient: Foi's edge masking) give local
    (mean, variance) pairs; these are grouped into level sets by mean, each level's variance is taken as a robust
    lower-quantile-corrected median, and ``a, b`` come from a weighted least-squares line through the level sets.
    """
    z = _check_frame(cfa, "calibrate_single_image: cfa")
    if z.ndim != 2:
        raise CamlabError(f"calibrate_single_image: expected one (H, W) CFA, got {z.shape}")
    mus, vs = [], []
    for p in _planes(z):
        h, w = (p.shape[0] // 2) * 2, (p.shape[1] // 2) * 2
        q = p[:h, :w]
        approx = (q[0::2, 0::2] + q[0::2, 1::2] + q[1::2, 0::2] + q[1::2, 1::2]) / 4.0
        detail = (q[0::2, 0::2] - q[0::2, 1::2] - q[1::2, 0::2] + q[1::2, 1::2]) / 2.0
        bh, bw = approx.shape[0] // block, approx.shape[1] // block
        if bh == 0 or bw == 0:
            raise CamlabError(f"calibrate_single_image: image {z.shape} too small for {block}x{block} blocks")
        A = approx[:bh * block, :bw * block].reshape(bh, block, bw, block)
        D = detail[:bh * block, :bw * block].reshape(bh, block, bw, block)
        m = A.mean(axis=(1, 3))
        v = (D ** 2).mean(axis=(1, 3))  # detail has zero mean for noise; squared mean = variance
        gy = np.abs(np.diff(A, axis=1)).mean(axis=(1, 3))
        gx = np.abs(np.diff(A, axis=3)).mean(axis=(1, 3))
        # Texture test: approximation gradients no larger than the noise explains (noise of a 2x2 mean is sigma/2,
        # a difference of two such has std sigma/sqrt(2); mean |.| of a Gaussian is 0.8 std).
        grad = np.maximum(gx, gy)
        smooth = grad <= 1.5 * 0.8 * np.sqrt(v / 2.0)
        lo, hi = A.min(axis=(1, 3)), A.max(axis=(1, 3))
        ok = smooth & (lo > clip_low) & (hi < clip_high)
        mus.append(m[ok])
        vs.append(v[ok])
    mu = np.concatenate(mus)
    var = np.concatenate(vs)
    if mu.size < 3 * n_levels:
        raise CamlabError(f"calibrate_single_image: only {mu.size} smooth unclipped blocks found; need a larger or "
                          "less textured image")
    edges = np.quantile(mu, np.linspace(0, 1, n_levels + 1))
    lm, lv, lw = [], [], []
    k2 = block * block
    for i in range(n_levels):
        sel = (mu >= edges[i]) & (mu <= edges[i + 1])
        if sel.sum() < 3:
            continue
        # Block variances are chi-square with k2 dof scaled by sigma^2; the median of chi2_k/k is about
        # (1 - 2/(9k))^3, so divide it out. The median is robust to residual texture.
        med = np.median(var[sel]) / (1.0 - 2.0 / (9.0 * k2)) ** 3
        lm.append(mu[sel].mean())
        lv.append(med)
        lw.append(sel.sum())
    lm_a, lv_a, w_a = np.array(lm), np.array(lv), np.array(lw, dtype=np.float64)
    # Weighted least squares: the std of a variance estimate is proportional to the variance itself.
    wts = w_a / np.maximum(lv_a, 1e-20) ** 2
    X = np.stack([lm_a, np.ones_like(lm_a)], axis=1)
    coef = np.linalg.solve(X.T @ (X * wts[:, None]), X.T @ (lv_a * wts))
    return NoiseFit(a=float(coef[0]), b=float(coef[1]), means=lm_a, variances=lv_a)


def fit_gain_model(fits: dict[float, NoiseFit]) -> NoiseModel:
    """A :class:`NoiseModel` from calibrations at several analog gains (e.g. a flat/dark pair per gain).

    Least squares through the origin for the shot slope, ``a(g) = shot_1 * g``, and a linear fit of the read variance
    in ``g**2``, ``b(g) = read_pre**2 * g**2 + read_post**2`` (both terms clipped at zero).
    """
    if len(fits) < 2:
        raise CamlabError(f"fit_gain_model: need calibrations at two or more gains, got {len(fits)}")
    g = np.array(sorted(fits), dtype=np.float64)
    if (g <= 0).any() or not np.isfinite(g).all():
        raise CamlabError(f"fit_gain_model: gains must be positive, got {g.tolist()}")
    a = np.array([fits[k].a for k in sorted(fits)])
    b = np.array([fits[k].b for k in sorted(fits)])
    shot_1 = float(max((g @ a) / (g @ g), 0.0))
    X = np.stack([g ** 2, np.ones_like(g)], axis=1)
    (pre2, post2), *_ = np.linalg.lstsq(X, b, rcond=None)
    return NoiseModel(shot_1=shot_1, read_pre=float(np.sqrt(max(pre2, 0.0))), read_post=float(np.sqrt(max(post2, 0.0))))
