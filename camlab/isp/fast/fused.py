"""Fused numba kernels of the ISP fast path, held to the float reference stages by golden tests.

The algorithms are those of ``camlab/isp/stages/`` (each cites its paper); this module only decides how they run
fast, in the spirit of Halide's camera pipe (Ragan-Kelley et al., "Halide: A Language and Compiler for Optimizing
Parallelism, Locality, and Recomputation in Image Processing Pipelines", PLDI 2013): the algorithm kept apart from
its schedule. Schedule, for the bilinear, Malvar and colour-difference demosaics (the day tuning is Malvar): (1-3)
one line-buffered pass over row bands, as a hardware ISP: raw uint16 -> BLC + DPC + LSC + digital gain + WB (one
premultiplied gain map) into a ring of eight CFA rows (sixteen, plus eight rows of colour differences, for
colour_difference) -> demosaic of the current row into a planar RGB row -> CCM + tone curve and gamma (LUT) +
Y'CbCr with 4:2:0 chroma averaging, so neither the CFA nor the RGB image is written to memory; the directional
demosaic (whose weights need full-frame passes) runs (1) into the demosaic workspace, (2) its weight passes of
``camlab.isp.fast.demosaic`` and (3) its output pass fused with the colour pass. Then (4) one pass over block rows
doing luma and chroma NR and the motion-adaptive temporal filter (after the chroma planes' 3x3 median when the
tuning asks for false-colour suppression); (5) sharpening quantised straight into the main
NV12 buffer; (6) the scaler resampling each plane straight into NV12 codes. Everything is float32, rows are split
across threads (``prange``), inner loops index "counter + non-negative constant" so LLVM vectorises them, table
lookups are a vectorised index pass plus a gather pass, and kernels are cached on disk.
"""
from __future__ import annotations

import os

# OpenMP (numba's default threading layer) spin-waits idle workers between parallel regions. On a shared 2-core host
# that spin is pure CPU waste: measured 150 vs 61 ms of process CPU per 1080p frame with 2 threads. Idle workers
# sleep instead unless the user chose a policy; it must be set before the OpenMP runtime loads (first prange launch).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
from numba import get_num_threads, njit, prange  # noqa: E402

from camlab.isp.fast.demosaic import (
    _R_OFFSETS,
    _bilinear_row3,
    _cd_row,
    _diff_rows3,
    _ha_h_row,
    _ha_v_row,
    _dir_row3,
    _malvar_gains_row3,
    _malvar_row3,
    _reflect,
    cd_weights,
    directional_planes,
    workspace,
)
from camlab.isp.stages import cfa_tile, rgb_tile
from camlab.isp.stages.csc import rgb_to_yuv_matrix
from camlab.isp.stages.demosaic import MALVAR_GAINS, METHOD_CODES, PAD, PATTERN_CODES, malvar_coefficients
from camlab.isp.stages.scale import crop_window, resample_weights

F32 = np.float32


# ------------------------------------------------------------------------------------------------ (1) front end
@njit(cache=True, inline="always")
def _mirror(i, d, n):
    j = i + d
    if j < 0 or j >= n:
        j = i - d
    if j < 0:
        return 0
    if j >= n:
        return n - 1
    return j


@njit(cache=True, inline="always")
def _clamp(i, n):
    if i < 0:
        return 0
    if i >= n:
        return n - 1
    return i


@njit(cache=True, error_model="numpy", fastmath=True)
def _front_row(raw, y, black, scale, gmap, tgain, thr, dpc, clip_blc, clip_out, o, flag, nbl):
    """Row ``y`` of the front end into ``o[:W]``: BLC (+clip) -> DPC -> x LSC map ``gmap`` x per-colour gain
    ``tgain`` (2x2 tile of digital gain * WB, as the ISP's gain registers) (+clip). ``flag`` (W,) bool and ``nbl``
    (8,) float32 are scratch.

    One branch-free pass normalises and applies the gain map; a second flags defects by the min/max test on raw
    codes (BLC and its clip are monotone per colour; fixed neighbour offsets inside the row so it vectorises);
    only the flagged pixels get the median of their neighbours."""
    h, w = raw.shape
    zero = np.float32(0.0)
    one = np.float32(1.0)
    lo_clip = zero if clip_blc else np.float32(-1e30)
    hi_clip = one if clip_blc else np.float32(1e30)
    olo = zero if clip_out else np.float32(-1e30)
    ohi = one if clip_out else np.float32(1e30)
    rm = raw[_mirror(y, -2, h)]
    r0 = raw[y]
    rp = raw[_mirror(y, 2, h)]
    g = gmap[y]
    b_e, b_o = black[y & 1, 0], black[y & 1, 1]
    s_e, s_o = scale[y & 1, 0], scale[y & 1, 1]
    t_e, t_o = tgain[y & 1, 0], tgain[y & 1, 1]
    for x in range(w):
        odd = x & 1
        b = b_o if odd else b_e
        s = s_o if odd else s_e
        t = t_o if odd else t_e
        v = min(max((np.float32(r0[x]) - b) * s, lo_clip), hi_clip)
        o[x] = min(max(v * (g[x] * t), olo), ohi)
    if not dpc:
        return
    # interior columns x = i + 2: same-colour neighbours at fixed offsets; every index is "counter + constant >= 0",
    # so numba drops its negative-index wraparound and LLVM vectorises
    c0 = r0[2:]
    fl = flag[2:]
    nbad = 0
    for i in range(w - 4):
        lo = min(min(min(rm[i], rm[i + 2]), min(rm[i + 4], r0[i])),
                 min(min(r0[i + 4], rp[i]), min(rp[i + 2], rp[i + 4])))
        hi = max(max(max(rm[i], rm[i + 2]), max(rm[i + 4], r0[i])),
                 max(max(r0[i + 4], rp[i]), max(rp[i + 2], rp[i + 4])))
        odd = i & 1
        b = b_o if odd else b_e
        s = s_o if odd else s_e
        v = min(max((np.float32(c0[i]) - b) * s, lo_clip), hi_clip)
        vlo = min(max((np.float32(lo) - b) * s, lo_clip), hi_clip)
        vhi = min(max((np.float32(hi) - b) * s, lo_clip), hi_clip)
        bad = (v > vhi + thr) | (v < vlo - thr)
        fl[i] = bad
        nbad += np.int32(bad)
    for k in range(4):  # border columns 0, 1, w-2, w-1 (each once on narrow rows): mirrored neighbours
        x = k if k < 2 else w - 4 + k
        if x >= w or (k >= 2 and x < 2):
            continue
        xm = x - 2 if x >= 2 else min(x + 2, w - 1)
        xp = x + 2 if x + 2 < w else max(x - 2, 0)
        a0, a1, a2, a3 = rm[xm], rm[x], rm[xp], r0[xm]
        a4, a5, a6, a7 = r0[xp], rp[xm], rp[x], rp[xp]
        lo = min(min(min(a0, a1), min(a2, a3)), min(min(a4, a5), min(a6, a7)))
        hi = max(max(max(a0, a1), max(a2, a3)), max(max(a4, a5), max(a6, a7)))
        odd = x & 1
        b = b_o if odd else b_e
        s = s_o if odd else s_e
        v = min(max((np.float32(r0[x]) - b) * s, lo_clip), hi_clip)
        vlo = min(max((np.float32(lo) - b) * s, lo_clip), hi_clip)
        vhi = min(max((np.float32(hi) - b) * s, lo_clip), hi_clip)
        bad = (v > vhi + thr) | (v < vlo - thr)
        flag[x] = bad
        nbad += np.int32(bad)
    if nbad == 0:
        return
    for x in range(w):
        if not flag[x]:
            continue
        xm = x - 2 if x >= 2 else min(x + 2, w - 1)
        xp = x + 2 if x + 2 < w else max(x - 2, 0)
        odd = x & 1
        b = b_o if odd else b_e
        s = s_o if odd else s_e
        nbl[0], nbl[1], nbl[2], nbl[3] = rm[xm], rm[x], rm[xp], r0[xm]
        nbl[4], nbl[5], nbl[6], nbl[7] = r0[xp], rp[xm], rp[x], rp[xp]
        for i in range(8):
            nbl[i] = min(max((nbl[i] - b) * s, lo_clip), hi_clip)
        srt = np.sort(nbl)
        v = np.float32(0.5) * (srt[3] + srt[4])
        t = t_o if odd else t_e
        o[x] = min(max(v * (g[x] * t), olo), ohi)


