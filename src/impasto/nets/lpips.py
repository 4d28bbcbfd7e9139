"""LPIPS, the learned perceptual image patch similarity (Zhang et al., CVPR 2018, "The Unreasonable Effectiveness
of Deep Features as a Perceptual Metric"), version 0.1 as the reference ``lpips`` package computes it.

torchmetrics' and piq's LPIPS both import torchvision, which impasto cannot import, so this is a small
implementation of its own; ``tests/test_lpips.py`` checks it against the reference package.

For images ``a``, ``b`` (N, 3, H, W) RGB in [0, 1]:

    x   = ((2 a - 1) - shift) / scale                 shift (-.030, -.088, -.188), scale (.458, .448, .450)
    f_l = trunk activation at tap l (N, C_l, h_l, w_l), l = 1..5
    n_l = f_l / (sqrt(sum_c f_l^2) + 1e-10)           unit length over channels at every position
    d   = sum_l mean_{h,w} sum_c w_lc (n_l(a) - n_l(b))^2

with ``w_l`` (1, C_l, 1, 1) the learned non-negative 1x1 conv of layer l (no bias). Trunks: AlexNet (taps
relu1..relu5, torchvision's ``features`` indices 1, 4, 7, 9, 11) or VGG-16 (relu1_2, relu2_2, relu3_3, relu4_3,
relu5_3; :class:`impasto.nets.vgg.VGG`). Pure modules: no I/O (``impasto.zoo.lpips_format`` loads the files).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol, cast

import torch
from torch import nn

from ..errors import ConfigError

__all__ = [
    "ALEX_CHANNELS",
    "ALEX_TAPS",
    "AlexNet",
    "LPIPS",
    "VGG_CHANNELS",
    "VGG_TAPS",
    "normalize_channels",
]

ALEX_TAPS: tuple[str, ...] = ("relu1", "relu2", "relu3", "relu4", "relu5")
ALEX_CHANNELS: tuple[int, ...] = (64, 192, 384, 256, 256)
VGG_TAPS: tuple[str, ...] = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")
VGG_CHANNELS: tuple[int, ...] = (64, 128, 256, 512, 512)

# LPIPS v0.1's ScalingLayer: the [-1, 1] input minus shift, over scale (the ImageNet mean/std moved to [-1, 1])
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
EPS = 1e-10  # lpips.normalize_tensor's

# torchvision's alexnet().features, index by index: (name, module kind, conv geometry (out, kernel, stride, pad))
_ALEX_LAYOUT: tuple[tuple[str, str, tuple[int, int, int, int] | None], ...] = (
    ("conv1", "conv", (0, 11, 4, 2)),  # 0
    ("relu1", "relu", None),  # 1
    ("pool1", "pool", None),  # 2
    ("conv2", "conv", (1, 5, 1, 2)),  # 3
    ("relu2", "relu", None),  # 4
    ("pool2", "pool", None),  # 5
    ("conv3", "conv", (2, 3, 1, 1)),  # 6
    ("relu3", "relu", None),  # 7
    ("conv4", "conv", (3, 3, 1, 1)),  # 8
    ("relu4", "relu", None),  # 9
    ("conv5", "conv", (4, 3, 1, 1)),  # 10
    ("relu5", "relu", None),  # 11
    ("pool5", "pool", None),  # 12
)
ALEX_CONV_INDICES: tuple[int, ...] = tuple(i for i, (_, kind, _g) in enumerate(_ALEX_LAYOUT) if kind == "conv")
ALEX_KERNELS: tuple[int, ...] = tuple(g[1] for _, kind, g in _ALEX_LAYOUT if g is not None)


class Trunk(Protocol):
    """What LPIPS needs of a trunk: named activations of a batch."""

    def features(self, x: torch.Tensor, names: Iterable[str]) -> dict[str, torch.Tensor]: ...


class AlexNet(nn.Sequential):
    """AlexNet's convolutional part in torchvision's ``alexnet().features`` index layout.

    Its own state-dict keys are ``N.weight|bias`` at N = 0, 3, 6, 8, 10: torchvision's ``features.N.*`` without
    the ``features.`` prefix. ReLUs run out of place, so a tapped activation is never overwritten.
    Layer names: conv1, relu1, pool1, conv2, relu2, pool2, conv3, relu3, conv4, relu4, conv5, relu5, pool5.
    """

    def __init__(self, widths: Sequence[int] = ALEX_CHANNELS) -> None:
        layers: list[nn.Module] = []
        in_ch = 3
        for _, kind, geom in _ALEX_LAYOUT:
            if kind == "conv":
                assert geom is not None
                index, k, stride, pad = geom
                layers.append(nn.Conv2d(in_ch, widths[index], k, stride=stride, padding=pad))
                in_ch = widths[index]
            elif kind == "relu":
                layers.append(nn.ReLU(inplace=False))
            else:
                layers.append(nn.MaxPool2d(kernel_size=3, stride=2))
        super().__init__(*layers)
        self.layer_names: tuple[str, ...] = tuple(name for name, _, _ in _ALEX_LAYOUT)

    def features(self, x: torch.Tensor, names: Iterable[str]) -> dict[str, torch.Tensor]:
        """Activations ``{name: (N, C, h, w)}`` of ``x`` (N, 3, H, W) for ``names``; runs only as deep as needed."""
        wanted = set(names)
        unknown = sorted(wanted - set(self.layer_names))
        if unknown:
            raise ConfigError(
                f"unknown AlexNet layer(s) {', '.join(map(repr, unknown))}; valid: {', '.join(self.layer_names)}"
            )
        out: dict[str, torch.Tensor] = {}
        if not wanted:
            return out
        depth = max(self.layer_names.index(n) for n in wanted)
        for i in range(depth + 1):
            x = self[i](x)
            if self.layer_names[i] in wanted:
                out[self.layer_names[i]] = x
        return out


def normalize_channels(f: torch.Tensor) -> torch.Tensor:
    """(N, C, h, w) -> (N, C, h, w) unit length over C at each position: ``f / (sqrt(sum_c f^2) + 1e-10)``."""
    return f / (torch.sqrt(torch.sum(f * f, dim=1, keepdim=True)) + EPS)


class LPIPS(nn.Module):
    """LPIPS v0.1 distance between two images with a feature ``trunk`` and five linear layers.

    ``trunk``: any module with ``features(x, names) -> {name: (N, C, h, w)}`` (:class:`AlexNet`,
    :class:`impasto.nets.vgg.VGG`), fed the scaled [-1, 1] input; ``taps``: its five layer names; ``lins``:
    the weights ``(1, C_l, 1, 1)`` of the five 1x1 convs (no bias), in tap order. See the module docstring for
    the formula.
    """

    shift: torch.Tensor  # (1, 3, 1, 1)
    scale: torch.Tensor  # (1, 3, 1, 1)

    def __init__(self, trunk: nn.Module, taps: Sequence[str], lins: Sequence[torch.Tensor]) -> None:
        super().__init__()
        if len(taps) != len(lins):
            raise ConfigError(f"LPIPS needs one linear layer per tap: {len(taps)} taps, {len(lins)} weights")
        self.trunk = trunk
        self.taps = tuple(taps)
        self.lins = nn.ModuleList()
        for w in lins:
            conv = nn.Conv2d(int(w.shape[1]), 1, 1, bias=False)
            conv.weight.data.copy_(w.reshape(1, -1, 1, 1))
            self.lins.append(conv)
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1))

    def _taps(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        z = ((2 * x - 1) - self.shift) / self.scale  # (N, 3, H, W): [0, 1] -> [-1, 1] -> ScalingLayer
        return cast(Trunk, self.trunk).features(z, self.taps)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W), (N, 3, H, W) RGB in [0, 1] -> (N,) distances (0 for identical images)."""
        if a.shape != b.shape or a.dim() != 4 or a.shape[1] != 3:
            raise ConfigError(f"LPIPS compares two (N, 3, H, W) images of one size, got {tuple(a.shape)} "
                              f"and {tuple(b.shape)}")  # fmt: skip
        fa, fb = self._taps(a), self._taps(b)
        total = torch.zeros(a.shape[0], dtype=a.dtype, device=a.device)
        for name, lin in zip(self.taps, self.lins, strict=True):
            diff = (normalize_channels(fa[name]) - normalize_channels(fb[name])) ** 2  # (N, C, h, w)
            total = total + lin(diff).mean(dim=(1, 2, 3))  # (N, 1, h, w) -> (N,)
        return total
