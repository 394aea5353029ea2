"""CamDet: a small anchor-free person / pet / vehicle detector for camera NPUs (raw head outputs, FCOS-style).

Tian, Shen, Chen, He, "FCOS: Fully Convolutional One-Stage Object Detection", ICCV 2019 (per-pixel ltrb
regression, centre sampling); Lin et al., "Feature Pyramid Networks", CVPR 2017 (top-down neck with nearest
upsampling). Backbone: a Conv3x3 stem then MobileNet-style depthwise-separable stages (3x3 depthwise only, ReLU,
channels multiples of 16), or with ``backbone: mobilenetv2`` the pretrained MobileNetV2 trunk of
:mod:`camlab.models.pretrained` (Sandler et al., CVPR 2018; ReLU6, 3x3 depthwise, widened to 16-channel
multiples), or with ``mobilenetv2_pvb`` Intel's surveillance-trained MobileNetV2 trunk
(:mod:`camlab.models.pretrained_ir`). Per stride 8/16/32 the graph ends in ``box_s{s}`` (1, 4, H, W) raw log-distances and
``cls_s{s}`` (1, C, H, W) raw logits; sigmoid, exp, decode and NMS run outside the graph in
:mod:`camlab.contract.detection`, driven by :func:`manifest_io`'s ``decode`` block. Input: a static NCHW RGB
frame letterboxed from the 640x360 substream (e.g. 320x192 ... 640x352), scaled to [0, 1].
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from camlab.contract.detection import DECODE_TYPE
from camlab.data.classes import CLASSES
from camlab.models.blocks import ConvBNReLU, DWSeparable, check_channels

PARAM_BUDGET = 3_500_000      # raised from 1.5 M for a pretrained MobileNetV2 trunk (issue 19)
MAC_BUDGET = 800_000_000


@dataclass(frozen=True)
class DetectorConfig:
    """Architecture and I/O of CamDet (stored in every checkpoint as ``model_config``)."""
    input_width: int = 320
    input_height: int = 192
    classes: tuple[str, ...] = CLASSES
    backbone: str = "camdet"   # "camdet" (from scratch), "mobilenetv2" / "mobilenetv2_pvb" (pretrained trunks)
    stem: int = 16
    widths: tuple[int, ...] = (32, 64, 128, 256)    # stages at strides 4, 8, 16, 32
    depths: tuple[int, ...] = (1, 2, 3, 2)
    neck: int = 64
    score_threshold: float = 0.3
    class_score_thresholds: tuple[float, ...] = ()   # per class, picked on the training split after training
    nms_iou: float = 0.5
    max_detections: int = 100
    #: image-level context inside the graph (:class:`PresenceGate`): a per-class logit cut from the pooled
    #: stride-16/32 features, subtracted from every cell's class logit; fitted after training
    #: (camlab.train.presence_gate)
    presence_gate: bool = False

    def __post_init__(self):
        if self.input_width % 32 or self.input_height % 32:
            raise ValueError(f"input {self.input_width}x{self.input_height} must be multiples of 32 (stride 32)")
        if not 0 < self.input_width <= 640 or not 0 < self.input_height <= 368:
            raise ValueError(f"input {self.input_width}x{self.input_height} exceeds the 640x360 substream")
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone {self.backbone!r} unknown; expected one of {list(BACKBONES)}")
        if len(self.widths) != 4 or len(self.depths) != 4:
            raise ValueError("widths and depths need 4 entries (strides 4, 8, 16, 32)")
        check_channels(self.stem, *self.widths, self.neck)
        if not self.classes:
            raise ValueError("classes must not be empty")
        if self.class_score_thresholds and len(self.class_score_thresholds) != len(self.classes):
            raise ValueError(f"class_score_thresholds has {len(self.class_score_thresholds)} values for "
                             f"{len(self.classes)} classes")
        if any(not 0.0 < t < 1.0 for t in (self.score_threshold, *self.class_score_thresholds)):
            raise ValueError("score thresholds must lie in (0, 1)")

    @property
    def strides(self) -> tuple[int, ...]:
        return (8, 16, 32)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["classes"] = list(self.classes)
        d["widths"] = list(self.widths)
        d["depths"] = list(self.depths)
        d["class_score_thresholds"] = list(self.class_score_thresholds)
        return d

    def thresholds(self) -> dict[str, float]:
        """The presence threshold of each class (calibrated ones when present, else ``score_threshold``)."""
        vals = self.class_score_thresholds or (self.score_threshold,) * len(self.classes)
        return {c: float(t) for c, t in zip(self.classes, vals)}

    @classmethod
    def from_dict(cls, d: dict) -> "DetectorConfig":
        from camlab.config import load_config
        return load_config(cls, dict(d))


BACKBONES = ("camdet", "mobilenetv2", "mobilenetv2_pvb")
#: pretrained MobileNetV2 trunks: MediaPipe's SSD (TFLite) and Intel's surveillance SSD (OpenVINO IR, whose
#: first block keeps its expansion conv)
MOBILENETV2_BACKBONES = ("mobilenetv2", "mobilenetv2_pvb")


class CamDet(nn.Module):
    def __init__(self, config: DetectorConfig | dict | None = None):
        super().__init__()
        if config is None:
            config = DetectorConfig()
        elif isinstance(config, dict):
            config = DetectorConfig.from_dict(config)
        self.config = config
        c = config
        if c.backbone in MOBILENETV2_BACKBONES:
            from camlab.models.pretrained import MobileNetV2Backbone

            self.backbone = MobileNetV2Backbone(expand_first=c.backbone == "mobilenetv2_pvb")
            feat_channels = self.backbone.out_channels
        else:
            self.stem = ConvBNReLU(3, c.stem, 3, 2)
            stages = []
            cin = c.stem
            for w, d in zip(c.widths, c.depths):
                blocks = [DWSeparable(cin, w, stride=2)] + [DWSeparable(w, w) for _ in range(d - 1)]
                stages.append(nn.Sequential(*blocks))
                cin = w
            self.stages = nn.ModuleList(stages)
            feat_channels = tuple(c.widths[1:])
        n = c.neck
        self.lateral = nn.ModuleList([ConvBNReLU(w, n, 1) for w in feat_channels])
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.smooth = nn.ModuleList([DWSeparable(n, n) for _ in range(3)])
        self.heads = nn.ModuleList([nn.Sequential(DWSeparable(n, n), DWSeparable(n, n)) for _ in range(3)])
        self.box_out = nn.ModuleList([nn.Conv2d(n, 4, 1) for _ in range(3)])
        self.cls_out = nn.ModuleList([nn.Conv2d(n, len(c.classes), 1) for _ in range(3)])
        self.gate = PresenceGate(feat_channels[1], feat_channels[2], len(c.classes)) if c.presence_gate else None
        self._init_heads()

    def _init_heads(self) -> None:
        prior = 0.01
        for conv in self.cls_out:
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.constant_(conv.bias, -math.log((1 - prior) / prior))
        for conv in self.box_out:
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.constant_(conv.bias, math.log(2.0))

    @property
    def output_names(self) -> list[str]:
        return [n for s in self.config.strides for n in (f"box_s{s}", f"cls_s{s}")]

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The stride 8, 16 and 32 backbone features."""
        if self.config.backbone in MOBILENETV2_BACKBONES:
            return self.backbone(x)
        x = self.stem(x)
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats[1:]

    def forward_parts(self, x: torch.Tensor) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, torch.Tensor]]:
        """(the raw outputs without the presence gate, the stride-16 and stride-32 trunk features it reads)."""
        c3, c4, c5 = self.features(x)
        p5 = self.smooth[2](self.lateral[2](c5))
        p4 = self.smooth[1](self.lateral[1](c4) + self.up(p5))
        p3 = self.smooth[0](self.lateral[0](c3) + self.up(p4))
        outs: list[torch.Tensor] = []
        for i, p in enumerate((p3, p4, p5)):
            h = self.heads[i](p)
            outs += [self.box_out[i](h), self.cls_out[i](h)]
        return tuple(outs), (c4, c5)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(B, 3, H, W) in [0, 1] -> (box_s8, cls_s8, box_s16, cls_s16, box_s32, cls_s32) raw."""
        outs, (c4, c5) = self.forward_parts(x)
        if self.gate is None:
            return outs
        h = self.gate(c4, c5)                 # (B, C, 1, 1) >= 0: one logit cut per class, broadcast over the cells
        return tuple(o - h if k % 2 else o for k, o in enumerate(outs))


class PresenceGate(nn.Module):
    """Image-level class context (Torralba, "Contextual priming for object detection", IJCV 2003): global average
    and max pools of the stride-16 and stride-32 features, a linear map to one value per class and a ReLU give a
    cut ``h >= 0`` per class, subtracted from every cell's class logit of that class. It only suppresses: in an
    image the gate reads as free of the class every box of it scores lower, and nothing is ever lifted, so
    background cells never rise into detections (an additive gate that could also lift them collapsed box AP50 on
    the left-out source from 0.47 to 0.06). The decode stays the contract's (sigmoid of the class map), so a camera
    that thresholds the highest box score gets the gated score.

    The linear map is four 1x1 convs, one per pooled vector, summed: the same function as one conv on their
    concatenation, but RKNN-Toolkit2 2.5.0 cannot build a Concat of pooled vectors for rv1106 (it turns the pools into
    float16 convs the NPU lacks), while this form builds with no CPU fallback. The convs hold the *negated* fitted
    offset (``h = relu(-g)``, so the cut is ``min(g, 0)``); zero weights = no gate; the weights come from a
    logistic fit after training (:mod:`camlab.train.presence_gate`)."""

    def __init__(self, c4: int, c5: int, n_classes: int):
        super().__init__()
        self.avg = nn.AdaptiveAvgPool2d(1)
        self.max = nn.AdaptiveMaxPool2d(1)
        self.widths = (c4, c4, c5, c5)        # pooled vectors: avg(c4), max(c4), avg(c5), max(c5)
        self.fc = nn.ModuleList([nn.Conv2d(w, n_classes, 1, bias=i == 0) for i, w in enumerate(self.widths)])
        for conv in self.fc:
            nn.init.zeros_(conv.weight)
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)
            for p in conv.parameters():
                p.requires_grad_(False)      # fitted after training, never by the detector's loss

    def pools(self, c4: torch.Tensor, c5: torch.Tensor) -> list[torch.Tensor]:
        return [self.avg(c4), self.max(c4), self.avg(c5), self.max(c5)]

    def pooled(self, c4: torch.Tensor, c5: torch.Tensor) -> torch.Tensor:
        """(B, D, 1, 1): the fit's input, the pooled vectors concatenated in the order of ``fc``."""
        return torch.cat(self.pools(c4, c5), 1)

    def forward(self, c4: torch.Tensor, c5: torch.Tensor) -> torch.Tensor:
        pools = self.pools(c4, c5)
        g = self.fc[0](pools[0])
        for conv, v in zip(self.fc[1:], pools[1:]):
            g = g + conv(v)
        return torch.relu(g)


