"""The ISP pipeline: raw Bayer frame -> NV12 main stream + 640x360 substream, from a YAML tuning.

Stage order (each stage cites its algorithm in ``camlab/isp/stages/``): black level -> defective pixels -> lens
shading -> digital gain -> white balance -> demosaic -> CCM -> tone/gamma -> Y'CbCr 4:2:0 -> 2D NR -> 3D-DNR ->
sharpening -> scaler -> NV12 (the 640x360 substream is scaled from the denoised luma before sharpening: the 3x
downscale would remove the sharpening boost anyway, and the fast path can then quantise the sharpened main stream
straight into its NV12 buffer). Statistics (AWB/AE, per zone) are taken from the raw mosaic before white balance, like
a hardware statistics block. ``fast=False`` runs the float reference stages one by one (with per-stage taps and
timings); ``fast=True`` runs the fused numba kernels of ``camlab/isp/fast/`` that golden tests hold to the reference.
Temporal state (3D-DNR previous output, AWB gains, AE settings) lives in an :class:`IspState` the caller keeps
across the frames of one stream; ``state=None`` processes the frame on its own (a still, a dataset image).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from camlab.config import load_config
from camlab.errors import CamlabError, ConfigError
from camlab.isp.stages import cfa_tile, rgb_tile, tile_to_full
from camlab.isp.stages.awb import AwbParams, awb_gains
from camlab.isp.stages.blc import BlcParams, black_level_correct
from camlab.isp.stages.ccm import CcmParams, apply_ccm, effective_matrix
from camlab.isp.stages.csc import CscParams, pack_nv12, planes_to_rgb, rgb_to_yuv, subsample_420
from camlab.isp.stages.demosaic import DemosaicParams, demosaic
from camlab.isp.stages.dpc import DpcParams, correct_defects
from camlab.isp.stages.gain import GainParams, digital_gain
from camlab.isp.stages.lsc import LscParams, gain_map, lens_shading_correct
from camlab.isp.stages.nr2d import Nr2dParams, denoise_chroma, denoise_luma, display_noise_lut
from camlab.isp.stages.nr3d import Nr3dParams, temporal_denoise
from camlab.isp.stages.scale import ScaleParams, scale_streams
from camlab.isp.stages.sharpen import SharpenParams, sharpen_luma
from camlab.isp.stages.tone import ToneParams, tone_lut, tone_map
from camlab.isp.stages.wb import WbParams, white_balance_cfa
from camlab.isp.three_a.ae import AeParams, AeState, ae_update
from camlab.isp.three_a.awb_stats import ZoneStats, quad_rgb, zone_stats_from_quads
from camlab.sensor.noise import NoiseModel
from camlab.sensor.raw_io import RawFrame

TUNING_DIR = Path(__file__).resolve().parent / "tuning"


@dataclass(frozen=True)
class StatsParams:
    """Statistics block: ``zones`` (cols, rows); every ``step``-th Bayer quad is sampled; quads at or above
    ``saturation`` (after WB) are left out of the colour statistics."""

    zones: tuple[int, int] = (16, 12)
    step: int = 4
    saturation: float = 0.95

    def __post_init__(self):
        if self.step < 1 or min(self.zones) < 1:
            raise ValueError("step and zones must be >= 1")


@dataclass(frozen=True)
class PipelineConfig:
    """A device tuning. ``mono``: monochrome output (IR night mode); ``noise``: the sensor's noise model (drives NR,
    3D-DNR and sharpening coring at each frame's analog gain)."""

    name: str = "default"
    mono: bool = False
    noise: NoiseModel = field(default_factory=NoiseModel)
    stats: StatsParams = field(default_factory=StatsParams)
    blc: BlcParams = field(default_factory=BlcParams)
    dpc: DpcParams = field(default_factory=DpcParams)
    lsc: LscParams = field(default_factory=LscParams)
    gain: GainParams = field(default_factory=GainParams)
    wb: WbParams = field(default_factory=WbParams)
    awb: AwbParams = field(default_factory=AwbParams)
    demosaic: DemosaicParams = field(default_factory=DemosaicParams)
    ccm: CcmParams = field(default_factory=CcmParams)
    tone: ToneParams = field(default_factory=ToneParams)
    nr2d: Nr2dParams = field(default_factory=Nr2dParams)
    nr3d: Nr3dParams = field(default_factory=Nr3dParams)
    sharpen: SharpenParams = field(default_factory=SharpenParams)
    csc: CscParams = field(default_factory=CscParams)
    scale: ScaleParams = field(default_factory=ScaleParams)
    ae: AeParams = field(default_factory=AeParams)


