"""Camera-domain rendering through camlab.sensor.unprocess + camlab.isp.Pipeline, and its cache."""
from __future__ import annotations

import numpy as np
import pytest

from camlab.data import render as R
from camlab.train.synthetic import make_yolo_folder


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CAMLAB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_variants_are_seeded_and_mixed():
    cfg = R.RenderConfig(p_ir=0.5)
    vs = [R.variant_params(R.Path(f"img{i}.jpg"), 0, cfg, 3) for i in range(200)]
    assert vs[7] == R.variant_params(R.Path("img7.jpg"), 0, cfg, 3)
    assert 60 < sum(v.ir for v in vs) < 140
    day = [v.gain for v in vs if not v.ir]
    assert min(day) >= 1.0 and max(day) <= 16.0 and max(day) / min(day) > 4
    with pytest.raises(ValueError):
        R.RenderConfig(p_ir=1.5)


def test_render_day_and_ir(tmp_path):
    root = make_yolo_folder(tmp_path / "y", 6, seed=5, size=(128, 96), negatives=0)
    img = R.even_size(R.read_rgb(sorted((root / "images").glob("*.jpg"))[0]), 384)
    cfg = R.RenderConfig()
    day = R.render_rgb(img, R.Variant(0, False, 1.0, 1), cfg)
    ir = R.render_rgb(img, R.Variant(0, True, 8.0, 1), cfg)
    assert day.shape == img.shape and day.dtype == np.uint8
    # IR night mode is monochrome (NV12 with neutral chroma); day keeps colour and the scene
    assert np.abs(ir[..., 0].astype(int) - ir[..., 2]).max() <= 3
    assert np.abs(day[..., 0].astype(int) - day[..., 2]).mean() > 5
    corr = np.corrcoef(img.mean(axis=2).ravel(), day.mean(axis=2).ravel())[0, 1]
    assert corr > 0.8
    noisy = R.render_rgb(img, R.Variant(0, False, 16.0, 1), cfg)
    assert not np.array_equal(noisy, day)


def test_cache_and_counted_failures(tmp_path, cache):
    root = make_yolo_folder(tmp_path / "y", 3, seed=6, size=(96, 64))
    imgs = sorted((root / "images").glob("*.jpg"))
    broken = root / "images" / "zz_broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff" + b"\x00" * 20)   # JPEG signature, undecodable body
    cfg = R.RenderConfig(variants=2, workers=1)
    rep = R.prerender(imgs + [broken], cfg, seed=0, show_progress=False)
    assert rep["jobs"] == 8 and rep["rendered"] == 6 and rep["failed"] == 2 and rep["cached"] == 0
    assert all(str(broken) == f for f, _ in rep["failures"])
    files = sorted(cache.rglob("*.jpg"))
    assert len(files) == 6
    mtimes = [f.stat().st_mtime_ns for f in files]
    rep2 = R.prerender(imgs, cfg, seed=0, show_progress=False)
    assert rep2["cached"] == 6 and rep2["rendered"] == 0
    assert [f.stat().st_mtime_ns for f in files] == mtimes


def test_calibration_inputs(cache, shared_data):
    x = R.calibration_inputs(2, seed=1)
    assert x.shape == (2, 3, 192, 320) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0 and x.std() > 0.05
