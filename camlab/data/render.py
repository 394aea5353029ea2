"""Camera-domain rendering: training images unprocessed to raw Bayer and re-developed by the device ISP.

Brooks et al., "Unprocessing Images for Learned Raw Denoising", CVPR 2019 (:func:`camlab.sensor.unprocess.unprocess`
with a random analog gain, illuminant and camera matrix, or IR night mode: a monochrome IR-lit frame), then
:class:`camlab.isp.pipeline.Pipeline` (fused fast path) with the device tuning (``sc3336_day.yaml`` by day,
``sc3336_ir.yaml`` at night), main stream at the image's own size, read back through NV12 (4:2:0 chroma, limited
range) exactly as the camera's AI path sees it. Rendering costs ~0.1-1 s per image, so each (image, variant) is
rendered once and cached as a JPEG under ``camlab.settings.cache_root()/detector_render``; the variant's gain and
mode are a pure function of (seed, image path, variant index), so caches are reproducible and shareable between
DDP ranks.
"""
from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable

import numpy as np

from camlab import settings
from camlab.errors import CamlabError, InputFileError

RENDER_VERSION = 1


@dataclass(frozen=True)
class RenderConfig:
    enabled: bool = True
    variants: int = 2                        # cached renderings per image
    p_ir: float = 0.3                        # share of variants rendered in IR night mode
    p_original: float = 0.15                 # share of training draws that use the original sRGB image
    gain_day: tuple[float, float] = (1.0, 16.0)   # analog gain range (log-uniform)
    gain_ir: tuple[float, float] = (2.0, 32.0)
    day_tuning: str = "camlab/isp/tuning/sc3336_day.yaml"
    ir_tuning: str = "camlab/isp/tuning/sc3336_ir.yaml"
    fast: bool = True
    max_side: int = 384                      # images are resized to at most this before rendering
    jpeg_quality: int = 95
    workers: int = 2                         # rendering processes (single-process runs only; DDP ranks split)

    def __post_init__(self):
        if self.variants < 1:
            raise ValueError("variants must be >= 1")
        for name in ("p_ir", "p_original"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1]")
        for name in ("gain_day", "gain_ir"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ValueError(f"{name} must be 0 < low <= high, got {(lo, hi)}")


@dataclass(frozen=True)
class Variant:
    index: int
    ir: bool
    gain: float
    seed: int


def variant_params(image: Path, index: int, cfg: RenderConfig, seed: int) -> Variant:
    """The variant's mode and gain: a pure function of (seed, image name, index)."""
    h = hashlib.sha256(f"{seed}:{Path(image).name}:{index}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(h[:8], "big"))
    ir = bool(rng.random() < cfg.p_ir)
    lo, hi = cfg.gain_ir if ir else cfg.gain_day
    gain = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    return Variant(index, ir, gain, int.from_bytes(h[8:16], "big"))


def _resolve(path: str) -> Path:
    p = Path(path)
    return p if p.is_absolute() else settings.project_root() / p


@lru_cache(maxsize=4)
def _tuning(path: str):
    from camlab.isp.pipeline import load_tuning

    p = _resolve(path)
    if not p.is_file():
        raise InputFileError(f"{p}: ISP tuning not found (render.day_tuning / render.ir_tuning)")
    return load_tuning(p)


def _pipeline(tuning_path: str, width: int, height: int, fast: bool):
    from camlab.isp.pipeline import Pipeline

    base = _tuning(tuning_path)
    scale = dataclasses.replace(base.scale, main=(width, height), sub=(width, height), fit="stretch")
    return Pipeline(dataclasses.replace(base, scale=scale), fast=fast)


def read_rgb(path: str | Path) -> np.ndarray:
    """RGB uint8 (H, W, 3) of an image file; InputFileError when it cannot be decoded."""
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise InputFileError(f"{path}: unreadable image (cv2 could not decode it)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def restore_aspect(rgb: np.ndarray, aspect: float | None) -> np.ndarray:
    """The picture at ``aspect`` (width / height) again when an exporter stretched it: the longer side is shrunk
    (area resampling), never a side upsampled; None, or an aspect already within half a pixel, returns ``rgb``."""
    import cv2

    if aspect is None:
        return rgb
    h, w = rgb.shape[:2]
    nw, nh = (w, max(1, int(round(w / aspect)))) if w / h < aspect else (max(1, int(round(h * aspect))), h)
    if (nw, nh) == (w, h):
        return rgb
    return cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA)


def sample_rgb(sample, path: str | Path | None = None) -> np.ndarray:
    """RGB uint8 of a detection sample as its camera framed it: ``path`` (a rendering of it) or its image file,
    resized back to the source's ``display_aspect`` (:mod:`camlab.data.label_sets`)."""
    return restore_aspect(read_rgb(path if path is not None else sample.image), getattr(sample, "display_aspect", None))


def even_size(rgb: np.ndarray, max_side: int) -> np.ndarray:
    """Resize to even width/height (the ISP's NV12 needs them), long side at most ``max_side``."""
    import cv2

    h, w = rgb.shape[:2]
    s = min(1.0, max_side / max(h, w))
    nw, nh = max(8, int(round(w * s / 2)) * 2), max(8, int(round(h * s / 2)) * 2)
    if (nw, nh) == (w, h):
        return rgb
    return cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)


def render_rgb(rgb: np.ndarray, variant: Variant, cfg: RenderConfig) -> np.ndarray:
    """sRGB uint8 (H, W, 3), even size -> what the camera's ISP makes of that scene: RGB uint8 (H, W, 3)."""
    from camlab.isp.stages.csc import nv12_to_rgb
    from camlab.sensor.unprocess import unprocess

    h, w = rgb.shape[:2]
    if h % 2 or w % 2:
        raise CamlabError(f"render_rgb: image size {w}x{h} must be even (use even_size)")
    rng = np.random.default_rng(variant.seed)
    frame, _ = unprocess(rgb, rng, gain=variant.gain, ir_mode=variant.ir)
    pipe = _pipeline(cfg.ir_tuning if variant.ir else cfg.day_tuning, w, h, cfg.fast)
    result = pipe.run(frame)
    out = nv12_to_rgb(result.main_nv12, pipe.config.csc.matrix, pipe.config.csc.range)
    return np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)


