"""Demosaic: reference vs colour-demosaicing, fast (numba) vs reference on all four patterns and odd sizes,
quality ordering on a real image, bad input."""
from __future__ import annotations

import colour_demosaicing as cd
import numpy as np
import pytest

from camlab.errors import CamlabError
from camlab.isp.fast.demosaic import demosaic_fast, demosaic_into
from camlab.isp.stages.demosaic import METHODS, PATTERN_CODES, DemosaicParams, demosaic
from camlab.sensor.cfa import PATTERNS, mosaic

SIZES = [(3, 5), (7, 9), (31, 45), (64, 33), (18, 22)]


@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("method,ref", [("bilinear", cd.demosaicing_CFA_Bayer_bilinear),
                                        ("malvar2004", cd.demosaicing_CFA_Bayer_Malvar2004)])
def test_reference_matches_colour_demosaicing(pattern, method, ref):
    # colour-demosaicing pads with half-sample reflection (scipy 'reflect'), we with whole-sample reflection (keeps
    # the Bayer phase), so the two agree away from a 2-pixel border; tolerance: float32 rounding.
    c = np.random.default_rng(0).random((37, 51)).astype(np.float32)
    ours = demosaic(c, pattern, DemosaicParams(method))
    theirs = ref(c, pattern)
    np.testing.assert_allclose(ours[2:-2, 2:-2], theirs[2:-2, 2:-2], atol=1e-6)


@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("method", METHODS)
def test_fast_matches_reference(pattern, method):
    rng = np.random.default_rng(PATTERN_CODES[pattern])
    for shape in SIZES:
        c = rng.random(shape).astype(np.float32)
        if shape[0] == 18:  # flat patches and hard edges exercise the directional weights' regularizer
            c = np.round(c * 3) / 3
        ref = demosaic(c, pattern, DemosaicParams(method))
        fast = demosaic_fast(c, pattern, method)
        assert fast.shape == shape + (3,) and fast.dtype == np.float32
        np.testing.assert_allclose(fast, ref, atol=1e-5, err_msg=f"{method} {pattern} {shape}")


@pytest.mark.parametrize("pattern", PATTERNS)
def test_malvar_gains_fast_matches_reference_and_zero_gains_are_bilinear(pattern):
    """``malvar_alpha/beta/gamma``: the fast kernel follows the reference at other gains; all three at 0 leave the
    bilinear estimate; each gain moves only its own sites (alpha: G at R/B, beta: R/B at G, gamma: R/B at B/R)."""
    rng = np.random.default_rng(11 + PATTERN_CODES[pattern])
    c = rng.random((31, 45)).astype(np.float32)
    for gains in ((0.3, 0.4, 0.9), (0.0, 1.2, 0.2)):
        ref = demosaic(c, pattern, DemosaicParams("malvar2004", *gains))
        np.testing.assert_allclose(demosaic_fast(c, pattern, "malvar2004", gains), ref, atol=1e-5)
    zero = demosaic(c, pattern, DemosaicParams("malvar2004", 0.0, 0.0, 0.0))
    np.testing.assert_allclose(zero, demosaic(c, pattern, DemosaicParams("bilinear")), atol=1e-6)
    paper = demosaic(c, pattern, DemosaicParams("malvar2004"))
    green_sites = mosaic(np.stack([np.zeros_like(c), np.ones_like(c), np.zeros_like(c)], -1), pattern) > 0
    only_alpha = demosaic(c, pattern, DemosaicParams("malvar2004", 0.2, 0.625, 0.75))
    moved = np.any(only_alpha != paper, axis=-1)
    assert moved[~green_sites].all() and not moved[green_sites].any()
    only_beta = demosaic(c, pattern, DemosaicParams("malvar2004", 0.5, 0.3, 0.75))
    assert np.any(only_beta != paper, axis=-1)[green_sites].all()
    assert not np.any(only_beta != paper, axis=-1)[~green_sites].any()
    with pytest.raises(CamlabError, match="demosaic.malvar_beta"):
        DemosaicParams("malvar2004", 0.5, 2.0, 0.75)


