"""Fast demosaicing kernels (numba, parallel over rows) for the methods of ``camlab.isp.stages.demosaic``.

Same algorithms and arithmetic as the reference (Malvar, He, Cutler, ICASSP 2004; Hamilton & Adams 1997 with
Menon et al., IEEE TIP 2007 colour-difference classification, soft-weighted as in Pekkucuksen & Altunbasak 2010; the
linear colour-difference method, whose rows :mod:`camlab.isp.fast.fused` also runs line-buffered);
golden tests hold these kernels to the reference on all four Bayer patterns and odd sizes. Halide-style: the
algorithm lives in the reference module, this one only changes how it is scheduled (row-parallel, fused passes,
reflection padding done once into a reusable buffer).

Entry points: :func:`demosaic_fast` (allocates and validates) and :func:`demosaic_into` (writes into a caller's
preallocated (H, W, 3) float32 array; for the fused ISP pipeline).
"""
from __future__ import annotations

import threading

import numba as nb
import numpy as np

from camlab.errors import CamlabError
from camlab.isp.stages.demosaic import (CD_SMOOTHING, DIR_EPS, MALVAR_GAINS, MAX_CD_SMOOTHING, METHOD_CODES, METHODS,
                                        PAD, PATTERN_CODES, check_cfa, malvar_coefficients)
from camlab.sensor.cfa import PATTERNS, Pattern, channel_offsets

# fastmath without the no-NaN/no-Inf assumptions, so the NaN scan during padding stays honest.
_FM = {"nsz", "arcp", "contract", "afn", "reassoc"}
_R_OFFSETS = np.array([channel_offsets(p)["R"] for p in PATTERNS], dtype=np.int64)  # by pattern code


_Q = np.float32(0.25)
_H = np.float32(0.5)
_E = np.float32(0.125)
_TWO = np.float32(2.0)
_FOUR = np.float32(4.0)
_FIVE = np.float32(5.0)
_SIX = np.float32(6.0)
_ONE5 = np.float32(1.5)
_ONE = np.float32(1.0)
_FIFTH = np.float32(0.2)


@nb.njit(inline="always")
def _reflect(i, n):
    if n == 1:
        return 0
    period = 2 * (n - 1)
    i = i % period
    if i < 0:
        i += period
    return i if i < n else period - i


@nb.njit(parallel=True, cache=True)
def _pad_reflect(cfa, top, left, out):
    """Whole-sample symmetric padding of ``cfa`` into ``out``; returns the count of non-finite input values."""
    h, w = cfa.shape
    hp, wp = out.shape
    bad = 0
    for yp in nb.prange(hp):
        y = _reflect(yp - top, h)
        row = cfa[y]
        orow = out[yp]
        for xp in range(left):
            orow[xp] = row[_reflect(xp - left, w)]
        for x in range(w):
            v = row[x]
            orow[left + x] = v
            if yp >= top and yp < top + h and not np.isfinite(v):
                bad += 1
        for xp in range(left + w, wp):
            orow[xp] = row[_reflect(xp - left, w)]
    return bad


# Kernels index rows through views that start left of the first column they touch, so every index is
# "loop counter + non-negative constant": numba then drops its negative-index wraparound and LLVM vectorizes.


@nb.njit(inline="always")
def _put(o, x, red_row, row_colour, g, col_colour):
    """Store (R, G, B) given the colour of the pixel's row (R on red rows, B on blue rows) and of its column."""
    if red_row:
        o[x, 0] = row_colour
        o[x, 2] = col_colour
    else:
        o[x, 0] = col_colour
        o[x, 2] = row_colour
    o[x, 1] = g


@nb.njit(inline="always")
def _sites_in_row(yp, left, w):
    """(first padded column of a chroma site, count, first green column, count) within [left, left + w)."""
    cs = left + ((left ^ yp) & 1)
    gs = left + 1 - ((left ^ yp) & 1)
    nc = (left + w - cs + 1) // 2
    ng = (left + w - gs + 1) // 2
    return cs, nc, gs, ng