def cache_dir() -> Path:
    return settings.cache_root() / "detector_render" / f"v{RENDER_VERSION}"


def cache_path(image: Path, variant: Variant, cfg: RenderConfig) -> Path:
    st = Path(image).stat()
    key = (f"{Path(image).resolve()}:{st.st_size}:{st.st_mtime_ns}:{variant}:{cfg.day_tuning}:{cfg.ir_tuning}:"
           f"{_file_digest(cfg.day_tuning)}:{_file_digest(cfg.ir_tuning)}:{cfg.max_side}:{cfg.fast}")
    digest = hashlib.sha1(key.encode()).hexdigest()
    return cache_dir() / digest[:2] / f"{digest}.jpg"


@lru_cache(maxsize=8)
def _file_digest(path: str) -> str:
    p = _resolve(path)
    return hashlib.sha1(p.read_bytes()).hexdigest()[:12] if p.is_file() else "missing"


def rendered(image: Path, variant: Variant, cfg: RenderConfig) -> Path:
    """Path of the cached rendering of (image, variant), rendering it first when missing."""
    import cv2

    from camlab.io_utils import atomic_write_bytes

    path = cache_path(image, variant, cfg)
    if path.is_file():
        return path
    rgb = even_size(read_rgb(image), cfg.max_side)
    out = render_rgb(rgb, variant, cfg)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(out, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality])
    if not ok:
        raise CamlabError(f"render: could not encode the rendering of {image}")
    atomic_write_bytes(path, buf.tobytes())
    return path


def _render_job(job: tuple[str, int, RenderConfig, int]) -> tuple[str, str, str | None]:
    """Worker: render one (image, variant) into the cache -> (image, 'rendered'|'cached'|'failed', reason)."""
    img, k, cfg, seed = job
    v = variant_params(Path(img), k, cfg, seed)
    try:
        if cache_path(Path(img), v, cfg).is_file():
            return img, "cached", None
        rendered(Path(img), v, cfg)
        return img, "rendered", None
    except InputFileError as exc:
        return img, "failed", str(exc)