@dataclass
class IspState:
    """Temporal state of one stream: previous 3D-DNR output, smoothed AWB gains, AE settings, frame count."""

    prev_y: np.ndarray | None = None
    prev_uv: np.ndarray | None = None
    awb_gains: tuple[float, float, float] | None = None
    ae: AeState = field(default_factory=AeState)
    frames: int = 0


@dataclass
class IspResult:
    """``main_nv12`` (H*3/2, W) uint8 at the tuning's main size; ``sub_nv12`` (540, 640) for 640x360;
    ``rgb`` display-referred float32 (H, W, 3) in [0, 1] at the main size (when asked); ``stats``; per-stage
    ``timings_ms``; ``taps`` (stage -> array, when asked)."""

    main_nv12: np.ndarray
    sub_nv12: np.ndarray
    rgb: np.ndarray | None
    stats: dict
    timings_ms: dict[str, float]
    taps: dict[str, np.ndarray]


def load_tuning(source) -> PipelineConfig:
    """A tuning YAML path, a mapping, a device name (``sc3336_day``) or None (defaults) -> PipelineConfig."""
    if isinstance(source, str) and not source.endswith((".yaml", ".yml")) and (TUNING_DIR / f"{source}.yaml").is_file():
        source = TUNING_DIR / f"{source}.yaml"
    return load_config(PipelineConfig, source)


def _sample_quads(cfa: np.ndarray, step: int) -> np.ndarray:
    """Every ``step``-th 2x2 quad of an even-sized CFA, reassembled as a smaller CFA with the same pattern."""
    if step == 1:
        return cfa
    s = 2 * step
    qh, qw = len(range(0, cfa.shape[0], s)), len(range(0, cfa.shape[1], s))
    out = np.empty((2 * qh, 2 * qw), dtype=cfa.dtype)
    for dy in range(2):
        for dx in range(2):
            out[dy::2, dx::2] = cfa[dy::s, dx::s][:qh, :qw]
    return out


class _Clock:
    def __init__(self):
        self.ms: dict[str, float] = {}
        self._t = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.ms[name] = self.ms.get(name, 0.0) + (now - self._t) * 1e3
        self._t = now