@nb.njit(parallel=True, cache=True)
def _fill_margins(p, top, left, h, w, check):
    """Reflect the (top, left, h, w) window of ``p`` into the rest of ``p`` in place; with ``check``, count the
    window's non-finite values."""
    hp, wp = p.shape
    counts = np.zeros(h, np.int64)
    for y in nb.prange(h):
        row = p[top + y]
        for xp in range(left):
            row[xp] = row[left + _reflect(xp - left, w)]
        for xp in range(left + w, wp):
            row[xp] = row[left + _reflect(xp - left, w)]
        if check:
            n = 0
            for x in range(left, left + w):
                if not np.isfinite(row[x]):
                    n += 1
            counts[y] = n
    for yp in nb.prange(hp):
        if yp < top or yp >= top + h:
            src = p[top + _reflect(yp - top, h)]
            dst = p[yp]
            for xp in range(wp):
                dst[xp] = src[xp]
    return counts.sum()


@nb.njit(cache=True, fastmath=_FM)
def _bilinear_row(pu, pm, pd, yp, left, w, o):
    """One output row (w, 3) from the padded rows above/at/below padded row ``yp`` (RGGB phase in padded
    coordinates); the image's column 0 is padded column ``left``."""
    red_row = (yp & 1) == 0
    cs, nc, gs, ng = _sites_in_row(yp, left, w)
    # chroma sites: own colour, green cross, opposite colour diagonal
    u, m, d = pu[cs - 1:], pm[cs - 1:], pd[cs - 1:]
    for k in range(nc):
        j = 2 * k
        g = _Q * (u[j + 1] + d[j + 1] + m[j] + m[j + 2])
        oth = _Q * (u[j] + u[j + 2] + d[j] + d[j + 2])
        _put(o, cs - left + j, red_row, m[j + 1], g, oth)
    u, m, d = pu[gs - 1:], pm[gs - 1:], pd[gs - 1:]
    for k in range(ng):
        j = 2 * k
        _put(o, gs - left + j, red_row, _H * (m[j] + m[j + 2]), m[j + 1], _H * (u[j + 1] + d[j + 1]))


@nb.njit(parallel=True, fastmath=_FM, cache=True)
def _bilinear(c, top, left, out):
    h, w = out.shape[0], out.shape[1]
    for y in nb.prange(h):
        yp = y + top
        _bilinear_row(c[yp - 1], c[yp], c[yp + 1], yp, left, w, out[y])


@nb.njit(cache=True, fastmath=_FM)
def _malvar_row(p_2, p_1, p0, p1, p2, yp, left, w, o):
    """One output row (w, 3) from the five padded rows around padded row ``yp`` (see :func:`_bilinear_row`)."""
    red_row = (yp & 1) == 0
    cs, nc, gs, ng = _sites_in_row(yp, left, w)
    for start, n, chroma in ((cs, nc, True), (gs, ng, False)):
        a, b, m, d, e = p_2[start - 2:], p_1[start - 2:], p0[start - 2:], p1[start - 2:], p2[start - 2:]
        for k in range(n):
            j = 2 * k
            v = m[j + 2]
            n1 = b[j + 2] + d[j + 2]
            n2 = a[j + 2] + e[j + 2]
            w1 = m[j + 1] + m[j + 3]
            w2 = m[j] + m[j + 4]
            dg = b[j + 1] + b[j + 3] + d[j + 1] + d[j + 3]
            if chroma:
                g = (_FOUR * v + _TWO * (n1 + w1) - (n2 + w2)) * _E
                oth = (_SIX * v + _TWO * dg - _ONE5 * (n2 + w2)) * _E
                _put(o, start - left + j, red_row, v, g, oth)
            else:
                row_c = (_FIVE * v + _FOUR * w1 - w2 - dg + _H * n2) * _E
                col_c = (_FIVE * v + _FOUR * n1 - n2 - dg + _H * w2) * _E
                _put(o, start - left + j, red_row, row_c, v, col_c)


# Planar twins of the row functions (R, G, B rows instead of one (w, 3) row) for the line-buffered ISP pass, whose
# colour stage vectorises over contiguous planes. Same arithmetic; golden tests hold both to the reference.
@nb.njit(inline="always")
def _put3(pr, pg, pb, x, red_row, row_colour, g, col_colour):
    if red_row:
        pr[x] = row_colour
        pb[x] = col_colour
    else:
        pr[x] = col_colour
        pb[x] = row_colour
    pg[x] = g


