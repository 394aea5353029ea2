"""Camera NPU chip profiles (rv1106, ssc337de, ssc377, t40xp) as typed YAML in ``camlab/deploy/chips/``.

Each profile states the NPU's INT8 peak, the memory/flash budgets for AI, the op set and quantization rules of the
vendor toolchain and the basis of its latency estimate (RKNN-Toolkit2 2.x user guide for rv1106; vendor datasheets
for the others). Loaded with :func:`camlab.config.load_config` (unknown keys rejected).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from camlab.config import load_config
from camlab.errors import ConfigError

CHIPS_DIR = Path(__file__).with_name("chips")

# Ops no camera NPU toolchain here accepts in the deployed graph (dynamic shapes, control flow, decode, DSP).
BANNED_OPS = ("Shape", "NonZero", "TopK", "NonMaxSuppression", "Loop", "If", "Scan", "Range", "ScatterND",
              "ScatterElements", "Expand", "Where", "Cast", "CastLike", "Einsum", "GridSample", "STFT", "DFT",
              "MelWeightMatrix", "ConstantOfShape", "Size", "RoiAlign", "Unique")
# Operator-oriented (QOperator) quantized ops: a QDQ bundle must not contain them.
QOPERATOR_OPS = ("QLinearConv", "QLinearMatMul", "QLinearAdd", "QLinearMul", "QLinearSigmoid", "QLinearLeakyRelu",
                 "QLinearConcat", "QLinearAveragePool", "QLinearGlobalAveragePool", "QLinearSoftmax", "ConvInteger",
                 "MatMulInteger", "DynamicQuantizeLinear", "QGemm", "QAttention", "DynamicQuantizeMatMul")


@dataclass(frozen=True)
class LatencyModel:
    """Per-layer roofline (see camlab.deploy.cost.layer_cycles): cycles = max(compute, DDR traffic)."""

    basis: str
    cycles_scale: float = 2.0
    conv_efficiency: float = 1.0
    macs_per_input_channel: float = 4.0
    max_taps: int = 4
    depthwise_macs_per_cycle: float = 32.0
    channel_pad: int = 16
    elementwise_macs_per_cycle: float = 1024.0
    ddr_bytes_per_cycle: float = 6.0
    overhead_ms: float = 0.0

    def __post_init__(self):
        for name in ("cycles_scale", "conv_efficiency", "macs_per_input_channel", "max_taps",
                     "depthwise_macs_per_cycle", "channel_pad", "elementwise_macs_per_cycle",
                     "ddr_bytes_per_cycle"):
            if getattr(self, name) <= 0:
                raise ValueError(f"latency.{name} must be > 0")


@dataclass(frozen=True)
class ChipProfile:
    """What one camera SoC's NPU and firmware layout allow."""

    name: str
    vendor: str
    description: str
    npu_tops_int8: float
    npu_clock_hz: float
    macs_per_cycle: float
    ai_ram_bytes: int
    weights_ram_bytes: int
    flash_partition_bytes: int
    latency: LatencyModel
    opset_min: int = 13
    opset_max: int = 19
    ir_max: int = 10
    input_multiple: int = 32
    activation_dtype: Literal["int8", "uint8", "any"] = "int8"
    require_outputs_quantized: bool = True
    depthwise_kernels: tuple[int, ...] = (3,)
    channel_multiple: int = 16
    extra_banned_ops: tuple[str, ...] = ()
    allowed_ops: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self):
        if self.opset_min > self.opset_max:
            raise ValueError(f"opset_min {self.opset_min} > opset_max {self.opset_max}")
        for name in ("ai_ram_bytes", "weights_ram_bytes", "flash_partition_bytes", "channel_multiple",
                     "input_multiple"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")

    @property
    def banned_ops(self) -> tuple[str, ...]:
        return BANNED_OPS + tuple(self.extra_banned_ops)


def available_chips() -> list[str]:
    """Names of the packaged chip profiles."""
    return sorted(p.stem for p in CHIPS_DIR.glob("*.yaml"))


def load_chip(name_or_path: str | Path) -> ChipProfile:
    """A chip profile by name (``rv1106``) or by YAML path; ConfigError names the choices."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = CHIPS_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            raise ConfigError(f"unknown chip '{name_or_path}'; expected one of: {', '.join(available_chips())}")
    chip = load_config(ChipProfile, path)
    if path.parent == CHIPS_DIR and chip.name != path.stem:
        raise ConfigError(f"{path}: field 'name' is '{chip.name}', expected '{path.stem}' (the file name)")
    return chip