def build_model(config: DetectorConfig | dict | None = None) -> CamDet:
    return CamDet(config)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def count_macs(model: CamDet) -> int:
    """Multiply-accumulates of one forward pass at the configured input (Conv2d only; BN/ReLU/Add excluded)."""
    total = 0

    def hook(mod: nn.Conv2d, _inp, out):
        nonlocal total
        k = mod.kernel_size[0] * mod.kernel_size[1] * (mod.in_channels // mod.groups)
        total += out.numel() * k

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    was_training = model.training
    model.eval()
    try:
        model(torch.zeros(1, 3, model.config.input_height, model.config.input_width))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return total


def manifest_io(model_config: dict | DetectorConfig) -> dict:
    """The bundle manifest's ``inputs``/``outputs``/``decode`` blocks for this model (copied by the exporter)."""
    cfg = model_config if isinstance(model_config, DetectorConfig) else DetectorConfig.from_dict(model_config)
    w, h = cfg.input_width, cfg.input_height
    outputs, levels = [], []
    for s in cfg.strides:
        outputs.append({"name": f"box_s{s}", "shape": [1, 4, h // s, w // s], "dtype": "float32",
                        "role": "box_ltrb_log", "stride": s})
        outputs.append({"name": f"cls_s{s}", "shape": [1, len(cfg.classes), h // s, w // s], "dtype": "float32",
                        "role": "class_logits", "stride": s})
        levels.append({"stride": s, "box": f"box_s{s}", "cls": f"cls_s{s}"})
    return {
        "inputs": [{"name": "images", "shape": [1, 3, h, w], "layout": "NCHW", "dtype": "float32",
                    "color_format": "RGB", "mean": [0.0, 0.0, 0.0], "std": [255.0, 255.0, 255.0],
                    "value_range": [0, 255],
                    "resize": {"method": "letterbox", "interpolation": "bilinear", "pad_value": 114.0,
                               "align": "center"},
                    "description": "RGB from the 640x360 NV12 substream, letterboxed (camlab.contract.detection)"}],
        "outputs": outputs,
        "decode": {"box_encoding": DECODE_TYPE, "strides": list(cfg.strides), "classes": list(cfg.classes),
                   "levels": levels, "score_activation": "sigmoid",
                   "box_formula": "xyxy = cell centre ((j+0.5)s, (i+0.5)s) -/+ exp(clamp(raw, -8, 8)) * s",
                   "score_thresholds": cfg.thresholds(),
                   "nms_iou": cfg.nms_iou, "max_detections": cfg.max_detections},
    }


def load_checkpoint(path: str | Path) -> tuple[CamDet, dict]:
    """A detector checkpoint -> (CamDet in eval mode with weights loaded, meta dict)."""
    from camlab.errors import InputFileError
    from camlab.train.checkpoint import load_checkpoint as _load

    payload = _load(path, expect_kind="detector")
    try:
        model = CamDet(DetectorConfig.from_dict(payload["model_config"]))
        model.load_state_dict(payload["state_dict"])
    except Exception as exc:
        raise InputFileError(f"{path}: detector checkpoint does not match CamDet ({exc})") from None
    model.eval()
    meta = dict(payload.get("meta", {}))
    meta.setdefault("model_config", payload["model_config"])
    return model, meta