@nb.njit(cache=True, fastmath=_FM)
def _bilinear_row3(pu, pm, pd, yp, left, w, pr, pg, pb):
    red_row = (yp & 1) == 0
    cs, nc, gs, ng = _sites_in_row(yp, left, w)
    u, m, d = pu[cs - 1:], pm[cs - 1:], pd[cs - 1:]
    for k in range(nc):
        j = 2 * k
        g = _Q * (u[j + 1] + d[j + 1] + m[j] + m[j + 2])
        oth = _Q * (u[j] + u[j + 2] + d[j] + d[j + 2])
        _put3(pr, pg, pb, cs - left + j, red_row, m[j + 1], g, oth)
    u, m, d = pu[gs - 1:], pm[gs - 1:], pd[gs - 1:]
    for k in range(ng):
        j = 2 * k
        _put3(pr, pg, pb, gs - left + j, red_row, _H * (m[j] + m[j + 2]), m[j + 1], _H * (u[j + 1] + d[j + 1]))


@nb.njit(cache=True, fastmath=_FM)
def _malvar_row3(p_2, p_1, p0, p1, p2, yp, left, w, pr, pg, pb):
    red_row = (yp & 1) == 0
    cs, nc, gs, ng = _sites_in_row(yp, left, w)
    for start, n, chroma in ((cs, nc, True), (gs, ng, False)):
        a, b, m, d, e = p_2[start - 2:], p_1[start - 2:], p0[start - 2:], p1[start - 2:], p2[start - 2:]
        for k in range(n):
            j = 2 * k
            v = m[j + 2]
            n1 = b[j + 2] + d[j + 2]
            n2 = a[j + 2] + e[j + 2]
            w1 = m[j + 1] + m[j + 3]
            w2 = m[j] + m[j + 4]
            dg = b[j + 1] + b[j + 3] + d[j + 1] + d[j + 3]
            if chroma:
                g = (_FOUR * v + _TWO * (n1 + w1) - (n2 + w2)) * _E
                oth = (_SIX * v + _TWO * dg - _ONE5 * (n2 + w2)) * _E
                _put3(pr, pg, pb, start - left + j, red_row, v, g, oth)
            else:
                row_c = (_FIVE * v + _FOUR * w1 - w2 - dg + _H * n2) * _E
                col_c = (_FIVE * v + _FOUR * n1 - n2 - dg + _H * w2) * _E
                _put3(pr, pg, pb, start - left + j, red_row, row_c, v, col_c)


@nb.njit(cache=True, fastmath=_FM)
def _malvar_gains_row3(p_2, p_1, p0, p1, p2, yp, left, w, pr, pg, pb, mk):
    """:func:`_malvar_row3` at other gains: ``mk``, the kernels' tap weights
    (``camlab.isp.stages.demosaic.malvar_coefficients``). A twin rather than one function with runtime weights: at
    the paper's gains the literal arithmetic stays as it was (fastmath reassociates a runtime weight differently
    from a literal, and the shipped tunings would render a few pixels 1 code apart). The interleaved
    :func:`_malvar` goes through it too at other gains (one copy of this arithmetic)."""
    red_row = (yp & 1) == 0
    cs, nc, gs, ng = _sites_in_row(yp, left, w)
    a4, a1, g6, g15, b5, b1, bh = mk[0], mk[1], mk[2], mk[3], mk[4], mk[5], mk[6]
    for start, n, chroma in ((cs, nc, True), (gs, ng, False)):
        a, b, m, d, e = p_2[start - 2:], p_1[start - 2:], p0[start - 2:], p1[start - 2:], p2[start - 2:]
        for k in range(n):
            j = 2 * k
            v = m[j + 2]
            n1 = b[j + 2] + d[j + 2]
            n2 = a[j + 2] + e[j + 2]
            w1 = m[j + 1] + m[j + 3]
            w2 = m[j] + m[j + 4]
            dg = b[j + 1] + b[j + 3] + d[j + 1] + d[j + 3]
            if chroma:
                g = (a4 * v + _TWO * (n1 + w1) - a1 * (n2 + w2)) * _E
                oth = (g6 * v + _TWO * dg - g15 * (n2 + w2)) * _E
                _put3(pr, pg, pb, start - left + j, red_row, v, g, oth)
            else:
                row_c = (b5 * v + _FOUR * w1 - b1 * w2 - b1 * dg + bh * n2) * _E
                col_c = (b5 * v + _FOUR * n1 - b1 * n2 - b1 * dg + bh * w2) * _E
                _put3(pr, pg, pb, start - left + j, red_row, row_c, v, col_c)


