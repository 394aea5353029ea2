"""Pretrained detector weights brought in offline: MediaPipe's SSD-MobileNetV2 (Open Images V4) read from its TFLite.

Used twice: (1) its MobileNetV2 trunk is CamDet's pretrained backbone (:class:`MobileNetV2Backbone`, weights
loaded by :func:`load_mobilenetv2_weights`); (2) the whole SSD is the teacher / anchor detector
(:class:`SsdTeacher`), run in torch by a small graph executor (:class:`TfliteGraph`) that replays the TFLite
operators with TF "SAME" padding, so its outputs match the TFLite runtime (``tests/models/test_pretrained.py``
checks every conv layer against ai-edge-litert). The file comes from ``scripts/fetch_pretrained.sh`` (npm, sha256
checked; provenance and licence in ``models/pretrained/SOURCE.md``); nothing is downloaded at run time.

Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018; Liu et al., "SSD: Single
Shot MultiBox Detector", ECCV 2016 (anchors, box coder); Huang et al., "Speed/accuracy trade-offs for modern
convolutional object detectors", CVPR 2017 (the TF Object Detection API anchor generator and box coder with
scales 10/10/5/5 that the MediaPipe model uses); TFLite flatbuffer schema (tensorflow/lite/schema/schema.fbs).
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from camlab import settings
from camlab.errors import InputFileError

SSD_TFLITE = "models/pretrained/ssd_mobilenetv2_oidv4_fp16.tflite"
SSD_SHA256 = "d0a5255bf8c4f5a0bc4240741a76c41d5e939f7655078f945f50ab53a9375da6"
SSD_INPUT = 300
#: Open Images V4 label map shipped with the model (index 0 is the background class "???")
SSD_LABELS: tuple[str, ...] = (
    "???", "Bicycle", "Boot", "Laptop", "Person", "Chair", "Cattle", "Desk", "Cat", "Computer mouse",
    "Computer monitor", "Box", "Mug", "Coffee cup", "Stationary bicycle", "Table", "Bottle", "High heels",
    "Vehicle", "Footwear", "Dog", "Book", "Camera", "Car")
#: SSD label -> camlab class index (person 0, pet 1, vehicle 2)
SSD_TO_CAMLAB: dict[str, int] = {"Person": 0, "Cat": 1, "Dog": 1, "Car": 2, "Vehicle": 2, "Bicycle": 2}
FETCH_HINT = "run `make venv` (scripts/fetch_pretrained.sh fetches it from npm)"


def pretrained_path(path: str | Path | None = None) -> Path:
    p = Path(path) if path else Path(SSD_TFLITE)
    return p if p.is_absolute() else settings.project_root() / p


def check_pretrained_file(path: str | Path | None = None, sha256: str = SSD_SHA256) -> Path:
    """The TFLite path, after checking it exists and has the recorded sha256 (one-line errors otherwise)."""
    p = pretrained_path(path)
    if not p.is_file():
        raise InputFileError(f"{p}: pretrained detector file missing; {FETCH_HINT}")
    digest = hashlib.sha256(p.read_bytes()).hexdigest()
    if digest != sha256:
        raise InputFileError(f"{p}: sha256 {digest[:16]}... does not match the recorded {sha256[:16]}... "
                             f"(models/pretrained/SOURCE.md); {FETCH_HINT}")
    return p


# --------------------------------------------------------------------------------------------------------- TFLite
@dataclass
class TfliteOp:
    kind: str                      # CONV_2D, DEPTHWISE_CONV_2D, ADD, RESHAPE, CONCATENATION
    inputs: list[int]
    outputs: list[int]
    stride: int = 1
    padding: str = "SAME"
    activation: str = "NONE"       # NONE, RELU, RELU6
    axis: int = 0


@dataclass
class TfliteModel:
    ops: list[TfliteOp]
    names: dict[int, str]
    shapes: dict[int, tuple[int, ...]]
    constants: dict[int, np.ndarray] = field(repr=False)
    inputs: list[int] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)

    def convs(self) -> list[TfliteOp]:
        return [op for op in self.ops if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D")]

    def trunk_convs(self) -> list[TfliteOp]:
        """The feature extractor's convs in execution order: every conv except the SSD box/class predictors
        (those feed only RESHAPE ops)."""
        consumers: dict[int, set[str]] = {}
        for op in self.ops:
            for i in op.inputs:
                consumers.setdefault(i, set()).add(op.kind)
        return [op for op in self.convs() if consumers.get(op.outputs[0], set()) != {"RESHAPE"}]


_ACT = {0: "NONE", 1: "RELU", 3: "RELU6"}


def _buffer_array(model, tensor) -> np.ndarray | None:
    import tflite

    buf = model.Buffers(tensor.Buffer())
    if buf is None or buf.DataLength() == 0:
        return None
    dtypes = {tflite.TensorType.FLOAT32: np.float32, tflite.TensorType.FLOAT16: np.float16,
              tflite.TensorType.INT32: np.int32, tflite.TensorType.INT64: np.int64}
    dt = dtypes.get(tensor.Type())
    if dt is None:
        return None
    return np.frombuffer(buf.DataAsNumpy().tobytes(), dt).reshape(tensor.ShapeAsNumpy()).astype(
        np.float32 if dt is np.float16 else dt)


@lru_cache(maxsize=2)
def read_tflite(path: str | Path) -> TfliteModel:
    """Parse a float/fp16 TFLite file into ops and constant tensors (fp16 weights dequantized to float32)."""
    import tflite

    path = Path(path)
    try:
        model = tflite.Model.GetRootAsModel(path.read_bytes(), 0)
        g = model.Subgraphs(0)
    except Exception as exc:   # a truncated or foreign file
        raise InputFileError(f"{path}: not a readable TFLite model ({exc})") from None
    code_names = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
    names, shapes, consts = {}, {}, {}
    for i in range(g.TensorsLength()):
        t = g.Tensors(i)
        names[i] = t.Name().decode()
        shapes[i] = tuple(int(v) for v in t.ShapeAsNumpy()) if t.ShapeLength() else ()
        arr = _buffer_array(model, t)
        if arr is not None:
            consts[i] = arr
    ops: list[TfliteOp] = []
    for i in range(g.OperatorsLength()):
        op = g.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        kind = code_names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "?")
        ins = [int(op.Inputs(j)) for j in range(op.InputsLength())]
        outs = [int(op.Outputs(j)) for j in range(op.OutputsLength())]
        if kind == "DEQUANTIZE":
            consts[outs[0]] = consts[ins[0]]
            continue
        rec = TfliteOp(kind, ins, outs)
        opts = op.BuiltinOptions()
        if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            o = (tflite.Conv2DOptions() if kind == "CONV_2D" else tflite.DepthwiseConv2DOptions())
            o.Init(opts.Bytes, opts.Pos)
            if o.StrideH() != o.StrideW() or o.DilationHFactor() != 1 or o.DilationWFactor() != 1:
                raise InputFileError(f"{path}: op {i} ({kind}) has unequal strides or dilation; not supported")
            rec.stride = int(o.StrideH())
            rec.padding = "SAME" if o.Padding() == tflite.Padding.SAME else "VALID"
            rec.activation = _ACT.get(o.FusedActivationFunction(), "?")
        elif kind == "ADD":
            o = tflite.AddOptions()
            o.Init(opts.Bytes, opts.Pos)
            rec.activation = _ACT.get(o.FusedActivationFunction(), "?")
        elif kind == "CONCATENATION":
            o = tflite.ConcatenationOptions()
            o.Init(opts.Bytes, opts.Pos)
            rec.axis = int(o.Axis())
        elif kind != "RESHAPE":
            raise InputFileError(f"{path}: operator {kind} (op {i}) is not supported by the torch executor")
        if rec.activation == "?":
            raise InputFileError(f"{path}: op {i} ({kind}) has an unsupported fused activation")
        ops.append(rec)
    return TfliteModel(ops, names, shapes, consts,
                       [int(g.Inputs(i)) for i in range(g.InputsLength())],
                       [int(g.Outputs(i)) for i in range(g.OutputsLength())])


def tf_same_pad(size: int, k: int, stride: int) -> tuple[int, int]:
    """TensorFlow 'SAME' padding (before, after) along one axis."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + k - size, 0)
    return total // 2, total - total // 2


