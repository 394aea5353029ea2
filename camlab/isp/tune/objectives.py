"""What ISP auto-tuning measures: quality against ground truth, colour accuracy, detection, fast-path CPU cost.

- **PSNR/SSIM** (display space, :mod:`camlab.isp.quality`): real images unprocessed into raw Bayer frames at a
  chosen ISO (Brooks et al., CVPR 2019; :func:`camlab.sensor.unprocess.unprocess`), rendered by the fused fast path
  with what a calibrated camera knows fixed (as-shot WB and CCM, exposure, the truth's sRGB transfer, no S-curve).
  Each scene is a short clip from a fixed camera (``frames`` frames, fresh noise each) in which the central box
  slides ``motion_px`` pixels per frame, so 3D-DNR's static blend and its motion thresholds are both measured,
  ghosts included; the last frame is scored against its own truth. Every scene's sensor carries fixed defective
  photosites (``defect_ppm`` per million, 80 % hot, 20 % dead, the same sites in every frame; hot-pixel counts grow
  with gain and shrinking pixels: Chapman et al., "Empirical formula for rates of hot pixel defects based on pixel
  size, sensor area, and ISO", Proc. SPIE 8659, 2013), so a search cannot buy detail by switching defect
  correction off: a defect left in place costs PSNR and is counted (``defects_visible``). SSIM: Wang,
  Bovik, Sheikh, Simoncelli, IEEE TIP 13(4), 2004 (Gaussian window 11/1.5, on luma).
- **CIEDE2000** (Sharma, Wu, Dalal, Color Res. Appl. 30(1), 2005; ``colour.delta_E``) of the 24 ColorChecker
  patches of the real ``raw/colorchart.dng`` against the X-Rite reference (``colour``'s "ColorChecker24 - After
  November 2014", D50 -> D65 Bradford), after one exposure scale fitted on the six neutral patches' luminance.
- **Detection**: the release detector's federated person AP50, and its person presence recall at the bundle's own
  operating point and at <= 2 % false positives with the threshold read per tuning (the same FP rate for every
  tuning: ROC comparison at a fixed false-positive rate), (:func:`camlab.eval.detection.evaluate`; the INT8 bundle
  of ``make models`` by default) on validation images rendered through the candidate tuning at a night gain, each
  with ``renders`` independent noise draws. The detector trained on renders through the shipped tuning
  (:mod:`camlab.data.render`), so a tuning that moves away from it also moves the detector off its training domain.
- **Cost**: fused fast-path process CPU ms per 1280x720 frame on one numba thread (3D-DNR state kept; the minimum
  of a few frames).

The search around these measurements is Optuna's (Akiba et al., KDD 2019); searching ISP parameters against such
losses follows Tseng et al., SIGGRAPH 2019 and Mosleh et al., CVPR 2020.
"""
from __future__ import annotations

import dataclasses
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from camlab.errors import InputFileError

# ColorChecker patch centres in colorchart.dng (fractions of the developed frame's width/height), row-major from
# dark skin to black, read off the developed frame (fronto-parallel chart, lower half of the Passport)
CHART_X = tuple(x / 944 for x in (388, 447, 506, 564, 623, 683))
CHART_Y = tuple(y / 591 for y in (318, 370, 422, 475))
CHART_HALF = 0.011          # half-size of the averaged square, fraction of the frame width
COST_SIZE = (1280, 720)


# ---------------------------------------------------------------------------------------------------- scenes
@dataclass(frozen=True)
class Scene:
    """A short fixed-camera clip of one real image: raw frames (oldest first) and the last frame's truth."""

    name: str
    frames: tuple
    truth: Any
    defects: tuple = ()        # (rows, cols) of the sensor's defective photosites (raw = display pixel coordinates)


