"""Pipeline: golden reference-vs-fast on all four Bayer patterns and odd sizes, tunings, YAML errors, state."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from camlab.config import load_config
from camlab.errors import CamlabError, ConfigError
from camlab.isp.pipeline import IspState, Pipeline, PipelineConfig, load_tuning
from camlab.isp.stages.csc import nv12_to_rgb
from camlab.isp.stages.scale import ScaleParams
from camlab.sensor.cfa import PATTERNS, mosaic
from camlab.sensor.noise import NoiseModel
from camlab.sensor.raw_io import RawFrame


def _scene(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth colour gradients, a few sharp-edged rectangles and fine texture (linear RGB in [0, 0.9])."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.stack([0.2 + 0.5 * xx, 0.3 + 0.4 * yy, 0.5 - 0.3 * xx * yy], axis=-1)
    for _ in range(6):
        y0, x0 = rng.integers(0, h - 4), rng.integers(0, w - 4)
        img[y0:y0 + rng.integers(3, h // 2), x0:x0 + rng.integers(3, w // 2)] = rng.uniform(0.02, 0.9, 3)
    img += 0.03 * np.sin(xx * 90)[..., None]
    return np.clip(img, 0, 0.9)


def _frame(pattern: str, h: int, w: int, gain: float = 4.0, seed: int = 0, defects: bool = True) -> RawFrame:
    rng = np.random.default_rng(seed)
    lin = mosaic(_scene(h, w, seed) * np.array([0.5, 1.0, 0.7]), pattern)
    lin = NoiseModel().apply(lin, gain, rng)
    dn = np.clip(np.rint(64 + lin * (4095 - 64)), 0, 4095).astype(np.uint16)
    if defects:
        dn[h // 3, w // 3] = 4095
        dn[h // 2, w - 2] = 0
    return RawFrame(data=dn, pattern=pattern, black_level=64.0, white_level=4095.0, bits=12, analog_gain=gain,
                    exposure_s=1 / 60)


def _cfg(main=(64, 36), **over) -> PipelineConfig:
    base = load_tuning("sc3336_day")
    return dataclasses.replace(base, scale=ScaleParams(main=main, sub=(32, 18)), **over)


@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("size", [(46, 80), (45, 67)])
def test_golden_reference_vs_fast(pattern, size):
    h, w = size
    cfg = _cfg()
    ref, fast = Pipeline(cfg), Pipeline(cfg, fast=True)
    sr, sf = IspState(), IspState()
    for k in range(3):  # three frames: the 3D-DNR and AWB state is compared too
        fr = _frame(pattern, h, w, seed=k)
        a, b = ref.run(fr, sr), fast.run(fr, sf)
        for name in ("main_nv12", "sub_nv12"):
            d = np.abs(getattr(a, name).astype(int) - getattr(b, name).astype(int))
            assert d.max() <= 1 and d.mean() < 0.01, (name, k, d.max(), d.mean())
        assert a.stats["awb_gains"] == pytest.approx(b.stats["awb_gains"], rel=1e-6)
    # float32 rounding can move a pixel across a sigma-LUT bin edge, which changes its NR weights a little: the
    # state may differ by a fraction of an 8-bit code at a few pixels, and by ~1e-6 on average
    for a_, b_ in ((sr.prev_y, sf.prev_y), (sr.prev_uv, sf.prev_uv)):
        assert np.abs(a_ - b_).max() < 2e-3 and np.abs(a_ - b_).mean() < 2e-5
    assert sr.ae == sf.ae


@pytest.mark.parametrize("pattern", PATTERNS)
def test_pipeline_renders_the_scene(pattern):
    """Output colours follow the scene: a noise-free grey-world scene comes out neutral and bright where it should."""
    h, w = 72, 128
    fr = _frame(pattern, h, w, gain=1.0, defects=False)
    cfg = _cfg(main=(128, 72))
    res = Pipeline(cfg, fast=True).run(fr, rgb=True)
    truth = _scene(h, w)
    # the brightest/darkest quarter of the truth's green map to bright/dark output
    out_g = res.rgb[..., 1]
    assert out_g[truth[..., 1] > np.quantile(truth[..., 1], 0.75)].mean() > out_g[truth[..., 1] < np.quantile(
        truth[..., 1], 0.25)].mean() + 0.1
    assert res.main_nv12.shape == (108, 128) and res.sub_nv12.shape == (27, 32)
    # malvar2004 (the day tuning): front end, demosaic and colour run as one line-buffered pass
    assert set(res.timings_ms) >= {"stats", "front_demosaic_colour", "nr", "sharpen", "scale_main", "scale_sub"}


def test_taps_timings_and_sizes_reference():
    fr = _frame("GRBG", 90, 160)
    res = Pipeline(_cfg(main=(160, 90))).run(fr, taps=True, rgb=True)
    for stage in ("blc", "dpc", "lsc", "wb", "demosaic", "ccm", "tone", "nr2d_y", "nr2d_uv", "sharpen_y", "main_y"):
        assert stage in res.taps, stage
    assert res.taps["demosaic"].shape == (90, 160, 3) and res.taps["nr2d_uv"].shape == (45, 80, 2)
    assert res.rgb.shape == (90, 160, 3) and res.rgb.dtype == np.float32
    assert res.taps["dpc"][30, 53] < 0.9 < res.taps["blc"][30, 53]  # the injected hot pixel is gone
    for stage in ("blc", "dpc", "lsc", "gain", "wb", "demosaic", "ccm", "tone", "csc", "nr2d", "nr3d", "sharpen",
                  "scale", "nv12"):
        assert res.timings_ms[stage] >= 0.0, stage
    np.testing.assert_allclose(nv12_to_rgb(res.main_nv12), res.rgb, atol=2.5 / 255)


def test_default_main_size_and_substream():
    fr = _frame("RGGB", 1080, 1920, gain=1.0, defects=False)
    res = Pipeline(load_tuning("sc3336_day"), fast=True).run(fr)
    assert res.main_nv12.shape == (1620, 1920) and res.sub_nv12.shape == (540, 640)


def test_ir_tuning_is_monochrome():
    fr = _frame("BGGR", 72, 128)
    cfg = dataclasses.replace(load_tuning("sc3336_ir"), scale=ScaleParams(main=(128, 72), sub=(64, 36)))
    for fast in (False, True):
        res = Pipeline(cfg, fast=fast).run(fr)
        assert np.all(res.main_nv12[72:] == 128) and np.all(res.sub_nv12[36:] == 128)
        assert res.main_nv12[:72].std() > 5


def test_temporal_state_reduces_noise_on_a_static_scene():
    cfg = _cfg(main=(128, 72), sharpen=dataclasses.replace(load_tuning("sc3336_day").sharpen, enabled=False))
    pipe = Pipeline(cfg, fast=True)
    state = pipe.new_state()
    ys = []
    for k in range(6):
        res = pipe.run(_frame("RGGB", 72, 128, gain=8.0, seed=100 + k, defects=False), state)
        ys.append(res.main_nv12[:72].astype(float))
    still = pipe.run(_frame("RGGB", 72, 128, gain=8.0, seed=200, defects=False)).main_nv12[:72].astype(float)
    clean = Pipeline(cfg, fast=True).run(_frame("RGGB", 72, 128, gain=1e-3, seed=1, defects=False))
    ref = clean.main_nv12[:72].astype(float)
    assert np.abs(ys[-1] - ref).mean() < 0.8 * np.abs(still - ref).mean()
    assert state.frames == 6 and state.prev_y.shape == (72, 128)


def test_ae_state_moves_towards_target():
    pipe = Pipeline(_cfg(main=(128, 72)), fast=True)
    state = pipe.new_state()
    dark = _frame("RGGB", 72, 128, gain=1.0, defects=False)
    dark = dark.with_data((64 + (dark.data.astype(int) - 64) // 20).astype(np.uint16))
    res = pipe.run(dark, state)
    assert res.stats["mean_luma"] < 0.05
    assert state.ae.exposure_s * state.ae.analog_gain > dark.exposure_s * dark.analog_gain  # brighten next frame
    assert "brightness" in res.stats and res.stats["zones"].r.shape == (12, 16)


def test_yaml_unknown_key_is_named(tmp_path):
    p = tmp_path / "t.yaml"
    p.write_text("nr2d:\n  strenght_y: 2.0\n")
    with pytest.raises(ConfigError, match="nr2d.strenght_y"):
        Pipeline.from_yaml(p)
    p.write_text("tone:\n  gamma: srgbb\n")
    with pytest.raises(ConfigError, match="tone.gamma"):
        load_config(PipelineConfig, p)
    p.write_text("scale:\n  main: [1921, 1080]\n")
    with pytest.raises(ConfigError, match="even"):
        load_config(PipelineConfig, p)
    p.write_text("dpc:\n  threshold: .nan\n")
    with pytest.raises(ConfigError, match="NaN"):
        load_config(PipelineConfig, p)
    p.write_text("nr2d:\n  median_c: maybe\n")
    with pytest.raises(ConfigError, match="nr2d.median_c' expected bool"):
        load_config(PipelineConfig, p)


def test_both_device_tunings_load():
    day, ir = load_tuning("sc3336_day"), load_tuning("sc3336_ir")
    assert not day.mono and ir.mono and day.scale.sub == (640, 360)
    assert ir.wb.mode == "manual"


def test_run_rejects_non_frames():
    with pytest.raises(CamlabError):
        Pipeline().run(np.zeros((8, 8), np.uint16))