def torch_conv_weight(op: TfliteOp, tm: TfliteModel) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(weight OIHW, bias, groups) of a TFLite conv op (OHWI for CONV_2D, 1HWO for DEPTHWISE_CONV_2D)."""
    w = tm.constants[op.inputs[1]]
    b = tm.constants[op.inputs[2]]
    if op.kind == "CONV_2D":
        return torch.from_numpy(w.transpose(0, 3, 1, 2).copy()), torch.from_numpy(b.copy()), 1
    return torch.from_numpy(w.transpose(3, 0, 1, 2).copy()), torch.from_numpy(b.copy()), int(w.shape[3])


def _activate(x: torch.Tensor, act: str) -> torch.Tensor:
    if act == "RELU":
        return F.relu(x)
    if act == "RELU6":
        return F.relu6(x)
    return x


class TfliteGraph(nn.Module):
    """Replays a parsed TFLite graph in torch (NCHW), TF 'SAME' padding, for the SSD teacher and the match test."""

    def __init__(self, tm: TfliteModel):
        super().__init__()
        self.tm = tm
        self.weights = nn.ParameterList()
        self.slot: dict[int, int] = {}
        for k, op in enumerate(tm.ops):
            if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
                w, b, _ = torch_conv_weight(op, tm)
                self.slot[k] = len(self.weights)
                self.weights.append(nn.Parameter(w, requires_grad=False))
                self.weights.append(nn.Parameter(b, requires_grad=False))
        self.last_use: dict[int, int] = {}     # tensor -> index of the last op reading it (frees it after)
        for k, op in enumerate(tm.ops):
            for i in op.inputs:
                self.last_use[i] = k

    def forward(self, x: torch.Tensor, keep: bool = False) -> dict[int, torch.Tensor]:
        """``x``: (N, 3, H, W) in the model's input range; returns the output tensors (all tensors if ``keep``)."""
        tm = self.tm
        vals: dict[int, torch.Tensor] = {tm.inputs[0]: x}
        nchw = {tm.inputs[0]}       # tensors held channels-first here (TFLite keeps NHWC)
        for k, op in enumerate(tm.ops):
            a = vals[op.inputs[0]]
            if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
                w, b = self.weights[self.slot[k]], self.weights[self.slot[k] + 1]
                groups = 1 if op.kind == "CONV_2D" else w.shape[0]
                if op.padding == "SAME":
                    ph = tf_same_pad(a.shape[2], w.shape[2], op.stride)
                    pw = tf_same_pad(a.shape[3], w.shape[3], op.stride)
                    a = F.pad(a, (pw[0], pw[1], ph[0], ph[1]))
                y = _activate(F.conv2d(a, w, b, op.stride, 0, 1, groups), op.activation)
                nchw.add(op.outputs[0])
            elif op.kind == "ADD":
                y = _activate(a + vals[op.inputs[1]], op.activation)
                nchw.add(op.outputs[0])
            elif op.kind == "RESHAPE":
                shape = tm.shapes[op.outputs[0]]
                y = a.permute(0, 2, 3, 1) if op.inputs[0] in nchw else a     # back to NHWC before reshaping
                y = y.reshape(a.shape[0], *shape[1:])
            else:   # CONCATENATION on NHWC-reshaped head outputs
                y = torch.cat([vals[i] for i in op.inputs], dim=op.axis)
            vals[op.outputs[0]] = y
            if not keep:
                for i in op.inputs:
                    if i not in tm.outputs and i != op.outputs[0] and self.last_use.get(i, -1) <= k:
                        vals.pop(i, None)
        return vals if keep else {i: vals[i] for i in tm.outputs}


