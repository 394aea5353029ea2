"""Display-space PSNR and the deterministic quality image set."""
from __future__ import annotations

import numpy as np
import pytest

from camlab.errors import CamlabError
from camlab.isp.quality import display_psnr, load_quality_images, psnr, quality_image_paths, to_display
from camlab.sensor.unprocess import process, unprocess


def test_psnr_values():
    a = np.zeros((10, 10, 3))
    b = np.full((10, 10, 3), 0.1)
    assert psnr(a, b) == pytest.approx(20.0)
    assert psnr(a, a) == float("inf")
    b[0] = 1.0  # the border is ignored
    assert psnr(a, b, border=1) == pytest.approx(20.0)
    with pytest.raises(CamlabError, match="shapes differ"):
        psnr(a, b[:5])
    with pytest.raises(CamlabError, match="NaN"):
        psnr(a, np.full_like(a, np.nan))


def test_display_transform_matches_forward_process():
    img = (np.random.default_rng(0).random((32, 40, 3)) * 200).astype(np.uint8)
    frame, t = unprocess(img, np.random.default_rng(1), add_noise=False)
    disp = to_display(t.camera_rgb, t.wb_gains, t.ccm, t.exposure_gain)
    np.testing.assert_allclose(disp, process(t.camera_rgb, t.wb_gains, t.ccm, t.exposure_gain, tone=False),
                               atol=1e-6)
    assert 0.0 <= disp.min() and disp.max() <= 1.0
    assert display_psnr(t.camera_rgb, t, border=2) == float("inf")
    worse = t.camera_rgb * 1.05
    assert 20 < display_psnr(worse, t, border=2) < 40


def test_quality_images_deterministic(shared_data):
    paths = quality_image_paths(6)
    assert paths == quality_image_paths(6)
    assert len({p.parent for p in paths}) >= 3  # drawn from several sources
    imgs = load_quality_images(3)
    assert [n for n, _ in imgs] == [p.name for p in paths[:3]]
    for _, im in imgs:
        assert im.dtype == np.uint8 and im.ndim == 3 and im.shape[0] % 2 == 0 and im.shape[1] % 2 == 0
    with pytest.raises(CamlabError, match="positive integer"):
        quality_image_paths(0)