@pytest.mark.parametrize("pattern", PATTERNS)
def test_colour_difference_is_the_directional_plane_at_a_fixed_weight(pattern):
    """``colour_difference`` without smoothing puts Malvar's G (alpha 1/2, the mean of the Hamilton–Adams
    estimates) at R/B sites and keeps every sample; the smoothing weight moves only the G at R/B sites (and what is
    rebuilt from it); a weight outside 0..4 is refused."""
    rng = np.random.default_rng(21 + PATTERN_CODES[pattern])
    c = rng.random((31, 45)).astype(np.float32)
    green_sites = mosaic(np.stack([np.zeros_like(c), np.ones_like(c), np.zeros_like(c)], -1), pattern) > 0
    cd0 = demosaic(c, pattern, DemosaicParams("colour_difference", cd_smoothing=0.0))
    malvar = demosaic(c, pattern, DemosaicParams("malvar2004", 0.5, 0.625, 0.75))
    np.testing.assert_allclose(cd0[..., 1], malvar[..., 1], atol=1e-6)
    np.testing.assert_allclose(mosaic(cd0, pattern), c, atol=1e-6)
    smooth = demosaic(c, pattern, DemosaicParams("colour_difference", cd_smoothing=1.0))
    assert np.array_equal(smooth[..., 1][green_sites], cd0[..., 1][green_sites])
    assert not np.allclose(smooth[..., 1][~green_sites], cd0[..., 1][~green_sites])
    with pytest.raises(CamlabError, match="demosaic.cd_smoothing: expected a weight in 0..4"):
        DemosaicParams("colour_difference", cd_smoothing=-0.1)


def test_colour_difference_averages_out_more_chroma_noise_than_malvar():
    """Why the method exists: on a flat grey mosaic with white noise (a night gain), the chroma of its output
    (R - G, B - G) is less noisy than Malvar's, and more so with smoothing."""
    rng = np.random.default_rng(3)
    c = (0.3 + 0.02 * rng.standard_normal((96, 128))).astype(np.float32)

    def chroma_sd(method: str, **kw) -> float:
        out = demosaic_fast(c, "RGGB", method, **kw)[8:-8, 8:-8]
        return float(np.std(out[..., 0] - out[..., 1]) + np.std(out[..., 2] - out[..., 1]))

    malvar = chroma_sd("malvar2004")
    plain, smoothed = chroma_sd("colour_difference", cd_smoothing=0.0), chroma_sd("colour_difference", cd_smoothing=1.0)
    assert smoothed < plain < 0.9 * malvar, (malvar, plain, smoothed)


def test_directional_weights_running_sums_hold_over_a_tall_band():
    """The d/alpha kernel keeps 5-row running sums (add the row entering, subtract the row leaving): float32 drift
    along a band must stay far below the golden tolerance, also when one band walks 1200 rows of a real-valued
    frame with bright and dark stretches."""
    from camlab.isp.fast import demosaic as fd

    rng = np.random.default_rng(5)
    h, w = 1200, 48
    ramp = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None]
    c = (ramp * rng.random((h, w)) + (1.0 - ramp) * 0.02 * rng.random((h, w))).astype(np.float32)
    ref = demosaic(c, "RGGB", DemosaicParams("directional"))
    ws = fd.DemosaicWorkspace(h, w)
    ws.cfa_view(0)[...] = c
    planes = {}
    for nchunks in (1, 37):
        cp, q, top, left = fd.directional_planes(ws.cfa_view(0), 0, ws)
        fd._dir_weights(cp, top - 2, top + h + 2, left - 2, left + w + 2, q, nchunks)
        planes[nchunks] = q.copy()
        out = np.empty((h, w, 3), np.float32)
        fd._dir_output(cp, q, top, left, out)
        np.testing.assert_allclose(out, ref, atol=1e-5, err_msg=f"{nchunks} bands")
    np.testing.assert_allclose(planes[1], planes[37], atol=1e-6)


def test_demosaic_into_reuses_output_and_keeps_samples():
    c = np.random.default_rng(3).random((20, 30)).astype(np.float32)
    out = np.full((20, 30, 3), -1.0, np.float32)
    for pattern in PATTERNS:
        res = demosaic_into(c, PATTERN_CODES[pattern], out, "directional")
        assert res is out
        # Every method keeps the measured sample at each site.
        sampled = mosaic(out, pattern)
        np.testing.assert_allclose(sampled, c, atol=1e-6)


