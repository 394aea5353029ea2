"""Intel's surveillance detector trunk as CamDet's pretrained start: person-vehicle-bike-detection-2000, read from
its OpenVINO IR (``.xml`` graph + ``.bin`` fp16 weights) without the OpenVINO runtime.

The model (Intel Open Model Zoo, Apache-2.0; provenance in ``models/pretrained/SOURCE.md``) is an SSD on a
MobileNetV2 1.0 trunk trained for person / vehicle / bike on surveillance footage at 256x256, BGR input in
[0, 255] scaled by 1/255 in the graph. Its trunk has the layout of :class:`MobileNetV2Backbone` with one
difference: the first inverted-residual block keeps a 32 -> 32 expansion conv (``expand_first``). BatchNorm is
already folded (every conv is Convolution/GroupConvolution + Add(bias) [+ Clamp(0, 6)]), and padding is symmetric
(PyTorch's), so the torch trunk computes what the IR computes; ``tests/models/test_pretrained_ir.py`` checks it
against the OpenVINO runtime block by block.

OpenVINO IR v11 format: https://docs.openvino.ai/2024/documentation/openvino-ir-format.html; Sandler et al.,
"MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018; Liu et al., "SSD", ECCV 2016.
"""
from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from camlab.errors import InputFileError

PVB2000_XML = "models/pretrained/person-vehicle-bike-detection-2000.xml"
PVB2000_SHA256 = {
    "person-vehicle-bike-detection-2000.xml": "6ad90c755fa3506e5d58a9f3f85c41994064bcf220b66c20d2996165ea6c6509",
    "person-vehicle-bike-detection-2000.bin": "f20d648ac608e84b249d8ff36a897478f7142b5bdaa7b4b768cda0d5e4add3ec",
}
_DTYPES = {"f16": np.float16, "f32": np.float32, "i64": np.int64, "i32": np.int32}


@dataclass
class IrConv:
    """One conv of the IR with its folded bias: weight (Cout, Cin/groups, k, k), bias (Cout,)."""
    name: str
    weight: np.ndarray
    bias: np.ndarray | None
    stride: int
    groups: int
    relu6: bool
    out_node: str           # the IR layer id whose output is this conv's output after bias (and clamp)


@dataclass
class IrTrunk:
    convs: list[IrConv]          # trunk convs in execution order (SSD head convs excluded)
    input_scale: float           # the graph's Multiply on the input (1/255)


def check_ir_files(xml_path: str | Path) -> tuple[Path, Path]:
    """(xml, bin) after checking both exist and carry the recorded sha256 (one-line errors otherwise)."""
    from camlab import settings

    xml = Path(xml_path)
    xml = xml if xml.is_absolute() else settings.project_root() / xml
    binf = xml.with_suffix(".bin")
    for p in (xml, binf):
        if not p.is_file():
            raise InputFileError(f"{p}: pretrained IR file missing (committed under models/pretrained/)")
        want = PVB2000_SHA256.get(p.name)
        if want is None:
            raise InputFileError(f"{p}: no sha256 recorded for this file (known: {sorted(PVB2000_SHA256)})")
        digest = hashlib.sha256(p.read_bytes()).hexdigest()
        if digest != want:
            raise InputFileError(f"{p}: sha256 {digest[:16]}... does not match the recorded {want[:16]}... "
                                 f"(models/pretrained/SOURCE.md)")
    return xml, binf


def _const(layer: ET.Element, blob: bytes) -> np.ndarray:
    d = layer.find("data").attrib
    dt = _DTYPES[d["element_type"]]
    off, size = int(d["offset"]), int(d["size"])
    if off + size > len(blob):
        raise InputFileError(f"IR constant {layer.get('name')} lies outside the .bin ({off}+{size} > {len(blob)})")
    shape = tuple(int(s) for s in d["shape"].split(",") if s.strip()) if d["shape"].strip() else ()
    return np.frombuffer(blob[off:off + size], dtype=dt).reshape(shape).astype(np.float32)


