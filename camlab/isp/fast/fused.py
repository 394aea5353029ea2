"""Fused numba kernels of the ISP fast path, held to the float reference stages by golden tests.

The algorithms are those of ``camlab/isp/stages/`` (each cites its paper); this module only decides how they run
fast, in the spirit of Halide's camera pipe (Ragan-Kelley et al., "Halide: A Language and Compiler for Optimizing
Parallelism, Locality, and Recomputation in Image Processing Pipelines", PLDI 2013): the algorithm kept apart from
its schedule. Schedule: (1) one pass raw uint16 -> white-balanced CFA doing BLC + DPC + LSC + digital gain + WB with
one premultiplied gain map; (2) the demosaic kernel of ``camlab.isp.fast.demosaic``; (3) one pass doing CCM + tone
curve and gamma (LUT with linear interpolation) + Y'CbCr with 4:2:0 chroma averaging; (4) one pass over block rows
doing luma and chroma NR and the motion-adaptive temporal filter; (5) sharpening; (6) the scaler writing both
streams, and quantisation straight into NV12 buffers. Everything is float32, rows are split across threads
(``prange``), and kernels are cached on disk.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from camlab.isp.stages import cfa_tile, rgb_tile, tile_to_full
from camlab.isp.stages.csc import rgb_to_yuv_matrix
from camlab.isp.stages.scale import ScaleParams, crop_window, resample_weights

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


@njit(parallel=True, cache=True)
def front_end_kernel(raw, black, scale, gmap, thr, dpc, clip_blc, clip_out, out):
    """raw uint16 (H, W) -> out float32 (H, W): BLC (+clip) -> DPC -> x gain map (LSC * digital gain * WB) (+clip)."""
    h, w = raw.shape
    for y in prange(h):
        nbl = np.empty(8, dtype=np.float32)
        for x in range(w):
            b = black[y & 1, x & 1]
            s = scale[y & 1, x & 1]
            v = (np.float32(raw[y, x]) - b) * s
            if clip_blc:
                v = min(max(v, np.float32(0.0)), np.float32(1.0))
            if dpc:
                lo = np.float32(1e30)
                hi = np.float32(-1e30)
                k = 0
                for dy in range(-2, 3, 2):
                    yy = _mirror(y, dy, h)
                    for dx in range(-2, 3, 2):
                        if dy == 0 and dx == 0:
                            continue
                        xx = _mirror(x, dx, w)
                        u = (np.float32(raw[yy, xx]) - b) * s
                        if clip_blc:
                            u = min(max(u, np.float32(0.0)), np.float32(1.0))
                        nbl[k] = u
                        k += 1
                        lo = min(lo, u)
                        hi = max(hi, u)
                if v > hi + thr or v < lo - thr:
                    srt = np.sort(nbl)
                    v = np.float32(0.5) * (srt[3] + srt[4])
            v = v * gmap[y, x]
            if clip_out:
                v = min(max(v, np.float32(0.0)), np.float32(1.0))
            out[y, x] = v


# ------------------------------------------------------------------------------------------------ (3) colour + CSC
@njit(cache=True, inline="always")
def _lut(lut, x):
    n1 = lut.shape[0] - 1
    f = x * n1
    i = int(f)
    if i >= n1:
        return lut[n1]
    if i < 0:
        return lut[0]
    t = f - i
    return lut[i] + np.float32(t) * (lut[i + 1] - lut[i])


@njit(parallel=True, cache=True)
def colour_kernel(rgb, ccm, bias, lut, ym, y_out, uv_out):
    """Linear RGB (H, W, 3) -> CCM (clip) -> bias -> tone LUT -> Y' (H2, W2) and mean 4:2:0 Cb, Cr (H2/2, W2/2, 2)."""
    h2, w2 = y_out.shape
    for by in prange(h2 // 2):
        for bx in range(w2 // 2):
            su = np.float32(0.0)
            sv = np.float32(0.0)
            for oy in range(2):
                for ox in range(2):
                    y = 2 * by + oy
                    x = 2 * bx + ox
                    r0 = rgb[y, x, 0]
                    g0 = rgb[y, x, 1]
                    b0 = rgb[y, x, 2]
                    t0 = np.float32(0.0)
                    t1 = np.float32(0.0)
                    t2 = np.float32(0.0)
                    for c in range(3):
                        v = ccm[c, 0] * r0 + ccm[c, 1] * g0 + ccm[c, 2] * b0
                        v = min(max(v, np.float32(0.0)), np.float32(1.0))
                        v = min(v * bias, np.float32(1.0))
                        v = _lut(lut, v)
                        if c == 0:
                            t0 = v
                        elif c == 1:
                            t1 = v
                        else:
                            t2 = v
                    y_out[y, x] = ym[0, 0] * t0 + ym[0, 1] * t1 + ym[0, 2] * t2
                    su += ym[1, 0] * t0 + ym[1, 1] * t1 + ym[1, 2] * t2
                    sv += ym[2, 0] * t0 + ym[2, 1] * t1 + ym[2, 2] * t2
            uv_out[by, bx, 0] = np.float32(0.25) * su
            uv_out[by, bx, 1] = np.float32(0.25) * sv


# ------------------------------------------------------------------------------------------------ (4) NR + 3D-DNR
@njit(cache=True, inline="always")
def _sig(lut, v):
    n1 = lut.shape[0] - 1
    i = int(np.floor(v * n1 + np.float32(0.5)))
    return lut[_clamp(i, n1 + 1)]


@njit(parallel=True, cache=True)
def nr_kernel(y, uv, sig_lut, ky, ry, kc, rc, mono, has_prev, prev_y, prev_uv, a_static, m_lo, m_span,
              y_out, uv_out):
    """Luma bilateral (box radius ry, triangular range kernel ky*sigma), chroma bilateral on 4:2:0 planes (rc, kc),
    then the motion-adaptive recursive filter against (prev_y, prev_uv). Outputs float32 planes."""
    h, w = y.shape
    hc, wc = uv.shape[0], uv.shape[1]
    for by in prange(hc):
        amax = np.empty(wc, dtype=np.float32)
        for j in range(wc):
            amax[j] = np.float32(0.0)
        for oy in range(2):
            r = 2 * by + oy
            for x in range(w):
                c = y[r, x]
                if ry > 0 and ky > 0:
                    inv = np.float32(1.0) / max(ky * _sig(sig_lut, c), np.float32(1e-6))
                    num = np.float32(0.0)
                    den = np.float32(0.0)
                    for dy in range(-ry, ry + 1):
                        rr = _clamp(r + dy, h)
                        for dx in range(-ry, ry + 1):
                            v = y[rr, _clamp(x + dx, w)]
                            wt = max(np.float32(0.0), np.float32(1.0) - abs(v - c) * inv)
                            num += wt * v
                            den += wt
                    c = num / den
                if has_prev:
                    p = prev_y[r, x]
                    s = max(_sig(sig_lut, c), np.float32(1e-6))
                    m = (abs(c - p) / s - m_lo) / m_span
                    m = min(max(m, np.float32(0.0)), np.float32(1.0))
                    a = a_static + (np.float32(1.0) - a_static) * m
                    c = p + a * (c - p)
                    j = x >> 1
                    if j < wc and a > amax[j]:
                        amax[j] = a
                y_out[r, x] = c
        for j in range(wc):
            if mono:
                uv_out[by, j, 0] = np.float32(0.0)
                uv_out[by, j, 1] = np.float32(0.0)
                continue
            u0 = uv[by, j, 0]
            v0 = uv[by, j, 1]
            if rc > 0 and kc > 0:
                yh = np.float32(0.25) * (y[2 * by, 2 * j] + y[2 * by + 1, 2 * j] + y[2 * by, 2 * j + 1]
                                         + y[2 * by + 1, 2 * j + 1])
                inv = np.float32(1.0) / max(kc * _sig(sig_lut, yh), np.float32(1e-6))
                nu = np.float32(0.0)
                nv = np.float32(0.0)
                den = np.float32(0.0)
                for dy in range(-rc, rc + 1):
                    rr = _clamp(by + dy, hc)
                    for dx in range(-rc, rc + 1):
                        cc = _clamp(j + dx, wc)
                        a0 = uv[rr, cc, 0]
                        a1 = uv[rr, cc, 1]
                        wt = max(np.float32(0.0), np.float32(1.0) - np.float32(0.5) * (abs(a0 - u0) + abs(a1 - v0)) * inv)
                        nu += wt * a0
                        nv += wt * a1
                        den += wt
                u0 = nu / den
                v0 = nv / den
            if has_prev:
                a = amax[j]
                u0 = prev_uv[by, j, 0] + a * (u0 - prev_uv[by, j, 0])
                v0 = prev_uv[by, j, 1] + a * (v0 - prev_uv[by, j, 1])
            uv_out[by, j, 0] = u0
            uv_out[by, j, 1] = v0


# ------------------------------------------------------------------------------------------------ (5) sharpen
@njit(parallel=True, cache=True)
def sharpen_kernel(y, sig_lut, amount, coring, out):
    """Unsharp mask (3x3 binomial, edge replicate) with soft coring at coring*sigma(y)."""
    h, w = y.shape
    for r in prange(h):
        r0 = _clamp(r - 1, h)
        r2 = _clamp(r + 1, h)
        for x in range(w):
            x0 = _clamp(x - 1, w)
            x2 = _clamp(x + 1, w)
            c0 = y[r0, x0] + np.float32(2.0) * y[r, x0] + y[r2, x0]
            c1 = y[r0, x] + np.float32(2.0) * y[r, x] + y[r2, x]
            c2 = y[r0, x2] + np.float32(2.0) * y[r, x2] + y[r2, x2]
            blur = (c0 + np.float32(2.0) * c1 + c2) * np.float32(1.0 / 16.0)
            c = y[r, x]
            d = c - blur
            t = coring * _sig(sig_lut, c)
            if d > t:
                d = d - t
            elif d < -t:
                d = d + t
            else:
                d = np.float32(0.0)
            out[r, x] = min(max(c + amount * d, np.float32(0.0)), np.float32(1.0))


# ------------------------------------------------------------------------------------------------ (6) scale + NV12
@njit(parallel=True, cache=True)
def resample_kernel(src, iy, wy, ix, wx, out):
    """Separable resampling of a (H, W, C) plane with precomputed taps -> (oh, ow, C)."""
    oh, ow, nc = out.shape
    ty = iy.shape[1]
    tx = ix.shape[1]
    for o in prange(oh):
        for q in range(ow):
            for c in range(nc):
                acc = np.float32(0.0)
                for a in range(ty):
                    wya = wy[o, a]
                    if wya == 0:
                        continue
                    row = iy[o, a]
                    s = np.float32(0.0)
                    for b in range(tx):
                        s += wx[q, b] * src[row, ix[q, b], c]
                    acc += wya * s
                out[o, q, c] = acc


@njit(parallel=True, cache=True)
def nv12_kernel(y, uv, y_off, y_gain, c_gain, out):
    """Float Y (H, W) and chroma (H/2, W/2, 2) -> NV12 uint8 (H*3/2, W), round to nearest."""
    h, w = y.shape
    for r in prange(h):
        for x in range(w):
            v = np.floor(y_off + y_gain * y[r, x] + np.float32(0.5))
            out[r, x] = np.uint8(min(max(v, np.float32(0.0)), np.float32(255.0)))
    for r in prange(h // 2):
        for j in range(w // 2):
            for c in range(2):
                v = np.floor(np.float32(128.0) + c_gain * uv[r, j, c] + np.float32(0.5))
                out[h + r, 2 * j + c] = np.uint8(min(max(v, np.float32(0.0)), np.float32(255.0)))


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


def scale_streams_fast(y: np.ndarray, uv: np.ndarray, p: ScaleParams):
    """Same contract as :func:`camlab.isp.stages.scale.scale_streams` with the numba resampler."""
    h, w = y.shape
    out = {}
    for name, (ow, oh) in (("main", p.main), ("sub", p.sub)):
        x0, y0, cw, ch = crop_window(w, h, ow, oh, p.fit)
        out[name] = (_resample(y, ow, oh, (x0, y0, cw, ch)),
                     _resample(uv, ow // 2, oh // 2, (x0 // 2, y0 // 2, cw // 2, ch // 2)))
    return out


def pack_nv12_fast(y: np.ndarray, uv: np.ndarray, rng: str = "limited") -> np.ndarray:
    """Numba twin of :func:`camlab.isp.stages.csc.pack_nv12`."""
    h, w = y.shape
    out = np.empty((h + h // 2, w), dtype=np.uint8)
    if rng == "limited":
        nv12_kernel(y, uv, F32(16.0), F32(219.0), F32(224.0), out)
    else:
        nv12_kernel(y, uv, F32(0.0), F32(255.0), F32(255.0), out)
    return out


# ------------------------------------------------------------------------------------------------ driver
def _buf(cache: dict, name: str, shape, dtype=np.float32) -> np.ndarray:
    key = ("buf", name)
    a = cache.get(key)
    if a is None or a.shape != tuple(shape) or a.dtype != dtype:
        a = np.empty(shape, dtype=dtype)
        cache[key] = a
    return a


def _demosaic_fast(cfa: np.ndarray, pattern: str, params, out: np.ndarray) -> np.ndarray:
    from camlab.isp.fast.demosaic import demosaic_into
    from camlab.isp.stages.demosaic import PATTERN_CODES

    return demosaic_into(cfa, PATTERN_CODES[pattern], out, params.method, check_finite=False)


def run_fast(pipe, frame, black, white, dgain, wb, ccm, sig_lut, state, clock):
    """Fast-path twin of ``Pipeline._run_reference``: returns float Y (H2, W2) and chroma (H2/2, W2/2, 2)."""
    cfg = pipe.config
    cache = pipe._cache
    pat = frame.pattern
    h, w = frame.data.shape
    # (1) BLC + DPC + LSC + gain + WB
    black_t = cfa_tile(black, pat)
    scale_t = (1.0 / (float(white) - cfa_tile(black, pat).astype(np.float64))).astype(np.float32)
    key = ("gmap", (h, w), pat, float(dgain), tuple(wb))
    gmap = cache.get(key)
    if gmap is None:
        for k in [k for k in cache if isinstance(k, tuple) and k and k[0] == "gmap"]:
            del cache[k]
        lsc = pipe._gain_map((h, w), pat) if cfg.lsc.enabled else np.ones((h, w), np.float32)
        gmap = (lsc * np.float32(dgain) * tile_to_full(rgb_tile(wb, pat), h, w)).astype(np.float32)
        cache[key] = gmap
    cfa = _buf(cache, "cfa", (h, w))
    data = np.ascontiguousarray(frame.data)
    front_end_kernel(data, black_t, scale_t, gmap, np.float32(cfg.dpc.threshold), bool(cfg.dpc.enabled),
                     bool(cfg.blc.clip), bool(cfg.wb.clip), cfa)
    clock.lap("front_end")
    # (2) demosaic
    rgb = _demosaic_fast(cfa, pat, cfg.demosaic, _buf(cache, "rgb", (h, w, 3)))
    clock.lap("demosaic")
    # (3) CCM + tone + CSC
    h2, w2 = (h // 2) * 2, (w // 2) * 2
    y = _buf(cache, "y", (h2, w2))
    uv = _buf(cache, "uv", (h2 // 2, w2 // 2, 2))
    # the tone LUT already holds the exposure bias (it tabulates tone_map over linear [0, 1])
    colour_kernel(rgb, np.ascontiguousarray(ccm, dtype=np.float32), np.float32(1.0), pipe._tone_lut(),
                  rgb_to_yuv_matrix(cfg.csc.matrix), y, uv)
    clock.lap("colour_csc")
    # (4) NR2D + 3D-DNR
    nr, tn = cfg.nr2d, cfg.nr3d
    has_prev = bool(tn.enabled and state is not None and state.prev_y is not None
                    and state.prev_y.shape == y.shape and state.prev_uv is not None
                    and state.prev_uv.shape == uv.shape)
    temporal = tn.enabled and state is not None
    y_nr = np.empty_like(y) if temporal else _buf(cache, "y_nr", y.shape)
    uv_nr = np.empty_like(uv) if temporal else _buf(cache, "uv_nr", uv.shape)
    ky = np.float32(nr.strength_y if nr.enabled else 0.0)
    kc = np.float32(nr.strength_c if nr.enabled else 0.0)
    prev_y = state.prev_y if has_prev else y
    prev_uv = state.prev_uv if has_prev else uv
    nr_kernel(y, uv, sig_lut, ky, int(nr.radius_y), kc, int(nr.radius_c), bool(cfg.mono), has_prev, prev_y, prev_uv,
              np.float32(tn.alpha_static), np.float32(tn.motion_lo), np.float32(tn.motion_hi - tn.motion_lo),
              y_nr, uv_nr)
    if temporal:
        state.prev_y, state.prev_uv = y_nr, uv_nr
    clock.lap("nr")
    # (5) sharpen
    if cfg.sharpen.enabled and cfg.sharpen.amount > 0:
        y_s = _buf(cache, "y_s", y.shape)
        sharpen_kernel(y_nr, sig_lut, np.float32(cfg.sharpen.amount), np.float32(cfg.sharpen.coring), y_s)
    else:
        y_s = y_nr
    clock.lap("sharpen")
    return y_s, uv_nr