@pytest.mark.parametrize("method", METHODS)
def test_constant_and_flat_colour_reproduced(method):
    rgb = np.empty((24, 26, 3), np.float32)
    rgb[...] = (0.3, 0.5, 0.2)
    for pattern in PATTERNS:
        out = demosaic_fast(mosaic(rgb, pattern), pattern, method)
        np.testing.assert_allclose(out, rgb, atol=1e-6)


def test_quality_ordering_on_real_image(shared_data):
    """On a real photograph (noise-free mosaic) the directional method beats Malvar, which beats bilinear."""
    from camlab.isp.quality import load_image, psnr
    from camlab.sensor.unprocess import srgb_to_linear

    img = load_image(shared_data / "images" / "coco128" / "val2017" / "images" / "000000000139.jpg")[:160, :240]
    lin = srgb_to_linear(img.astype(np.float32) / 255.0)
    scores = {}
    for method in METHODS:
        out = demosaic_fast(mosaic(lin, "GRBG"), "GRBG", method)
        scores[method] = psnr(out, lin, border=4)
    assert scores["directional"] > scores["malvar2004"] + 0.5 > scores["bilinear"] + 1.0, scores


def test_bad_input():
    with pytest.raises(CamlabError, match="NaN"):
        demosaic_fast(np.full((8, 8), np.nan, np.float32))
    c = np.zeros((8, 8), np.float32)
    c[3, 4] = np.inf
    with pytest.raises(CamlabError, match="1 NaN or infinite"):
        demosaic(c, "RGGB")
    with pytest.raises(CamlabError, match="pattern.*'RGBG'"):
        demosaic_fast(np.zeros((8, 8), np.float32), "RGBG")
    with pytest.raises(CamlabError, match="unknown method 'ahd'"):
        DemosaicParams("ahd")  # type: ignore[arg-type]
    with pytest.raises(CamlabError, match="2-D"):
        demosaic(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(CamlabError, match="out must be float32"):
        demosaic_into(np.zeros((8, 8), np.float32), 0, np.zeros((8, 8, 3), np.float64))
    with pytest.raises(CamlabError, match="cd_smoothing must be a weight in 0..4"):
        demosaic_fast(np.zeros((8, 8), np.float32), "RGGB", "colour_difference", cd_smoothing=-0.5)
    out = demosaic_fast(np.ones((2, 2), np.float64) * 0.5, "bggr", "malvar2004")  # dtype converted
    np.testing.assert_allclose(out, 0.5, atol=1e-6)


def test_concurrent_callers_do_not_share_scratch():
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(9)
    frames = [rng.random((40, 52)).astype(np.float32) for _ in range(6)]
    expected = [demosaic(f, "GBRG") for f in frames]
    with ThreadPoolExecutor(3) as ex:
        got = list(ex.map(lambda f: demosaic_fast(f, "GBRG"), frames * 3))
    for i, g in enumerate(got):
        np.testing.assert_allclose(g, expected[i % 6], atol=1e-5)


@pytest.mark.parametrize("pattern", PATTERNS)
def test_in_place_workspace_view(pattern):
    """A producer writing its CFA into the workspace's view gets the same result without the padding copy."""
    from camlab.isp.fast.demosaic import DemosaicWorkspace

    c = np.random.default_rng(4).random((23, 30)).astype(np.float32)
    ws = DemosaicWorkspace(23, 30)
    code = PATTERN_CODES[pattern]
    ws.padded[...] = -7.0  # stale margins must be overwritten
    view = ws.cfa_view(code)
    view[...] = c
    for method in METHODS:
        out = demosaic_into(view, code, np.empty((23, 30, 3), np.float32), method, ws=ws)
        np.testing.assert_allclose(out, demosaic(c, pattern, DemosaicParams(method)), atol=1e-5)
    view[5, 6] = np.nan
    with pytest.raises(CamlabError, match="1 NaN"):
        demosaic_into(view, code, np.empty((23, 30, 3), np.float32), "directional", ws=ws)
