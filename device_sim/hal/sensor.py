"""Image sensor HAL: renders the scenario into raw Bayer frames at the exposure and analog gain the AE asked for.

Scene -> sensor model (what an SC3336-class 1/2.8" CMOS does): each background and actor sprite is turned into
linear raw camera signal once with Brooks et al.'s unprocessing (camlab.sensor.unprocess; "Unprocessing Images for
Learned Raw Denoising", CVPR 2019); per frame the cached linear CFA planes are composited, scaled by the photon
budget ``lux * exposure_s * k_sensitivity`` and the analog gain, clipped at full well, and given
Poisson-Gaussian noise from camlab.sensor.noise.NoiseModel (Foi et al., IEEE TIP 17(10), 2008) before 12-bit
quantisation. With the IR-cut filter removed and the IR LEDs on, the scene is rendered through
``unprocess(ir_mode=True)`` and lit by the LEDs' equivalent illuminance (:mod:`device_sim.hal.ircut`).

Actors are rectangular sprites cut from a labelled YOLO box (their box in the frame is the ground truth).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

# idle OpenMP workers sleep instead of spinning (see camlab.isp.fast.fused); set before numba's first prange launch
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
from numba import njit, prange  # noqa: E402

from camlab.errors import InputFileError  # noqa: E402
from camlab.sensor.cfa import shift_pattern  # noqa: E402
from device_sim.scenario import Scenario, actor_box_norm, actor_frame_box, interp_path  # noqa: E402

K_SENSITIVITY = 5.0  # full-scale fraction per lux-second at reflectance 1: a mid-grey scene reads brightness ~ lux


@dataclass(frozen=True)
class SensorSpec:
    """Geometry and electrical limits of the sensor (defaults: SC3336-like, 12-bit readout)."""
    width: int = 1920
    height: int = 1080
    pattern: str = "RGGB"
    bits: int = 12
    min_exposure_s: float = 0.0001
    max_exposure_s: float = 0.040
    min_gain: float = 1.0
    max_gain: float = 64.0


def load_rgb(path: Path) -> np.ndarray:
    """An 8-bit image file -> (H, W, 3) uint8 RGB."""
    from PIL import Image
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, ValueError) as exc:
        raise InputFileError(f"{path}: not a readable image ({exc})") from None


def _resize(img: np.ndarray, w: int, h: int) -> np.ndarray:
    import cv2
    interp = cv2.INTER_AREA if w < img.shape[1] else cv2.INTER_LINEAR
    return cv2.resize(img, (max(1, w), max(1, h)), interpolation=interp)


class SensorHAL:
    """Renders frame ``t`` of a scenario as a :class:`camlab.sensor.raw_io.RawFrame`."""

    def __init__(self, scenario: Scenario, root: Path, spec: SensorSpec, seed: int = 0):
        from camlab.sensor.noise import NoiseModel
        self.sc, self.root, self.spec = scenario, Path(root), spec
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.noise = NoiseModel()
        self._bg_rgb: dict[int, np.ndarray] = {}
        self._lin_cache: dict[tuple, np.ndarray] = {}
        self._template = None
        self.sprites: list[np.ndarray] = []
        self.sprite_aspects: list[float] = []
        for i, bg in enumerate(scenario.backgrounds):
            self._bg_rgb[i] = _resize(load_rgb(self.root / bg.image), spec.width, spec.height)
        for a in scenario.actors:
            img = load_rgb(self.root / a.folder / "images" / a.image)
            cx, cy, w, h = actor_box_norm(self.root, a)
            H, W = img.shape[:2]
            x0, x1 = int(max(0, (cx - w / 2) * W)), int(min(W, (cx + w / 2) * W))
            y0, y1 = int(max(0, (cy - h / 2) * H)), int(min(H, (cy + h / 2) * H))
            if x1 - x0 < 2 or y1 - y0 < 2:
                raise InputFileError(f"{self.root / a.folder}: box {a.box} of {a.image} is empty")
            crop = img[y0:y1, x0:x1]
            self.sprites.append(crop)
            self.sprite_aspects.append(crop.shape[1] / crop.shape[0])

    # -- linearisation (unprocessing) ------------------------------------------------------------------------
    def _unprocess(self, rgb_u8: np.ndarray, pattern: str, ir_mode: bool):
        """sRGB uint8 -> (RawFrame template, linear CFA float32 in [0, 1] of full scale), deterministic per seed."""
        from camlab.sensor.cfa import mosaic
        from camlab.sensor.unprocess import unprocess
        rng = np.random.default_rng(self.seed)  # the same camera (CCM, scene illuminant) for every call
        frame, truth = unprocess(rgb_u8, rng, exposure_gain=1.0, add_noise=False, ir_mode=ir_mode,
                                 pattern=pattern, bits=self.spec.bits)
        return frame, mosaic(truth.camera_rgb, pattern).astype(np.float32)

    def _background(self, idx: int, ir_mode: bool) -> np.ndarray:
        key = ("bg", idx, ir_mode)
        if key not in self._lin_cache:
            frame, lin = self._unprocess(self._bg_rgb[idx], self.spec.pattern, ir_mode)
            self._lin_cache[key] = lin
            if self._template is None or not ir_mode:
                self._template = frame
        return self._lin_cache[key]

    def background_index(self, t: float) -> int:
        idx = 0
        for i, bg in enumerate(self.sc.backgrounds):
            if bg.start_s <= t:
                idx = i
        return idx

    def actor_boxes(self, t: float) -> list[tuple[int, str, tuple[float, float, float, float]]]:
        """(actor index, label, normalised unclipped box) of every actor on screen at ``t``."""
        out = []
        aspect = self.spec.width / self.spec.height
        for i, a in enumerate(self.sc.actors):
            box = actor_frame_box(a, self.sprite_aspects[i], t, aspect)
            if box is not None:
                out.append((i, a.label, box))
        return out

    def _sprite_linear(self, i: int, ir_mode: bool) -> np.ndarray:
        """Actor i as noise-free linear camera RGB (H, W, 3), unprocessed once at its source resolution."""
        key = ("sprite", i, ir_mode)
        if key not in self._lin_cache:
            from camlab.sensor.unprocess import unprocess
            _, truth = unprocess(self.sprites[i], np.random.default_rng(self.seed), exposure_gain=1.0,
                                 add_noise=False, ir_mode=ir_mode, pattern=self.spec.pattern, bits=self.spec.bits)
            self._lin_cache[key] = np.ascontiguousarray(truth.camera_rgb, dtype=np.float32)
        return self._lin_cache[key]

    def scene_linear(self, t: float, ir_mode: bool) -> np.ndarray:
        """Linear CFA reflectance (H, W) float32 of the scene at ``t`` (background + actors).

        Sprites are scaled in linear light (what the lens integrates) and sampled through the CFA with the phase
        of their top-left photosite.
        """
        from camlab.sensor.cfa import mosaic
        W, H = self.spec.width, self.spec.height
        cfa = self._background(self.background_index(t), ir_mode).copy()
        for i, _label, (x0, y0, x1, y1) in self.actor_boxes(t):
            px0, py0 = int(round(x0 * W)), int(round(y0 * H))
            pw, ph = int(round((x1 - x0) * W)), int(round((y1 - y0) * H))
            if pw < 2 or ph < 2:
                continue
            sx0, sy0 = max(0, px0), max(0, py0)
            sx1, sy1 = min(W, px0 + pw), min(H, py0 + ph)
            if sx1 - sx0 < 2 or sy1 - sy0 < 2:
                continue
            lin = _resize(self._sprite_linear(i, ir_mode), pw, ph)[sy0 - py0:sy1 - py0, sx0 - px0:sx1 - px0]
            pattern = shift_pattern(self.spec.pattern, sy0 % 2, sx0 % 2)
            cfa[sy0:sy1, sx0:sx1] = mosaic(lin, pattern)
        return cfa

    def capture(self, t: float, lux: float, exposure_s: float, gain: float, ir_mode: bool = False,
                ir_lux: float = 0.0):
        """The raw frame read out at ``t``: scene x photon budget x gain, noise, 12-bit quantisation."""
        s = self.spec
        exposure_s = float(np.clip(exposure_s, s.min_exposure_s, s.max_exposure_s))
        gain = float(np.clip(gain, s.min_gain, s.max_gain))
        cfa = self.scene_linear(t, ir_mode)
        scale = (lux + (ir_lux if ir_mode else 0.0)) * exposure_s * K_SENSITIVITY * gain
        tmpl = self._template
        black = float(np.asarray(tmpl.black_level, np.float64).mean())
        white = float(tmpl.white_level)
        # heteroscedastic Gaussian form of the Poisson-Gaussian model: x + sqrt(a(g) x + b(g)) z, then the ADC
        data = np.empty(cfa.shape, np.uint16)
        _readout(cfa, self._normals(cfa.shape), np.float32(scale), np.float32(self.noise.shot(gain)),
                 np.float32(self.noise.read(gain)), np.float32(white - black), np.float32(black + 0.5),
                 np.float32(white), data)
        return replace(tmpl, data=data, analog_gain=gain, exposure_s=exposure_s,
                       iso=100.0 * gain, source=f"device_sim t={t:.3f}s")

    def _normals(self, shape) -> np.ndarray:
        """Standard normal samples for one frame: a window at a random offset into a bank of H*W + 2**16 draws.

        Drawing 2 M Gaussians costs ~20 ms of CPU per 1080p frame; reading them from a bank at a fresh random offset
        gives every photosite an independent-looking sample from frame to frame (the chance that two frames share
        an offset is 2**-16) at the cost of a view.
        """
        n = int(np.prod(shape))
        if getattr(self, "_bank", None) is None or self._bank.size < n + (1 << 16):
            self._bank = self.rng.standard_normal(n + (1 << 16), dtype=np.float32)
        off = int(self.rng.integers(0, 1 << 16))
        return self._bank[off:off + n].reshape(shape)

    def buffer_bytes(self) -> int:
        """Bytes held by the sensor model's caches (linear planes), for the memory table."""
        return int(sum(v.nbytes for v in self._lin_cache.values()))