@nb.njit(parallel=True, fastmath=_FM, cache=True)
def _malvar(c, top, left, out, mk, paper):
    h, w = out.shape[0], out.shape[1]
    for y in nb.prange(h):
        yp = y + top
        if paper:
            _malvar_row(c[yp - 2], c[yp - 1], c[yp], c[yp + 1], c[yp + 2], yp, left, w, out[y])
        else:
            planes = np.empty((3, w), np.float32)
            _malvar_gains_row3(c[yp - 2], c[yp - 1], c[yp], c[yp + 1], c[yp + 2], yp, left, w, planes[0],
                               planes[1], planes[2], mk)
            o = out[y]
            for x in range(w):
                o[x, 0] = planes[0, x]
                o[x, 1] = planes[1, x]
                o[x, 2] = planes[2, x]


@nb.njit(inline="always")
def _diff_row(c, y, xs, n, oh, ov):
    """Signed Hamilton–Adams colour differences dH, dV (G - C, see the reference) of padded row ``y``, columns
    xs..xs+n-1, into ``oh``/``ov``: hf - v at chroma sites, v - hf at green sites."""
    a, b, r1, r2 = c[y - 2, xs:], c[y - 1, xs:], c[y + 1, xs:], c[y + 2, xs:]
    m = c[y, xs - 2:]
    par = (xs ^ y) & 1
    for i in range(n):
        sgn = np.float32(1 - 2 * ((i + par) & 1))  # +1 on chroma sites
        v = m[i + 2]
        oh[i] = sgn * ((_TWO * (m[i + 1] + v + m[i + 3]) - m[i] - m[i + 4]) * _Q - v)
        ov[i] = sgn * ((_TWO * (b[i] + v + r1[i]) - a[i] - r2[i]) * _Q - v)


@nb.njit(parallel=True, fastmath=_FM, error_model="numpy", cache=True)
def _dir_weights(c, y0, y1, x0, x1, q, nchunks):
    """One plane ``q`` on rows y0..y1-1, cols x0..x1-1: d = G - C at chroma sites (the only sites where the output
    reads d) and alpha, the weight of the horizontal estimate, at green sites (the only sites where the output
    reads alpha). Sharing the plane halves the memory traffic of the output pass.

    Rows are split into ``nchunks`` bands. A band walks its rows once: each new row's dH, dV and gradient rows
    |dH(x) - dH(x+1)|, |dV(y) - dV(y+1)| go into 8-row ring buffers, and the 5-row sums that the 5x5 windows need
    (of both gradients, and of dV) are running sums (add the row entering, subtract the row leaving). Each
    difference and gradient is computed once (the previous schedule recomputed each gradient for each of the 5
    output rows that read it) and none goes through memory. The pass is bound by its loads, so fewer loads is less time:
    2.0-2.1 ms against 2.3-2.5 ms for a 720p frame on one thread (2026-12-07)."""
    eps = np.float32(DIR_EPS)
    n = x1 - x0
    nd = n + 5  # dH/dV columns x0-2 .. x1+2
    ng = n + 4  # gradient columns x0-2 .. x1+1
    xs = x0 - 2
    for ch in nb.prange(nchunks):
        ya = y0 + (y1 - y0) * ch // nchunks
        yb = y0 + (y1 - y0) * (ch + 1) // nchunks
        if ya >= yb:
            continue
        ring_h = np.zeros((8, nd), np.float32)
        ring_v = np.zeros((8, nd), np.float32)
        grad_h = np.zeros((8, ng), np.float32)
        grad_v = np.zeros((8, ng), np.float32)
        colh = np.zeros(ng, np.float32)  # sums over rows y-2..y+2 of the next output row y = r - 3
        colv = np.zeros(ng, np.float32)
        sumv = np.zeros(n, np.float32)   # the same 5-row sum of dV, at column x0 + i
        for r in range(ya - 2, yb + 3):
            oh, ov = ring_h[r & 7], ring_v[r & 7]
            _diff_row(c, r, xs, nd, oh, ov)
            gh = grad_h[r & 7]
            for i in range(ng):
                gh[i] = abs(oh[i] - oh[i + 1])
            if r == ya - 2:
                continue
            # row r-1 enters the window of output row r-3: its gH, and its gV (which needs dV of row r)
            pv = ring_v[(r - 1) & 7]
            gv = grad_v[(r - 1) & 7]
            for i in range(ng):
                gv[i] = abs(pv[i] - ov[i])
            gh_in = grad_h[(r - 1) & 7]
            if r - 6 >= ya - 2:  # row r-6 leaves it
                gh_out, gv_out, v_out = grad_h[(r - 6) & 7], grad_v[(r - 6) & 7], ring_v[(r - 6) & 7]
                for i in range(ng):
                    colh[i] += gh_in[i] - gh_out[i]
                    colv[i] += gv[i] - gv_out[i]
                for i in range(n):
                    sumv[i] += pv[i + 2] - v_out[i + 2]
            else:
                for i in range(ng):
                    colh[i] += gh_in[i]
                    colv[i] += gv[i]
                for i in range(n):
                    sumv[i] += pv[i + 2]
            y = r - 3
            if y < ya:
                continue
            h2 = ring_h[y & 7]
            qr = q[y, x0:]
            par = (x0 ^ y) & 1
            for i in range(n):
                kh = colh[i] + colh[i + 1] + colh[i + 2] + colh[i + 3] + colh[i + 4]
                kv = colv[i] + colv[i + 1] + colv[i + 2] + colv[i + 3] + colv[i + 4]
                kh2 = kh * kh + eps
                kv2 = kv * kv + eps
                a = kv2 / (kh2 + kv2)
                sh = (h2[i] + h2[i + 1] + h2[i + 2] + h2[i + 3] + h2[i + 4]) * _FIFTH
                dval = a * sh + (_ONE - a) * (sumv[i] * _FIFTH)
                qr[i] = dval if ((i + par) & 1) == 0 else a


