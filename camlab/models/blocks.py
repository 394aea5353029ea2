"""NPU-friendly building blocks: Conv-BN-ReLU and depthwise-separable 3x3 units (BN foldable into the convs).

Howard et al., "MobileNets: Efficient Convolutional Neural Networks for Mobile Vision Applications", 2017 (the
depthwise-separable unit); Ioffe & Szegedy, ICML 2015 (batch norm, folded into the preceding conv for export).
Only ops every camera NPU runs natively: Conv (1x1, 3x3, 3x3 depthwise), ReLU, Add, Concat, MaxPool, and nearest
Resize with constant scales. Channel counts are kept to multiples of 16 (NPU vector width).
"""
from __future__ import annotations

import torch
from torch import nn


def check_channels(*counts: int) -> None:
    for c in counts:
        if c % 16:
            raise ValueError(f"channel count {c} is not a multiple of 16 (NPU vector width)")


class ConvBNReLU(nn.Sequential):
    """k x k conv (optionally grouped) + BN + ReLU."""

    def __init__(self, cin: int, cout: int, k: int = 1, stride: int = 1, groups: int = 1, relu: bool = True):
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
                                   nn.BatchNorm2d(cout)]
        if relu:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class DWSeparable(nn.Module):
    """3x3 depthwise (stride 1 or 2) + BN + ReLU, 1x1 pointwise + BN + ReLU; residual Add when shapes match."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        check_channels(cin, cout)
        self.dw = ConvBNReLU(cin, cin, 3, stride, groups=cin)
        self.pw = ConvBNReLU(cin, cout, 1)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pw(self.dw(x))
        return x + y if self.residual else y


@torch.no_grad()
def fold_batchnorm(module: nn.Module) -> nn.Module:
    """Fold every Conv2d -> BatchNorm2d pair (inside Sequential containers) into the conv; BN becomes Identity."""
    for child in module.children():
        fold_batchnorm(child)
    if isinstance(module, nn.Sequential):
        mods = list(module._modules.items())
        for (name_a, a), (name_b, b) in zip(mods, mods[1:]):
            if isinstance(a, nn.Conv2d) and isinstance(b, nn.BatchNorm2d):
                scale = b.weight / torch.sqrt(b.running_var + b.eps)
                a.weight.mul_(scale.reshape(-1, 1, 1, 1))
                bias = a.bias if a.bias is not None else torch.zeros_like(b.running_mean)
                new_bias = (bias - b.running_mean) * scale + b.bias
                a.bias = nn.Parameter(new_bias)
                module._modules[name_b] = nn.Identity()
    return module
