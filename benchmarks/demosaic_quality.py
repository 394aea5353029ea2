"""Demosaic quality and speed against rawpy (LibRaw DHT/AHD) and colour-demosaicing (Menon 2007), in one run.

Quality: ``n_images`` real photographs from ``../shared/data/images`` (``camlab.isp.quality.quality_image_paths``:
coco128 val/train, Oxford pets, CCTV persons, round robin, sorted names) are unprocessed noise-free into 12-bit
RGGB raw frames (Brooks et al. 2019, seeded per image). Every method gets the same white-balanced CFA, as in the
ISP where WB precedes demosaic: ours and colour-demosaicing on the float CFA, LibRaw through a DNG written by
``camlab.sensor.raw_io.write_dng`` with ``use_camera_wb`` (the DNG's as-shot neutral = the truth WB), raw colour
output, linear, no auto-brightness, no highlight clipping and no white-level adjustment. PSNR is in display space
(WB -> CCM -> sRGB gamma, ``camlab.isp.quality.display_psnr``) over the image minus an 8-pixel border, averaged
over images (mean of per-image dB).

Speed: medians over repeated runs on one 1920x1080 12-bit RGGB frame (a real image resized and unprocessed):
our fast kernel into a preallocated output, colour-demosaicing's Menon 2007, and rawpy's AHD postprocess (LibRaw's
whole render with AHD). The machine's other load is recorded beside the figures.
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np

N_TIMING_OURS = 21
N_TIMING_SLOW = 3


def _balanced_cfa(frame, wb) -> np.ndarray:
    from camlab.sensor.cfa import colour_index_map

    gains = np.asarray(wb, np.float32)[colour_index_map(frame.pattern, frame.height, frame.width)]
    return np.ascontiguousarray(frame.normalized() * gains, dtype=np.float32)


def _rawpy_render(dng: Path, algorithm: str, wb) -> np.ndarray:
    """LibRaw demosaic of a DNG -> linear camera RGB (H, W, 3) float32 on the CFA's [0, 1] scale."""
    import rawpy

    with rawpy.imread(str(dng)) as raw:
        out = raw.postprocess(**_rawpy_args(algorithm))
    wb = np.asarray(wb, np.float32)
    # highlight_mode=Ignore: LibRaw scales by wb / max(wb) so nothing clips; undo that to get camera RGB.
    return out.astype(np.float32) / 65535.0 / (wb / wb.max())


def _rawpy_args(algorithm: str) -> dict:
    import rawpy

    return dict(demosaic_algorithm=getattr(rawpy.DemosaicAlgorithm, algorithm), output_color=rawpy.ColorSpace.raw,
                gamma=(1, 1), no_auto_bright=True, output_bps=16, use_camera_wb=True, user_flip=0,
                adjust_maximum_thr=0.0, highlight_mode=rawpy.HighlightMode.Ignore)


def _median_ms(fn, n: int) -> tuple[float, float]:
    """(median wall ms, median process CPU ms) over ``n`` runs after one warm-up."""
    fn()
    wall, cpu = [], []
    for _ in range(n):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append((time.perf_counter() - t0) * 1e3)
        cpu.append((time.process_time() - c0) * 1e3)
    return float(np.median(wall)), float(np.median(cpu))


