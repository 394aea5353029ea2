"""Small torch models and inputs for the deploy tests (no trained model needed)."""
from __future__ import annotations

import numpy as np


def tiny_detector():
    """A 2-level conv detector shaped like CamDet: stem, depthwise 3x3, FPN upsample-add, raw box/cls heads."""
    import torch
    from torch import nn

    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.BatchNorm2d(16), nn.ReLU())
            self.dw = nn.Sequential(nn.Conv2d(16, 16, 3, 2, 1, groups=16), nn.BatchNorm2d(16), nn.ReLU(),
                                    nn.Conv2d(16, 32, 1), nn.ReLU())
            self.down = nn.Sequential(nn.Conv2d(32, 32, 3, 2, 1), nn.ReLU())
            self.lat = nn.Conv2d(32, 32, 1)
            self.up = nn.Upsample(scale_factor=2, mode="nearest")
            self.box = nn.ModuleList([nn.Conv2d(32, 4, 1), nn.Conv2d(32, 4, 1)])
            self.cls = nn.ModuleList([nn.Conv2d(32, 3, 1), nn.Conv2d(32, 3, 1)])

        def forward(self, x):
            c3 = self.dw(self.stem(x))
            c4 = self.down(c3)
            p3 = self.lat(c3) + self.up(c4)
            return self.box[0](p3), self.cls[0](p3), self.box[1](c4), self.cls[1](c4)

    torch.manual_seed(0)
    m = Tiny()
    with torch.no_grad():  # non-trivial BN statistics so folding is exercised
        for bn in (m.stem[1], m.dw[1]):
            bn.running_mean.uniform_(-0.2, 0.2)
            bn.running_var.uniform_(0.5, 2.0)
    return m.eval()


def tiny_io(h=64, w=96):
    outs = []
    for s in (4, 8):
        outs.append({"name": f"box_s{s}", "shape": [1, 4, h // s, w // s], "dtype": "float32", "role": "box",
                     "stride": s})
        outs.append({"name": f"cls_s{s}", "shape": [1, 3, h // s, w // s], "dtype": "float32",
                     "role": "class_logits", "stride": s})
    return {"inputs": [{"name": "images", "shape": [1, 3, h, w], "layout": "NCHW", "dtype": "float32",
                        "color_format": "RGB", "mean": [0.0, 0.0, 0.0], "std": [255.0, 255.0, 255.0],
                        "value_range": [0, 255], "resize": {"method": "letterbox", "pad_value": 114.0}}],
            "outputs": outs,
            "decode": {"strides": [4, 8], "classes": ["person", "pet", "vehicle"],
                       "score_thresholds": {"person": 0.3, "pet": 0.3, "vehicle": 0.3}, "nms_iou": 0.5,
                       "max_detections": 20, "box_encoding": "ltrb_log"}}


def images(n, h=64, w=96, seed=0):
    """Smooth random 'scenes' in [0, 1] (what the normalised detector input looks like)."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(0, 1, (n, 3, h // 8, w // 8)).astype(np.float32)
    return np.repeat(np.repeat(base, 8, axis=2), 8, axis=3) * 0.8 + 0.2 * rng.uniform(0, 1, (n, 3, h, w)).astype(
        np.float32)




def tiny_detector_rknn_refuses():
    """The tiny detector with a context gate whose pooled vectors are joined by a Concat: valid ONNX, within every
    validator rule, but RKNN-Toolkit2 2.5.0 cannot build it for rv1106 (it turns the pools into float16 convs)."""
    import torch
    from torch import nn

    base = tiny_detector()

    class Gated(nn.Module):
        def __init__(self):
            super().__init__()
            self.base = base
            self.avg, self.max = nn.AdaptiveAvgPool2d(1), nn.AdaptiveMaxPool2d(1)
            self.fc = nn.Conv2d(64, 3, 1)

        def forward(self, x):
            b4, c4, b8, c8 = self.base(x)
            f = self.base.down(self.base.dw(self.base.stem(x)))
            g = torch.relu(self.fc(torch.cat([self.avg(f), self.max(f)], 1)))
            return b4, c4 - g, b8, c8 - g

    return Gated().eval()
