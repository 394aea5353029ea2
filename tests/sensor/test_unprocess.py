"""Unprocessing (Brooks et al. 2019): round trip, mosaic layout, noise level, IR mode, bad input."""
from __future__ import annotations

import numpy as np
import pytest

from camlab.errors import CamlabError
from camlab.sensor.cfa import PATTERNS, mosaic
from camlab.sensor.noise import NoiseModel
from camlab.sensor.unprocess import (inverse_smoothstep, linear_to_srgb, process, smoothstep, srgb_to_linear,
                                     unprocess)


def _image(h=64, w=96, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / np.array([h, w])[:, None, None]
    img = np.stack([0.2 + 0.6 * xx, 0.1 + 0.7 * yy, 0.5 + 0.3 * np.sin(6 * xx)], -1)
    return np.clip(img + rng.normal(0, 0.02, img.shape), 0, 1).astype(np.float32)


def test_transfer_functions_invert():
    x = np.linspace(0, 1, 1001, dtype=np.float32)
    np.testing.assert_allclose(linear_to_srgb(srgb_to_linear(x)), x, atol=2e-6)
    np.testing.assert_allclose(smoothstep(inverse_smoothstep(x)), x, atol=2e-6)
    assert srgb_to_linear(np.float32(0.5)) == pytest.approx(0.21404, abs=1e-5)  # IEC 61966-2-1


@pytest.mark.parametrize("pattern", PATTERNS)
def test_unprocess_roundtrip(pattern):
    img = _image()
    frame, t = unprocess(img, np.random.default_rng(1), pattern=pattern, add_noise=False)
    # The inverse steps (WB, CCM, gamma, tone) give the input back wherever nothing was clipped.
    back = process(t.camera_rgb, t.wb_gains, t.ccm, t.exposure_gain)
    ok = (t.camera_rgb > 1e-4).all(-1) & (t.camera_rgb < 0.85).all(-1)
    assert ok.mean() > 0.9
    np.testing.assert_allclose(back[ok], img[ok], atol=1e-4)
    # The frame is the mosaic of the truth, quantized to 12 bits above the black level.
    assert frame.pattern == pattern and frame.bits == 12 and frame.black_level == 256.0
    np.testing.assert_allclose(frame.normalized(), mosaic(t.camera_rgb, pattern), atol=0.5 / (4095 - 256) + 1e-6)
    assert frame.wb_gains == t.wb_gains and np.array_equal(frame.ccm, t.ccm)
    assert 1.9 <= t.wb_gains[0] <= 2.4 and 1.5 <= t.wb_gains[2] <= 1.9
    np.testing.assert_allclose(t.ccm.sum(axis=1), 1.0, atol=1e-6)


def test_unprocess_noise_matches_model():
    img = np.full((128, 128, 3), 0.5, np.float32)
    nm = NoiseModel()
    f0, t = unprocess(img, np.random.default_rng(2), iso=800, add_noise=False, illuminant=(2, 1, 1.7), ccm=np.eye(3))
    f1, _ = unprocess(img, np.random.default_rng(2), iso=800, noise=nm, illuminant=(2, 1, 1.7), ccm=np.eye(3))
    assert f1.analog_gain == 8.0 and f1.iso == 800.0
    diff = f1.normalized()[::2, ::2] - f0.normalized()[::2, ::2]   # R plane of RGGB
    level = float(t.camera_rgb[0, 0, 0])
    assert diff.var() == pytest.approx(float(nm.variance(level, 8.0)), rel=0.1)


def test_ir_mode_is_monochrome():
    frame, t = unprocess(_image(), np.random.default_rng(3), ir_mode=True, add_noise=False, pattern="GBRG")
    bal = t.camera_rgb * np.array(t.wb_gains) * t.exposure_gain
    assert t.ir_mode and np.allclose(t.ccm, np.eye(3))
    np.testing.assert_allclose(bal[..., 0], bal[..., 1], atol=1e-5)
    np.testing.assert_allclose(bal[..., 2], bal[..., 1], atol=1e-5)


def test_uint8_and_bits():
    img = (np.random.default_rng(4).random((20, 30, 3)) * 255).astype(np.uint8)
    f, t = unprocess(img, np.random.default_rng(4), bits=10, pattern="bggr")
    assert f.pattern == "BGGR" and f.white_level == 1023 and f.black_level == 64 and f.data.max() <= 1023


def test_bad_input():
    with pytest.raises(CamlabError, match="NaN"):
        unprocess(np.full((4, 4, 3), np.nan, np.float32))
    with pytest.raises(CamlabError, match=r"\(H, W, 3\)"):
        unprocess(np.zeros((4, 4), np.float32))
    with pytest.raises(CamlabError, match="pattern.*'RGBX'"):
        unprocess(np.zeros((4, 4, 3), np.float32), pattern="RGBX")
    with pytest.raises(CamlabError, match=r"\[0, 1\]"):
        unprocess(np.full((4, 4, 3), 2.0, np.float32))