def demosaic_quality(n_images: int = 24, timing: bool = True) -> dict:
    """PSNR (display space) of ours vs rawpy DHT/AHD vs colour-demosaicing Menon 2007, and 1080p timings."""
    import colour_demosaicing as cd
    import cv2
    import numba

    from camlab.isp.fast.demosaic import demosaic_fast, demosaic_into
    from camlab.isp.quality import DEFAULT_BORDER, display_psnr, load_quality_images
    from camlab.isp.stages.demosaic import PATTERN_CODES
    from camlab.sensor.raw_io import write_dng
    from camlab.sensor.unprocess import unprocess

    images = load_quality_images(n_images)
    scores: dict[str, list[float]] = {k: [] for k in ("ours", "rawpy_dht", "menon2007", "bilinear", "malvar2004",
                                                      "rawpy_ahd")}
    with tempfile.TemporaryDirectory(prefix="camlab_dmq_") as tmp:
        for i, (name, img) in enumerate(images):
            frame, truth = unprocess(img, np.random.default_rng(1000 + i), add_noise=False, pattern="RGGB", bits=12)
            wb = truth.wb_gains
            cfa = _balanced_cfa(frame, wb)
            inv = 1.0 / np.asarray(wb, np.float32)
            scores["ours"].append(display_psnr(demosaic_fast(cfa, "RGGB", "directional") * inv, truth))
            scores["bilinear"].append(display_psnr(demosaic_fast(cfa, "RGGB", "bilinear") * inv, truth))
            scores["malvar2004"].append(display_psnr(demosaic_fast(cfa, "RGGB", "malvar2004") * inv, truth))
            menon = cd.demosaicing_CFA_Bayer_Menon2007(cfa, "RGGB").astype(np.float32)
            scores["menon2007"].append(display_psnr(menon * inv, truth))
            dng = write_dng(frame, Path(tmp) / f"{i:03d}.dng")
            for key, alg in (("rawpy_dht", "DHT"), ("rawpy_ahd", "AHD")):
                rendered = _rawpy_render(dng, alg, wb)
                ratio = float(rendered[8:-8, 8:-8].mean() / max(truth.camera_rgb[8:-8, 8:-8].mean(), 1e-6))
                if not 0.97 < ratio < 1.03:
                    raise RuntimeError(f"rawpy {alg} output scale is off by {ratio:.3f} on {name}; "
                                       "the comparison would be unfair")
                scores[key].append(display_psnr(rendered, truth))
    result: dict = {
        "demosaic_psnr_db": {k: round(float(np.mean(v)), 3) for k, v in scores.items()},
        "demosaic_psnr_db_min": {k: round(float(np.min(v)), 3) for k, v in scores.items()},
        "n_images": len(images),
        "images": [n for n, _ in images],
        "psnr_space": f"display sRGB (WB->CCM->IEC 61966-2-1 gamma), {DEFAULT_BORDER}-px border excluded, noise-free "
                      "12-bit RGGB unprocessed (Brooks 2019), WB applied before demosaic for every method",
        "ours_method": "directional",
    }
    if timing:
        name, img = images[0]
        big = cv2.resize(img, (1920, 1080), interpolation=cv2.INTER_CUBIC)
        frame, truth = unprocess(big, np.random.default_rng(7), add_noise=False, pattern="RGGB", bits=12)
        cfa = _balanced_cfa(frame, truth.wb_gains)
        out = np.empty((1080, 1920, 3), np.float32)
        load0 = os.getloadavg()[0]
        ours_ms, ours_cpu = _median_ms(lambda: demosaic_into(cfa, PATTERN_CODES["RGGB"], out, "directional"),
                                       N_TIMING_OURS)
        prev_threads = numba.get_num_threads()
        numba.set_num_threads(1)
        try:
            _, ours_cpu_1t = _median_ms(lambda: demosaic_into(cfa, PATTERN_CODES["RGGB"], out, "directional"),
                                        N_TIMING_OURS)
        finally:
            numba.set_num_threads(prev_threads)
        malvar_ms, _ = _median_ms(lambda: demosaic_into(cfa, PATTERN_CODES["RGGB"], out, "malvar2004"),
                                  N_TIMING_OURS)
        # like for like: the same float32 CFA array in, a new (H, W, 3) RGB array out, one thread each (Menon 2007
        # in colour-demosaicing is NumPy/SciPy, single-threaded)
        numba.set_num_threads(1)
        try:
            ours_1t_ms, _ = _median_ms(lambda: demosaic_fast(cfa, "RGGB", "directional"), N_TIMING_SLOW)
        finally:
            numba.set_num_threads(prev_threads)
        menon_ms, _ = _median_ms(lambda: cd.demosaicing_CFA_Bayer_Menon2007(cfa, "RGGB"), N_TIMING_SLOW)
        same_shape = demosaic_fast(cfa, "RGGB", "directional").shape == cd.demosaicing_CFA_Bayer_Menon2007(
            cfa, "RGGB").shape
        import rawpy

        with tempfile.TemporaryDirectory(prefix="camlab_dmq_") as tmp:
            dng = write_dng(frame, Path(tmp) / "1080p.dng")
            with rawpy.imread(str(dng)) as raw:
                args = _rawpy_args("AHD")
                ahd_ms, _ = _median_ms(lambda: raw.postprocess(**args), N_TIMING_SLOW)
        result.update({
            "ours_demosaic_1080p_ms": round(ours_ms, 2),
            "ours_demosaic_1080p_cpu_ms": round(ours_cpu, 2),
            "ours_demosaic_1080p_cpu_ms_1thread": round(ours_cpu_1t, 2),
            "malvar2004_1080p_ms": round(malvar_ms, 2),
            "demosaic_like_for_like_1080p_ms": {"ours_directional_1thread": round(ours_1t_ms, 2),
                                                "menon2007_colour_demosaicing": round(menon_ms, 1),
                                                "same_output_shape": bool(same_shape)},
            "ours_speedup_vs_menon2007_like_for_like": round(menon_ms / ours_1t_ms, 1),
            "rawpy_ahd_whole_render_1080p_ms": round(ahd_ms, 1),
            "rawpy_ahd_note": "LibRaw's whole postprocess (unpack, scale, AHD, colour, 16-bit output) of a DNG: not a "
                              "demosaic-only time, so no ratio to ours is given",
            "numba_threads": int(numba.get_num_threads()),
            "cpu_count": os.cpu_count(),
            "loadavg_1min_at_start": round(load0, 2),
            "loadavg_1min_at_end": round(os.getloadavg()[0], 2),
            "timing_note": "wall-clock medians; cpu_ms is process CPU time per frame summed over threads (inflated by "
                           "spinning worker threads when the cores are shared); cpu_ms_1thread is the CPU work of one "
                           "frame on one thread, the best proxy for the cost on idle cores",
        })
    return result


if __name__ == "__main__":  # python -m benchmarks.demosaic_quality [N]
    import json
    import sys

    print(json.dumps(demosaic_quality(int(sys.argv[1]) if len(sys.argv) > 1 else 24), indent=2))