@nb.njit(parallel=True, fastmath=_FM, cache=True)
def _dir_output(c, q, top, left, out):
    """RGB from the CFA and the d/alpha plane ``q`` (see :func:`_dir_weights`)."""
    d = q
    h, w = out.shape[0], out.shape[1]
    for y in nb.prange(h):
        yp = y + top
        red_row = (yp & 1) == 0
        o = out[y]
        cs, nc, gs, ng = _sites_in_row(yp, left, w)
        # Chroma sites: G = C + d; the opposite colour from the diagonal neighbours' d (mean).
        m, u, dn = c[yp, cs:], d[yp - 1, cs - 1:], d[yp + 1, cs - 1:]
        d0 = d[yp, cs:]
        for k in range(nc):
            j = 2 * k
            v = m[j]
            g = v + d0[j]
            oth = g - (u[j] + u[j + 2] + dn[j] + dn[j + 2]) * _Q
            _put(o, cs - left + j, red_row, v, g, oth)
        # Green sites: row colour from left/right d (same colour) and up/down opposite-colour differences,
        # column colour the other way round, blended with the site's directional weight.
        m = c[yp, gs:]
        al = q[yp, gs:]
        e_2, e_1, e0, e1, e2 = d[yp - 2, gs - 2:], d[yp - 1, gs - 2:], d[yp, gs - 2:], d[yp + 1, gs - 2:], d[yp + 2, gs - 2:]
        for k in range(ng):
            j = 2 * k
            v = m[j]
            a = al[j]
            hz_d = (e0[j + 1] + e0[j + 3]) * _H
            vt_d = (e_1[j + 2] + e1[j + 2]) * _H
            hz_x = (e_1[j] + _TWO * e_1[j + 2] + e_1[j + 4] + e1[j] + _TWO * e1[j + 2] + e1[j + 4]) * _E
            vt_x = (e_2[j + 1] + e_2[j + 3] + _TWO * (e0[j + 1] + e0[j + 3]) + e2[j + 1] + e2[j + 3]) * _E
            row_c = v - (a * hz_d + (_ONE - a) * vt_x)
            col_c = v - (a * hz_x + (_ONE - a) * vt_d)
            _put(o, gs - left + j, red_row, row_c, v, col_c)