def read_ir_trunk(xml_path: str | Path) -> IrTrunk:
    """Parse the IR and return the MobileNetV2 trunk's convs (head convs, whose output goes to a ReLU or a
    Transpose, dropped)."""
    xml, binf = check_ir_files(xml_path)
    try:
        root = ET.parse(xml).getroot()
    except ET.ParseError as exc:
        raise InputFileError(f"{xml}: not a readable OpenVINO IR ({exc})") from None
    blob = binf.read_bytes()
    layers = {l.get("id"): l for l in root.find("layers")}
    consumers: dict[str, list[str]] = {}
    producers: dict[str, list[str]] = {}
    for e in root.find("edges"):
        consumers.setdefault(e.get("from-layer"), []).append(e.get("to-layer"))
        producers.setdefault(e.get("to-layer"), []).append(e.get("from-layer"))

    def value(lid: str) -> np.ndarray | None:
        """The constant behind a Const or a Convert(Const) layer, else None."""
        lay = layers[lid]
        if lay.get("type") == "Convert":
            return value(producers[lid][0])
        return _const(lay, blob) if lay.get("type") == "Const" else None

    def only_consumer(lid: str) -> ET.Element | None:
        c = consumers.get(lid, [])
        return layers[c[0]] if len(c) == 1 else None

    params = [l for l in layers.values() if l.get("type") == "Parameter"]
    if len(params) != 1:
        raise InputFileError(f"{xml}: expected one input, found {len(params)}")
    scale = 1.0
    first = only_consumer(params[0].get("id"))
    if first is not None and first.get("type") == "Multiply":
        k = [value(p) for p in producers[first.get("id")] if value(p) is not None]
        scale = float(k[0].reshape(-1)[0]) if k else 1.0
    convs: list[IrConv] = []
    for lid, lay in layers.items():
        kind = lay.get("type")
        if kind not in ("Convolution", "GroupConvolution"):
            continue
        w = next((v for v in (value(p) for p in producers[lid]) if v is not None), None)
        if w is None:
            raise InputFileError(f"{xml}: conv {lay.get('name')} has no constant weight")
        groups = 1
        if kind == "GroupConvolution":        # (G, Cout/G, Cin/G, k, k) -> (Cout, Cin/G, k, k)
            groups = w.shape[0]
            w = w.reshape(w.shape[0] * w.shape[1], *w.shape[2:])
        d = lay.find("data").attrib
        strides = {int(s) for s in d["strides"].split(",")}
        pads = [int(s) for s in d["pads_begin"].split(",") + d["pads_end"].split(",")]
        if len(strides) != 1 or any(p != w.shape[-1] // 2 for p in pads):
            raise InputFileError(f"{xml}: conv {lay.get('name')} has strides {d['strides']} pads "
                                 f"{d['pads_begin']}/{d['pads_end']}; the trunk expects square strides and "
                                 f"symmetric k//2 padding")
        out, bias, relu6 = lid, None, False
        nxt = only_consumer(out)
        if nxt is not None and nxt.get("type") == "Add":
            b = [value(p) for p in producers[nxt.get("id")] if p != out and value(p) is not None]
            if b:
                bias, out = b[0].reshape(-1), nxt.get("id")
                nxt = only_consumer(out)
        # SSD head convs end in a plain ReLU (depthwise) or feed the Transpose of the box/class reshape
        head = any(layers[c].get("type") in ("ReLU", "Transpose") for c in consumers.get(out, []))
        if nxt is not None and nxt.get("type") == "Clamp":
            c = nxt.find("data").attrib
            if float(c["min"]) != 0.0 or float(c["max"]) != 6.0:
                raise InputFileError(f"{xml}: clamp after {lay.get('name')} is not ReLU6")
            relu6, out = True, nxt.get("id")
        if not head:
            convs.append(IrConv(lay.get("name"), w, bias, strides.pop(), groups, relu6, out))
    return IrTrunk(convs, scale)


@torch.no_grad()
def load_ir_trunk_weights(backbone: nn.Module, xml_path: str | Path, *, fold_input: bool = True) -> dict:
    """Load the IR trunk into a :class:`~camlab.models.pretrained.MobileNetV2Backbone` built with
    ``expand_first=True``. With ``fold_input`` the stem takes CamDet's RGB [0, 1] input: the IR's BGR channel
    order and its 255 * (1/255) input scaling are folded into the stem's weights. Returns a short report."""
    from camlab.models.pretrained import SourceConv, copy_trunk

    trunk = read_ir_trunk(xml_path)
    convs = [m for m in backbone.modules() if isinstance(m, nn.Conv2d)]
    layers = [SourceConv(c.name, torch.from_numpy(c.weight),
                         torch.from_numpy(c.bias) if c.bias is not None else torch.zeros(c.weight.shape[0]),
                         c.groups > 1, c.stride) for c in trunk.convs]
    copy_trunk(convs, layers, str(xml_path))
    if fold_input:
        stem = convs[0]
        # IR: W (s * x_bgr255); camlab: x_rgb01 = x_bgr255[::-1] / 255  =>  W' = flip_c(W) * 255 s
        stem.weight.copy_(stem.weight.flip(1) * (255.0 * trunk.input_scale))
    return {"file": str(xml_path), "sha256": PVB2000_SHA256, "conv_layers": len(convs),
            "last_layer": trunk.convs[len(convs) - 1].name, "input_scale": trunk.input_scale}