class Pipeline:
    """Runs the tuning's stages on :class:`RawFrame` s. ``fast=True`` selects the fused kernels.

    One instance reuses work buffers between calls: use one per thread (the results it returns are never reused).
    """

    def __init__(self, config: PipelineConfig | None = None, *, fast: bool = False):
        self.config = config if config is not None else PipelineConfig()
        if not isinstance(self.config, PipelineConfig):
            raise ConfigError(f"Pipeline needs a PipelineConfig, got {type(self.config).__name__}")
        self.fast = fast
        self._cache: dict = {}

    @classmethod
    def from_yaml(cls, path, *, fast: bool = False, overrides: dict | None = None) -> "Pipeline":
        if isinstance(path, str) and (TUNING_DIR / f"{path}.yaml").is_file():
            path = TUNING_DIR / f"{path}.yaml"
        return cls(load_config(PipelineConfig, path, overrides=overrides), fast=fast)

    @staticmethod
    def new_state() -> IspState:
        return IspState()

    # ---------------------------------------------------------------------------------------------------- helpers
    def _gain_map(self, shape, pattern) -> np.ndarray:
        key = ("lsc", shape, pattern)
        if key not in self._cache:
            for k in [k for k in self._cache if isinstance(k, tuple) and k[0] == "lsc"]:
                del self._cache[k]  # one frame size at a time (a dataset renderer feeds many sizes)
            p = self.config.lsc
            self._cache[key] = gain_map(shape, pattern, p) if p.enabled else np.ones(shape, np.float32)
        return self._cache[key]

    def _tone_lut(self, size: int) -> np.ndarray:
        key = ("tone_lut", size)
        if key not in self._cache:
            self._cache[key] = tone_lut(self.config.tone, size) if self.config.tone.enabled else \
                np.linspace(0, 1, size, dtype=np.float32)
        return self._cache[key]

    def _levels(self, frame: RawFrame):
        p = self.config.blc
        black = p.black_level if p.black_level is not None else tuple(frame.black_levels())
        white = p.white_level if p.white_level is not None else float(frame.white_level)
        return black, white

    def _dgain(self, state: IspState | None) -> float:
        g = self.config.gain.gain if self.config.gain.enabled else 1.0
        if state is not None and self.config.ae.enabled:
            g *= state.ae.digital_gain
        return float(g)

    def statistics(self, frame: RawFrame, dgain: float) -> tuple[np.ndarray, ZoneStats]:
        """Pre-WB quad RGB samples (N, 3) of the statistics grid and the per-zone statistics."""
        sp = self.config.stats
        black, white = self._levels(frame)
        h2, w2 = (frame.height // 2) * 2, (frame.width // 2) * 2
        cols, rows = sp.zones
        step = max(1, min(sp.step, (h2 // 2) // rows, (w2 // 2) // cols))  # small frames: denser sampling
        # the statistics block samples every step-th quad (its two rows and columns keep the Bayer phase);
        # the LSC map is sampled at the same sites
        lin = black_level_correct(_sample_quads(frame.data[:h2, :w2], step), frame.pattern, black, white, clip=True)
        q = quad_rgb(lin, frame.pattern, 1)
        key = ("stats_lsc", frame.data.shape, frame.pattern, step)
        gq = self._cache.get(key)
        if gq is None:  # the LSC map at the statistics sites: fixed per frame size, so sampled once
            for k in [k for k in self._cache if isinstance(k, tuple) and k[0] == "stats_lsc"]:
                del self._cache[k]
            gmap = _sample_quads(self._gain_map(frame.data.shape, frame.pattern)[:h2, :w2], step)
            gq = self._cache[key] = quad_rgb(gmap, frame.pattern, 1)
        q = q * gq * np.float32(dgain)
        zones = (min(cols, q.shape[1]), min(rows, q.shape[0]))
        return q, zone_stats_from_quads(q, zones, sp.saturation)

    def _wb_gains(self, frame: RawFrame, q: np.ndarray, state: IspState | None) -> tuple[float, float, float]:
        p = self.config.wb
        if not p.enabled or self.config.mono:
            return (1.0, 1.0, 1.0) if self.config.mono or not p.enabled else p.gains
        if p.mode == "manual":
            return p.gains
        if p.mode == "as_shot":
            return frame.wb_gains if frame.wb_gains is not None else p.gains
        new = awb_gains(q, replace(self.config.awb, saturation=self.config.stats.saturation))
        if state is not None and state.awb_gains is not None:
            s = self.config.awb.speed
            new = tuple(float(math.exp(math.log(o) + s * (math.log(n) - math.log(o))))
                        for o, n in zip(state.awb_gains, new))
        return tuple(float(v) for v in new)

    def ccm_matrix(self, frame: RawFrame) -> np.ndarray:
        p = self.config.ccm
        if self.config.mono:
            return effective_matrix(None, mono=True)
        if not p.enabled:
            return np.eye(3, dtype=np.float32)
        m = p.matrix if p.matrix is not None else frame.ccm
        return effective_matrix(m, p.saturation)

    def sigma_lut(self, frame: RawFrame, wb, ccm, dgain) -> np.ndarray:
        nm = self.config.noise
        g = float(frame.analog_gain)
        tone = self.config.tone if self.config.tone.enabled else ToneParams(gamma="linear")
        return display_noise_lut(nm.shot(g), nm.read(g), wb, ccm, dgain, tone)

    # ---------------------------------------------------------------------------------------------------- run
    def run(self, frame: RawFrame, state: IspState | None = None, taps: bool = False, rgb: bool = False) -> IspResult:
        """Process one frame. ``state``: the stream's :class:`IspState` (updated in place) or None for a still."""
        if not isinstance(frame, RawFrame):
            raise CamlabError(f"Pipeline.run: expected a RawFrame, got {type(frame).__name__}")
        if frame.height < 8 or frame.width < 8:
            raise CamlabError(f"Pipeline.run: frame {frame.width}x{frame.height} is too small (min 8x8)")
        cfg = self.config
        clock = _Clock()
        tap: dict[str, np.ndarray] = {}
        dgain = self._dgain(state)
        q, zones = self.statistics(frame, dgain)
        wb = self._wb_gains(frame, q, state)
        ccm = self.ccm_matrix(frame)
        clock.lap("stats")
        black, white = self._levels(frame)
        sig_lut = self.sigma_lut(frame, wb, ccm, dgain)
        if self.fast:
            from camlab.isp.fast.fused import fast_output, run_fast

            y_nr, uv = run_fast(self, frame, black, white, dgain, wb, ccm, sig_lut, state, clock)
            main, sub, streams = fast_output(self, y_nr, uv, sig_lut, rgb or taps, clock)
        else:
            y_nr, uv = self._run_reference(frame, black, white, dgain, wb, ccm, sig_lut, state, clock,
                                           tap if taps else None)
            y_s = sharpen_luma(y_nr, sig_lut, cfg.sharpen) if cfg.sharpen.enabled else y_nr
            clock.lap("sharpen")
            if taps:
                tap["sharpen_y"] = y_s
            streams = scale_streams(y_s, uv, cfg.scale, y_sub=y_nr)
            clock.lap("scale")
            main = pack_nv12(*streams["main"], cfg.csc.range)
            sub = pack_nv12(*streams["sub"], cfg.csc.range)
        clock.lap("nv12")
        out_rgb = planes_to_rgb(*streams["main"], cfg.csc.matrix) if rgb else None
        if taps:
            tap["main_y"] = np.array(streams["main"][0])  # copies: the fast path reuses its buffers
            if "sub" in streams:
                tap["sub_y"] = np.array(streams["sub"][0])
        mean_luma = float(np.mean(q @ np.array([0.2126, 0.7152, 0.0722], np.float32))) if q.size else 0.0
        stats = {"awb_gains": tuple(float(v) for v in wb), "mean_luma": mean_luma, "zones": zones,
                 "analog_gain": float(frame.analog_gain), "digital_gain": dgain,
                 "exposure_s": frame.exposure_s}
        exposure = frame.exposure_s if frame.exposure_s else (state.ae.exposure_s if state else None)
        if exposure:
            # exposure-normalised brightness: the lux proxy the day/night controller uses
            stats["brightness"] = mean_luma / (exposure * float(frame.analog_gain) * dgain)
        if state is not None:
            if cfg.ae.enabled:
                cur = replace(state.ae, exposure_s=exposure or state.ae.exposure_s,
                              analog_gain=float(frame.analog_gain))
                state.ae = ae_update(cur, mean_luma, cfg.ae)
            state.awb_gains = tuple(float(v) for v in wb)
            state.frames += 1
            stats["ae"] = {"exposure_s": state.ae.exposure_s, "analog_gain": state.ae.analog_gain,
                           "digital_gain": state.ae.digital_gain, "converged": state.ae.converged}
        clock.lap("3a")
        return IspResult(main_nv12=main, sub_nv12=sub, rgb=out_rgb, stats=stats, timings_ms=clock.ms, taps=tap)

    def _run_reference(self, frame, black, white, dgain, wb, ccm, sig_lut, state, clock, tap):
        cfg = self.config
        pat = frame.pattern
        cfa = black_level_correct(frame.data, pat, black, white, clip=cfg.blc.clip)
        clock.lap("blc")
        if tap is not None:
            tap["blc"] = cfa
        if cfg.dpc.enabled:
            cfa, _bad = correct_defects(cfa, cfg.dpc)
        clock.lap("dpc")
        if tap is not None:
            tap["dpc"] = cfa
        if cfg.lsc.enabled:
            cfa = lens_shading_correct(cfa, self._gain_map(cfa.shape, pat))
        clock.lap("lsc")
        if tap is not None:
            tap["lsc"] = cfa
        cfa = digital_gain(cfa, dgain)
        clock.lap("gain")
        cfa = white_balance_cfa(cfa, pat, wb, clip=True)
        clock.lap("wb")
        if tap is not None:
            tap["wb"] = cfa
        rgb = demosaic(cfa, pat, cfg.demosaic)
        clock.lap("demosaic")
        if tap is not None:
            tap["demosaic"] = rgb
        rgb = apply_ccm(rgb, ccm, clip=True)
        clock.lap("ccm")
        if tap is not None:
            tap["ccm"] = rgb
        rgb = tone_map(rgb, cfg.tone) if cfg.tone.enabled else rgb
        clock.lap("tone")
        if tap is not None:
            tap["tone"] = rgb
        h2, w2 = (rgb.shape[0] // 2) * 2, (rgb.shape[1] // 2) * 2
        yuv = rgb_to_yuv(rgb[:h2, :w2], cfg.csc.matrix)
        y, uv = yuv[..., 0].copy(), subsample_420(yuv[..., 1:])
        clock.lap("csc")
        if cfg.nr2d.enabled:
            y_half = subsample_420(y)
            y = denoise_luma(y, sig_lut, cfg.nr2d)
            uv = denoise_chroma(uv, y_half, sig_lut, cfg.nr2d)
        clock.lap("nr2d")
        if tap is not None:
            tap["nr2d_y"], tap["nr2d_uv"] = y, uv
        if cfg.nr3d.enabled and state is not None:
            y, uv, _a = temporal_denoise(y, uv, state.prev_y, state.prev_uv, sig_lut, cfg.nr3d)
            state.prev_y, state.prev_uv = y, uv
        clock.lap("nr3d")
        if cfg.mono:
            uv = np.zeros_like(uv)
        return y, uv


def at_frame_size(cfg: PipelineConfig, width: int, height: int) -> PipelineConfig:
    """The tuning with its main stream at a frame's own size (evened for 4:2:0), stretched: how a still from a
    user's raw is developed (``camlab isp run`` without ``--scale-to-main``)."""
    w, h = (int(width) // 2) * 2, (int(height) // 2) * 2
    return replace(cfg, scale=replace(cfg.scale, main=(w, h), fit="stretch"))


def run_file(path, config=None, **read_kwargs) -> IspResult:
    """Read a raw file with the sensor readers and run the pipeline on it (a still: no temporal state)."""
    from camlab.sensor.raw_io import read_raw

    frame = read_raw(path, **read_kwargs)
    cfg = config if isinstance(config, PipelineConfig) else load_tuning(config)
    return Pipeline(cfg).run(frame, rgb=True)


__all__ = ["Pipeline", "PipelineConfig", "IspResult", "IspState", "StatsParams", "load_tuning", "at_frame_size",
           "run_file",
           "cfa_tile", "rgb_tile", "tile_to_full"]