@nb.njit(cache=True, fastmath=_FM)
def _diff_rows3(m, e_2, e_1, e0, e1, e2, yp, left, w, pr, pg, pb):
    """RGB row (padded row ``yp``, CFA row ``m``) from the colour-difference rows ``e_2``..``e2`` (rows yp-2..yp+2 of
    a d/alpha plane: d = G - C at chroma sites, the horizontal weight at green sites) into R, G, B rows: the planar
    twin of one :func:`_dir_output` row (same arithmetic). Rows share the padded column coordinates."""
    red_row = (yp & 1) == 0
    cs, nc, gs, ng = _sites_in_row(yp, left, w)
    mc, u, dn = m[cs:], e_1[cs - 1:], e1[cs - 1:]
    d0 = e0[cs:]
    for k in range(nc):
        j = 2 * k
        v = mc[j]
        g = v + d0[j]
        oth = g - (u[j] + u[j + 2] + dn[j] + dn[j + 2]) * _Q
        _put3(pr, pg, pb, cs - left + j, red_row, v, g, oth)
    mg = m[gs:]
    al = e0[gs:]
    f_2, f_1, f0, f1, f2 = e_2[gs - 2:], e_1[gs - 2:], e0[gs - 2:], e1[gs - 2:], e2[gs - 2:]
    for k in range(ng):
        j = 2 * k
        v = mg[j]
        a = al[j]
        hz_d = (f0[j + 1] + f0[j + 3]) * _H
        vt_d = (f_1[j + 2] + f1[j + 2]) * _H
        hz_x = (f_1[j] + _TWO * f_1[j + 2] + f_1[j + 4] + f1[j] + _TWO * f1[j + 2] + f1[j + 4]) * _E
        vt_x = (f_2[j + 1] + f_2[j + 3] + _TWO * (f0[j + 1] + f0[j + 3]) + f2[j + 1] + f2[j + 3]) * _E
        row_c = v - (a * hz_d + (_ONE - a) * vt_x)
        col_c = v - (a * hz_x + (_ONE - a) * vt_d)
        _put3(pr, pg, pb, gs - left + j, red_row, row_c, v, col_c)


@nb.njit(cache=True, fastmath=_FM)
def _dir_row3(c, q, yp, left, w, pr, pg, pb):
    """Planar twin of one :func:`_dir_output` row (padded row ``yp``) into R, G, B rows (same arithmetic)."""
    _diff_rows3(c[yp], q[yp - 2], q[yp - 1], q[yp], q[yp + 1], q[yp + 2], yp, left, w, pr, pg, pb)


@nb.njit(cache=True, fastmath=_FM)
def _ha_h_row(m, yp, x0, n, o):
    """Hamilton–Adams horizontal difference dH (see the reference) of padded row ``yp`` (CFA row ``m``), columns
    x0..x0+n-1, into ``o`` at the same columns: reads x0-2..x0+n+1. Unit stride (vectorises): the sign flips with
    the site."""
    mm = m[x0 - 2:]
    oo = o[x0:]
    par = (x0 ^ yp) & 1
    for i in range(n):
        sgn = np.float32(1 - 2 * ((i + par) & 1))  # +1 on chroma sites
        v = mm[i + 2]
        oo[i] = sgn * ((_TWO * (mm[i + 1] + v + mm[i + 3]) - mm[i] - mm[i + 4]) * _Q - v)


@nb.njit(cache=True, fastmath=_FM)
def _ha_v_row(a, b, m, d, e, yp, x0, n, o):
    """Vertical difference dV of padded row ``yp`` (CFA rows ``a``..``e`` = yp-2..yp+2), columns x0..x0+n-1 (every
    index "counter + constant" on slices, as in :func:`_ha_h_row`: with a runtime start numba checks each index
    for wraparound and LLVM no longer vectorises, 15x slower)."""
    par = (x0 ^ yp) & 1
    a, b, m, d, e, oo = a[x0:], b[x0:], m[x0:], d[x0:], e[x0:], o[x0:]
    for i in range(n):
        sgn = np.float32(1 - 2 * ((i + par) & 1))
        v = m[i]
        oo[i] = sgn * ((_TWO * (b[i] + v + d[i]) - a[i] - e[i]) * _Q - v)


@nb.njit(cache=True, fastmath=_FM)
def _cd_row(dh, dvm, dv0, dvp, yp, x0, n, sw, k, o):
    """The ``colour_difference`` d/alpha row of padded row ``yp``, columns x0..x0+n-1, into ``o``: at chroma sites
    d = G - C, the mean of the horizontal difference ``dh`` (this row; read at x0-1..x0+n) and the vertical ``dv0``
    (``dvm``/``dvp``: rows yp-1/yp+1) each smoothed [sw, 1, sw] * k along its direction; at green sites 1/2, the fixed
    horizontal weight that :func:`_diff_rows3` reads."""
    par = (x0 ^ yp) & 1
    hk = _H * k
    h, vm, v0, vp, oo = dh[x0 - 1:], dvm[x0:], dv0[x0:], dvp[x0:], o[x0:]
    for i in range(n):
        v = hk * (h[i + 1] + sw * (h[i] + h[i + 2]) + v0[i] + sw * (vm[i] + vp[i]))
        oo[i] = v if ((i + par) & 1) == 0 else _H