def _worker_init() -> None:
    try:
        import numba
        numba.set_num_threads(1)
    except (ImportError, ValueError):
        pass
    try:
        import torch
        torch.set_num_threads(1)
    except ImportError:
        pass


def prerender(images: Iterable[Path], cfg: RenderConfig, seed: int, *, rank: int = 0, world_size: int = 1,
              show_progress: bool = True) -> dict:
    """Render every (image, variant) of this rank's share into the cache; returns counts and failures.

    A single-process run fans out over ``cfg.workers`` spawned processes; under DDP each rank renders its
    own share (``rank::world_size``) in-process."""
    from camlab.train.common import progress

    images = [str(p) for p in images]
    jobs = [(img, k, cfg, seed) for img in images for k in range(cfg.variants)][rank::world_size]
    todo = [j for j in jobs if not cache_path(Path(j[0]), variant_params(Path(j[0]), j[1], cfg, seed), cfg).is_file()]
    counts = {"rendered": 0, "cached": len(jobs) - len(todo), "failed": 0}
    failures: list[tuple[str, str]] = []
    if cfg.workers > 1 and world_size == 1 and len(todo) > 8:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(cfg.workers, initializer=_worker_init) as pool:
            results = list(progress(pool.imap_unordered(_render_job, todo, chunksize=4), total=len(todo),
                                    desc="render (sensor+ISP)", enabled=show_progress))
    else:
        results = [_render_job(j) for j in progress(todo, desc="render (sensor+ISP)", enabled=show_progress)]
    for img, status, reason in results:
        counts[status] += 1
        if reason:
            failures.append((img, reason))
    return {"jobs": len(jobs), **counts, "failures": failures}


def calibration_inputs(n: int, seed: int = 0, *, model_config: dict | None = None,
                       manifest: str | Path | None = None) -> np.ndarray:
    """``n`` normalized NCHW float32 detector inputs for INT8 calibration: training-split images rendered through
    the sensor + ISP (day and IR variants as in training), letterboxed and scaled as the manifest input says."""
    from camlab.contract.detection import normalize
    from camlab.data.augment import letterbox
    from camlab.data.splits import load_split
    from camlab.models.detector import DetectorConfig, manifest_io

    if n < 1:
        raise CamlabError(f"calibration_inputs: n must be >= 1, got {n}")
    cfg = DetectorConfig.from_dict(model_config) if model_config else DetectorConfig()
    spec = manifest_io(cfg)["inputs"][0]
    mpath = Path(manifest) if manifest else settings.detector_split_manifest()
    images: list = []     # detection samples (display aspect known), or bare image paths of the demo slice
    if mpath.is_file():
        try:
            images = load_split(mpath, "train")[0]
        except InputFileError:  # a manifest of another data root: fall back to the demo slice below
            images = []
    if not images:  # a clone without ../shared/data: the embedded demo slice
        images = sorted(p for p in settings.demo_data_root().rglob("*")
                        if p.suffix.lower() in (".jpg", ".jpeg", ".png") and p.parent.name == "images")
    if not images:
        raise InputFileError(f"calibration_inputs: no images found ({mpath} / {settings.demo_data_root()})")
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(images), size=n, replace=len(images) < n)
    rcfg = RenderConfig()
    out = np.empty((n, 3, cfg.input_height, cfg.input_width), np.float32)
    for i, idx in enumerate(picks):
        item = images[int(idx)]
        img = item if isinstance(item, Path) else item.image
        try:
            path = rendered(img, variant_params(img, i % rcfg.variants, rcfg, seed), rcfg)
        except ImportError:
            path = img
        rgb = read_rgb(path) if isinstance(item, Path) else sample_rgb(item, path)
        lb_img, _, _ = letterbox(rgb, np.zeros((0, 4), np.float32), cfg.input_width, cfg.input_height)
        out[i] = normalize(lb_img, spec)[0]
    return out