def resize_even(rgb: np.ndarray, max_side: int) -> np.ndarray:
    """uint8 RGB resized so the long side is at most ``max_side``, both sides even."""
    import cv2

    h, w = rgb.shape[:2]
    s = min(1.0, max_side / max(h, w))
    nw, nh = max(16, int(w * s) // 2 * 2), max(16, int(h * s) // 2 * 2)
    if (nw, nh) == (w, h):
        return rgb
    return cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA)


def moving_box(rgb: np.ndarray, k: int, motion_px: int) -> np.ndarray:
    """Frame ``k`` of a fixed camera's view of ``rgb`` in which the central box (middle third of both axes) slides
    right by ``motion_px`` pixels per frame over the static rest: a person walking past a security camera."""
    if k == 0 or motion_px == 0:
        return np.ascontiguousarray(rgb)
    h, w = rgb.shape[:2]
    y0, y1, x0, x1 = h // 3, 2 * h // 3, w // 3, 2 * w // 3
    d = min(k * motion_px, x0)
    out = rgb.copy()
    out[y0:y1, x0:x1] = rgb[y0:y1, x0 - d:x1 - d]
    return out


HOT_SHARE = 0.8               # of the defective photosites; the rest are dead (stuck at black)
HOT_EXCESS = (0.15, 0.9)      # a hot photosite's excess over its true value, fraction of the raw range
DEFECT_VISIBLE = 0.1          # display error (max over the 3x3 around a site, channel mean) that leaves it visible


