"""Baby-cry detector: a small depthwise-separable CNN over one log-mel window, one raw logit out (NPU-friendly).

Architecture after Howard et al., "MobileNets: Efficient Convolutional Neural Networks for Mobile Vision
Applications", arXiv:1704.04861 (depthwise + pointwise convolutions), sized like the keyword-spotting CNNs of
Zhang et al., "Hello Edge: Keyword Spotting on Microcontrollers", arXiv:1711.07128 (tens of kilobytes, a few M MACs).
Features are computed outside the graph (``camlab/contract/audio_features.py``); the graph holds only Conv, ReLU,
MaxPool, GlobalAveragePool, Flatten and Gemm (BatchNorm is folded into the convolutions by :func:`load_checkpoint`),
and ends at a raw logit (no Sigmoid): P(cry) = sigmoid(logit) is applied by the decoder on the CPU.

Teacher gate (``teacher_gate`` > 0): the distillation head, trained to give YAMNet's "Baby cry" probability
(Hinton et al., arXiv:1503.02531; :mod:`camlab.train.cry`), becomes a second opinion inside the graph: where its
logit is below logit(gate), the cry logit loses ``GATE_DROP`` x (the shortfall, clipped to [0, 1]): a full veto one
logit below the gate, none above it. Deployed cost: one Gemm row, Sub, Clip, Mul and Add on a single value.

Teacher blend (``teacher_blend`` b > 0): the deployed logit is (1 - b) x the cry head + b x the distillation head's
"Baby cry" row, a logit-averaging ensemble of the label-trained and the teacher-trained head (Hinton et al., ibid.;
Dietterich, "Ensemble Methods in Machine Learning", MCS 2000). Both are linear in the same embedding, so the blend is
one Gemm row with blended weights: the deployed graph, its parameter count and its MACs are those of b = 0.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from camlab.config import load_config, to_dict
from camlab.contract.audio_features import FeatureConfig

KIND = "cry"
MAX_MACS = 5_000_000
MAX_PARAMS = 60_000
GATE_DROP = 8.0   # logits a vetoed window loses: P 0.99 becomes 0.03


@dataclass(frozen=True)
class DecodeConfig:
    """How window logits become alarms on the device (the manifest ``decode`` block)."""

    threshold: float = 0.5      # P(cry) per window
    k: int = 2                  # alarm when k of the last n windows are >= threshold
    n: int = 3
    refractory_s: float = 10.0  # no new alarm for this long after one

    def __post_init__(self):
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {self.threshold}")
        if not 1 <= self.k <= self.n:
            raise ValueError(f"need 1 <= k <= n, got k={self.k} n={self.n}")
        if self.refractory_s < 0:
            raise ValueError("refractory_s must be >= 0")


@dataclass(frozen=True)
class CryModelConfig:
    """Rebuilds the network (stored in the checkpoint's ``model_config``)."""

    stem_channels: int = 16
    stem_stride: int = 2                        # the 3x3 stem halves both axes (cheap on CPU and NPU)
    channels: tuple[int, ...] = (32, 64, 128)  # one depthwise-separable block each, 2x2 max-pool between blocks
    dropout: float = 0.1
    aux_outputs: int = 0                        # training-only head for the teacher's class scores (0 = none)
    teacher_gate: float = 0.0                   # > 0: veto windows whose teacher-head P(cry) is below it (deployed)
    teacher_blend: float = 0.0                  # > 0: logit = (1 - b) cry head + b teacher head (one blended row)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)

    def __post_init__(self):
        if self.stem_channels < 1 or not self.channels or any(c < 1 for c in self.channels):
            raise ValueError("stem_channels and channels must be positive")
        from camlab.models.blocks import check_channels
        check_channels(self.stem_channels, *self.channels)   # the chip validators reject other widths
        if self.stem_stride not in (1, 2):
            raise ValueError(f"stem_stride must be 1 or 2, got {self.stem_stride}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.aux_outputs < 0:
            raise ValueError(f"aux_outputs must be >= 0, got {self.aux_outputs}")
        if not 0.0 <= self.teacher_gate < 1.0:
            raise ValueError(f"teacher_gate must be in [0, 1), got {self.teacher_gate}")
        if self.teacher_gate and not self.aux_outputs:
            raise ValueError("teacher_gate > 0 needs the distillation head (aux_outputs > 0)")
        if not 0.0 <= self.teacher_blend <= 1.0:
            raise ValueError(f"teacher_blend must be in [0, 1], got {self.teacher_blend}")
        if self.teacher_blend and not self.aux_outputs:
            raise ValueError("teacher_blend > 0 needs the distillation head (aux_outputs > 0)")


def model_config_from_dict(d: dict | CryModelConfig) -> CryModelConfig:
    return d if isinstance(d, CryModelConfig) else load_config(CryModelConfig, dict(d))


def build_model(cfg: CryModelConfig | dict):
    """The torch module for ``cfg``: input ``[N, 1, n_bins, n_frames]`` float32 -> logits ``[N, 1]``."""
    import torch
    from torch import nn

    cfg = model_config_from_dict(cfg)

    def conv_bn(cin, cout, k, groups=1, stride=1):
        return [nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, groups=groups, bias=False),
                nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

    layers: list = conv_bn(1, cfg.stem_channels, 3, stride=cfg.stem_stride)
    cin = cfg.stem_channels
    for i, cout in enumerate(cfg.channels):
        if i > 0:
            layers += [nn.MaxPool2d(2)]
        layers += conv_bn(cin, cin, 3, groups=cin)      # depthwise 3x3
        layers += conv_bn(cin, cout, 1)                 # pointwise 1x1
        cin = cout

    class CryNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(*layers)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.drop = nn.Dropout(cfg.dropout)
            self.head = nn.Linear(cin, 1)
            if cfg.aux_outputs:   # distillation head (Hinton et al., arXiv:1503.02531): never in forward()
                self.aux = nn.Linear(cin, cfg.aux_outputs)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.drop(self.pool(self.features(x)).flatten(1))
            if self.model_config.teacher_blend > 0:
                z = nn.functional.linear(x, *blended_head(self))
            else:
                z = self.head(x)
            gate = self.model_config.teacher_gate
            if gate > 0:   # read at call time: training picks the gate after the weights are final
                teacher = nn.functional.linear(x, self.aux.weight[:1], self.aux.bias[:1])
                shortfall = torch.clamp(math.log(gate / (1.0 - gate)) - teacher, 0.0, 1.0)
                z = z - GATE_DROP * shortfall
            return z

        def forward_aux(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            """``(cry logits [N, 1], teacher-class logits [N, aux_outputs])`` (training only; the exported graph
            is ``forward``, so the auxiliary head costs the device nothing)."""
            x = self.drop(self.pool(self.features(x)).flatten(1))
            return self.head(x), self.aux(x)

    net = CryNet()
    net.model_config = cfg
    return net


def blended_head(model):
    """(weight [1, C], bias [1]) of the deployed cry logit: the cry head, or with ``teacher_blend`` b > 0 the row
    (1 - b) x cry head + b x the distillation head's "Baby cry" row (read at call time, like the gate)."""
    b = float(model.model_config.teacher_blend)
    if b <= 0:
        return model.head.weight, model.head.bias
    return ((1.0 - b) * model.head.weight + b * model.aux.weight[:1],
            (1.0 - b) * model.head.bias + b * model.aux.bias[:1])


def fold_batchnorm(model):
    """Fold every BatchNorm2d into the preceding Conv2d (eval semantics) and replace it by Identity, in place."""
    import torch
    from torch import nn

    seq = model.features
    mods = list(seq)
    for i in range(1, len(mods)):
        conv, bn = mods[i - 1], mods[i]
        if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
            scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
            w = conv.weight.detach() * scale.reshape(-1, 1, 1, 1)
            b = bn.bias.detach() - bn.running_mean * scale
            if conv.bias is not None:
                b = b + conv.bias.detach() * scale
            new = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                            conv.dilation, conv.groups, bias=True)
            new.weight.data.copy_(w)
            new.bias.data.copy_(b)
            seq[i - 1] = new
            seq[i] = nn.Identity()
    return model


def count_params(model) -> int:
    """Parameters of the deployed graph: the auxiliary head excluded, but for its first row when the teacher gate
    is on (that row is in the graph)."""
    n = int(sum(p.numel() for name, p in model.named_parameters() if not name.startswith("aux.")))
    cfg = getattr(model, "model_config", None)
    if cfg is not None and cfg.teacher_gate > 0:
        n += int(model.aux.weight.shape[1]) + 1
    return n


def count_macs(cfg: CryModelConfig | dict) -> int:
    """Multiply-accumulates of one forward pass (convolutions + Gemm), from the shapes."""
    cfg = model_config_from_dict(cfg)
    _, _, h, w = cfg.features.input_shape
    s = cfg.stem_stride
    h, w = (h - 1) // s + 1, (w - 1) // s + 1
    macs = h * w * cfg.stem_channels * 9
    cin = cfg.stem_channels
    for i, cout in enumerate(cfg.channels):
        if i > 0:
            h, w = h // 2, w // 2
        macs += h * w * cin * 9 + h * w * cin * cout
        cin = cout
    return int(macs + cin * (2 if cfg.teacher_gate > 0 else 1))   # the gate's teacher row is a second Gemm row


def manifest_io(model_config: CryModelConfig | dict) -> dict:
    """The bundle contract for this model: ``inputs``, ``outputs``, ``decode`` and ``features`` (manifest v1)."""
    cfg = model_config_from_dict(model_config)
    fc = cfg.features
    return {
        "inputs": [{
            "name": "features",
            "shape": list(fc.input_shape),
            "layout": "NCHW",
            "dtype": "float32",
            "color_format": "logmel" if fc.kind == "log_mel" else "mfcc",
            "mean": fc.mean,
            "std": fc.std,
            "value_range": [-14.0, 10.0] if fc.kind == "log_mel" else [-600.0, 600.0],
            "resize": {"method": "none"},
            "description": (f"{fc.kind} of one {fc.window_s:g} s window of 16 kHz mono audio in [-1, 1], "
                            f"computed by camlab/contract/audio_features.py from the 'features' block; "
                            f"H = {fc.n_bins} bins (low to high), W = {fc.n_frames} frames"),
        }],
        "outputs": [{"name": "logits", "shape": [1, 1], "dtype": "float32", "role": "logits",
                     "description": "raw cry logit; P(cry) = sigmoid(logit)"}],
        "decode": {
            "classes": ["cry"],
            "activation": "sigmoid",
            "threshold": cfg.decode.threshold,
            "window_s": fc.window_s,
            "hop_s": fc.hop_s,
            "alarm": {"k": cfg.decode.k, "n": cfg.decode.n, "refractory_s": cfg.decode.refractory_s},
        },
        "features": fc.to_manifest(),
    }


def load_checkpoint(path: str | Path):
    """``(model, meta)``: the eval-mode network (BatchNorm folded) and the checkpoint's meta (plus model_config)."""
    from camlab.errors import InputFileError
    from camlab.train.checkpoint import load_checkpoint as _load

    payload = _load(path, expect_kind=KIND)
    try:
        cfg = model_config_from_dict(payload["model_config"])
        model = build_model(cfg)
        model.load_state_dict(payload["state_dict"])
    except Exception as exc:  # ConfigError or torch size mismatch
        raise InputFileError(f"{path}: cry checkpoint does not match the model ({exc})") from None
    model.eval()
    fold_batchnorm(model)
    meta = dict(payload.get("meta") or {})
    meta["model_config"] = to_dict(cfg)
    return model, meta
