"""The no-reference measures the ISP bench reports on real raw frames (issue 15): each can move and can fail."""
from __future__ import annotations

import numpy as np
import pytest

from benchmarks.bench_isp import luma, noise_sigma_immerkaer, tenengrad


@pytest.mark.parametrize("sigma", [0.005, 0.02, 0.05])
def test_immerkaer_recovers_added_gaussian_noise(sigma):
    rng = np.random.default_rng(0)
    ramp = np.tile(np.linspace(0.2, 0.8, 512, dtype=np.float32), (384, 1))   # a smooth ramp carries no "noise"
    est = noise_sigma_immerkaer(ramp + rng.normal(0, sigma, ramp.shape).astype(np.float32))
    assert est == pytest.approx(sigma, rel=0.08)
    assert noise_sigma_immerkaer(ramp) < 1e-4


def test_tenengrad_rises_with_edges_and_luma_is_exposure_neutral():
    flat = np.full((64, 64), 0.5, np.float32)
    edges = flat.copy()
    edges[:, ::8] = 1.0
    assert tenengrad(flat) == pytest.approx(0.0, abs=1e-6)
    assert tenengrad(edges) > 0.1
    rgb = np.random.default_rng(1).uniform(0, 1, (32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(luma(rgb), luma(0.25 * rgb), rtol=1e-5)
    assert luma(rgb).mean() == pytest.approx(0.5, rel=1e-5)