def defect_sites(shape: tuple[int, int], ppm: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of ``round(H W ppm / 1e6)`` distinct photosites of a ``shape`` sensor (at least one if ppm > 0)."""
    h, w = shape
    n = int(round(h * w * ppm * 1e-6))
    n = max(n, 1) if ppm > 0 else 0
    flat = rng.choice(h * w, size=min(n, h * w), replace=False)
    return (flat // w).astype(np.int64), (flat % w).astype(np.int64)


def with_defects(frame, sites: tuple[np.ndarray, np.ndarray], rng: np.random.Generator):
    """``frame`` with hot photosites (:data:`HOT_SHARE` of ``sites``, raised by :data:`HOT_EXCESS` of the raw range)
    and dead ones (at the black level); ``rng`` draws which are hot and by how much, so the same seed gives the same
    defects in every frame of a clip."""
    ys, xs = sites
    if ys.size == 0:
        return frame
    hot = rng.random(ys.size) < HOT_SHARE
    excess = rng.uniform(*HOT_EXCESS, ys.size)
    d = frame.data.astype(np.float64)
    black = float(np.mean(frame.black_level))
    white = float(frame.white_level)
    d[ys, xs] = np.where(hot, np.minimum(white, d[ys, xs] + excess * (white - black)), black)
    return dataclasses.replace(frame, data=np.round(d).astype(frame.data.dtype))


def defects_visible(out: np.ndarray, ref: np.ndarray, sites: tuple, border: int) -> int:
    """How many defect ``sites`` (away from the ``border``) still show: the largest channel-mean display error in
    the 3x3 around the site exceeds :data:`DEFECT_VISIBLE`."""
    if not len(sites) or sites[0].size == 0:
        return 0
    err = np.abs(out.astype(np.float32) - ref.astype(np.float32)).mean(axis=2)
    h, w = err.shape
    count = 0
    for y, x in zip(*sites):
        if border + 1 <= y < h - border - 1 and border + 1 <= x < w - border - 1:
            count += int(err[y - 1:y + 2, x - 1:x + 2].max() > DEFECT_VISIBLE)
    return count


def make_scene(name: str, rgb: np.ndarray, iso: float, seed: int, frames: int = 4, motion_px: int = 4,
               defect_ppm: float = 0.0) -> Scene:
    """``frames`` raw frames of ``rgb`` seen by a fixed camera with a moving central box (:func:`moving_box`), one
    illuminant, camera matrix and exposure, independent noise, at ``iso``; ``defect_ppm`` defective photosites per
    million, fixed in the sensor (:func:`with_defects`)."""
    from camlab.sensor.unprocess import unprocess

    out, truth, first = [], None, None
    for k in range(frames):
        img = moving_box(rgb, k, motion_px)
        rng = np.random.default_rng([seed, k])
        if first is None:
            frame, truth = unprocess(img, rng, iso=iso, pattern="RGGB", bits=12)
            first = truth
        else:
            frame, truth = unprocess(img, rng, iso=iso, pattern="RGGB", bits=12, illuminant=first.wb_gains,
                                     ccm=first.ccm, exposure_gain=first.exposure_gain)
        out.append(frame)
    sites = defect_sites(out[0].data.shape, defect_ppm, np.random.default_rng([seed, 7919]))
    out = [with_defects(f, sites, np.random.default_rng([seed, 7920])) for f in out]
    return Scene(name, tuple(out), truth, sites)


def quality_scenes(names_images: Sequence[tuple[str, np.ndarray]], iso: float, *, max_side: int, frames: int,
                   motion_px: int, seed: int, defect_ppm: float = 0.0) -> list[Scene]:
    """:func:`make_scene` for each (name, uint8 RGB), seeded per image."""
    return [make_scene(n, resize_even(img, max_side), iso, seed + 101 * i, frames, motion_px, defect_ppm)
            for i, (n, img) in enumerate(names_images)]


def harness_config(cfg, truth, width: int, height: int):
    """The candidate tuning with what a calibrated camera knows fixed for a ground-truth comparison: as-shot WB and
    CCM (the candidate's saturation kept), the truth's exposure as digital gain, sRGB transfer without S-curve, no
    lens shading (unprocessing has none), AE off, output at the frame's size."""
    from camlab.isp.stages.gain import GainParams
    from camlab.isp.stages.scale import ScaleParams

    return dataclasses.replace(
        cfg, mono=False, lsc=dataclasses.replace(cfg.lsc, enabled=False),
        gain=GainParams(gain=float(truth.exposure_gain)), wb=dataclasses.replace(cfg.wb, mode="as_shot"),
        ccm=dataclasses.replace(cfg.ccm, enabled=True, matrix=None),
        tone=dataclasses.replace(cfg.tone, enabled=True, contrast=0.0, exposure_bias=1.0, gamma="srgb"),
        ae=dataclasses.replace(cfg.ae, enabled=False),
        scale=ScaleParams(main=(width, height), sub=(width // 2 // 2 * 2, height // 2 // 2 * 2), fit="stretch"))


def render_scene(cfg, scene: Scene) -> np.ndarray:
    """Display RGB (H, W, 3) float32 of the scene's last frame through the fast path with 3D-DNR state."""
    from camlab.isp.pipeline import Pipeline

    f0 = scene.frames[-1]
    pipe = Pipeline(harness_config(cfg, scene.truth, f0.width // 2 * 2, f0.height // 2 * 2), fast=True)
    state = pipe.new_state()
    res = None
    for k, fr in enumerate(scene.frames):
        res = pipe.run(fr, state, rgb=k == len(scene.frames) - 1)
    return res.rgb


def rendered_and_truth(cfg, scene: Scene) -> tuple[np.ndarray, np.ndarray]:
    """(display RGB of the scene's last frame through ``cfg`` (:func:`render_scene`), its display truth cropped to
    the same size)."""
    from camlab.isp.quality import to_display

    out = render_scene(cfg, scene)
    t = scene.truth
    return out, to_display(t.camera_rgb, t.wb_gains, t.ccm, t.exposure_gain)[:out.shape[0], :out.shape[1]]


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM (Wang et al. 2004) of two display images in [0, 1], on BT.709 luma, Gaussian window 11 / 1.5."""
    import cv2

    w = np.array([0.2126, 0.7152, 0.0722], np.float64)
    x, y = np.asarray(a, np.float64) @ w, np.asarray(b, np.float64) @ w
    c1, c2 = 0.01 ** 2, 0.03 ** 2

    def blur(z):
        return cv2.GaussianBlur(z, (11, 11), 1.5)

    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    m = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return float(m[5:-5, 5:-5].mean())


def quality(cfg, scenes: Sequence[Scene]) -> dict[str, Any]:
    """Mean display PSNR (dB) and SSIM of ``cfg`` over ``scenes`` (8-pixel border left out), with per-image PSNR."""
    from camlab.isp.quality import DEFAULT_BORDER, psnr

    ps, ss, shown, sites = [], [], 0, 0
    for sc in scenes:
        out, ref = rendered_and_truth(cfg, sc)
        ps.append(psnr(out, ref, border=DEFAULT_BORDER))
        b = DEFAULT_BORDER
        ss.append(ssim(out[b:-b, b:-b], ref[b:-b, b:-b]))
        if sc.defects:
            shown += defects_visible(out, ref, sc.defects, b)
            sites += int(sc.defects[0].size)
    return {"psnr_db": float(np.mean(ps)), "ssim": float(np.mean(ss)), "psnr_db_per_image": [round(v, 3) for v in ps],
            "n_images": len(scenes), "defect_sites": sites, "defects_visible": shown}


def defect_count(cfg, scenes: Sequence[Scene]) -> tuple[int, int]:
    """(defect sites left visible, defect sites scored) of ``cfg`` over ``scenes``, 8-pixel border left out: the
    defect guard's measurement (:func:`defects_visible` on each scene's last frame), without the quality metrics."""
    from camlab.isp.quality import DEFAULT_BORDER

    shown, sites = 0, 0
    for sc in scenes:
        out, ref = rendered_and_truth(cfg, sc)
        shown += defects_visible(out, ref, sc.defects, DEFAULT_BORDER)
        sites += int(sc.defects[0].size) if sc.defects else 0
    return shown, sites


# ---------------------------------------------------------------------------------------------------- colour chart
def chart_reference_lab() -> np.ndarray:
    """(24, 3) CIE L*a*b* (D65) of the X-Rite ColorChecker 24 (after November 2014), Bradford-adapted from D50."""
    import colour

    cc = colour.CCS_COLOURCHECKERS["ColorChecker24 - After November 2014"]
    xyz = colour.xyY_to_XYZ(np.array(list(cc.data.values())))
    d65 = colour.CCS_ILLUMINANTS["CIE 1931 2 Degree Standard Observer"]["D65"]
    xyz65 = colour.chromatic_adaptation(xyz, colour.xy_to_XYZ(cc.illuminant), colour.xy_to_XYZ(d65),
                                        method="Von Kries", transform="Bradford")
    return colour.XYZ_to_Lab(xyz65, d65)


def chart_patches(rgb: np.ndarray) -> np.ndarray:
    """(24, 3) mean display RGB of the chart patches of a developed colorchart.dng frame."""
    h, w = rgb.shape[:2]
    r = max(2, int(CHART_HALF * w))
    out = []
    for fy in CHART_Y:
        for fx in CHART_X:
            cx, cy = int(fx * w), int(fy * h)
            out.append(rgb[cy - r:cy + r, cx - r:cx + r].reshape(-1, 3).mean(axis=0))
    return np.asarray(out, np.float64)


def chart_delta_e(cfg, frame) -> dict[str, Any]:
    """Mean and max CIEDE2000 of the candidate tuning on the colour-chart frame (exposure fitted on the neutrals)."""
    import colour

    from camlab.isp.pipeline import Pipeline
    from camlab.isp.stages.scale import ScaleParams
    from camlab.sensor.unprocess import srgb_to_linear

    w, h = frame.width // 2 * 2, frame.height // 2 * 2
    c = dataclasses.replace(cfg, mono=False, ae=dataclasses.replace(cfg.ae, enabled=False),
                            scale=ScaleParams(main=(w, h), sub=(w // 4 * 2, h // 4 * 2), fit="stretch"))
    rgb = Pipeline(c, fast=True).run(frame, rgb=True).rgb
    lin = srgb_to_linear(chart_patches(rgb).astype(np.float32)).astype(np.float64)
    d65 = colour.CCS_ILLUMINANTS["CIE 1931 2 Degree Standard Observer"]["D65"]
    xyz = colour.RGB_to_XYZ(lin, colour.RGB_COLOURSPACES["sRGB"], illuminant=d65, apply_cctf_decoding=False)
    ref = chart_reference_lab()
    ref_y = colour.Lab_to_XYZ(ref, d65)[18:, 1]
    k = float(np.sum(ref_y * xyz[18:, 1]) / max(np.sum(xyz[18:, 1] ** 2), 1e-12))  # least squares on neutrals
    de = colour.delta_E(colour.XYZ_to_Lab(xyz * k, d65), ref, method="CIE 2000")
    return {"delta_e_mean": float(np.mean(de)), "delta_e_max": float(np.max(de)), "exposure_scale": k,
            "n_patches": int(de.size)}


def load_chart_frame(path: str | Path | None = None):
    """The colour-chart DNG (``$CAMLAB_DATA/raw/colorchart.dng`` by default) as a RawFrame."""
    from camlab import settings
    from camlab.sensor.raw_io import read_raw

    p = Path(path) if path is not None else settings.data_root() / "raw" / "colorchart.dng"
    if not p.is_file():
        raise InputFileError(f"{p}: colour-chart DNG not found (the deltaE objective needs it)")
    return read_raw(p)


# ---------------------------------------------------------------------------------------------------- detection
@dataclass
class DetectionSet:
    """Validation samples (person-labelling sources) as uint8 RGB at ``max_side``, with the detector to score."""

    samples: list
    images: list
    predict: Any
    io_spec: dict
    iso: float
    seed: int
    model: str = ""
    # each image rendered this many times, each with its own sensor noise, and scored as that many images: on 38
    # held-out people the shipped tuning's presence recall moved by 3 people (68.4 vs 76.3 %) between two noise
    # draws alone (2026-12-07), the size of the gain a tuning is asked for
    renders: int = 1


def release_model() -> Path:
    """The newest detector bundle exported from the release checkpoint (its INT8 model is what the camera runs; ~10x
    faster on the CPU than the checkpoint), else the newest bundle, else the release checkpoint itself."""
    from camlab import settings
    from camlab.deploy.bundle import newest_bundle_of
    from camlab.train import detector

    return newest_bundle_of(settings.exports_root() / "detector", detector.release_checkpoint()) \
        or detector.release_checkpoint()


def detection_order(samples: list) -> list:
    """A deterministic order of the validation samples whose source labels persons: every third a person-free image
    (so the FP rate is measured), the others images with persons spread evenly over the sorted list."""
    persons = sorted((s for s in samples if s.labelled[0]), key=lambda s: str(s.image))
    with_p = [s for s in persons if s.has(0)]
    without = [s for s in persons if s.negative_for(0)]   # known person-free (exhaustively labelled)
    stride = max(1, len(with_p) // max(1, 2 * len(without)))
    pos = iter(with_p[::stride])
    neg = iter(without)
    out = []
    for j in range(3 * len(without)):
        nxt = next(neg if j % 3 == 2 else pos, None)
        if nxt is None:
            break
        out.append(nxt)
    return out


def detection_interleave(side: str = "val") -> list:
    """The split manifest's ``side`` ("val" or "train") as :func:`detection_order` interleaves it."""
    from camlab import settings
    from camlab.eval.detection import resolve_data

    if side not in ("val", "train"):
        raise ValueError(f"detection images: side must be 'val' or 'train', got {side!r}")
    samples, _ = resolve_data([f"{settings.project_root() / 'datasets' / 'detector_split.json'}:{side}"])
    return detection_order(samples)


def check_detection_images(side: str, offset: int, n: int, what: str, order: list | None = None) -> None:
    """InputFileError in one line when the ``side`` interleave (``order``, when already built) holds fewer than
    ``offset + n`` images."""
    have = len(order if order is not None else detection_interleave(side))
    if offset + n > have:
        raise InputFileError(f"{what}: images {offset}..{offset + n - 1} of the {side} side's person-labelled "
                             f"interleave asked, it holds {have}")


def detection_set(n: int, offset: int, iso: float, *, model: str | Path | None = None, max_side: int = 384,
                  seed: int = 0, side: str = "val", renders: int = 1) -> DetectionSet:
    """``n`` images of the split manifest's ``side`` (validation by default) whose source labels persons, from
    position ``offset`` of a deterministic interleave (tuning and held-out sets take disjoint offsets); ``model``: a
    bundle directory (its INT8 model) or a checkpoint, :func:`release_model` by default; ``renders``: noise draws
    per image."""
    from camlab.data.render import sample_rgb
    from camlab.eval.detection import load_model_any

    if renders < 1:
        raise ValueError(f"detection_set: renders must be >= 1, got {renders}")
    order = detection_interleave(side)          # refuses a side other than val/train before anything loads
    check_detection_images(side, offset, n, "detection objective", order)
    ckpt = Path(model) if model is not None else release_model()
    if not ckpt.exists():
        raise InputFileError(f"{ckpt}: detector bundle/checkpoint not found (run make models, or give --detector)")
    pick = order[offset:offset + n]
    predict, io_, _ = load_model_any(ckpt)
    return DetectionSet(pick, [resize_even(sample_rgb(s), max_side) for s in pick], predict, io_, iso, seed,
                        str(ckpt), renders)


def detection(cfg, ds: DetectionSet) -> dict[str, Any]:
    """Person AP50 (federated), presence recall and FP rate of the release detector on ``ds`` rendered with ``cfg``
    (colour mode, analog gain from the ISO, 3D-DNR off: stills), read back through NV12 as the AI path sees it."""
    import cv2

    from camlab.eval.detection import evaluate
    from camlab.isp.pipeline import Pipeline
    from camlab.isp.stages.csc import nv12_to_rgb
    from camlab.isp.stages.scale import ScaleParams
    from camlab.sensor.noise import gain_from_iso
    from camlab.sensor.unprocess import unprocess

    gain = gain_from_iso(ds.iso)
    with tempfile.TemporaryDirectory(prefix="camlab_tune_det_") as tmp:
        rendered = []
        for k in range(ds.renders):
            for i, (s, img) in enumerate(zip(ds.samples, ds.images)):
                # the first draw keeps the seed a one-render set has always used
                rng = np.random.default_rng([ds.seed, i] if k == 0 else [ds.seed, i, k])
                frame, _ = unprocess(img, rng, gain=gain)
                h, w = img.shape[:2]
                c = dataclasses.replace(cfg, mono=False, ae=dataclasses.replace(cfg.ae, enabled=False),
                                        scale=ScaleParams(main=(w, h), sub=(w, h), fit="stretch"))
                pipe = Pipeline(c, fast=True)
                out = nv12_to_rgb(pipe.run(frame).main_nv12, c.csc.matrix, c.csc.range)
                path = Path(tmp) / f"{k:02d}_{i:04d}.png"
                cv2.imwrite(str(path), np.clip(np.rint(out * 255), 0, 255).astype(np.uint8)[..., ::-1])
                rendered.append(dataclasses.replace(s, image=path))
        ev = evaluate(ds.predict, rendered, io_spec=ds.io_spec, hog=False, image_scores=True)
    p = ev["classes"]["person"]
    at_fp = recall_at_fp(ev["image_scores"])
    return {"person_ap50": float(p["ap50"] or 0.0), "person_recall": p["presence_recall"],
            "person_recall_at_fp": at_fp["presence_recall"], "person_fp_rate_at_fp": at_fp["fp_rate"],
            "person_threshold_at_fp": at_fp["threshold"],
            "person_fp_rate": p["fp_rate"], "person_empty_scene_fp_rate": p.get("empty_scene_fp_rate"),
            "n_person_free_images": int(p["n_scored_images"] - p["n_images"]),
            "n_empty_scenes": p.get("n_empty_scenes"), "map50": ev["map50"],
            # not "n_images": the quality figures of the same measurement have theirs
            "n_detection_renders": ev["n_images"], "renders_per_image": ds.renders,
            "presence_threshold": ev["presence_thresholds"]["person"]}


DETECTION_FP_RATE = 0.02     # the person operating point of issue 19: presence at <= 2 % false positives


def recall_at_fp(scores: dict, fp_rate: float = DETECTION_FP_RATE) -> dict:
    """Person presence recall at the lowest threshold that fires on at most ``fp_rate`` of the set's person-free
    images (:func:`camlab.eval.detection.pick_thresholds` on ``evaluate(..., image_scores=True)``): two tunings
    compared at the same false-positive rate, which a fixed threshold does not give when a tuning moves every
    score (a brighter render lifted recall and false positives together, 2026-12-07)."""
    from camlab.eval.detection import pick_thresholds

    best = np.asarray(scores["best"], np.float32)
    present = np.asarray(scores["present"], bool)
    known = np.asarray(scores["known"], bool)
    _, report = pick_thresholds(present, best, fp_rate, floor=0.0, ceiling=1.0, fp_limited=["person"], known=known)
    return report["person"]


# ---------------------------------------------------------------------------------------------------- cost
def cost_frame(rgb: np.ndarray, iso: float, seed: int = 11):
    """A 1280x720 raw frame (a real image resized, unprocessed at ``iso``) to time the fast path on."""
    import cv2

    from camlab.sensor.unprocess import unprocess

    big = cv2.resize(rgb, COST_SIZE, interpolation=cv2.INTER_CUBIC)
    frame, _ = unprocess(big, np.random.default_rng(seed), iso=iso, pattern="RGGB", bits=12, exposure_s=1 / 30)
    return frame


def fast_path_cpu_ms(cfg, frame, repeats: int = 5, threads: int = 1) -> float:
    """CPU ms per frame of the fused fast path on ``threads`` numba threads (3D-DNR state kept, two warm-up
    frames): the minimum over ``repeats`` frames, the figure other jobs on the machine disturb least. On one thread
    it is the calling thread's CPU time (the numba loops run on it), not the process's: a library pool left
    spinning by earlier work in the process (OpenBLAS threads after the quality metrics' matrix products) was billed
    to the frame, 20 ms instead of 11 for the first ~80 ms after a quality measurement, so a tuning timed first
    looked 25 % dearer."""
    import numba

    from camlab.isp.pipeline import Pipeline
    from camlab.isp.stages.scale import ScaleParams

    c = dataclasses.replace(cfg, ae=dataclasses.replace(cfg.ae, enabled=False),
                            scale=dataclasses.replace(cfg.scale, main=(frame.width, frame.height), fit="stretch")
                            if isinstance(cfg.scale, ScaleParams) else cfg.scale)
    pipe = Pipeline(c, fast=True)
    prev = numba.get_num_threads()
    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    try:
        state = pipe.new_state()
        pipe.run(frame, state)
        pipe.run(frame, state)
        ms = []
        clock = time.thread_time if numba.get_num_threads() == 1 else time.process_time
        for _ in range(repeats):
            c0 = clock()
            pipe.run(frame, state)
            ms.append((clock() - c0) * 1e3)
    finally:
        numba.set_num_threads(prev)
    return float(np.min(ms))