@njit(parallel=True, cache=True, error_model="numpy", fastmath=True)
def front_end_kernel(raw, black, scale, gmap, tgain, thr, dpc, clip_blc, clip_out, out, oy, ox):
    """raw uint16 (H, W) -> ``out[oy:oy+H, ox:ox+W]`` float32 (see :func:`_front_row`); the offsets let it write
    straight into the demosaic workspace's padded buffer."""
    h, w = raw.shape
    for y in prange(h):
        flag = np.empty(w, dtype=np.bool_)
        nbl = np.empty(8, dtype=np.float32)
        _front_row(raw, y, black, scale, gmap, tgain, thr, dpc, clip_blc, clip_out, out[oy + y, ox:], flag, nbl)


# ------------------------------------------------------------------------------------------------ (3) colour + CSC
TONE_LUT_SIZE = 65537  # nearest-entry lookup: error < 1e-4 of full scale against the analytic curve


@njit(cache=True, error_model="numpy", fastmath=True)
def _colour_row(src, ccm, lut, ym, yo, ub, vb, w2, idx):
    """Linear RGB row ``src`` (>= w2, 3) -> CCM (clip) -> tone LUT (nearest of TONE_LUT_SIZE) -> Y' into ``yo``;
    Cb/Cr added into the accumulators ``ub``/``vb``. ``idx`` (3, >= w2) int32 scratch: a vectorised pass computes
    the LUT indices, a second gathers and converts."""
    zero = np.float32(0.0)
    one = np.float32(1.0)
    half = np.float32(0.5)
    n1 = np.float32(lut.shape[0] - 1)
    m00, m01, m02 = ccm[0, 0], ccm[0, 1], ccm[0, 2]
    m10, m11, m12 = ccm[1, 0], ccm[1, 1], ccm[1, 2]
    m20, m21, m22 = ccm[2, 0], ccm[2, 1], ccm[2, 2]
    y0c, y1c, y2c = ym[0, 0], ym[0, 1], ym[0, 2]
    u0c, u1c, u2c = ym[1, 0], ym[1, 1], ym[1, 2]
    v0c, v1c, v2c = ym[2, 0], ym[2, 1], ym[2, 2]
    i0, i1, i2 = idx[0], idx[1], idx[2]
    for x in range(w2):
        r0 = src[x, 0]
        g0 = src[x, 1]
        b0 = src[x, 2]
        i0[x] = np.int32(min(max(m00 * r0 + m01 * g0 + m02 * b0, zero), one) * n1 + half)
        i1[x] = np.int32(min(max(m10 * r0 + m11 * g0 + m12 * b0, zero), one) * n1 + half)
        i2[x] = np.int32(min(max(m20 * r0 + m21 * g0 + m22 * b0, zero), one) * n1 + half)
    for x in range(w2):
        t0 = lut[np.uint32(i0[x])]
        t1 = lut[np.uint32(i1[x])]
        t2 = lut[np.uint32(i2[x])]
        yo[x] = y0c * t0 + y1c * t1 + y2c * t2
        ub[x] += u0c * t0 + u1c * t1 + u2c * t2
        vb[x] += v0c * t0 + v1c * t1 + v2c * t2


@njit(cache=True, error_model="numpy", fastmath=True)
def _colour_row3(pr, pg, pb, ccm, lut, ym, yo, ub, vb, w2, i0, i1, i2):
    """:func:`_colour_row` over planar R, G, B rows: a vectorised pass computes the three LUT indices per pixel
    (into the int32 scratch rows ``i0..i2``), a second gathers and converts."""
    zero = np.float32(0.0)
    one = np.float32(1.0)
    half = np.float32(0.5)
    n1 = np.float32(lut.shape[0] - 1)
    m00, m01, m02 = ccm[0, 0], ccm[0, 1], ccm[0, 2]
    m10, m11, m12 = ccm[1, 0], ccm[1, 1], ccm[1, 2]
    m20, m21, m22 = ccm[2, 0], ccm[2, 1], ccm[2, 2]
    y0c, y1c, y2c = ym[0, 0], ym[0, 1], ym[0, 2]
    u0c, u1c, u2c = ym[1, 0], ym[1, 1], ym[1, 2]
    v0c, v1c, v2c = ym[2, 0], ym[2, 1], ym[2, 2]
    for x in range(w2):
        r0 = pr[x]
        g0 = pg[x]
        b0 = pb[x]
        i0[x] = np.int32(min(max(m00 * r0 + m01 * g0 + m02 * b0, zero), one) * n1 + half)
        i1[x] = np.int32(min(max(m10 * r0 + m11 * g0 + m12 * b0, zero), one) * n1 + half)
        i2[x] = np.int32(min(max(m20 * r0 + m21 * g0 + m22 * b0, zero), one) * n1 + half)
    for x in range(w2):
        t0 = lut[np.uint32(i0[x])]
        t1 = lut[np.uint32(i1[x])]
        t2 = lut[np.uint32(i2[x])]
        yo[x] = y0c * t0 + y1c * t1 + y2c * t2
        ub[x] += u0c * t0 + u1c * t1 + u2c * t2
        vb[x] += v0c * t0 + v1c * t1 + v2c * t2


@njit(cache=True, error_model="numpy", fastmath=True)
def _chroma_out(ub, vb, uo, vo):
    for j in range(uo.shape[0]):
        uo[j] = np.float32(0.25) * (ub[2 * j] + ub[2 * j + 1])
        vo[j] = np.float32(0.25) * (vb[2 * j] + vb[2 * j + 1])