@nb.njit(parallel=True, fastmath=_FM, cache=True)
def _cd_plane(c, y0, y1, x0, x1, sw, k, q):
    """:func:`_cd_row` over padded rows y0..y1-1 of the padded CFA ``c`` into the plane ``q`` (each row computes its
    three vertical difference rows itself: this full-frame path serves ``demosaic_fast``; the ISP pass keeps them in
    a ring)."""
    n = x1 - x0
    wp = c.shape[1]
    for y in nb.prange(y0, y1):
        dh = np.empty(wp, np.float32)
        dv = np.empty((3, wp), np.float32)
        _ha_h_row(c[y], y, x0 - 1, n + 2, dh)
        for j in range(3):
            r = y - 1 + j
            _ha_v_row(c[r - 2], c[r - 1], c[r], c[r + 1], c[r + 2], r, x0, n, dv[j])
        _cd_row(dh, dv[0], dv[1], dv[2], y, x0, n, sw, k, q[y])


def cd_weights(smoothing: float) -> np.ndarray:
    """(s, 1 / (1 + 2 s)) float32: ``colour_difference``'s smoothing weights as the kernels take them."""
    return np.array([smoothing, 1.0 / (1.0 + 2.0 * smoothing)], np.float32)


def directional_planes(cfa: np.ndarray, pattern_code: int, ws: DemosaicWorkspace, check_finite: bool = True) -> tuple:
    """The first (full-frame) passes of the directional method for a CFA already in ``ws.cfa_view(pattern_code)``
    (margins filled, d/alpha plane computed): returns (padded CFA, d/alpha plane, top, left) for
    :func:`_dir_row3`, so a caller can produce the RGB rows on the fly."""
    h, w = cfa.shape
    ry, rx = _R_OFFSETS[int(pattern_code)]
    top, left = PAD + int(ry), PAD + int(rx)
    bad = _fill_margins(ws.padded, top, left, h, w, check_finite)
    if check_finite and bad:
        raise CamlabError(f"demosaic: cfa contains {bad} NaN or infinite values")
    y0, y1 = top - 2, top + h + 2
    x0, x1 = left - 2, left + w + 2
    _dir_weights(ws.padded, y0, y1, x0, x1, ws.q, max(1, min(y1 - y0, 8 * nb.get_num_threads())))
    return ws.padded, ws.q, top, left


class DemosaicWorkspace:
    """Reusable scratch buffers for one frame size (the padded CFA and the directional planes)."""

    def __init__(self, height: int, width: int):
        self.shape = (int(height), int(width))
        hp, wp = height + 2 * PAD + 1, width + 2 * PAD + 1
        self.padded = np.zeros((hp, wp), np.float32)
        self.q = np.zeros((hp, wp), np.float32)

    def cfa_view(self, pattern_code: int) -> np.ndarray:
        """The (H, W) window of the padded buffer where the CFA of a ``pattern_code`` frame goes. A producer that
        writes its CFA straight into this view (e.g. the fused BLC/LSC/WB pass) and passes it to
        :func:`demosaic_into` saves the padding copy: only the margins are filled."""
        ry, rx = _R_OFFSETS[int(pattern_code)]
        top, left = PAD + int(ry), PAD + int(rx)
        return self.padded[top:top + self.shape[0], left:left + self.shape[1]]


_LOCAL = threading.local()


def workspace(height: int, width: int) -> DemosaicWorkspace:
    """The cached workspace for a frame size, one per size and per calling thread (so concurrent callers never
    share scratch buffers)."""
    cache = getattr(_LOCAL, "workspaces", None)
    if cache is None:
        cache = _LOCAL.workspaces = {}
    ws = cache.get((height, width))
    if ws is None:
        if len(cache) > 8:
            cache.clear()
        ws = cache[(height, width)] = DemosaicWorkspace(height, width)
    return ws


