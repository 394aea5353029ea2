"""ISP stages: properties of each pure stage function on synthetic data with known answers."""
from __future__ import annotations

import numpy as np
import pytest

from camlab.isp.stages import cfa_tile
from camlab.isp.stages.awb import AwbParams, awb_gains
from camlab.isp.stages.blc import black_level_correct
from camlab.isp.stages.ccm import apply_ccm, effective_matrix
from camlab.isp.stages.csc import (i420_to_rgb, nv12_to_rgb, pack_nv12, rgb_to_i420, rgb_to_nv12, rgb_to_yuv,
                                   unpack_nv12, yuv_to_rgb)
from camlab.isp.stages.dpc import DpcParams, correct_defects
from camlab.isp.stages.lsc import LscParams, calibrate_lsc, gain_map, lens_shading_correct
from camlab.isp.stages.nr2d import Nr2dParams, denoise_chroma, denoise_luma, display_noise_lut
from camlab.isp.stages.nr3d import Nr3dParams, blend_weight, motion_difference, temporal_denoise
from camlab.isp.stages.scale import ScaleParams, crop_window, resize, scale_streams
from camlab.isp.stages.sharpen import SharpenParams, sharpen_luma
from camlab.isp.stages.tone import ToneParams, srgb_decode, srgb_encode, tone_lut, tone_map
from camlab.isp.stages.wb import white_balance_cfa
from camlab.sensor.cfa import PATTERNS, mosaic

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("pattern", PATTERNS)
def test_blc_per_channel(pattern):
    black = (64.0, 60.0, 70.0, 50.0)
    raw = np.tile(cfa_tile(black, pattern), (4, 4)).astype(np.uint16) + 100
    out = black_level_correct(raw, pattern, black, 1023.0)
    expect = 100.0 / (1023.0 - np.tile(cfa_tile(black, pattern), (4, 4)))
    np.testing.assert_allclose(out, expect, rtol=1e-6)
    assert black_level_correct(np.zeros((4, 4), np.uint16), pattern, black, 1023.0).min() == 0.0  # clipped
    with pytest.raises(ValueError):
        black_level_correct(raw, pattern, 2000, 1023.0)


def test_dpc_fixes_hot_and_dead_pixels_only():
    cfa = (0.3 + 0.01 * RNG.standard_normal((40, 40))).astype(np.float32)
    bad = cfa.copy()
    bad[10, 10], bad[21, 30], bad[0, 0], bad[39, 38] = 1.0, 0.0, 1.0, 0.9
    out, mask = correct_defects(bad, DpcParams(threshold=0.1))
    assert set(zip(*np.nonzero(mask))) == {(10, 10), (21, 30), (0, 0), (39, 38)}
    assert np.abs(out - cfa).max() < 0.05
    clean, m2 = correct_defects(cfa, DpcParams(threshold=0.1))
    assert not m2.any() and np.array_equal(clean, cfa)