@njit(parallel=True, cache=True, fastmath=True, error_model="numpy")
def _readout(cfa, z, scale, a, b, span, offset, white, out):
    """One pass per photosite: photon budget, full-well clip, Poisson-Gaussian noise (variance a*x + b, x >= 0)
    and the 12-bit ADC (black offset, truncation, saturation at white) -- what five numpy passes did, without
    the (H, W) float temporaries."""
    h, w = cfa.shape
    for i in prange(h):
        for j in range(w):
            x = min(cfa[i, j] * scale, np.float32(1.0))
            v = a * max(x, np.float32(0.0)) + b
            y = (x + np.sqrt(v) * z[i, j]) * span + offset
            out[i, j] = np.uint16(min(max(y, np.float32(0.0)), white))


def frame_boxes_px(hal: SensorHAL, t: float) -> list[tuple[str, np.ndarray]]:
    """Ground-truth boxes in main-stream pixels (clipped) of every actor on screen at ``t``."""
    W, H = hal.spec.width, hal.spec.height
    out = []
    for _i, label, (x0, y0, x1, y1) in hal.actor_boxes(t):
        b = np.array([max(0, x0) * W, max(0, y0) * H, min(1, x1) * W, min(1, y1) * H])
        if b[2] > b[0] and b[3] > b[1]:
            out.append((label, b))
    return out


__all__ = ["SensorHAL", "SensorSpec", "interp_path", "frame_boxes_px"]