def demosaic_into(cfa: np.ndarray, pattern_code: int, out: np.ndarray, method: int | str = "directional",
                  ws: DemosaicWorkspace | None = None, check_finite: bool = True,
                  malvar_gains: tuple[float, float, float] = MALVAR_GAINS,
                  cd_smoothing: float = CD_SMOOTHING) -> np.ndarray:
    """Demosaic a float32 C-contiguous (H, W) CFA into ``out`` (H, W, 3) float32; ``pattern_code`` indexes
    :data:`camlab.sensor.cfa.PATTERNS` (0 RGGB, 1 GRBG, 2 GBRG, 3 BGGR); ``method`` a name or index of
    :data:`METHODS`. ``cfa`` may also be ``ws.cfa_view(pattern_code)`` of the workspace in use (no copy then).
    ``malvar_gains``: (alpha, beta, gamma) of ``malvar2004``; ``cd_smoothing``: the smoothing weight of
    ``colour_difference``. Returns ``out``."""
    h, w = cfa.shape
    ws = workspace(h, w) if ws is None else ws
    in_place = False
    if cfa.dtype == np.float32 and ws.shape == (h, w) and 0 <= int(pattern_code) < len(PATTERNS):
        view = ws.cfa_view(int(pattern_code))
        in_place = (cfa.__array_interface__["data"][0] == view.__array_interface__["data"][0]
                    and cfa.strides == view.strides)
    if cfa.dtype != np.float32 or not (cfa.flags.c_contiguous or in_place):
        raise CamlabError(f"demosaic_into: cfa must be C-contiguous float32, got {cfa.dtype}")
    if out.shape != (h, w, 3) or out.dtype != np.float32:
        raise CamlabError(f"demosaic_into: out must be float32 {(h, w, 3)}, got {out.dtype} {out.shape}")
    if h < 2 or w < 2:
        raise CamlabError(f"demosaic_into: image {cfa.shape} is smaller than one 2x2 CFA tile")
    if not 0 <= int(pattern_code) < len(PATTERNS):
        raise CamlabError(f"demosaic_into: pattern_code must be 0..3, got {pattern_code}")
    m = METHOD_CODES.get(method, -1) if isinstance(method, str) else int(method)
    if not 0 <= m < len(METHODS):
        raise CamlabError(f"demosaic_into: unknown method {method!r}; expected one of {', '.join(METHODS)}")
    if not 0.0 <= cd_smoothing <= MAX_CD_SMOOTHING:
        raise CamlabError(f"demosaic_into: cd_smoothing must be a weight in 0..{MAX_CD_SMOOTHING}, got {cd_smoothing}")
    if ws.shape != (h, w):
        raise CamlabError(f"demosaic_into: workspace is for {ws.shape}, frame is {(h, w)}")
    ry, rx = _R_OFFSETS[int(pattern_code)]
    top, left = PAD + int(ry), PAD + int(rx)
    if in_place:
        bad = _fill_margins(ws.padded, top, left, h, w, check_finite)
    else:
        bad = _pad_reflect(cfa, top, left, ws.padded)
    if check_finite and bad:
        raise CamlabError(f"demosaic: cfa contains {bad} NaN or infinite values")
    c = ws.padded
    if m == 0:
        _bilinear(c, top, left, out)
    elif m == 1:
        _malvar(c, top, left, out, malvar_coefficients(*malvar_gains), tuple(malvar_gains) == MALVAR_GAINS)
    else:
        # The output reads d two rows/columns beyond the frame; d and alpha read the CFA 5 (colour_difference: 3)
        # further out.
        y0, y1 = top - 2, top + h + 2
        x0, x1 = left - 2, left + w + 2
        if m == METHOD_CODES["colour_difference"]:
            sw, k = cd_weights(cd_smoothing)
            _cd_plane(c, y0, y1, x0, x1, sw, k, ws.q)
        else:
            _dir_weights(c, y0, y1, x0, x1, ws.q, max(1, min(y1 - y0, 8 * nb.get_num_threads())))
        _dir_output(c, ws.q, top, left, out)
    return out


def demosaic_fast(cfa: np.ndarray, pattern: Pattern | str = "RGGB", method: str = "directional",
                  malvar_gains: tuple[float, float, float] = MALVAR_GAINS,
                  cd_smoothing: float = CD_SMOOTHING) -> np.ndarray:
    """Linear CFA (H, W) in [0, 1] -> linear RGB (H, W, 3) float32, fast path of the reference ``demosaic``."""
    from camlab.sensor.cfa import parse_pattern

    pat = parse_pattern(pattern, "demosaic: pattern")
    if method not in METHODS:
        raise CamlabError(f"demosaic.method: unknown method {method!r}; expected one of {', '.join(METHODS)}")
    a = np.asarray(cfa)
    if a.ndim != 2 or a.dtype != np.float32 or not a.flags.c_contiguous:
        a = check_cfa(a)  # converts (and checks finiteness); the kernel re-checks cheaply during padding
    elif a.shape[0] < 2 or a.shape[1] < 2:
        check_cfa(a)
    out = np.empty(a.shape + (3,), np.float32)
    return demosaic_into(a, PATTERN_CODES[pat], out, method, malvar_gains=malvar_gains, cd_smoothing=cd_smoothing)