# ------------------------------------------------------------------------------------------------ SSD teacher
def ssd_anchors(num_layers: int = 6, min_scale: float = 0.2, max_scale: float = 0.95,
                feature_maps: tuple[int, ...] = (19, 10, 5, 3, 2, 1),
                aspect_ratios: tuple[float, ...] = (1.0, 2.0, 0.5, 3.0, 1.0 / 3.0)) -> np.ndarray:
    """(A, 4) anchors (ycenter, xcenter, h, w), normalized, in the order of the box predictor outputs (TF OD API
    ``MultipleGridAnchorGenerator`` with ``reduce_boxes_in_lowest_layer`` and interpolated scale, as MediaPipe's
    ``SsdAnchorsCalculator``)."""
    scales = [min_scale + (max_scale - min_scale) * i / (num_layers - 1) for i in range(num_layers)] + [1.0]
    out = []
    for layer, fm in enumerate(feature_maps):
        s = scales[layer]
        if layer == 0:
            specs = [(0.1, 1.0), (s, 2.0), (s, 0.5)]
        else:
            specs = [(s, ar) for ar in aspect_ratios] + [(math.sqrt(s * scales[layer + 1]), 1.0)]
        for y in range(fm):
            for x in range(fm):
                for scale, ar in specs:
                    r = math.sqrt(ar)
                    out.append(((y + 0.5) / fm, (x + 0.5) / fm, scale / r, scale * r))
    return np.asarray(out, np.float32)