@njit(parallel=True, cache=True, error_model="numpy", fastmath=True)
def colour_kernel(rgb, ccm, lut, ym, y_out, uv_out):
    """Linear RGB (H, W, 3) -> CCM (clip) -> tone LUT (nearest of TONE_LUT_SIZE) -> Y' (H2, W2) and mean 4:2:0
    chroma as planes (2, H2/2, W2/2) (Cb, Cr; planar so the chroma NR vectorises)."""
    h2, w2 = y_out.shape
    for by in prange(h2 // 2):
        ub = np.zeros(w2, np.float32)
        vb = np.zeros(w2, np.float32)
        idx = np.empty((3, w2), np.int32)
        for oy in range(2):
            y = 2 * by + oy
            _colour_row(rgb[y], ccm, lut, ym, y_out[y], ub, vb, w2, idx)
        _chroma_out(ub, vb, uv_out[0, by], uv_out[1, by])


@njit(cache=True, error_model="numpy", fastmath=True)
def _ring_row(raw, yy, black, scale, gmap, tgain, thr, dpc, clip_blc, clip_out, row, left, flag, nbl):
    """Front-end row ``yy`` (reflected into the frame, whole-sample symmetric like the demosaic's padding) into the
    line buffer ``row``, image column 0 at ``left``, with reflected margins."""
    h, w = raw.shape
    _front_row(raw, _reflect(yy, h), black, scale, gmap, tgain, thr, dpc, clip_blc, clip_out, row[left:], flag, nbl)
    for xp in range(left):
        row[xp] = row[left + _reflect(xp - left, w)]
    for xp in range(left + w, row.shape[0]):
        row[xp] = row[left + _reflect(xp - left, w)]


@njit(cache=True)
def _band_scratch(w, w2):
    """A band's scratch: the front end's defect flags and neighbours, the planar RGB row, its LUT indices and the
    chroma sums of a 4:2:0 row pair."""
    return (np.empty(w, np.bool_), np.empty(8, np.float32), np.empty((3, w2), np.float32),
            np.empty((3, w2), np.int32), np.zeros(w2, np.float32), np.zeros(w2, np.float32))


@njit(cache=True, error_model="numpy", fastmath=True)
def _emit_row(rgb, ccm, lut, ym, y, y_out, uv_out, ub, vb, idx):
    """Planar RGB row ``y`` through CCM/tone/CSC into ``y_out``; its chroma summed into ``ub``/``vb``, written
    (4:2:0) and cleared after each odd row."""
    _colour_row3(rgb[0], rgb[1], rgb[2], ccm, lut, ym, y_out[y], ub, vb, y_out.shape[1], idx[0], idx[1], idx[2])
    if y & 1:
        _chroma_out(ub, vb, uv_out[0, y // 2], uv_out[1, y // 2])
        ub[:] = 0.0
        vb[:] = 0.0


@njit(cache=True, error_model="numpy", fastmath=True)
def _front_colour_band(band, raw, black, scale, gmap, tgain, thr, dpc, clip_blc, clip_out, method, mk, ry, rx, ccm,
                       lut, ym, nbands, y_out, uv_out):
    """Band ``band`` of :func:`front_colour_kernel` (a function of its own: the parallel loop stays small)."""
    h, w = raw.shape
    h2, w2 = y_out.shape
    npairs = h2 // 2
    top = 2 + ry  # padded coordinates in RGGB phase, as in camlab.isp.fast.demosaic
    left = 2 + rx
    pa = npairs * band // nbands
    pb = npairs * (band + 1) // nbands
    if pa >= pb:
        return
    ring = np.empty((8, w + 5), np.float32)
    flag, nbl, rgb, idx, ub, vb = _band_scratch(w, w2)
    for yy in range(2 * pa - 2, 2 * pb + 2):  # fill CFA row yy; once five rows are in, output row yy - 2
        _ring_row(raw, yy, black, scale, gmap, tgain, thr, dpc, clip_blc, clip_out, ring[yy & 7], left, flag,
                  nbl)
        y = yy - 2
        if y < 2 * pa:
            continue
        yp = y + top
        if method == 0:
            _bilinear_row3(ring[(y - 1) & 7], ring[y & 7], ring[(y + 1) & 7], yp, left, w2, rgb[0], rgb[1],
                           rgb[2])
        elif method == 1:
            _malvar_row3(ring[(y - 2) & 7], ring[(y - 1) & 7], ring[y & 7], ring[(y + 1) & 7],
                         ring[(y + 2) & 7], yp, left, w2, rgb[0], rgb[1], rgb[2])
        else:
            _malvar_gains_row3(ring[(y - 2) & 7], ring[(y - 1) & 7], ring[y & 7], ring[(y + 1) & 7],
                               ring[(y + 2) & 7], yp, left, w2, rgb[0], rgb[1], rgb[2], mk)
        _emit_row(rgb, ccm, lut, ym, y, y_out, uv_out, ub, vb, idx)


CD_CODE = METHOD_CODES["colour_difference"]


@njit(cache=True, error_model="numpy", fastmath=True)
def _front_cd_band(band, raw, black, scale, gmap, tgain, thr, dpc, clip_blc, clip_out, cdw, ry, rx, ccm, lut, ym,
                   nbands, y_out, uv_out):
    """Band ``band`` of :func:`front_colour_kernel` for ``colour_difference``: rings of 16 CFA rows, 4 vertical
    difference rows and 8 d/alpha rows (``camlab.isp.fast.demosaic._cd_row``; ``cdw`` its (s, k) weights). Output
    row y reads d rows y-2..y+2, d row r reads the vertical differences of rows r-1..r+1, each of those the CFA rows
    two away: a band walks its CFA rows 5 ahead of its output."""
    h, w = raw.shape
    h2, w2 = y_out.shape
    npairs = h2 // 2
    top = 2 + ry  # only the parity of padded rows matters here (RGGB phase at even padded coordinates)
    left = 6 + rx  # d is read 2 columns beyond the frame and reads the CFA 3 further out
    pa = npairs * band // nbands
    pb = npairs * (band + 1) // nbands
    if pa >= pb:
        return
    wr = w + 14
    ring = np.empty((16, wr), np.float32)
    # zeroed, not np.empty: vector lanes past the written columns read these rows, and garbage there (denormals)
    # made the whole pass 2x slower (22 ms against 10 ms for 720p on one thread)
    vring = np.zeros((4, wr), np.float32)
    dh = np.zeros(wr, np.float32)
    dring = np.zeros((8, wr), np.float32)
    flag, nbl, rgb, idx, ub, vb = _band_scratch(w, w2)
    sw, k = cdw[0], cdw[1]
    x0, n = left - 2, w2 + 4
    for yy in range(2 * pa - 5, 2 * pb + 5):
        _ring_row(raw, yy, black, scale, gmap, tgain, thr, dpc, clip_blc, clip_out, ring[yy & 15], left, flag,
                  nbl)
        rv = yy - 2  # its vertical differences are complete now
        if rv < 2 * pa - 3:
            continue
        _ha_v_row(ring[(rv - 2) & 15], ring[(rv - 1) & 15], ring[rv & 15], ring[(rv + 1) & 15], ring[(rv + 2) & 15],
                  rv + top, x0, n, vring[rv & 3])
        r = rv - 1
        if r < 2 * pa - 2:
            continue
        _ha_h_row(ring[r & 15], r + top, x0 - 1, n + 2, dh)
        _cd_row(dh, vring[(r - 1) & 3], vring[r & 3], vring[(r + 1) & 3], r + top, x0, n, sw, k, dring[r & 7])
        y = r - 2
        if y < 2 * pa:
            continue
        _diff_rows3(ring[y & 15], dring[(y - 2) & 7], dring[(y - 1) & 7], dring[y & 7], dring[(y + 1) & 7],
                    dring[(y + 2) & 7], y + top, left, w2, rgb[0], rgb[1], rgb[2])
        _emit_row(rgb, ccm, lut, ym, y, y_out, uv_out, ub, vb, idx)


@njit(parallel=True, cache=True, error_model="numpy", fastmath=True)
def front_colour_kernel(raw, black, scale, gmap, tgain, thr, dpc, clip_blc, clip_out, method, mk, ry, rx, ccm, lut,
                        ym, nbands, y_out, uv_out):
    """Front end + demosaic (``method`` 0 bilinear, 1 Malvar 2004 at the paper's gains, -1 Malvar 2004 with the tap
    weights ``mk``, ``camlab.isp.stages.demosaic.malvar_coefficients``; 3 colour_difference with the weights ``mk``,
    ``camlab.isp.fast.demosaic.cd_weights``) + CCM/tone/CSC in one pass over row bands, as
    a hardware ISP's line-buffered pipeline: each band keeps the last eight white-balanced CFA rows in a ring and
    the current RGB row (planar) in a small buffer, so neither the CFA nor the RGB image goes through memory.
    ``(ry, rx)``: the position of R in the 2x2 tile. Same arithmetic as front_end_kernel -> demosaic_into ->
    colour_kernel (the rows at a band's edges are recomputed by both neighbours)."""
    for band in prange(nbands):
        if method == CD_CODE:
            _front_cd_band(band, raw, black, scale, gmap, tgain, thr, dpc, clip_blc, clip_out, mk, ry, rx, ccm, lut,
                           ym, nbands, y_out, uv_out)
        else:
            _front_colour_band(band, raw, black, scale, gmap, tgain, thr, dpc, clip_blc, clip_out, method, mk, ry,
                               rx, ccm, lut, ym, nbands, y_out, uv_out)


@njit(cache=True, error_model="numpy", fastmath=True)
def _dir_colour_band(b0, b1, c, q, top, left, ccm, lut, ym, y_out, uv_out):
    """Row pairs b0..b1-1 (one 4:2:0 chroma row each) of :func:`dir_colour_kernel`; the scratch rows are allocated
    once per band, not per pair."""
    w2 = y_out.shape[1]
    rgb = np.empty((3, w2), np.float32)
    idx = np.empty((3, w2), np.int32)
    ub = np.empty(w2, np.float32)
    vb = np.empty(w2, np.float32)
    for by in range(b0, b1):
        ub[:] = 0.0
        vb[:] = 0.0
        for oy in range(2):
            y = 2 * by + oy
            _dir_row3(c, q, y + top, left, w2, rgb[0], rgb[1], rgb[2])
            _colour_row3(rgb[0], rgb[1], rgb[2], ccm, lut, ym, y_out[y], ub, vb, w2, idx[0], idx[1], idx[2])
        _chroma_out(ub, vb, uv_out[0, by], uv_out[1, by])


@njit(parallel=True, cache=True, error_model="numpy", fastmath=True)
def dir_colour_kernel(c, q, top, left, ccm, lut, ym, nbands, y_out, uv_out):
    """The directional demosaic's output pass fused with CCM/tone/CSC: RGB rows from the padded CFA ``c`` and the
    d/alpha plane ``q`` (:func:`camlab.isp.fast.demosaic.directional_planes`) straight into Y' and 4:2:0 chroma,
    in ``nbands`` bands of row pairs."""
    npairs = y_out.shape[0] // 2
    for b in prange(nbands):
        _dir_colour_band(npairs * b // nbands, npairs * (b + 1) // nbands, c, q, top, left, ccm, lut, ym, y_out,
                         uv_out)


# ------------------------------------------------------------------------------------------------ (4) NR + 3D-DNR
@njit(cache=True, inline="always", error_model="numpy", fastmath=True)
def _med9(p0, p1, p2, p3, p4, p5, p6, p7, p8):
    """The median of nine values by a 19-exchange network (Paeth, "Median finding on a 3x3 grid", Graphics Gems,
    1990; the ``opt_med9`` form of Devillard's "Fast median search", 1998): min/max only, so a row vectorises."""
    p1, p2 = min(p1, p2), max(p1, p2)
    p4, p5 = min(p4, p5), max(p4, p5)
    p7, p8 = min(p7, p8), max(p7, p8)
    p0, p1 = min(p0, p1), max(p0, p1)
    p3, p4 = min(p3, p4), max(p3, p4)
    p6, p7 = min(p6, p7), max(p6, p7)
    p1, p2 = min(p1, p2), max(p1, p2)
    p4, p5 = min(p4, p5), max(p4, p5)
    p7, p8 = min(p7, p8), max(p7, p8)
    p3 = max(p0, p3)
    p5 = min(p5, p8)
    p4, p7 = min(p4, p7), max(p4, p7)
    p6 = max(p3, p6)
    p4 = max(p1, p4)
    p2 = min(p2, p5)
    p4 = min(p4, p7)
    p4, p2 = min(p4, p2), max(p4, p2)
    p4 = max(p6, p4)
    return min(p4, p2)


@njit(cache=True, error_model="numpy", fastmath=True)
def _median3_row(ra, rm, rb, o):
    """One output row of the 3x3 median from rows above/at/below (columns edge-replicated)."""
    wc = o.shape[0]
    for i in range(wc - 2):  # interior column i + 1: indices "counter + constant >= 0" (vectorises)
        o[i + 1] = _med9(ra[i], ra[i + 1], ra[i + 2], rm[i], rm[i + 1], rm[i + 2], rb[i], rb[i + 1], rb[i + 2])
    for j in (0, wc - 1):
        a, b = _clamp(j - 1, wc), _clamp(j + 1, wc)
        o[j] = _med9(ra[a], ra[j], ra[b], rm[a], rm[j], rm[b], rb[a], rb[j], rb[b])


@njit(parallel=True, cache=True, error_model="numpy", fastmath=True)
def chroma_median_kernel(uv, out):
    """Planar chroma (2, h, w) -> the 3x3 median of each plane (edge replicate): false-colour suppression
    (:func:`camlab.isp.stages.nr2d.median3_chroma`)."""
    n, hc = uv.shape[0], uv.shape[1]
    for t in prange(n * hc):
        p = t // hc
        r = t % hc
        _median3_row(uv[p, _clamp(r - 1, hc)], uv[p, r], uv[p, _clamp(r + 1, hc)], out[p, r])


@njit(cache=True, inline="always", error_model="numpy", fastmath=True)
def _sig_index(lut, v):
    n1 = lut.shape[0] - 1
    i = int(v * np.float32(n1) + np.float32(0.5))  # v >= -0.5/n1 in practice; clamped below either way
    if i < 0:
        i = 0
    elif i > n1:
        i = n1
    return i


@njit(cache=True, error_model="numpy", fastmath=True)
def _sig_row(lut, src, idx, out):
    """``out[x] = lut[_sig_index(lut, src[x])]`` for a row: the clamped indices in one vectorised pass (int32
    scratch ``idx``), then the gathers."""
    n1 = lut.shape[0] - 1
    n1f = np.float32(n1)
    half = np.float32(0.5)
    for x in range(src.shape[0]):
        idx[x] = min(max(np.int32(src[x] * n1f + half), np.int32(0)), np.int32(n1))
    for x in range(src.shape[0]):
        out[x] = lut[np.uint32(idx[x])]


@njit(cache=True, inline="always", error_model="numpy", fastmath=True)
def _bilateral_luma(y, r, x, c, inv, ry, cross, h, w):
    """One luma pixel of the bilateral: the box of radius ``ry`` and, with ``cross``, the four axial taps at ry + 1
    (``camlab.isp.stages.nr2d.luma_offsets``); edges replicate."""
    num = np.float32(0.0)
    den = np.float32(0.0)
    one = np.float32(1.0)
    zero = np.float32(0.0)
    if r - ry >= 0 and r + ry < h and x - ry >= 0 and x + ry < w:
        for dy in range(-ry, ry + 1):
            row = y[r + dy]
            for dx in range(-ry, ry + 1):
                v = row[x + dx]
                wt = max(zero, one - abs(v - c) * inv)
                num += wt * v
                den += wt
    else:
        for dy in range(-ry, ry + 1):
            row = y[_clamp(r + dy, h)]
            for dx in range(-ry, ry + 1):
                v = row[_clamp(x + dx, w)]
                wt = max(zero, one - abs(v - c) * inv)
                num += wt * v
                den += wt
    if cross:
        e = ry + 1
        for k in range(4):
            dy = -e if k == 0 else (e if k == 3 else 0)
            dx = -e if k == 1 else (e if k == 2 else 0)
            v = y[_clamp(r + dy, h), _clamp(x + dx, w)]
            wt = max(zero, one - abs(v - c) * inv)
            num += wt * v
            den += wt
    return num / den


@njit(cache=True, inline="always", error_model="numpy", fastmath=True)
def _ctap(a0, a1, g, u0, v0, g0, gc, k, su, sv, sw):
    wt = max(np.float32(0.0), np.float32(1.0) - (abs(a0 - u0) + abs(a1 - v0) + gc * abs(g - g0)) * k)
    return su + wt * a0, sv + wt * a1, sw + wt


@njit(cache=True, error_model="numpy", fastmath=True)
def _chroma_r1_rows(uv, yh, cinv, by, sc, gc, guided, wc, nu, nv, den):
    """Interior columns sc..wc-sc-1 of chroma row ``by`` for a radius-1 window with taps ``sc`` apart (joint with
    the co-sited luma ``yh`` when ``guided``): the sums into ``nu``, ``nv``, ``den``, centre tap first. Without the
    guide, ``gc`` is 0 and the guide rows are the centre row, so the guide term is exactly 0."""
    s2 = 2 * sc
    n = wc - s2
    ua, um, ub = uv[0, by - sc], uv[0, by], uv[0, by + sc]
    va, vm, vb = uv[1, by - sc], uv[1, by], uv[1, by + sc]
    if guided:
        ga, gm, gb = yh[by - sc], yh[by], yh[by + sc]
        g_c = gc
    else:
        ga = gm = gb = um
        g_c = np.float32(0.0)
    ua0, ua1, ua2, um0, um2, ub0, ub1, ub2 = ua, ua[sc:], ua[s2:], um, um[s2:], ub, ub[sc:], ub[s2:]
    va0, va1, va2, vm0, vm2, vb0, vb1, vb2 = va, va[sc:], va[s2:], vm, vm[s2:], vb, vb[sc:], vb[s2:]
    ga0, ga1, ga2, gm0, gm2, gb0, gb1, gb2 = ga, ga[sc:], ga[s2:], gm, gm[s2:], gb, gb[sc:], gb[s2:]
    umc, vmc, gmc, kc_ = um[sc:], vm[sc:], gm[sc:], cinv[sc:]
    nuc, nvc, denc = nu[sc:], nv[sc:], den[sc:]
    for i in range(n):
        u0 = umc[i]
        v0 = vmc[i]
        g0 = gmc[i]
        k = kc_[i]
        su, sv, sw = u0, v0, np.float32(1.0)
        su, sv, sw = _ctap(ua0[i], va0[i], ga0[i], u0, v0, g0, g_c, k, su, sv, sw)
        su, sv, sw = _ctap(ua1[i], va1[i], ga1[i], u0, v0, g0, g_c, k, su, sv, sw)
        su, sv, sw = _ctap(ua2[i], va2[i], ga2[i], u0, v0, g0, g_c, k, su, sv, sw)
        su, sv, sw = _ctap(um0[i], vm0[i], gm0[i], u0, v0, g0, g_c, k, su, sv, sw)
        su, sv, sw = _ctap(um2[i], vm2[i], gm2[i], u0, v0, g0, g_c, k, su, sv, sw)
        su, sv, sw = _ctap(ub0[i], vb0[i], gb0[i], u0, v0, g0, g_c, k, su, sv, sw)
        su, sv, sw = _ctap(ub1[i], vb1[i], gb1[i], u0, v0, g0, g_c, k, su, sv, sw)
        su, sv, sw = _ctap(ub2[i], vb2[i], gb2[i], u0, v0, g0, g_c, k, su, sv, sw)
        nuc[i] = su
        nvc[i] = sv
        denc[i] = sw


@njit(cache=True, error_model="numpy", fastmath=True)
def _nr_block_row(by, y, uv, sig_lut, inv_sig_lut, ky, ry, cy, kc, rc, sc, gc, yh, mono, has_prev, prev_y, prev_uv,
                  a_static, m_lo, m_span, mwin, y_out, uv_out):
    """Luma rows 2*by, 2*by+1 and chroma row ``by`` of :func:`nr_kernel` (a function of its own so the parallel
    loop stays small: numba compiles it several times faster). Both luma rows are denoised before the temporal
    blend, so the block motion window (``mwin``) can read both. ``cy``: the luma window is the cross (the box plus
    its four axial taps at ry + 1)."""
    h, w = y.shape
    hc, wc = uv.shape[1], uv.shape[2]
    zero = np.float32(0.0)
    one = np.float32(1.0)
    tiny = np.float32(1e-6)
    inv_span = one / m_span
    amax = np.zeros(wc, dtype=np.float32)
    inv = np.empty(w, dtype=np.float32)
    idx = np.empty(w, dtype=np.int32)
    for oy in range(2):
        r = 2 * by + oy
        yr = y[r]
        yo = y_out[r]
        if ry > 0 and ky > 0:
            _sig_row(sig_lut, yr, idx, inv)  # gather pass, then the range-kernel scale per pixel
            for x in range(w):
                inv[x] = one / max(ky * inv[x], tiny)
            if ry == 1 and cy and 1 < r < h - 2 and w > 4:
                ya = y[r - 1]
                yb = y[r + 1]
                yaa = y[r - 2]
                ybb = y[r + 2]
                # branch-free 13-tap cross at x = i + 2 (indices "counter + constant >= 0": vectorises)
                for i in range(w - 4):
                    c = yr[i + 2]
                    k = inv[i + 2]
                    v0 = ya[i + 1]
                    v1 = ya[i + 2]
                    v2 = ya[i + 3]
                    v3 = yr[i + 1]
                    v5 = yr[i + 3]
                    v6 = yb[i + 1]
                    v7 = yb[i + 2]
                    v8 = yb[i + 3]
                    u0 = yaa[i + 2]
                    u1 = yr[i]
                    u2 = yr[i + 4]
                    u3 = ybb[i + 2]
                    w0 = max(zero, one - abs(v0 - c) * k)
                    w1 = max(zero, one - abs(v1 - c) * k)
                    w2 = max(zero, one - abs(v2 - c) * k)
                    w3 = max(zero, one - abs(v3 - c) * k)
                    w5 = max(zero, one - abs(v5 - c) * k)
                    w6 = max(zero, one - abs(v6 - c) * k)
                    w7 = max(zero, one - abs(v7 - c) * k)
                    w8 = max(zero, one - abs(v8 - c) * k)
                    t0 = max(zero, one - abs(u0 - c) * k)
                    t1 = max(zero, one - abs(u1 - c) * k)
                    t2 = max(zero, one - abs(u2 - c) * k)
                    t3 = max(zero, one - abs(u3 - c) * k)
                    num = (c + w0 * v0 + w1 * v1 + w2 * v2 + w3 * v3 + w5 * v5 + w6 * v6 + w7 * v7 + w8 * v8
                           + t0 * u0 + t1 * u1 + t2 * u2 + t3 * u3)
                    den = one + w0 + w1 + w2 + w3 + w5 + w6 + w7 + w8 + t0 + t1 + t2 + t3
                    yo[i + 2] = num / den
                for x in (0, 1, w - 2, w - 1):
                    yo[x] = _bilateral_luma(y, r, x, yr[x], inv[x], ry, cy, h, w)
            elif ry == 1 and not cy and 0 < r < h - 1 and w > 2:
                ya = y[r - 1]
                yb = y[r + 1]
                yc = yr[1:]
                kc_ = inv[1:]
                yoc = yo[1:]
                # branch-free 3x3 at x = i + 1: indices "counter + constant >= 0" (no wraparound, vectorises)
                for i in range(w - 2):
                    c = yc[i]
                    k = kc_[i]
                    v0 = ya[i]
                    v1 = ya[i + 1]
                    v2 = ya[i + 2]
                    v3 = yr[i]
                    v5 = yr[i + 2]
                    v6 = yb[i]
                    v7 = yb[i + 1]
                    v8 = yb[i + 2]
                    w0 = max(zero, one - abs(v0 - c) * k)
                    w1 = max(zero, one - abs(v1 - c) * k)
                    w2 = max(zero, one - abs(v2 - c) * k)
                    w3 = max(zero, one - abs(v3 - c) * k)
                    w5 = max(zero, one - abs(v5 - c) * k)
                    w6 = max(zero, one - abs(v6 - c) * k)
                    w7 = max(zero, one - abs(v7 - c) * k)
                    w8 = max(zero, one - abs(v8 - c) * k)
                    num = c + w0 * v0 + w1 * v1 + w2 * v2 + w3 * v3 + w5 * v5 + w6 * v6 + w7 * v7 + w8 * v8
                    den = one + w0 + w1 + w2 + w3 + w5 + w6 + w7 + w8
                    yoc[i] = num / den
                yo[0] = _bilateral_luma(y, r, 0, yr[0], inv[0], ry, cy, h, w)
                yo[w - 1] = _bilateral_luma(y, r, w - 1, yr[w - 1], inv[w - 1], ry, cy, h, w)
            else:
                for x in range(w):
                    yo[x] = _bilateral_luma(y, r, x, yr[x], inv[x], ry, cy, h, w)
        else:
            for x in range(w):
                yo[x] = yr[x]
    if has_prev:
        dmean = np.empty(w, dtype=np.float32)
        if mwin:  # block window: |d| of both rows per column, then the 3-column mean (edge replicate)
            dsum = np.empty(w, dtype=np.float32)
            y0o, y1o = y_out[2 * by], y_out[2 * by + 1]
            p0, p1 = prev_y[2 * by], prev_y[2 * by + 1]
            for x in range(w):
                dsum[x] = abs(y0o[x] - p0[x]) + abs(y1o[x] - p1[x])
            sixth = np.float32(1.0 / 6.0)
            dc = dsum[1:]
            dm = dmean[1:]
            for i in range(w - 2):  # x = i + 1
                dm[i] = (dsum[i] + dc[i] + dc[i + 1]) * sixth
            dmean[0] = (dsum[0] + dsum[0] + dsum[min(1, w - 1)]) * sixth
            if w > 1:
                dmean[w - 1] = (dsum[w - 2] + dsum[w - 1] + dsum[w - 1]) * sixth
        for oy in range(2):
            r = 2 * by + oy
            yo = y_out[r]
            pr = prev_y[r]
            _sig_row(inv_sig_lut, yo, idx, inv)
            for x in range(w):  # mwin is loop-invariant: LLVM unswitches the loop, each copy vectorises
                c = yo[x]
                p = pr[x]
                d = dmean[x] if mwin else abs(c - p)
                m = (d * inv[x] - m_lo) * inv_span
                m = min(max(m, zero), one)
                a = a_static + (one - a_static) * m
                yo[x] = p + a * (c - p)
                inv[x] = a
            for j in range(wc):
                amax[j] = max(amax[j], max(inv[2 * j], inv[2 * j + 1]))
    uo = uv_out[0, by]
    vo = uv_out[1, by]
    if mono:
        for j in range(wc):
            uo[j] = zero
            vo[j] = zero
        return
    uc = uv[0, by]
    vc = uv[1, by]
    if rc > 0 and kc > 0:
        cinv = np.empty(wc, dtype=np.float32)
        nu = np.zeros(wc, dtype=np.float32)
        nv = np.zeros(wc, dtype=np.float32)
        den = np.zeros(wc, dtype=np.float32)
        ya = y[2 * by]
        yb = y[2 * by + 1]
        for j in range(wc):  # range scale from the co-sited mean luma (before NR)
            cinv[j] = np.float32(0.25) * (ya[2 * j] + ya[2 * j + 1] + yb[2 * j] + yb[2 * j + 1])
        _sig_row(sig_lut, cinv, idx, cinv)
        for j in range(wc):
            cinv[j] = np.float32(0.5) / max(kc * cinv[j], tiny)
        guided = gc > 0
        if rc == 1 and sc == 1 and not guided and 0 < by < hc - 1 and wc > 2:
            # branch-free 3x3 with register accumulators (vectorisable), borders below
            ua, um, ub_ = uv[0, by - 1], uv[0, by], uv[0, by + 1]
            va, vm, vb_ = uv[1, by - 1], uv[1, by], uv[1, by + 1]
            umc, vmc, kcc = um[1:], vm[1:], cinv[1:]
            nuc, nvc, denc = nu[1:], nv[1:], den[1:]
            for i in range(wc - 2):  # j = i + 1: indices "counter + constant >= 0" (no wraparound)
                u0 = umc[i]
                v0 = vmc[i]
                k = kcc[i]
                su = u0
                sv = v0
                sw = one
                for t in range(9):
                    if t == 4:
                        continue
                    dyy = t // 3
                    dd = t % 3
                    if dyy == 0:
                        a0 = ua[i + dd]
                        a1 = va[i + dd]
                    elif dyy == 1:
                        a0 = um[i + dd]
                        a1 = vm[i + dd]
                    else:
                        a0 = ub_[i + dd]
                        a1 = vb_[i + dd]
                    wt = max(zero, one - (abs(a0 - u0) + abs(a1 - v0)) * k)
                    su += wt * a0
                    sv += wt * a1
                    sw += wt
                nuc[i] = su
                nvc[i] = sv
                denc[i] = sw
            lo_j = 1
            hi_j = wc - 1
            skip_interior = True
        elif rc == 1 and sc <= by < hc - sc and wc > 2 * sc:
            # radius 1 with taps ``sc`` apart and/or the luma guide: the same register accumulation, each tap an
            # offset row slice (so every index is "counter + constant"); borders below
            _chroma_r1_rows(uv, yh, cinv, by, sc, gc, guided, wc, nu, nv, den)
            lo_j = sc
            hi_j = wc - sc
            skip_interior = True
        else:
            lo_j = min(rc * sc, wc)
            hi_j = max(wc - rc * sc, lo_j)
            skip_interior = False
        reach = rc * sc  # interior columns j = i + reach: every tap index "counter + constant >= 0" (vectorises)
        ucc, vcc, kcc_ = uc[reach:], vc[reach:], cinv[reach:]
        nuc_, nvc_, denc_ = nu[reach:], nv[reach:], den[reach:]
        n_in = 0 if skip_interior else hi_j - lo_j
        ycen = yh[by] if guided else yh[0]
        ycc = ycen[reach:] if guided else ycen
        for dy in range(-rc, rc + 1):
            rr = _clamp(by + dy * sc, hc)
            urow = uv[0, rr]
            vrow = uv[1, rr]
            yrow = yh[rr] if guided else yh[0]
            for dx in range(-rc, rc + 1):
                ua_ = urow[reach + dx * sc:]
                va_ = vrow[reach + dx * sc:]
                if guided:  # joint bilateral: the co-sited luma difference joins the range distance
                    ya_ = yrow[reach + dx * sc:]
                    for i in range(n_in):  # tap-outer, pixel-inner
                        a0 = ua_[i]
                        a1 = va_[i]
                        dist = abs(a0 - ucc[i]) + abs(a1 - vcc[i]) + gc * abs(ya_[i] - ycc[i])
                        wt = max(zero, one - dist * kcc_[i])
                        nuc_[i] += wt * a0
                        nvc_[i] += wt * a1
                        denc_[i] += wt
                else:
                    for i in range(n_in):  # tap-outer, pixel-inner
                        a0 = ua_[i]
                        a1 = va_[i]
                        wt = max(zero, one - (abs(a0 - ucc[i]) + abs(a1 - vcc[i])) * kcc_[i])
                        nuc_[i] += wt * a0
                        nvc_[i] += wt * a1
                        denc_[i] += wt
                for j0, j1 in ((0, lo_j), (hi_j, wc)):  # border columns: clamped taps
                    for j in range(j0, j1):
                        cc = _clamp(j + dx * sc, wc)
                        dist = abs(urow[cc] - uc[j]) + abs(vrow[cc] - vc[j])
                        if guided:
                            dist += gc * abs(yrow[cc] - ycen[j])
                        wt = max(zero, one - dist * cinv[j])
                        nu[j] += wt * urow[cc]
                        nv[j] += wt * vrow[cc]
                        den[j] += wt
        for j in range(wc):
            uo[j] = nu[j] / den[j]
            vo[j] = nv[j] / den[j]
    else:
        for j in range(wc):
            uo[j] = uc[j]
            vo[j] = vc[j]
    if has_prev:
        pu = prev_uv[0, by]
        pv = prev_uv[1, by]
        for j in range(wc):
            a = amax[j]
            uo[j] = pu[j] + a * (uo[j] - pu[j])
            vo[j] = pv[j] + a * (vo[j] - pv[j])


@njit(parallel=True, cache=True, error_model="numpy", fastmath=True)
def nr_kernel(y, uv, sig_lut, inv_sig_lut, ky, ry, cy, kc, rc, sc, gc, yh, mono, has_prev, prev_y, prev_uv, a_static,
              m_lo, m_span, mwin, y_out, uv_out):
    """Luma bilateral (box radius ry, with ``cy`` plus the four axial taps at ry + 1; triangular range kernel
    ky*sigma), chroma bilateral on the planar 4:2:0
    chroma (2, H/2, W/2) (rc, kc, tap step sc; with ``gc`` > 0 joint with the co-sited mean luma ``yh`` (H/2, W/2):
    ``gc`` is twice the tuning's ``guide_c``, the chroma distance here being |dCb| + |dCr|), then the
    motion-adaptive recursive filter against (prev_y, prev_uv), its motion test per pixel or (``mwin``) on the
    mean difference over each pixel's 2x3 block-row window (``camlab.isp.stages.nr3d``)."""
    for by in prange(uv.shape[1]):
        _nr_block_row(by, y, uv, sig_lut, inv_sig_lut, ky, ry, cy, kc, rc, sc, gc, yh, mono, has_prev, prev_y, prev_uv,
                      a_static, m_lo, m_span, mwin, y_out, uv_out)


@njit(parallel=True, cache=True, error_model="numpy", fastmath=True)
def luma_half_kernel(y, yh):
    """Co-sited mean luma of each 2x2 block, (H, W) -> (H/2, W/2), in the order :func:`_nr_block_row` sums it."""
    quarter = np.float32(0.25)
    for by in prange(yh.shape[0]):
        ya = y[2 * by]
        yb = y[2 * by + 1]
        o = yh[by]
        for j in range(yh.shape[1]):
            o[j] = quarter * (ya[2 * j] + ya[2 * j + 1] + yb[2 * j] + yb[2 * j + 1])


# ------------------------------------------------------------------------------------------------ (5) sharpen
@njit(parallel=True, cache=True, error_model="numpy", fastmath=True)
def sharpen_kernel(y, sig_lut, amount, coring, out):
    """Unsharp mask (3x3 binomial, edge replicate) with soft coring at coring*sigma(y) -> float luma."""
    h, w = y.shape
    for r in prange(h):
        ya = y[_clamp(r - 1, h)]
        yr = y[r]
        yb = y[_clamp(r + 1, h)]
        o = out[r]
        thr = np.empty(w, dtype=np.float32)
        idx = np.empty(w, dtype=np.int32)
        _sig_row(sig_lut, yr, idx, thr)
        for x in range(w):
            thr[x] = coring * thr[x]
        for x in range(w):
            x0 = x - 1 if x > 0 else 0
            x2 = x + 1 if x + 1 < w else w - 1
            c0 = ya[x0] + np.float32(2.0) * yr[x0] + yb[x0]
            c1 = ya[x] + np.float32(2.0) * yr[x] + yb[x]
            c2 = ya[x2] + np.float32(2.0) * yr[x2] + yb[x2]
            blur = (c0 + np.float32(2.0) * c1 + c2) * np.float32(1.0 / 16.0)
            c = yr[x]
            d = c - blur
            t = thr[x]
            d = max(d - t, np.float32(0.0)) + min(d + t, np.float32(0.0))
            o[x] = min(max(c + amount * d, np.float32(0.0)), np.float32(1.0))


@njit(cache=True, inline="always", error_model="numpy", fastmath=True)
def _sharp_code(ya, yr, yb, x0, x, x2, t, amount, y_off, y_gain):
    c0 = ya[x0] + np.float32(2.0) * yr[x0] + yb[x0]
    c1 = ya[x] + np.float32(2.0) * yr[x] + yb[x]
    c2 = ya[x2] + np.float32(2.0) * yr[x2] + yb[x2]
    blur = (c0 + np.float32(2.0) * c1 + c2) * np.float32(1.0 / 16.0)
    c = yr[x]
    d = c - blur
    d = max(d - t, np.float32(0.0)) + min(d + t, np.float32(0.0))
    v = min(max(c + amount * d, np.float32(0.0)), np.float32(1.0))
    return np.uint8(int(y_off + y_gain * v + np.float32(0.5)))


@njit(parallel=True, cache=True, error_model="numpy", fastmath=True)
def sharpen_nv12_kernel(y, sig_lut, amount, coring, y_off, y_gain, out):
    """sharpen_kernel fused with the luma quantisation: writes NV12 luma codes into out[:H]."""
    h, w = y.shape
    for r in prange(h):
        ya = y[_clamp(r - 1, h)]
        yr = y[r]
        yb = y[_clamp(r + 1, h)]
        o = out[r]
        thr = np.empty(w, dtype=np.float32)
        idx = np.empty(w, dtype=np.int32)
        _sig_row(sig_lut, yr, idx, thr)  # gather pass: coring threshold from the noise LUT
        for x in range(w):
            thr[x] = coring * thr[x]
        o[0] = _sharp_code(ya, yr, yb, 0, 0, min(1, w - 1), thr[0], amount, y_off, y_gain)
        oc = o[1:]
        tc = thr[1:]
        for i in range(w - 2):  # x = i + 1: indices "counter + constant >= 0" (no wraparound, vectorises)
            oc[i] = _sharp_code(ya, yr, yb, i, i + 1, i + 2, tc[i], amount, y_off, y_gain)
        if w > 1:
            o[w - 1] = _sharp_code(ya, yr, yb, w - 2, w - 1, w - 1, thr[w - 1], amount, y_off, y_gain)


@njit(parallel=True, cache=True, error_model="numpy")
def luma_nv12_kernel(y, y_off, y_gain, out):
    h, w = y.shape
    for r in prange(h):
        for x in range(w):
            v = np.floor(y_off + y_gain * y[r, x] + np.float32(0.5))
            out[r, x] = np.uint8(min(max(v, np.float32(0.0)), np.float32(255.0)))


@njit(parallel=True, cache=True, error_model="numpy")
def chroma_nv12_kernel(uvp, c_gain, out):
    """Planar chroma (2, H/2, W/2) -> interleaved NV12 chroma rows of ``out``: code = clip(int(128 + gain * c +
    0.5), 0, 255). Clipping the float before the truncating conversion gives the same codes as clipping the int
    after it (truncation and clipping at 0 agree on (-1, 0)), and lets both samples of a pair be stored in one
    vectorised loop (4x faster than a loop per plane with strided stores, 2026-12-07)."""
    hc, wc = uvp.shape[1], uvp.shape[2]
    h = out.shape[0] - hc
    lo = np.float32(0.0)
    hi = np.float32(255.0)
    bias = np.float32(128.5)
    for r in prange(hc):
        o = out[h + r]
        cb = uvp[0, r]
        cr = uvp[1, r]
        for j in range(wc):
            o[2 * j] = np.uint8(np.int32(min(max(bias + c_gain * cb[j], lo), hi)))
            o[2 * j + 1] = np.uint8(np.int32(min(max(bias + c_gain * cr[j], lo), hi)))


# ------------------------------------------------------------------------------------------------ (6) scale + NV12
@njit(parallel=True, cache=True, error_model="numpy", fastmath=True)
def _resample_rows(src, iy, wy, tmp):
    """Vertical pass over rows flattened to (H, W*C) -> (oh, W*C)."""
    oh, n = tmp.shape
    for o in prange(oh):
        t = tmp[o]
        for x in range(n):
            t[x] = np.float32(0.0)
        for a in range(iy.shape[1]):
            wa = wy[o, a]
            if wa == 0:
                continue
            row = src[iy[o, a]]
            for x in range(n):
                t[x] += wa * row[x]


@njit(parallel=True, cache=True, error_model="numpy", fastmath=True)
def _resample_cols(tmp, ix, wx, nc, out):
    """Horizontal pass: (oh, W*C) -> (oh, ow*C)."""
    oh = out.shape[0]
    ow = out.shape[1] // nc
    taps = ix.shape[1]
    for o in prange(oh):
        t = tmp[o]
        r = out[o]
        for q in range(ow):
            for c in range(nc):
                acc = np.float32(0.0)
                for b in range(taps):
                    acc += wx[q, b] * t[ix[q, b] * nc + c]
                r[q * nc + c] = acc


def resample_kernel(src, iy, wy, ix, wx, out):
    """Separable tent-filter resampling of a (H, W, C) plane with precomputed taps -> out (oh, ow, C)."""
    h, w, nc = src.shape
    tmp = np.empty((out.shape[0], w * nc), dtype=np.float32)
    _resample_rows(src.reshape(h, w * nc), iy, wy, tmp)
    _resample_cols(tmp, ix, wx, nc, out.reshape(out.shape[0], -1))
    return out


@njit(parallel=True, cache=True, error_model="numpy", fastmath=True)
def resample_nv12_kernel(src, iy, wy, ixt, wxt, x_lo, x_hi, off, gain, out, row0, col0, cstride):
    """Separable tent resampling of one plane ``src`` (H, W) quantised straight into NV12 codes:
    ``out[row0 + o, col0 + cstride * q] = clip(floor(off + gain * value + 0.5))`` (luma: col0 0, cstride 1;
    interleaved chroma: col0 0/1, cstride 2). Vertical taps ``iy``/``wy`` (oh, T); horizontal taps transposed,
    ``ixt``/``wxt`` (T, ow), so the horizontal pass runs tap-outer over contiguous rows. Only source columns
    ``x_lo..x_hi-1`` are read."""
    oh, ow = iy.shape[0], ixt.shape[1]
    taps_y, taps_x = iy.shape[1], ixt.shape[0]
    n = x_hi - x_lo
    for o in prange(oh):
        t = np.zeros(n, dtype=np.float32)
        acc = np.zeros(ow, dtype=np.float32)
        for a in range(taps_y):
            wa = wy[o, a]
            if wa == 0:
                continue
            row = src[iy[o, a], x_lo:]
            for x in range(n):
                t[x] += wa * row[x]
        for b in range(taps_x):
            ib = ixt[b]
            wb = wxt[b]
            for q in range(ow):
                acc[q] += wb[q] * t[np.uint32(ib[q] - x_lo)]
        r = out[row0 + o]
        for q in range(ow):
            v = np.floor(off + gain * acc[q] + np.float32(0.5))
            r[col0 + cstride * q] = np.uint8(min(max(v, np.float32(0.0)), np.float32(255.0)))


_WEIGHTS: dict = {}


def _weights(n_in: int, n_out: int, start: int, length: int):
    """Cached :func:`resample_weights` (the stream sizes are fixed, so each frame reuses them) as (index, weight,
    index transposed, weight transposed)."""
    key = (n_in, n_out, start, length)
    wts = _WEIGHTS.get(key)
    if wts is None:
        if len(_WEIGHTS) > 32:
            _WEIGHTS.clear()
        idx, wt = resample_weights(n_in, n_out, start, length)
        wts = _WEIGHTS[key] = (idx, wt, np.ascontiguousarray(idx.T), np.ascontiguousarray(wt.T))
    return wts


def scale_to_nv12(y: np.ndarray, uvp: np.ndarray, out_w: int, out_h: int, window, rng: str) -> np.ndarray:
    """Luma (H, W) + planar chroma (2, H/2, W/2) -> NV12 (out_h * 3/2, out_w) of the source ``window`` in one
    resample-and-quantise pass per plane (no float planes, no packing pass)."""
    x0, y0, cw, ch = window
    y_off, y_gain, c_gain = (16.0, 219.0, 224.0) if rng == "limited" else (0.0, 255.0, 255.0)
    out = np.empty((out_h + out_h // 2, out_w), dtype=np.uint8)
    iy, wy, _, _ = _weights(y.shape[0], out_h, y0, ch)
    ix, _, ixt, wxt = _weights(y.shape[1], out_w, x0, cw)
    resample_nv12_kernel(y, iy, wy, ixt, wxt, int(ix.min()), int(ix.max()) + 1, F32(y_off), F32(y_gain), out, 0, 0,
                         1)
    iy, wy, _, _ = _weights(uvp.shape[1], out_h // 2, y0 // 2, ch // 2)
    ix, _, ixt, wxt = _weights(uvp.shape[2], out_w // 2, x0 // 2, cw // 2)
    for c in range(2):
        resample_nv12_kernel(uvp[c], iy, wy, ixt, wxt, int(ix.min()), int(ix.max()) + 1, F32(128.0), F32(c_gain),
                             out, out_h, c, 2)
    return out


def _resample(plane: np.ndarray, out_w: int, out_h: int, window) -> np.ndarray:
    x0, y0, cw, ch = window
    squeeze = plane.ndim == 2
    src = plane[..., None] if squeeze else plane
    if (cw, ch) == (out_w, out_h):
        res = src[y0:y0 + ch, x0:x0 + cw]
    else:
        iy, wy = resample_weights(plane.shape[0], out_h, y0, ch)
        ix, wx = resample_weights(plane.shape[1], out_w, x0, cw)
        res = np.empty((out_h, out_w, src.shape[2]), dtype=np.float32)
        resample_kernel(np.ascontiguousarray(src, dtype=np.float32), iy, wy, ix, wx, res)
    return res[..., 0] if squeeze else res


def pack_nv12_fast(y: np.ndarray, uv: np.ndarray, rng: str = "limited") -> np.ndarray:
    """Numba twin of :func:`camlab.isp.stages.csc.pack_nv12` (``uv`` (H/2, W/2, 2) or planar (2, H/2, W/2))."""
    h, w = y.shape
    uvp = np.moveaxis(uv, -1, 0) if uv.shape[-1] == 2 and uv.shape[0] != 2 else uv
    out = np.empty((h + h // 2, w), dtype=np.uint8)
    y_off, y_gain, c_gain = (16.0, 219.0, 224.0) if rng == "limited" else (0.0, 255.0, 255.0)
    luma_nv12_kernel(np.ascontiguousarray(y), F32(y_off), F32(y_gain), out)
    chroma_nv12_kernel(np.ascontiguousarray(uvp), F32(c_gain), out)
    return out


# ------------------------------------------------------------------------------------------------ driver
def _buf(cache: dict, name: str, shape, dtype=np.float32) -> np.ndarray:
    key = ("buf", name)
    a = cache.get(key)
    if a is None or a.shape != tuple(shape) or a.dtype != dtype:
        a = np.empty(shape, dtype=dtype)
        cache[key] = a
    return a


def run_fast(pipe, frame, black, white, dgain, wb, ccm, sig_lut, state, clock):
    """Fast-path twin of ``Pipeline._run_reference``: returns float Y (H2, W2) and planar chroma (2, H2/2, W2/2)."""
    cfg = pipe.config
    cache = pipe._cache
    pat = frame.pattern
    code = PATTERN_CODES[pat]
    h, w = frame.data.shape
    h2, w2 = (h // 2) * 2, (w // 2) * 2
    # front end constants: LSC map (cached per frame size) times per-colour digital gain * WB: AWB moves the gains
    # every frame, and rebuilding a full-size product map each frame cost ~5 ms at 1080p
    black_t = cfa_tile(black, pat)
    scale_t = (1.0 / (float(white) - cfa_tile(black, pat).astype(np.float64))).astype(np.float32)
    gmap = pipe._gain_map((h, w), pat)
    tgain = (rgb_tile(wb, pat).astype(np.float64) * float(dgain)).astype(np.float32)
    fe = (black_t, scale_t, gmap, tgain, np.float32(cfg.dpc.threshold), bool(cfg.dpc.enabled), bool(cfg.blc.clip),
          bool(cfg.wb.clip))
    data = np.ascontiguousarray(frame.data)
    y = _buf(cache, "y", (h2, w2))
    uv = _buf(cache, "uv", (2, h2 // 2, w2 // 2))  # planar Cb, Cr
    # the tone LUT already holds the exposure bias (it tabulates tone_map over linear [0, 1])
    colour = (np.ascontiguousarray(ccm, dtype=np.float32), pipe._tone_lut(TONE_LUT_SIZE),
              rgb_to_yuv_matrix(cfg.csc.matrix))
    method = METHOD_CODES[cfg.demosaic.method]
    if method in (0, 1, CD_CODE):
        # (1-3) one line-buffered pass: BLC + DPC + LSC + gain + WB -> demosaic -> CCM + tone + CSC
        ry, rx = (int(v) for v in _R_OFFSETS[code])
        nbands = max(1, min(h2 // 2, 4 * get_num_threads()))
        mk = malvar_coefficients(*cfg.demosaic.malvar_gains)
        if method == 1 and cfg.demosaic.malvar_gains != MALVAR_GAINS:
            method = -1  # the gains twin (camlab.isp.fast.demosaic._malvar_gains_row3)
        elif method == CD_CODE:
            mk = cd_weights(cfg.demosaic.cd_smoothing)
        front_colour_kernel(data, *fe, method, mk, ry, rx, *colour, nbands, y, uv)
        clock.lap("front_demosaic_colour")
    else:
        # (1) front end written straight into the demosaic workspace (only its margins get filled then)
        ws = workspace(h, w)
        view = ws.cfa_view(code)
        ry, rx = (int(v) for v in _R_OFFSETS[code])
        front_end_kernel(data, *fe, ws.padded, PAD + ry, PAD + rx)
        clock.lap("front_end")
        # (2) the directional method's full-frame passes (margins, d/alpha plane)
        c, q, top, left = directional_planes(view, code, ws, check_finite=False)
        clock.lap("demosaic")
        # (3) its output pass fused with CCM + tone + CSC
        dir_colour_kernel(c, q, top, left, *colour, max(1, min(h2 // 2, 4 * get_num_threads())), y, uv)
        clock.lap("colour_csc")
    # (4) NR2D + 3D-DNR
    nr, tn = cfg.nr2d, cfg.nr3d
    has_prev = bool(tn.enabled and state is not None and state.prev_y is not None
                    and state.prev_y.shape == y.shape and state.prev_uv is not None
                    and state.prev_uv.shape == (h2 // 2, w2 // 2, 2))
    temporal = tn.enabled and state is not None
    y_nr = np.empty_like(y) if temporal else _buf(cache, "y_nr", y.shape)
    uv_nr = np.empty_like(uv) if temporal else _buf(cache, "uv_nr", uv.shape)
    ky = np.float32(nr.strength_y if nr.enabled else 0.0)
    kc = np.float32(nr.strength_c if nr.enabled else 0.0)
    prev_y = state.prev_y if has_prev else y
    prev_uv = np.moveaxis(state.prev_uv, -1, 0) if has_prev else uv  # the state keeps the (h, w, 2) layout
    inv_sig = (1.0 / np.maximum(sig_lut, np.float32(1e-6))).astype(np.float32)
    if nr.enabled and nr.median_c and not cfg.mono:
        uv_med = _buf(cache, "uv_med", uv.shape)
        chroma_median_kernel(uv, uv_med)
        uv = uv_med
    gc = np.float32(2.0 * nr.guide_c if nr.enabled else 0.0)
    if gc > 0 and not cfg.mono:
        yh = _buf(cache, "y_half", (h2 // 2, w2 // 2))
        luma_half_kernel(y, yh)
    else:
        gc = np.float32(0.0)
        yh = _buf(cache, "y_half_unused", (1, 1))
    nr_kernel(y, uv, sig_lut, inv_sig, ky, int(nr.radius_y), nr.window_y == "cross", kc, int(nr.radius_c),
              int(nr.step_c), gc, yh,
              bool(cfg.mono), has_prev, prev_y, prev_uv,
              np.float32(tn.alpha_static), np.float32(tn.motion_lo), np.float32(tn.motion_hi - tn.motion_lo),
              tn.motion_window == "block", y_nr, uv_nr)
    if temporal:
        state.prev_y, state.prev_uv = y_nr, np.moveaxis(uv_nr, 0, -1)
    clock.lap("nr")
    if cfg.mono:
        uv_nr[...] = 0.0
    return y_nr, uv_nr


def _resample_planar(uvp: np.ndarray, out_w: int, out_h: int, luma_window) -> np.ndarray:
    """Planar chroma (2, h, w) over the luma window halved -> (out_h, out_w, 2)."""
    x0, y0, cw, ch = luma_window
    win = (x0 // 2, y0 // 2, cw // 2, ch // 2)
    return np.stack([_resample(uvp[0], out_w, out_h, win), _resample(uvp[1], out_w, out_h, win)], axis=-1)


def fast_output(pipe, y_nr, uv, sig_lut, want_planes: bool, clock):
    """Sharpening, scaling and NV12 packing of both streams -> (main_nv12, sub_nv12, float planes by stream).

    When the main stream has the processing size and no float planes are wanted, sharpening and quantisation are
    one kernel writing the NV12 luma directly."""
    cfg = pipe.config
    sp = cfg.sharpen
    h, w = y_nr.shape
    rng = cfg.csc.range
    y_off, y_gain, c_gain = (16.0, 219.0, 224.0) if rng == "limited" else (0.0, 255.0, 255.0)
    mw, mh = cfg.scale.main
    win = crop_window(w, h, mw, mh, cfg.scale.fit)
    sharpen_on = sp.enabled and sp.amount > 0
    streams = {}
    if win == (0, 0, w, h) and (mw, mh) == (w, h) and not want_planes:
        main = np.empty((h + h // 2, w), dtype=np.uint8)
        if sharpen_on:
            sharpen_nv12_kernel(y_nr, sig_lut, F32(sp.amount), F32(sp.coring), F32(y_off), F32(y_gain), main)
        else:
            luma_nv12_kernel(y_nr, F32(y_off), F32(y_gain), main)
        chroma_nv12_kernel(uv, F32(c_gain), main)
        clock.lap("sharpen_nv12")
    else:
        if sharpen_on:
            y_s = np.empty_like(y_nr)
            sharpen_kernel(y_nr, sig_lut, F32(sp.amount), F32(sp.coring), y_s)
        else:
            y_s = y_nr
        clock.lap("sharpen")
        if want_planes:
            streams["main"] = (_resample(y_s, mw, mh, win), _resample_planar(uv, mw // 2, mh // 2, win))
            main = pack_nv12_fast(*streams["main"], rng)
        else:
            main = scale_to_nv12(y_s, uv, mw, mh, win, rng)
        clock.lap("scale_main")
    sw, sh = cfg.scale.sub
    win = crop_window(w, h, sw, sh, cfg.scale.fit)
    if want_planes:
        streams["sub"] = (_resample(y_nr, sw, sh, win), _resample_planar(uv, sw // 2, sh // 2, win))
        sub = pack_nv12_fast(*streams["sub"], rng)
    else:
        sub = scale_to_nv12(y_nr, uv, sw, sh, win, rng)
    clock.lap("scale_sub")
    return main, sub, streams
