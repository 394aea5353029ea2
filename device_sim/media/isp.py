"""ISP adapter: the camera's hardware ISP modelled by camlab.isp (fast path, device tuning), plus its 3A loop.

Raw frame -> ``camlab.isp.pipeline.Pipeline.run`` -> NV12 main (sensor size) + NV12 sub (640x360) and statistics;
the statistics drive auto-exposure (camlab.isp.three_a) and the day/night controller, whose decisions apply to the
*next* frame (the sensor's exposure registers latch at frame start, as on real sensors). Two tunings are loaded:
``sc3336_day.yaml`` and ``sc3336_ir.yaml`` (monochrome IR night mode); the IR-cut state picks one.
Privacy masks are applied here, to the ISP output, so no later consumer (AI, encoder, snapshot) sees the area.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from camlab.errors import ConfigError

TUNING_DIR = Path(__file__).resolve().parents[2] / "camlab" / "isp" / "tuning"


@dataclass
class IspOutput:
    main_nv12: np.ndarray
    sub_nv12: np.ndarray
    stats: object
    timings_ms: dict


def _nbytes(obj, depth: int = 0) -> int:
    """Bytes of the numpy arrays inside a (nested) dict/list/tuple."""
    if isinstance(obj, np.ndarray):
        return int(obj.nbytes)
    if depth > 3:
        return 0
    if isinstance(obj, dict):
        return sum(_nbytes(v, depth + 1) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_nbytes(v, depth + 1) for v in obj)
    return 0


def fast_path_available() -> bool:
    return importlib.util.find_spec("camlab.isp.fast.fused") is not None


def _load_pipeline(path: Path, main_size: tuple[int, int], sub_size: tuple[int, int], fast: bool):
    from camlab.isp.pipeline import Pipeline
    if not path.is_file():
        raise ConfigError(f"{path}: ISP tuning not found")
    return Pipeline.from_yaml(path, fast=fast, overrides={"scale": {"main": list(main_size), "sub": list(sub_size)}})


class IspAdapter:
    """Runs the ISP for one raw frame in day or IR mode and applies privacy masks to both outputs."""

    def __init__(self, day_tuning: Path | None = None, ir_tuning: Path | None = None,
                 main_size: tuple[int, int] = (1920, 1080), sub_size: tuple[int, int] = (640, 360),
                 privacy_polygons: list | None = None):
        self.main_size, self.sub_size = main_size, sub_size
        self.fast = fast_path_available()
        self.day = _load_pipeline(Path(day_tuning or TUNING_DIR / "sc3336_day.yaml"), main_size, sub_size, self.fast)
        self.ir = _load_pipeline(Path(ir_tuning or TUNING_DIR / "sc3336_ir.yaml"), main_size, sub_size, self.fast)
        self._state = {"day": self.day.new_state(), "ir": self.ir.new_state()}
        from device_sim.ai.zones import nv12_mask
        polys = privacy_polygons or []
        self.main_mask = nv12_mask(polys, *main_size) if polys else None
        self.sub_mask = nv12_mask(polys, *sub_size) if polys else None

    def run(self, raw, ir_mode: bool) -> IspOutput:
        key = "ir" if ir_mode else "day"
        pipe = self.ir if ir_mode else self.day
        res = pipe.run(raw, state=self._state[key])
        main, sub = res.main_nv12, res.sub_nv12
        if main.shape != (self.main_size[1] * 3 // 2, self.main_size[0]):
            raise ConfigError(f"ISP main output {main.shape} does not match the main stream "
                              f"{self.main_size[0]}x{self.main_size[1]}")
        from device_sim.ai.zones import apply_nv12_mask
        if self.main_mask is not None:
            apply_nv12_mask(main, self.main_mask)
            apply_nv12_mask(sub, self.sub_mask)
        return IspOutput(main, sub, res.stats, dict(getattr(res, "timings_ms", {}) or {}))

    def warm_up(self, raw) -> None:
        """Boot: run each tuning on a throwaway state (loads/compiles the fast path's JIT kernels).

        Two frames each: the second takes the temporal (3D-DNR) path, whose kernel specialisation differs from the
        first frame's; without it ~1 s of JIT loading landed inside the first seconds of the run."""
        for pipe in (self.day, self.ir):
            st = pipe.new_state()
            for _ in range(2):
                pipe.run(raw, state=st)

    def carry_ae(self, from_ir: bool, to_ir: bool) -> None:
        """On a day/night switch the new mode's stream starts from the current exposure (then re-converges)."""
        src = self._state["ir" if from_ir else "day"]
        dst = self._state["ir" if to_ir else "day"]
        dst.ae = replace(src.ae, converged=False)
        dst.prev_y = dst.prev_uv = None

    def buffer_bytes(self, raw_bytes: int) -> int:
        """ISP working set per frame: raw in, NV12 main + sub out (double-buffered, as the VI/VPSS pools)."""
        w, h = self.main_size
        sw, sh = self.sub_size
        return 2 * (raw_bytes + w * h * 3 // 2 + sw * sh * 3 // 2)
