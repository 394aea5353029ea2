"""Fast-path schedule checks: the line-buffered front end + demosaic + colour pass against the unfused kernel chain
(band edges, all four Bayer phases, odd sizes, defects at the borders), the resample-to-NV12 kernel against the
float scaler + packer, and the fast pipeline against the reference for every demosaic method."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from camlab.isp.fast.demosaic import DemosaicWorkspace, cd_weights, demosaic_into
from camlab.isp.fast.fused import (
    _R_OFFSETS,
    TONE_LUT_SIZE,
    _resample,
    _resample_planar,
    chroma_median_kernel,
    colour_kernel,
    crop_window,
    front_colour_kernel,
    front_end_kernel,
    pack_nv12_fast,
    scale_to_nv12,
)
from camlab.isp.pipeline import IspState, Pipeline, load_tuning
from camlab.isp.stages import cfa_tile, rgb_tile
from camlab.isp.stages.csc import rgb_to_yuv_matrix
from camlab.isp.stages.demosaic import MALVAR_GAINS, METHOD_CODES, PAD, PATTERN_CODES, malvar_coefficients
from camlab.isp.stages.scale import ScaleParams
from camlab.isp.stages.tone import ToneParams, tone_lut
from camlab.sensor.cfa import PATTERNS, mosaic
from camlab.sensor.noise import NoiseModel
from camlab.sensor.raw_io import RawFrame

CCM = np.array([[1.6, -0.4, -0.2], [-0.3, 1.5, -0.2], [0.0, -0.5, 1.5]], np.float32)


def _raw(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = 400 + 1500 * (xx / w) + 900 * np.sin(yy / 3.0) ** 2 + rng.normal(0, 40, (h, w))
    dn = np.clip(base, 0, 4095).astype(np.uint16)
    for y, x, v in ((0, 0, 4095), (h - 1, w - 1, 4095), (h // 2, 1, 0), (1, w - 2, 4095), (h // 3, w // 2, 4095)):
        dn[y, x] = v  # defects in the corners, on border columns and inside
    return dn


def _frame(pattern: str, h: int, w: int, seed: int = 0) -> RawFrame:
    """Gradients, hard-edged patches and fine texture through the noise model at gain 4, with two defects."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.stack([0.2 + 0.5 * xx, 0.3 + 0.4 * yy, 0.5 - 0.3 * xx * yy], axis=-1)
    for _ in range(5):
        y0, x0 = rng.integers(0, h - 4), rng.integers(0, w - 4)
        img[y0:y0 + rng.integers(3, h // 2), x0:x0 + rng.integers(3, w // 2)] = rng.uniform(0.02, 0.9, 3)
    img = np.clip(img + 0.03 * np.sin(xx * 90)[..., None], 0, 0.9) * np.array([0.5, 1.0, 0.7])
    lin = NoiseModel().apply(mosaic(img, pattern), 4.0, rng)
    dn = np.clip(np.rint(64 + lin * (4095 - 64)), 0, 4095).astype(np.uint16)
    dn[h // 3, w // 3], dn[h // 2, w - 2] = 4095, 0
    return RawFrame(data=dn, pattern=pattern, black_level=64.0, white_level=4095.0, bits=12, analog_gain=4.0,
                    exposure_s=1 / 60)


def _front_args(pattern: str, h: int, w: int):
    black = cfa_tile((64.0, 64.0, 64.0, 64.0), pattern)
    scale = (1.0 / (4095.0 - black.astype(np.float64))).astype(np.float32)
    yy, xx = np.mgrid[0:h, 0:w]
    gmap = (1.0 + 0.3 * (((yy - h / 2) / h) ** 2 + ((xx - w / 2) / w) ** 2)).astype(np.float32)
    tgain = rgb_tile((1.8, 1.0, 1.4), pattern).astype(np.float32)
    return black, scale, gmap, tgain, np.float32(0.08), True, True, True


@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("method,gains", [("bilinear", MALVAR_GAINS), ("malvar2004", MALVAR_GAINS),
                                          ("malvar2004", (0.3, 0.4, 0.9)), ("colour_difference", 0.5),
                                          ("colour_difference", 1.7)])
def test_line_buffered_pass_matches_unfused_chain(pattern, method, gains):
    """``gains``: Malvar's (alpha, beta, gamma), or colour_difference's smoothing weight."""
    lut = tone_lut(ToneParams(contrast=0.15), TONE_LUT_SIZE)
    ym = rgb_to_yuv_matrix("bt709")
    code = PATTERN_CODES[pattern]
    ry, rx = (int(v) for v in _R_OFFSETS[code])
    for h, w in ((23, 37), (40, 18), (9, 8), (4, 6)):
        raw = _raw(h, w, seed=h * w)
        fe = _front_args(pattern, h, w)
        # unfused: front end into the demosaic workspace, full-frame demosaic, colour pass
        ws = DemosaicWorkspace(h, w)
        front_end_kernel(raw, *fe, ws.padded, PAD + ry, PAD + rx)
        cd = method == "colour_difference"
        kw = {"cd_smoothing": gains} if cd else {"malvar_gains": gains}
        rgb = demosaic_into(ws.cfa_view(code), code, np.empty((h, w, 3), np.float32), method, ws=ws, **kw)
        h2, w2 = h // 2 * 2, w // 2 * 2
        y_ref, uv_ref = np.empty((h2, w2), np.float32), np.empty((2, h2 // 2, w2 // 2), np.float32)
        colour_kernel(rgb, CCM, lut, ym, y_ref, uv_ref)
        for nbands in (1, 3, h2 // 2 + 5):  # one band, uneven bands, more bands than row pairs
            y, uv = np.full_like(y_ref, np.nan), np.full_like(uv_ref, np.nan)
            code_m = -1 if not cd and gains != MALVAR_GAINS else METHOD_CODES[method]  # -1: Malvar at other gains
            mk = cd_weights(gains) if cd else malvar_coefficients(*gains)
            front_colour_kernel(raw, *fe, code_m, mk, ry, rx, CCM, lut, ym, nbands, y, uv)
            # same arithmetic up to fastmath contraction: a value on a tone-LUT bin edge may take the next entry
            # (1/65536 apart), nothing more
            for got, want in ((y, y_ref), (uv, uv_ref)):
                d = np.abs(got - want)
                assert d.max() < 5e-5 and d.mean() < 1e-6, (pattern, method, h, w, nbands, d.max(), d.mean())


def test_front_end_flags_defects_on_every_column():
    """The vectorised interior test and the mirrored border test find the same defects as the reference rule."""
    h, w = 12, 21
    raw = np.full((h, w), 1000, np.uint16)
    for x in range(w):
        raw[5, x] = 4000  # a hot pixel per column on one row: each one has cold same-colour neighbours
        out = np.empty((h, w), np.float32)
        front_end_kernel(raw, *_front_args("RGGB", h, w), out, 0, 0)
        # replaced by the neighbours' median: same value as the same-colour site two rows up (flat field)
        assert out[5, x] == pytest.approx(out[3, x], rel=0.02), x
        raw[5, x] = 1000


@pytest.mark.parametrize("size,window_fit", [((46, 80), "crop"), ((45, 67), "crop"), ((1080, 1920), "stretch")])
def test_scale_to_nv12_matches_float_scaler_and_packer(size, window_fit):
    h, w = size
    rng = np.random.default_rng(1)
    y = rng.random((h // 2 * 2, w // 2 * 2)).astype(np.float32)
    uv = (rng.random((2, h // 2, w // 2)).astype(np.float32) - 0.5) * 0.9
    for ow, oh in ((32, 18), (640, 360), (w // 2 * 2, h // 2 * 2)):
        if ow > y.shape[1] or oh > y.shape[0]:
            continue
        win = crop_window(y.shape[1], y.shape[0], ow, oh, window_fit)
        for rng_name in ("limited", "full"):
            ref = pack_nv12_fast(_resample(y, ow, oh, win), _resample_planar(uv, ow // 2, oh // 2, win), rng_name)
            got = scale_to_nv12(y, uv, ow, oh, win, rng_name)
            assert got.shape == ref.shape == (oh * 3 // 2, ow)
            # same taps and order; fastmath may round a value sitting on a code boundary the other way
            d = np.abs(got.astype(int) - ref.astype(int))
            assert d.max() <= 1 and d.mean() < 1e-3, (ow, oh, rng_name, d.max(), d.mean())


@pytest.mark.parametrize("method", ["bilinear", "directional", "colour_difference"])
@pytest.mark.parametrize("pattern", PATTERNS)
def test_golden_reference_vs_fast_other_demosaics(method, pattern):
    base = load_tuning("sc3336_day")
    cfg = dataclasses.replace(base, scale=ScaleParams(main=(64, 36), sub=(32, 18)),
                              demosaic=dataclasses.replace(base.demosaic, method=method))
    ref, fast = Pipeline(cfg), Pipeline(cfg, fast=True)
    sr, sf = IspState(), IspState()
    for k in range(2):
        fr = _frame(pattern, 45, 67, seed=k)
        a, b = ref.run(fr, sr), fast.run(fr, sf)
        for name in ("main_nv12", "sub_nv12"):
            d = np.abs(getattr(a, name).astype(int) - getattr(b, name).astype(int))
            assert d.max() <= 1 and d.mean() < 0.01, (name, k, d.max(), d.mean())


def test_directional_colour_pass_is_independent_of_its_band_count():
    """The directional output + colour pass splits row pairs into bands (scratch rows allocated per band): 1, 3 and
    more bands than pairs give the same Y' and chroma, on an odd-sized frame."""
    from camlab.isp.fast.demosaic import directional_planes, workspace
    from camlab.isp.fast.fused import dir_colour_kernel

    h, w = 45, 67
    c = np.random.default_rng(9).random((h, w)).astype(np.float32)
    ws = workspace(h, w)
    ws.cfa_view(0)[...] = c
    cp, q, top, left = directional_planes(ws.cfa_view(0), 0, ws)
    colour = (CCM, tone_lut(ToneParams(), TONE_LUT_SIZE), rgb_to_yuv_matrix("bt709"))
    outs = []
    for nbands in (1, 3, 40):
        y = np.full((h - 1, w - 1), -1.0, np.float32)
        uv = np.full((2, (h - 1) // 2, (w - 1) // 2), -1.0, np.float32)
        dir_colour_kernel(cp, q, top, left, *colour, nbands, y, uv)
        outs.append((y, uv))
    for y, uv in outs[1:]:
        assert np.array_equal(y, outs[0][0]) and np.array_equal(uv, outs[0][1])
    assert outs[0][0].min() >= 0.0


@pytest.mark.parametrize("rng_name", ["limited", "full"])
def test_fast_nv12_packing_gives_the_reference_codes(rng_name):
    """pack_nv12_fast (its chroma kernel clips the float before the conversion) against csc.pack_nv12 on planes
    that leave the code range on both sides: the same codes, but for a value exactly on a half code (the reference
    rounds half to even, the kernel half up)."""
    from camlab.isp.stages.csc import pack_nv12

    g = np.random.default_rng(11)
    y = g.uniform(-0.2, 1.2, (38, 54)).astype(np.float32)
    uv = g.uniform(-0.7, 0.7, (19, 27, 2)).astype(np.float32)
    fast, ref = pack_nv12_fast(y, uv, rng_name), pack_nv12(y, uv, rng_name)
    d = np.abs(fast.astype(int) - ref.astype(int))
    assert d.max() <= 1 and np.count_nonzero(d) <= 2, (d.max(), np.count_nonzero(d))
    assert fast[38:].min() == 0 and fast[38:].max() == 255  # both clips were exercised


def test_main_stream_at_processing_size_matches_reference():
    """The sharpen-into-NV12 kernel and the sub scaler at the default sizes' geometry (main = processing size)."""
    cfg = dataclasses.replace(load_tuning("sc3336_day"), scale=ScaleParams(main=(96, 54), sub=(32, 18)))
    fr = _frame("GBRG", 54, 96, seed=3)
    a, b = Pipeline(cfg).run(fr), Pipeline(cfg, fast=True).run(fr)
    for name in ("main_nv12", "sub_nv12"):
        d = np.abs(getattr(a, name).astype(int) - getattr(b, name).astype(int))
        assert d.max() <= 1 and d.mean() < 0.01, (name, d.max(), d.mean())


def test_decimated_statistics_grid_matches_full_resolution(shared_data):
    """The statistics block samples every 4th Bayer quad (the day tuning's ``stats.step``, 1/16 of the quads): on
    real images unprocessed to 1080p raw, the AWB illuminant stays within 0.5 degrees of the full-resolution one
    (the estimators' own recovery error is several degrees, see benchmarks/results/isp.json), the gains within 2 %
    and the AE mean luma within 1 % (measured on 8 images: <= 0.39 degrees, 1.5 %, 0.3 %)."""
    import cv2

    from camlab.isp.quality import load_quality_images
    from camlab.sensor.unprocess import unprocess

    base = load_tuning("sc3336_day")
    full = Pipeline(dataclasses.replace(base, stats=dataclasses.replace(base.stats, step=1)), fast=True)
    dec = Pipeline(base, fast=True)
    assert base.stats.step == 4
    for i, (name, img) in enumerate(load_quality_images(4, shared_data / "images")):
        big = cv2.resize(img, (1920, 1080), interpolation=cv2.INTER_AREA)
        frame, _ = unprocess(big, np.random.default_rng(40 + i), iso=800, pattern="RGGB", bits=12, exposure_s=1 / 30)
        q_full, z_full = full.statistics(frame, 1.0)
        q_dec, z_dec = dec.statistics(frame, 1.0)
        assert q_dec.shape[0] * q_dec.shape[1] * 16 == q_full.shape[0] * q_full.shape[1]
        g_full = np.array(full._wb_gains(frame, q_full, None))
        g_dec = np.array(dec._wb_gains(frame, q_dec, None))
        np.testing.assert_allclose(g_dec, g_full, rtol=0.02, err_msg=name)
        a, b = 1.0 / g_full, 1.0 / g_dec
        assert np.degrees(np.arccos(min(1.0, a @ b / np.linalg.norm(a) / np.linalg.norm(b)))) < 0.5, name
        luma = np.array([0.2126, 0.7152, 0.0722], np.float32)
        assert float(np.mean(q_dec @ luma)) == pytest.approx(float(np.mean(q_full @ luma)), rel=0.01), name
        assert z_dec.r.shape == z_full.r.shape == (12, 16)


@pytest.mark.parametrize("radius_c,step_c", [(1, 2), (2, 1), (3, 1), (2, 2), (1, 3)])
def test_golden_reference_vs_fast_wide_chroma_nr(radius_c, step_c):
    """Wider chroma windows (radius > 1, or taps ``step_c`` apart) take the general chroma path of the NR kernel:
    it must match the reference at the borders (edge replicate) and inside, over two frames (3D-DNR state kept)."""
    base = load_tuning("sc3336_day")
    cfg = dataclasses.replace(base, scale=ScaleParams(main=(64, 36), sub=(32, 18)),
                              nr2d=dataclasses.replace(base.nr2d, radius_c=radius_c, step_c=step_c, strength_c=3.0))
    ref, fast = Pipeline(cfg), Pipeline(cfg, fast=True)
    sr, sf = IspState(), IspState()
    for k in range(2):
        fr = _frame("GRBG", 45, 67, seed=k)
        a, b = ref.run(fr, sr), fast.run(fr, sf)
        for name in ("main_nv12", "sub_nv12"):
            d = np.abs(getattr(a, name).astype(int) - getattr(b, name).astype(int))
            assert d.max() <= 1 and d.mean() < 0.01, (name, k, d.max(), d.mean())


def _fast_matches_reference_and_differs_from(cfg, plain) -> int:
    """Two frames (3D-DNR state kept) of ``cfg`` through the reference and the fast path, which must agree to the
    golden tolerance; returns the largest code difference between the fast path of ``cfg`` and of ``plain`` (the
    same tuning without the option under test)."""
    ref, fast, without = Pipeline(cfg), Pipeline(cfg, fast=True), Pipeline(plain, fast=True)
    sr, sf, sw = IspState(), IspState(), IspState()
    changed = 0
    for k in range(2):
        fr = _frame("GRBG", 45, 67, seed=k)
        a, b, c = ref.run(fr, sr), fast.run(fr, sf), without.run(fr, sw)
        for name in ("main_nv12", "sub_nv12"):
            d = np.abs(getattr(a, name).astype(int) - getattr(b, name).astype(int))
            assert d.max() <= 1 and d.mean() < 0.01, (name, k, d.max(), d.mean())
            changed = max(changed, int(np.abs(getattr(b, name).astype(int) - getattr(c, name).astype(int)).max()))
    return changed


@pytest.mark.parametrize("radius_c,step_c,guide_c,mono", [(1, 1, 1.0, False), (1, 2, 0.5, False), (2, 1, 2.0, False),
                                                        (1, 2, 1.0, True)])
def test_golden_reference_vs_fast_luma_guided_chroma_nr(radius_c, step_c, guide_c, mono):
    """``nr2d.guide_c`` (joint bilateral on the co-sited mean luma) in the fast path matches the reference, borders
    and 3D-DNR state included, and changes the picture beyond the golden tolerance in colour (so a fast path that
    ignored it would fail here)."""
    base = load_tuning("sc3336_day")
    nr = dataclasses.replace(base.nr2d, radius_c=radius_c, step_c=step_c, strength_c=6.0, guide_c=guide_c)
    cfg = dataclasses.replace(base, mono=mono, scale=ScaleParams(main=(64, 36), sub=(32, 18)), nr2d=nr)
    plain = dataclasses.replace(cfg, nr2d=dataclasses.replace(nr, guide_c=0.0))
    changed = _fast_matches_reference_and_differs_from(cfg, plain)
    assert (changed == 0) if mono else (changed > 1)


@pytest.mark.parametrize("mono", [False, True])
def test_golden_reference_vs_fast_block_motion_window(mono):
    """``nr3d.motion_window: block`` in the fast path (the 2x3 block-row mean of the luma difference, read in the
    pass that denoises those rows) matches the reference over two frames, and it changes the picture beyond the
    golden tolerance (so a fast path that kept the per-pixel test would fail here)."""
    base = load_tuning("sc3336_day")
    tn = dataclasses.replace(base.nr3d, alpha_static=0.25, motion_lo=0.6, motion_hi=2.0, motion_window="block")
    cfg = dataclasses.replace(base, mono=mono, scale=ScaleParams(main=(64, 36), sub=(32, 18)), nr3d=tn)
    plain = dataclasses.replace(cfg, nr3d=dataclasses.replace(tn, motion_window="pixel"))
    assert _fast_matches_reference_and_differs_from(cfg, plain) > 1


@pytest.mark.parametrize("shape", [(1, 1), (1, 3), (2, 2), (3, 5), (7, 2), (17, 33)])
def test_chroma_median_kernel_matches_the_reference_at_every_size(shape):
    """The fast 3x3 median (a min/max network) equals the reference's sort-based median exactly, borders included
    (edge replicate), on planes as narrow as one sample."""
    from camlab.isp.stages.nr2d import median3_chroma

    uv = np.random.default_rng(sum(shape)).standard_normal((*shape, 2)).astype(np.float32)
    out = np.empty((2, *shape), np.float32)
    chroma_median_kernel(np.ascontiguousarray(np.moveaxis(uv, -1, 0)), out)
    np.testing.assert_array_equal(np.moveaxis(out, 0, -1), median3_chroma(uv))


@pytest.mark.parametrize("mono,strength_c", [(False, 6.0), (False, 0.0), (True, 6.0)])
def test_golden_reference_vs_fast_chroma_median(mono, strength_c):
    """``nr2d.median_c`` in the fast path matches the reference over two frames (3D-DNR state kept), and it changes
    the picture beyond the golden tolerance (so a fast path that skipped it would fail here)."""
    base = load_tuning("sc3336_day")
    cfg = dataclasses.replace(base, mono=mono, scale=ScaleParams(main=(64, 36), sub=(32, 18)),
                              nr2d=dataclasses.replace(base.nr2d, median_c=True, strength_c=strength_c))
    plain = dataclasses.replace(cfg, nr2d=dataclasses.replace(cfg.nr2d, median_c=False))
    changed = _fast_matches_reference_and_differs_from(cfg, plain)
    assert (changed == 0) if mono else (changed > 1)


def test_chroma_tap_step_widens_the_window_at_the_same_tap_count():
    """step_c = 2 with radius 1 reaches a chroma sample two away (a 5x5 footprint) with nine taps: a lone chroma
    blotch 2 samples from the centre pulls the centre, which the dense 3x3 window does not see."""
    from camlab.isp.stages.nr2d import Nr2dParams, denoise_chroma

    uv = np.zeros((9, 9, 2), np.float32)
    uv[4, 6] = 0.01  # two samples right of the centre
    lut = np.full(256, 0.01, np.float32)
    y = np.full((9, 9), 0.5, np.float32)
    dense = denoise_chroma(uv, y, lut, Nr2dParams(strength_c=3.0, radius_c=1, step_c=1))
    wide = denoise_chroma(uv, y, lut, Nr2dParams(strength_c=3.0, radius_c=1, step_c=2))
    assert dense[4, 4, 0] == 0.0
    assert wide[4, 4, 0] > 0.0
    with pytest.raises(ValueError, match="step_c"):
        Nr2dParams(step_c=0)


@pytest.mark.parametrize("radius_y,mono", [(1, False), (1, True), (2, False)])
def test_golden_reference_vs_fast_cross_luma_window(radius_y, mono):
    """``nr2d.window_y: cross`` (the box plus its four axial taps at radius + 1) in the fast path matches the
    reference, borders included (the 13-tap branch-free loop and the edge columns/rows of the general path), and
    changes the picture beyond the golden tolerance (so a fast path that kept the box would fail here)."""
    base = load_tuning("sc3336_day")
    nr = dataclasses.replace(base.nr2d, radius_y=radius_y, strength_y=4.0, window_y="cross")
    cfg = dataclasses.replace(base, mono=mono, scale=ScaleParams(main=(64, 36), sub=(32, 18)), nr2d=nr)
    plain = dataclasses.replace(cfg, nr2d=dataclasses.replace(nr, window_y="box"))
    assert _fast_matches_reference_and_differs_from(cfg, plain) > 1


def test_golden_reference_vs_fast_malvar_gains():
    """``demosaic.malvar_alpha/beta/gamma`` away from the paper's gains take the fast path's gains twin: it matches
    the reference over two frames and changes the picture beyond the golden tolerance."""
    base = load_tuning("sc3336_day")
    assert base.demosaic.method == "malvar2004"
    dm = dataclasses.replace(base.demosaic, malvar_alpha=0.3, malvar_beta=0.3, malvar_gamma=0.4)
    cfg = dataclasses.replace(base, scale=ScaleParams(main=(64, 36), sub=(32, 18)), demosaic=dm)
    assert _fast_matches_reference_and_differs_from(cfg, dataclasses.replace(cfg, demosaic=base.demosaic)) > 1
