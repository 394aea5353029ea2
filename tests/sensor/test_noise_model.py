"""Poisson–Gaussian model: simulation statistics and calibration recovering known parameters."""
from __future__ import annotations

import numpy as np
import pytest

from camlab.errors import CamlabError
from camlab.sensor.noise import NoiseModel, calibrate_flat_dark, calibrate_single_image, gain_from_iso

MODEL = NoiseModel(shot_1=1 / 2000, read_pre=5 / 2000, read_post=0.002)


def test_model_scales_with_gain():
    m = MODEL
    assert m.shot(4) == pytest.approx(4 * m.shot(1))
    assert m.read(4) == pytest.approx((4 * 5 / 2000) ** 2 + 0.002 ** 2)
    assert gain_from_iso(800) == 8.0
    with pytest.raises(CamlabError, match="gain"):
        m.shot(0)


@pytest.mark.parametrize("gaussian", [False, True])
def test_apply_matches_variance(gaussian):
    rng = np.random.default_rng(0)
    for level in (0.0, 0.05, 0.5):
        x = np.full((200, 200), level, np.float32)
        z = MODEL.apply(x, 2.0, rng, gaussian=gaussian)
        assert z.dtype == np.float32
        assert abs(z.mean() - level) < 4 * np.sqrt(MODEL.variance(level, 2.0) / z.size) + 1e-6
        assert z.var() == pytest.approx(float(MODEL.variance(level, 2.0)), rel=0.03)


def test_apply_rejects_nan():
    with pytest.raises(CamlabError, match="NaN"):
        MODEL.apply(np.array([[np.nan, 0.1]], np.float32), 1.0)


def _scene(h=512, w=768):
    yy, xx = np.mgrid[0:h, 0:w] / np.array([h, w])[:, None, None]
    clean = (0.05 + 0.8 * xx * (0.3 + 0.7 * yy)).astype(np.float32)
    clean[100:200, 100:300] = 0.6   # edges the estimator must mask out
    clean[300:400, 400:700] = 0.15
    return clean


@pytest.mark.parametrize("gain", [1.0, 4.0])
def test_single_image_calibration_recovers_parameters(gain):
    rng = np.random.default_rng(int(gain))
    fit = calibrate_single_image(MODEL.apply(_scene(), gain, rng))
    assert fit.a == pytest.approx(MODEL.shot(gain), rel=0.10)
    assert fit.b == pytest.approx(MODEL.read(gain), rel=0.25)
    m = fit.to_model(gain)
    assert m.shot(gain) == pytest.approx(fit.a) and m.read(gain) == pytest.approx(fit.b)


def test_flat_dark_calibration_recovers_parameters():
    rng = np.random.default_rng(5)
    g = 4.0
    flat = np.stack([MODEL.apply(np.full((128, 128), 0.4, np.float32), g, rng) for _ in range(2)])
    dark = np.stack([MODEL.apply(np.zeros((128, 128), np.float32), g, rng) for _ in range(2)])
    fit = calibrate_flat_dark(flat, dark)
    assert fit.a == pytest.approx(MODEL.shot(g), rel=0.05)
    assert fit.b == pytest.approx(MODEL.read(g), rel=0.05)
    # One flat with a smooth illumination ramp and fixed-pattern-free sensor: spatial estimate.
    ramp = np.clip(0.3 + 0.1 * np.linspace(0, 1, 256)[None, :], 0, 1).repeat(256, 0).astype(np.float32)
    fit1 = calibrate_flat_dark(MODEL.apply(ramp, g, rng), MODEL.apply(np.zeros((256, 256), np.float32), g, rng))
    assert fit1.a == pytest.approx(MODEL.shot(g), rel=0.08)
    with pytest.raises(CamlabError, match="saturation"):
        calibrate_flat_dark(np.full((64, 64), 0.99), dark)
    with pytest.raises(CamlabError, match="NaN"):
        calibrate_flat_dark(np.full((64, 64), np.nan), dark)


def test_gain_model_from_flat_dark_pairs():
    from camlab.sensor.noise import fit_gain_model

    rng = np.random.default_rng(11)
    fits = {}
    for g in (1.0, 2.0, 4.0, 8.0):
        flat = np.stack([MODEL.apply(np.full((96, 96), 0.3, np.float32), g, rng) for _ in range(2)])
        dark = np.stack([MODEL.apply(np.zeros((96, 96), np.float32), g, rng) for _ in range(2)])
        fits[g] = calibrate_flat_dark(flat, dark)
    m = fit_gain_model(fits)
    assert m.shot_1 == pytest.approx(MODEL.shot_1, rel=0.05)
    assert m.read_pre == pytest.approx(MODEL.read_pre, rel=0.1)
    assert m.read(1.0) == pytest.approx(MODEL.read(1.0), rel=0.2)
    with pytest.raises(CamlabError, match="two or more gains"):
        fit_gain_model({1.0: fits[1.0]})


def test_single_image_calibration_on_real_dng(shared_data):
    """On the real colorchart DNG the fitted line explains the measured level-set variances and gives a plausible
    full-well capacity (1 / a electrons at this gain)."""
    from camlab.sensor.raw_io import read_raw

    fit = calibrate_single_image(read_raw(shared_data / "raw" / "colorchart.dng").normalized())
    assert 1e3 < 1.0 / fit.a < 1e5
    pred = fit.a * fit.means + fit.b
    assert float(np.median(np.abs(pred - fit.variances) / fit.variances)) < 0.2