class SsdTeacher:
    """The MediaPipe SSD-MobileNetV2 as a person / pet / vehicle detector on RGB uint8 images (torch, CPU)."""

    def __init__(self, path: str | Path | None = None, *, nms_iou: float = 0.5, score_floor: float = 0.05):
        p = check_pretrained_file(path)
        self.sha256 = SSD_SHA256      # identity of the teacher (pseudo-label cache key)
        self.graph = TfliteGraph(read_tflite(p)).eval()
        self.anchors = ssd_anchors()
        self.nms_iou = nms_iou
        self.score_floor = score_floor
        #: presence thresholds per camlab class (set from a calibration on the training split; 0.5 until then)
        self.thresholds: dict[str, float] = {"person": 0.5, "pet": 0.5, "vehicle": 0.5}
        self.label_ids = {name: i for i, name in enumerate(SSD_LABELS)}

    @torch.no_grad()
    def raw(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(box encodings (A, 4), class scores (A, 24) after sigmoid) for one RGB uint8 image (stretched to 300)."""
        import cv2

        x = cv2.resize(rgb, (SSD_INPUT, SSD_INPUT), interpolation=cv2.INTER_LINEAR).astype(np.float32)
        t = torch.from_numpy(x.transpose(2, 0, 1)[None] / 127.5 - 1.0)
        outs = self.graph(t)
        box, cls = (outs[i][0].numpy() for i in self.graph.tm.outputs)
        return box, 1.0 / (1.0 + np.exp(-cls))

    def decode(self, box: np.ndarray) -> np.ndarray:
        """Box encodings -> normalized xyxy (box coder scales y, x, h, w = 10, 10, 5, 5)."""
        a = self.anchors
        yc = box[:, 0] / 10.0 * a[:, 2] + a[:, 0]
        xc = box[:, 1] / 10.0 * a[:, 3] + a[:, 1]
        h = np.exp(box[:, 2] / 5.0) * a[:, 2]
        w = np.exp(box[:, 3] / 5.0) * a[:, 3]
        return np.stack([xc - w / 2, yc - h / 2, xc + w / 2, yc + h / 2], axis=1).clip(0.0, 1.0)

    def detect(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(boxes xyxy source px (N, 4), scores (N,), camlab class ids (N,)) after per-class NMS."""
        from camlab.contract.detection import batched_nms

        box, scores = self.raw(rgb)
        xyxy = self.decode(box) * np.array([rgb.shape[1], rgb.shape[0]] * 2, np.float32)
        # one score per camlab class and anchor: the best of the SSD labels that map to it
        n_cls = max(SSD_TO_CAMLAB.values()) + 1
        per = np.zeros((len(box), n_cls), np.float32)
        for name, c in SSD_TO_CAMLAB.items():
            per[:, c] = np.maximum(per[:, c], scores[:, self.label_ids[name]])
        a_idx, c_idx = np.nonzero(per >= self.score_floor)
        b, s = xyxy[a_idx], per[a_idx, c_idx]
        keep = batched_nms(b, s, c_idx, self.nms_iou)
        return b[keep], s[keep], c_idx[keep].astype(np.int64)


# ------------------------------------------------------------------------------------- MobileNetV2 backbone
#: inverted-residual stages (expansion t, output channels c, channels in the pretrained file, repeats n, first
#: stride s); Sandler et al., Table 2. The 24-channel stage is widened to 32 with zero-padded weights (the same
#: function) for the NPU's 16-channel rule; its expansions keep the pretrained width (6 x 24 = 144).
MOBILENETV2_STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (1, 16, 16, 1, 1), (6, 32, 24, 2, 2), (6, 32, 32, 3, 2), (6, 64, 64, 4, 2), (6, 96, 96, 3, 1),
    (6, 160, 160, 3, 2), (6, 320, 320, 1, 1))