@pytest.mark.parametrize("pattern", ["RGGB", "GBRG"])
def test_lsc_calibration_flattens_a_vignetted_flat(pattern):
    h, w = 120, 160
    yy, xx = np.mgrid[0:h, 0:w]
    r2 = ((yy - h / 2) / (h / 2)) ** 2 + ((xx - w / 2) / (w / 2)) ** 2
    shading = 1.0 / (1.0 + 0.4 * r2)
    colour = np.tile(cfa_tile((0.5, 0.6, 0.6, 0.4), pattern), (h // 2, w // 2))
    flat = (colour * shading).astype(np.float32)
    grid = calibrate_lsc(flat, pattern, (9, 11))
    corrected = lens_shading_correct(flat, gain_map((h, w), pattern, LscParams(grid=grid.tolist())))
    for r in range(2):
        for c in range(2):
            plane = corrected[r::2, c::2][3:-3, 3:-3]
            assert plane.std() / plane.mean() < 0.01  # flat within 1 % (the raw flat varies by ~30 %)
    assert flat[0::2, 0::2].std() / flat[0::2, 0::2].mean() > 0.05


@pytest.mark.parametrize("pattern", PATTERNS)
def test_white_balance_and_grey_world(pattern):
    rgb = RNG.uniform(0.05, 0.8, (64, 64, 3)).astype(np.float32)
    illum = np.array([0.5, 1.0, 0.7], np.float32)
    cast = rgb * illum
    cfa = mosaic(cast, pattern)
    gains = (1 / 0.5, 1.0, 1 / 0.7)
    np.testing.assert_allclose(white_balance_cfa(cfa, pattern, gains, clip=False), mosaic(rgb, pattern), rtol=1e-5)
    for method in ("grey_world", "shades_of_grey", "grey_edge", "white_patch"):
        g = awb_gains(cast, AwbParams(method=method, percentile=99.9))
        # random uniform RGB is grey on average: every estimator recovers the cast within a few percent
        np.testing.assert_allclose(g, gains, rtol=0.06, err_msg=method)


def test_ccm_identity_and_mono():
    rgb = RNG.uniform(0, 1, (8, 8, 3)).astype(np.float32)
    np.testing.assert_allclose(apply_ccm(rgb, np.eye(3)), rgb, atol=1e-7)
    mono = apply_ccm(rgb, effective_matrix(None, mono=True))
    assert np.allclose(mono[..., 0], mono[..., 1]) and np.allclose(mono[..., 1], mono[..., 2])
    m = effective_matrix([1.6, -0.4, -0.2, -0.3, 1.5, -0.2, 0.0, -0.5, 1.5], saturation=1.0)
    white = apply_ccm(np.full((1, 1, 3), 0.5, np.float32), m)
    np.testing.assert_allclose(white, 0.5, atol=1e-6)  # rows sum to 1: white stays white


def test_tone_srgb_and_lut():
    x = np.linspace(0, 1, 1001).astype(np.float32)
    np.testing.assert_allclose(srgb_decode(srgb_encode(x)), x, atol=2e-6)
    assert abs(float(srgb_encode(np.float32(0.18))) - 0.4614) < 1e-3
    p = ToneParams(contrast=0.3)
    y = tone_map(x[:, None], p)[:, 0]
    assert np.all(np.diff(y) >= 0) and y[0] == 0 and abs(y[-1] - 1) < 1e-6
    lut = tone_lut(p)
    np.testing.assert_allclose(np.interp(x, np.linspace(0, 1, lut.size), lut), y, atol=2e-4)


@pytest.mark.parametrize("matrix", ["bt601", "bt709"])
@pytest.mark.parametrize("rng", ["full", "limited"])
def test_csc_round_trip_and_layout(matrix, rng):
    rgb = RNG.uniform(0, 1, (6, 8, 3)).astype(np.float32)
    rgb = np.repeat(np.repeat(rgb[::2, ::2], 2, 0), 2, 1)  # constant 2x2 blocks: 4:2:0 loses nothing
    np.testing.assert_allclose(yuv_to_rgb(rgb_to_yuv(rgb, matrix), matrix), rgb, atol=1e-5)
    nv12 = rgb_to_nv12(rgb, matrix, rng)
    assert nv12.shape == (9, 8) and nv12.dtype == np.uint8
    back = nv12_to_rgb(nv12, matrix, rng)
    assert np.abs(back - rgb).max() < 2.5 / 255  # 8-bit quantisation of Y and C: within ~2 LSB
    i420 = rgb_to_i420(rgb, matrix, rng)
    assert i420.shape == (6 * 8 * 3 // 2,)
    np.testing.assert_array_equal(i420[:48], nv12[:6].ravel())  # same luma plane
    np.testing.assert_array_equal(i420[48:60], nv12[6:, 0::2].ravel())  # Cb plane = even NV12 chroma bytes
    np.testing.assert_array_equal(i420[60:], nv12[6:, 1::2].ravel())  # Cr plane = odd ones
    assert np.abs(i420_to_rgb(i420, 8, 6, matrix, rng) - back).max() < 1e-6


def test_csc_reference_codes():
    white, black = np.ones((2, 2, 3), np.float32), np.zeros((2, 2, 3), np.float32)
    assert rgb_to_nv12(white, "bt709", "limited")[:2].tolist() == [[235, 235], [235, 235]]
    assert rgb_to_nv12(black, "bt709", "limited")[:2].min() == 16
    assert rgb_to_nv12(white, "bt601", "full")[2].tolist() == [128, 128]
    red = np.zeros((2, 2, 3), np.float32)
    red[..., 0] = 1
    nv = rgb_to_nv12(red, "bt601", "limited")  # BT.601 red: Y 81, Cb 90, Cr 240
    assert (int(nv[0, 0]), int(nv[2, 0]), int(nv[2, 1])) == (81, 90, 240)
    y, uv = unpack_nv12(nv, "limited")
    assert y.shape == (2, 2) and uv.shape == (1, 1, 2)
    with pytest.raises(ValueError):
        pack_nv12(np.zeros((4, 4)), np.zeros((1, 1, 2)))


def test_scaler_sizes_and_dc():
    y = np.full((1080, 1920), 0.4, np.float32)
    uv = np.full((540, 960, 2), 0.1, np.float32)
    s = scale_streams(y, uv, ScaleParams(main=(1280, 720), sub=(640, 360)))
    assert s["main"][0].shape == (720, 1280) and s["main"][1].shape == (360, 640, 2)
    assert s["sub"][0].shape == (360, 640) and s["sub"][1].shape == (180, 320, 2)
    np.testing.assert_allclose(s["sub"][0], 0.4, atol=1e-6)
    np.testing.assert_allclose(s["main"][1], 0.1, atol=1e-6)
    assert crop_window(2304, 1296, 640, 360) == (0, 0, 2304, 1296)  # 16:9 source: no crop
    assert crop_window(1888, 1182, 640, 360) == (0, 60, 1888, 1062)  # 1.6:1 source: rows cropped
    ramp = np.tile(np.arange(300, dtype=np.float32), (10, 1))
    small = resize(ramp, 100, 10)
    np.testing.assert_allclose(small[0, 1:-1], 3 * np.arange(1, 99) + 1, atol=1e-3)  # 3x downscale of a ramp
    with pytest.raises(ValueError):
        ScaleParams(main=(641, 360))


def _flat_noisy(shape, level, sigma, seed=1):
    return (level + sigma * np.random.default_rng(seed).standard_normal(shape)).astype(np.float32)


def test_nr2d_reduces_noise_and_keeps_edges():
    lut = display_noise_lut(shot=2e-3, read=1e-4)
    sigma = float(lut[int(0.5 * 255)])
    assert 0.005 < sigma < 0.2 and np.all(lut > 0)
    y = _flat_noisy((64, 64), 0.5, sigma)
    out = denoise_luma(y, lut, Nr2dParams(strength_y=3.0, radius_y=2))
    assert out.std() < 0.5 * y.std()
    step = np.where(np.arange(64)[None, :] < 32, 0.2, 0.8).repeat(64, 0).astype(np.float32)
    np.testing.assert_allclose(denoise_luma(step, lut, Nr2dParams()), step, atol=1e-6)  # edge >> k sigma kept
    uv = _flat_noisy((32, 32, 2), 0.0, sigma, seed=2)
    cu = denoise_chroma(uv, np.full((32, 32), 0.5, np.float32), lut, Nr2dParams(strength_c=3.0))
    assert cu.std() < 0.6 * uv.std()


def test_cross_luma_window_reads_the_four_axial_taps_beyond_the_box():
    """``window_y: cross``: the taps are the box plus (+-(r+1), 0), (0, +-(r+1)); a similar sample two pixels away on
    an axis enters the average (it does not in the 3x3 box) and one two pixels away on a diagonal does not; on
    noise the cross averages more than the 3x3 box at one strength; the output equals an explicit loop."""
    from camlab.isp.stages.nr2d import luma_offsets

    assert luma_offsets(1, "cross") == [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)] + [(-2, 0), (0, -2),
                                                                                               (0, 2), (2, 0)]
    assert len(luma_offsets(2, "cross")) == 29 and luma_offsets(0, "cross") == [(0, 0)]
    lut = np.full(256, 0.01, np.float32)
    y = np.full((9, 9), 0.5, np.float32)
    y[4, 6] = 0.51   # on the row axis, two away
    y[6, 6] = 0.51   # on the diagonal, two away
    box = denoise_luma(y, lut, Nr2dParams(strength_y=3.0))
    cross = denoise_luma(y, lut, Nr2dParams(strength_y=3.0, window_y="cross"))
    assert box[4, 4] == pytest.approx(0.5, abs=1e-7)
    w = 1 - 0.01 / 0.03
    assert cross[4, 4] == pytest.approx((12 * 0.5 + w * 0.51) / (12 + w), abs=1e-6)
    noisy = _flat_noisy((48, 48), 0.5, 0.01, seed=3)
    out = denoise_luma(noisy, lut, Nr2dParams(strength_y=3.0, window_y="cross"))
    assert out.std() < 0.95 * denoise_luma(noisy, lut, Nr2dParams(strength_y=3.0)).std()
    pad = np.pad(noisy, 2, mode="edge")
    num = np.zeros_like(noisy)
    den = np.zeros_like(noisy)
    for dy, dx in luma_offsets(1, "cross"):
        v = pad[2 + dy:50 + dy, 2 + dx:50 + dx]
        wt = np.maximum(0, 1 - np.abs(v - noisy) / np.float32(0.03))
        num += wt * v
        den += wt
    np.testing.assert_allclose(out, num / den, atol=1e-6)
    with pytest.raises(ValueError, match="window_y"):
        Nr2dParams(window_y="diamond")


def test_chroma_median_removes_isolated_false_colour_and_keeps_chroma_edges():
    """``median_c``: a lone false-colour sample (what demosaicing leaves at fine detail) is removed even where the
    bilateral alone keeps it (its range distance is many sigmas: an "edge"), a chroma step edge passes unchanged,
    and the median runs whenever the stage is on (also at strength 0), never when it is off."""
    from camlab.isp.stages.nr2d import median3_chroma

    lut = np.full(256, 0.002, np.float32)
    y = np.full((9, 9), 0.5, np.float32)
    uv = np.zeros((9, 9, 2), np.float32)
    uv[4, 4] = (0.08, -0.05)
    bilateral = denoise_chroma(uv, y, lut, Nr2dParams(strength_c=3.0))
    assert bilateral[4, 4, 0] == pytest.approx(0.08)
    np.testing.assert_array_equal(denoise_chroma(uv, y, lut, Nr2dParams(strength_c=3.0, median_c=True)), 0.0)
    np.testing.assert_array_equal(denoise_chroma(uv, y, lut, Nr2dParams(strength_c=0.0, median_c=True)), 0.0)
    off = denoise_chroma(uv, y, lut, Nr2dParams(enabled=False, median_c=True))
    np.testing.assert_array_equal(off, uv)
    step = np.zeros((9, 9, 2), np.float32)
    step[:, 5:] = (0.1, -0.1)
    np.testing.assert_array_equal(median3_chroma(step), step)


def test_luma_guided_chroma_nr_keeps_colour_on_its_side_of_a_luma_edge():
    """``guide_c``: where a chroma step lies on a luma step (an object's outline), the joint bilateral keeps the two
    colours apart at a strength where the chroma-only bilateral, which sees the step as within its noise, blends
    them; inside a flat-luma region both average alike. Out-of-domain values are refused."""
    lut = np.full(256, 0.05, np.float32)
    y = np.full((12, 12), 0.3, np.float32)
    y[:, 6:] = 0.7                                # the object's outline in luma
    uv = np.zeros((12, 12, 2), np.float32)
    uv[:, 6:] = (0.04, -0.04)                     # its colour, a step smaller than the chroma range kernel's reach
    plain = denoise_chroma(uv, y, lut, Nr2dParams(strength_c=6.0))
    guided = denoise_chroma(uv, y, lut, Nr2dParams(strength_c=6.0, guide_c=1.0))
    assert abs(plain[6, 5, 0]) > 0.005            # the chroma-only filter bleeds the colour across the outline
    np.testing.assert_allclose(guided[:, :6], 0.0, atol=1e-7)
    np.testing.assert_allclose(guided[:, 6:], uv[:, 6:], atol=1e-7)
    flat = np.random.default_rng(2).normal(0.0, 0.01, (12, 12, 2)).astype(np.float32)
    y_flat = np.full((12, 12), 0.5, np.float32)
    np.testing.assert_array_equal(denoise_chroma(flat, y_flat, lut, Nr2dParams(strength_c=6.0, guide_c=1.0)),
                                  denoise_chroma(flat, y_flat, lut, Nr2dParams(strength_c=6.0)))
    for bad in (-0.1, 17.0):
        with pytest.raises(ValueError, match="guide_c"):
            Nr2dParams(guide_c=bad)


def test_noise_lut_grows_with_gain():
    lo = display_noise_lut(shot=1e-4, read=1e-6)
    hi = display_noise_lut(shot=8e-4, read=64e-6)
    assert np.all(hi[5:] > 2.5 * lo[5:])


def test_nr3d_static_averages_moving_passes():
    lut = np.full(256, 0.02, np.float32)
    y0 = _flat_noisy((32, 32), 0.5, 0.02, seed=3)
    uv0 = np.zeros((16, 16, 2), np.float32)
    prev_y, prev_uv = y0, uv0
    p = Nr3dParams(alpha_static=0.2, motion_lo=1.5, motion_hi=4.0)
    for k in range(10):
        y = _flat_noisy((32, 32), 0.5, 0.02, seed=10 + k)
        prev_y, prev_uv, a = temporal_denoise(y, uv0, prev_y, prev_uv, lut, p)
    assert prev_y.std() < 0.55 * 0.02
    moved = np.full((32, 32), 0.9, np.float32)
    out, _, a = temporal_denoise(moved, uv0, prev_y, prev_uv, lut, p)
    np.testing.assert_allclose(out, moved, atol=1e-6)  # a 20-sigma change is motion: no ghost
    assert a.min() == 1.0
    first, _, a1 = temporal_denoise(moved, uv0, None, None, lut, p)
    assert np.array_equal(first, moved) and a1.max() == 1.0


def test_nr3d_block_motion_difference_is_the_2x3_block_row_mean():
    """``block``: the mean |difference| over the pixel's two block rows and its column +-1 (edge replicate; a lone
    last row counts for both), checked against an explicit loop on an odd-sized plane."""
    rng = np.random.default_rng(5)
    y, prev = rng.random((5, 4), dtype=np.float32), rng.random((5, 4), dtype=np.float32)
    d = np.abs(y - prev)
    want = np.empty_like(d)
    for r in range(5):
        rows = (r - r % 2, r - r % 2 + 1) if r < 4 else (4, 4)
        for x in range(4):
            cols = (max(x - 1, 0), x, min(x + 1, 3))
            want[r, x] = sum(d[rr, c] for rr in rows for c in cols) / 6
    np.testing.assert_allclose(motion_difference(y, prev, "block"), want, rtol=1e-6)
    np.testing.assert_array_equal(motion_difference(y, prev, "pixel"), d)


def test_nr3d_block_motion_window_averages_noise_and_still_sees_motion():
    """At the same thresholds, on two noisy frames of a static scene the block test blends less of the current
    frame than the per-pixel test (noise opens it less: more averaging where nothing moves), and on a real 5-sigma
    step it opens fully more often than the per-pixel test (fewer ghosts)."""
    sigma = 0.02
    lut = np.full(256, sigma, np.float32)
    prev, cur = _flat_noisy((64, 64), 0.5, sigma, seed=21), _flat_noisy((64, 64), 0.5, sigma, seed=22)
    pix = Nr3dParams(alpha_static=0.2, motion_lo=1.5, motion_hi=3.0)
    blk = Nr3dParams(alpha_static=0.2, motion_lo=1.5, motion_hi=3.0, motion_window="block")
    a_pix, a_blk = blend_weight(cur, prev, lut, pix), blend_weight(cur, prev, lut, blk)
    assert a_blk.mean() < 0.25 < 0.28 < a_pix.mean()   # measured 0.218 and 0.303
    moved = cur.copy()
    moved[:, 32:] += 5 * sigma
    open_blk = np.mean(blend_weight(moved, prev, lut, blk)[:, 34:] == 1.0)
    open_pix = np.mean(blend_weight(moved, prev, lut, pix)[:, 34:] == 1.0)
    assert open_blk > 0.99 and open_pix < 0.95         # measured 1.0 and 0.924
    with pytest.raises(ValueError, match="motion_window"):
        Nr3dParams(motion_window="box")


def test_sharpen_coring():
    lut = np.full(256, 0.01, np.float32)
    flat = _flat_noisy((32, 32), 0.5, 0.003, seed=4)  # noise well under the coring threshold
    np.testing.assert_allclose(sharpen_luma(flat, lut, SharpenParams(amount=1.0, coring=2.0)), flat, atol=1e-7)
    step = np.where(np.arange(32)[None, :] < 16, 0.3, 0.7).repeat(32, 0).astype(np.float32)
    out = sharpen_luma(step, lut, SharpenParams(amount=1.0, coring=1.0))
    assert out[5, 15] < 0.3 and out[5, 16] > 0.7  # overshoot on both sides of the edge
    assert np.allclose(out[:, :10], 0.3) and np.allclose(out[:, 22:], 0.7)