TAP_STAGES = (2, 4, 6)         # stages whose last block feeds the neck: strides 8, 16, 32


class ConvAct(nn.Sequential):
    """Conv with bias (BN already folded in the pretrained weights) + optional ReLU6 (ONNX Clip, NPU-native)."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, act: bool = True):
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=True)]
        if act:
            layers.append(nn.ReLU6(inplace=True))
        super().__init__(*layers)


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, hidden: int, expand: bool = False):
        super().__init__()
        layers: list[nn.Module] = []
        if hidden != cin or expand:
            layers.append(ConvAct(cin, hidden, 1))
        layers += [ConvAct(hidden, hidden, 3, stride, groups=hidden), ConvAct(hidden, cout, 1, act=False)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.residual else y


class MobileNetV2Backbone(nn.Module):
    """MobileNetV2 (width 1.0) up to the 320-channel stride-32 block; returns the stride 8, 16 and 32 features
    (32, 96 and 320 channels). Input (N, 3, H, W) RGB in [0, 1] (the source's input scaling is folded into the
    stem). ``expand_first``: the first block keeps a 1x1 expansion conv although it does not widen (Intel's
    person-vehicle-bike-detection-2000 trunk, :mod:`camlab.models.pretrained_ir`)."""

    out_channels = (32, 96, 320)

    def __init__(self, expand_first: bool = False):
        super().__init__()
        self.n_frozen = 0          # stem + this many blocks run without gradients (set by the trainer)
        self.stem = ConvAct(3, 32, 3, 2)
        blocks: list[nn.Module] = []
        self.taps: list[int] = []
        cin, cin_orig = 32, 32
        for si, (t, c, c_orig, n, s) in enumerate(MOBILENETV2_STAGES):
            for i in range(n):
                blocks.append(InvertedResidual(cin, c, s if i == 0 else 1, cin_orig * t,
                                               expand=expand_first and not blocks))
                cin, cin_orig = c, c_orig
            if si in TAP_STAGES:
                self.taps.append(len(blocks) - 1)
        self.blocks = nn.Sequential(*blocks)

    def freeze(self, n_blocks: int) -> None:
        """Fix the stem and the first ``n_blocks`` blocks (pretrained low-level features; their backward pass,
        depthwise convs at high resolution, is most of a CPU training step)."""
        if not 0 <= n_blocks <= len(self.blocks):
            raise ValueError(f"freeze_blocks must be in 0..{len(self.blocks)}, got {n_blocks}")
        self.n_frozen = n_blocks
        frozen = [self.stem] + list(self.blocks[:n_blocks]) if n_blocks else []
        for mod in frozen:
            for p in mod.parameters():
                p.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.n_frozen == 0):
            x = self.stem(x)
        for i, blk in enumerate(self.blocks):
            with torch.set_grad_enabled(torch.is_grad_enabled() and i >= self.n_frozen):
                x = blk(x)
            if i in self.taps:
                feats.append(x)
        return feats


def _padded_copy(dst: torch.Tensor, src: torch.Tensor) -> None:
    """Copy ``src`` into the leading corner of ``dst`` (zeros elsewhere): a widened layer computing the same."""
    if any(s > d for s, d in zip(src.shape, dst.shape)):
        raise InputFileError(f"pretrained tensor of shape {tuple(src.shape)} does not fit {tuple(dst.shape)}")
    dst.zero_()
    dst[tuple(slice(0, s) for s in src.shape)] = src


@dataclass
class SourceConv:
    """One pretrained conv to copy into the backbone: torch layout weight (Cout, Cin/groups, k, k), bias (Cout,)."""
    name: str
    weight: torch.Tensor
    bias: torch.Tensor
    depthwise: bool
    stride: int


def copy_trunk(convs: list[nn.Conv2d], layers: list[SourceConv], where: str) -> None:
    """Copy ``layers`` into the backbone's ``convs`` in order, zero-padding widened layers; a count, kind, stride or
    kernel that does not match is a one-line error naming the conv."""
    if len(layers) < len(convs):
        raise InputFileError(f"{where}: {len(layers)} trunk convs, the backbone needs {len(convs)}")
    for k, (conv, src) in enumerate(zip(convs, layers)):
        w = src.weight
        if src.depthwise != (conv.groups > 1) or conv.stride[0] != src.stride or w.shape[2:] != conv.weight.shape[2:] \
                or (conv.groups == 1 and w.shape[1] > conv.weight.shape[1]):
            raise InputFileError(f"{where}: conv {k} ({src.name}) has shape {tuple(w.shape)} stride {src.stride}; "
                                 f"the backbone expects {tuple(conv.weight.shape)} stride {conv.stride[0]}")
        if conv.groups > 1 and w.shape[0] != conv.weight.shape[0]:
            w = torch.cat([w, torch.zeros(conv.weight.shape[0] - w.shape[0], *w.shape[1:])])
        _padded_copy(conv.weight, w)
        _padded_copy(conv.bias, src.bias)


@torch.no_grad()
def load_mobilenetv2_weights(backbone: MobileNetV2Backbone, path: str | Path | None = None, *,
                             fold_input_range: bool = True) -> dict:
    """Load the pretrained trunk into ``backbone`` (hash-checked file; the SSD's first 51 feature-extractor
    convs). With ``fold_input_range`` the stem is rescaled so the backbone takes [0, 1] input instead of the
    TFLite's [-1, 1]. Returns a short report."""
    p = check_pretrained_file(path)
    tm = read_tflite(p)
    convs = [m for m in backbone.modules() if isinstance(m, nn.Conv2d)]
    src = tm.trunk_convs()[:len(convs)]
    layers = []
    for op in src:
        w, b, _ = torch_conv_weight(op, tm)
        layers.append(SourceConv(tm.names[op.outputs[0]], w, b, op.kind == "DEPTHWISE_CONV_2D", op.stride))
    copy_trunk(convs, layers, str(p))
    if fold_input_range:
        stem = convs[0]
        # x_tf = 2 x - 1  =>  W x_tf + b = (2W) x + (b - sum W)
        stem.bias -= stem.weight.sum(dim=(1, 2, 3))
        stem.weight.mul_(2.0)
    return {"file": str(p), "sha256": SSD_SHA256, "conv_layers": len(convs),
            "last_layer": tm.names[src[-1].outputs[0]]}
