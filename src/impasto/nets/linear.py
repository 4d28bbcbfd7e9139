"""Learned linear style transfer (Li, Liu, Kautz, Yang, CVPR 2019): encoders, decoders, transformation modules, SPN.

Every module keeps the reference's (LinearStyleTransfer, ``libs/models.py``, ``libs/Matrix.py``, ``libs/SPN.py``)
attribute names, so its checkpoint files load unchanged with ``load_state_dict(strict=True)``:

=================  ===============================  ==========================================================
file               module                           keys
=================  ===============================  ==========================================================
``vgg_r31.pth``    ``Encoder("r31")``               ``conv1 .. conv6``   (.weight, .bias)
``vgg_r41.pth``    ``Encoder("r41")``               ``conv1 .. conv10``
``vgg_r51.pth``    ``Encoder("r51")``               ``conv1 .. conv14``  (the training loss network)
``dec_r31.pth``    ``Decoder("r31")``               ``conv7 .. conv11``
``dec_r41.pth``    ``Decoder("r41")``               ``conv11 .. conv19``
``r31.pth``        ``Transform("r31")``             ``snet.*, cnet.*, compress, unzip``
``r41.pth``        ``Transform("r41")``             ``snet.convs.{0,2,4}, snet.fc, cnet.(same), compress, unzip``
``r41_spn.pth``    ``SPN()``                        ``mask_conv, encoder.conv1-4, decoder.layer{0,2.0,4.0,6.0,7},
                                                    post``
=================  ===============================  ==========================================================

The encoders are VGG-19 up to relu3_1 / relu4_1 / relu5_1 behind a 1x1 "conv1" (3 -> 3) that folds the VGG
preprocessing into the weights, so they take RGB in [0, 1] (contract ``rgb-01``); every 3x3 conv is preceded by a
1-pixel reflection pad (no zero padding anywhere). The decoders mirror the encoders with nearest-neighbour x2
upsampling and end in a conv with no activation (the caller clamps). No I/O here: loading is ``impasto.zoo``'s.

Departures from the reference, none of which changes a result: the reference's max-pool of the r31 encoder also
returns indices it never uses (dropped); the forward passes take and return tensors (the reference's r41/r51
encoders return a dict of every tap: :meth:`Encoder.features` does that for the layers asked for).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError

__all__ = [
    "LAYERS",
    "MATRIX_SIZE",
    "Decoder",
    "Encoder",
    "SPN",
    "SPNBlock",
    "StyleStats",
    "Transform",
    "TransformCNN",
    "encoder_taps",
]

LAYERS = ("r31", "r41")  # the layers a transformation module and a decoder exist for
MATRIX_SIZE = 32  # the reference's matrixSize: compressed feature channels and the side of each learned matrix

# (key, in, out, tap name after its ReLU, max-pool 2x2 after it?) for VGG-19 up to relu5_1, in the reference's
# numbering: conv1 is the 1x1 preprocessing conv (no ReLU), conv2 = relu1_1, ...
_ENCODER_CONVS: tuple[tuple[str, int, int, str, bool], ...] = (
    ("conv2", 3, 64, "r11", False),
    ("conv3", 64, 64, "r12", True),
    ("conv4", 64, 128, "r21", False),
    ("conv5", 128, 128, "r22", True),
    ("conv6", 128, 256, "r31", False),
    ("conv7", 256, 256, "r32", False),
    ("conv8", 256, 256, "r33", False),
    ("conv9", 256, 256, "r34", True),
    ("conv10", 256, 512, "r41", False),
    ("conv11", 512, 512, "r42", False),
    ("conv12", 512, 512, "r43", False),
    ("conv13", 512, 512, "r44", True),
    ("conv14", 512, 512, "r51", False),
)
_ENCODER_DEPTH = {"r31": 5, "r41": 9, "r51": 13}  # 3x3 convs per encoder file
_FEATURE_CHANNELS = {"r31": 256, "r41": 512}

# Decoders: (key, in, out, upsample x2 after its ReLU?); the last conv has no ReLU.
_DECODER_CONVS: dict[str, tuple[tuple[str, int, int, bool], ...]] = {
    "r31": (
        ("conv7", 256, 128, True),
        ("conv8", 128, 128, False),
        ("conv9", 128, 64, True),
        ("conv10", 64, 64, False),
        ("conv11", 64, 3, False),
    ),
    "r41": (
        ("conv11", 512, 256, True),
        ("conv12", 256, 256, False),
        ("conv13", 256, 256, False),
        ("conv14", 256, 256, False),
        ("conv15", 256, 128, True),
        ("conv16", 128, 128, False),
        ("conv17", 128, 64, True),
        ("conv18", 64, 64, False),
        ("conv19", 64, 3, False),
    ),
}


def _check_layer(layer: str, allowed: Iterable[str]) -> None:
    allowed = tuple(allowed)
    if layer not in allowed:
        raise ConfigError(f"unknown layer {layer!r}; use one of {', '.join(allowed)}")


def encoder_taps(layer: str) -> tuple[str, ...]:
    """The activation names an ``Encoder(layer)`` can return, in order (``r11`` ... ``layer``)."""
    _check_layer(layer, _ENCODER_DEPTH)
    return tuple(tap for _, _, _, tap, _ in _ENCODER_CONVS[: _ENCODER_DEPTH[layer]])


class Encoder(nn.Module):
    """The normalised VGG-19 encoder up to ``layer`` (``r31``, ``r41`` or ``r51``).

    Input ``(N, 3, H, W)`` RGB in [0, 1]; ``forward`` returns the ``layer`` activation, ``(N, 256, H/4, W/4)``
    at r31, ``(N, 512, H/8, W/8)`` at r41, ``(N, 512, H/16, W/16)`` at r51 (max-pools floor odd sizes).
    """

    def __init__(self, layer: str = "r41") -> None:
        super().__init__()
        _check_layer(layer, _ENCODER_DEPTH)
        self.layer = layer
        self.conv1 = nn.Conv2d(3, 3, 1, 1, 0)  # the reference's 1x1 preprocessing conv (RGB 0-1 -> VGG's input)
        self._convs = _ENCODER_CONVS[: _ENCODER_DEPTH[layer]]
        for key, cin, cout, _tap, _pool in self._convs:
            self.add_module(key, nn.Conv2d(cin, cout, 3, 1, 0))  # padding by reflection in forward

    def features(self, x: torch.Tensor, layers: Iterable[str] | None = None) -> dict[str, torch.Tensor]:
        """The activations named in ``layers`` (default: only ``self.layer``), running no deeper than needed.

        Names: ``r11 r12 r21 r22 r31 r32 r33 r34 r41 r42 r43 r44 r51`` (post-ReLU, before any pooling).
        """
        want = {self.layer} if layers is None else set(layers)
        taps = encoder_taps(self.layer)
        unknown = sorted(want - set(taps))
        if unknown:
            raise ConfigError(f"unknown encoder layer(s) {', '.join(unknown)}; a {self.layer} encoder has {taps}")
        out: dict[str, torch.Tensor] = {}
        h = self.conv1(x)
        for key, _cin, _cout, tap, pool in self._convs:
            h = F.relu(getattr(self, key)(F.pad(h, (1, 1, 1, 1), mode="reflect")), inplace=True)
            if tap in want:
                out[tap] = h  # never overwritten: the next op (pad or pool) makes a new tensor
                if len(out) == len(want):
                    break
            if pool:
                h = F.max_pool2d(h, 2, 2)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)[self.layer]


class Decoder(nn.Module):
    """The decoder trained to invert ``Encoder(layer)`` (``r31`` or ``r41``).

    ``(N, 256, h, w)`` (r31) or ``(N, 512, h, w)`` (r41) -> ``(N, 3, 4h, 4w)`` / ``(N, 3, 8h, 8w)`` RGB, roughly
    in [0, 1] but unclamped (the reference clamps before saving; so do the callers).
    """

    def __init__(self, layer: str = "r41") -> None:
        super().__init__()
        _check_layer(layer, _DECODER_CONVS)
        self.layer = layer
        self._convs = _DECODER_CONVS[layer]
        for key, cin, cout, _up in self._convs:
            self.add_module(key, nn.Conv2d(cin, cout, 3, 1, 0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = len(self._convs) - 1
        for i, (key, _cin, _cout, up) in enumerate(self._convs):
            x = getattr(self, key)(F.pad(x, (1, 1, 1, 1), mode="reflect"))
            if i < last:
                x = F.relu(x, inplace=True)
            if up:
                x = F.interpolate(x, scale_factor=2.0, mode="nearest")  # the reference's UpsamplingNearest2d
        return x


class TransformCNN(nn.Module):
    """The reference's ``CNN``: features -> a ``(N, 32, 32)`` matrix.

    Three 3x3 convs (zero padding, as in the reference) squeeze the mean-removed features to 32 channels,
    whose covariance ``Z Z^T / (h w)`` (N, 32, 32) goes through one fully connected layer (1024 -> 1024).
    The output is affine in the covariance: that is why blending styles' matrices equals blending their covariances.
    """

    def __init__(self, layer: str = "r41", matrix_size: int = MATRIX_SIZE) -> None:
        super().__init__()
        _check_layer(layer, LAYERS)
        c = _FEATURE_CHANNELS[layer]
        self.convs = nn.Sequential(
            nn.Conv2d(c, c // 2, 3, 1, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c // 2, c // 4, 3, 1, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c // 4, matrix_size, 3, 1, 1),
        )
        self.fc = nn.Linear(matrix_size * matrix_size, matrix_size * matrix_size)
        self.matrix_size = matrix_size

    def covariance(self, centred: torch.Tensor) -> torch.Tensor:
        """Mean-removed features ``(N, C, h, w)`` -> ``(N, 32, 32)`` covariance of the squeezed features."""
        z = self.convs(centred)
        n, c, h, w = z.shape
        z = z.reshape(n, c, h * w)  # (N, 32, h*w)
        return torch.bmm(z, z.transpose(1, 2)) / (h * w)  # (N, 32, 32)

    def matrix(self, cov: torch.Tensor) -> torch.Tensor:
        """``(N, 32, 32)`` covariance -> ``(N, 32, 32)`` learned matrix."""
        n = cov.shape[0]
        return self.fc(cov.reshape(n, -1)).reshape(n, self.matrix_size, self.matrix_size)

    def forward(self, centred: torch.Tensor) -> torch.Tensor:
        return self.matrix(self.covariance(centred))


class StyleStats(NamedTuple):
    """What a style contributes to the transformation: ``matrix`` ``(N, 32, 32)`` (``snet``'s output) and
    ``mean`` ``(N, C, 1, 1)`` (the style features' per-channel mean)."""

    matrix: torch.Tensor
    mean: torch.Tensor


def _mean_removed(f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean = f.mean(dim=(2, 3), keepdim=True)  # (N, C, 1, 1)
    return f - mean, mean


class Transform(nn.Module):
    """The reference's ``MulLayer`` (``libs/Matrix.py``, the one TestArtistic.py uses) at ``layer``.

    ``out = unzip(T @ compress(cF - mean(cF))) + mean(sF)`` with ``T = snet(sF - mean(sF)) @ cnet(cF - mean(cF))``,
    a (32, 32) matrix per image. Split in two so the style side is computed once per style:
    :meth:`style` -> :class:`StyleStats`, :meth:`transform` (content features, stats) -> transformed features
    (not ``apply``, which ``nn.Module`` already has).
    """

    def __init__(self, layer: str = "r41", matrix_size: int = MATRIX_SIZE) -> None:
        super().__init__()
        _check_layer(layer, LAYERS)
        c = _FEATURE_CHANNELS[layer]
        self.layer = layer
        self.matrix_size = matrix_size
        self.snet = TransformCNN(layer, matrix_size)
        self.cnet = TransformCNN(layer, matrix_size)
        self.compress = nn.Conv2d(c, matrix_size, 1, 1, 0)
        self.unzip = nn.Conv2d(matrix_size, c, 1, 1, 0)

    def style(self, sF: torch.Tensor) -> StyleStats:
        """Style features ``(N, C, h, w)`` -> their :class:`StyleStats`."""
        centred, mean = _mean_removed(sF)
        return StyleStats(self.snet(centred), mean)

    def transform(self, cF: torch.Tensor, stats: StyleStats) -> torch.Tensor:
        """Content features ``(N, C, h, w)`` and style stats (batch N or 1) -> transformed ``(N, C, h, w)``."""
        centred, _ = _mean_removed(cF)
        c_matrix = self.cnet(centred)  # (N, 32, 32)
        s_matrix = stats.matrix.expand(c_matrix.shape[0], -1, -1)
        t = torch.bmm(s_matrix, c_matrix)  # (N, 32, 32): the reference's transmatrix
        z = self.compress(centred)
        n, k, h, w = z.shape
        z = torch.bmm(t, z.reshape(n, k, h * w)).reshape(n, k, h, w)  # (N, 32, h, w)
        return self.unzip(z) + stats.mean

    def forward(self, cF: torch.Tensor, sF: torch.Tensor) -> torch.Tensor:
        """The reference's ``MulLayer.forward(cF, sF)`` (its second output, the matrix, is not returned)."""
        return self.transform(cF, self.style(sF))


# --- the SPN of the photo-realistic path (libs/SPN.py) -------------------------------------------------------


class SPNBlock(nn.Module):
    """One direction of the spatial propagation (the reference's ``spn_block``).

    Gates ``G1, G2, G3`` ``(N, C, H, W)`` are rescaled where ``|G1| + |G2| + |G3| >= 1`` so that they sum in
    absolute value to 1 (keeps the recurrence stable), then :func:`impasto.nets.spn_propagate.propagate` runs the
    three-way linear recurrence over ``x`` in this block's direction.
    """

    def __init__(self, horizontal: bool, reverse: bool) -> None:
        super().__init__()
        self.horizontal = horizontal
        self.reverse = reverse

    def forward(self, x: torch.Tensor, g1: torch.Tensor, g2: torch.Tensor, g3: torch.Tensor) -> torch.Tensor:
        from .spn_propagate import propagate

        # The reference masks and mixes (g / sum where sum >= 1, else g; sums of 0 replaced by 1e-6 first); dividing by
        # max(sum, 1) is the same arithmetic on every pixel and 4x cheaper (the 1e-6 fill only touches sums of 0,
        # which are never divided).
        d = (g1.abs() + g2.abs() + g3.abs()).clamp(min=1.0)
        return propagate(x, g1 / d, g2 / d, g3 / d, horizontal=self.horizontal, reverse=self.reverse)


class _GuidanceEncoder(nn.Module):
    """The reference's SPN ``VGG``: 4 convs with 3x3/2 max-pools, on the RGB guide image."""

    def __init__(self, nf: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, nf, 3, padding=1)
        self.conv2 = nn.Conv2d(nf, nf * 2, 3, padding=1)
        self.conv3 = nn.Conv2d(nf * 2, nf * 4, 3, padding=1)
        self.conv4 = nn.Conv2d(nf * 4, nf * 8, 3, padding=1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {"conv1": self.conv1(x)}  # (N, nf, H, W)
        x = F.max_pool2d(F.relu(out["conv1"]), 3, 2, 1)
        out["conv2"] = self.conv2(x)  # (N, 2nf, H/2, W/2)
        x = F.max_pool2d(F.relu(out["conv2"]), 3, 2, 1)
        out["conv3"] = self.conv3(x)  # (N, 4nf, H/4, W/4)
        x = F.max_pool2d(F.relu(out["conv3"]), 3, 2, 1)
        out["conv4"] = self.conv4(x)  # (N, 8nf, H/8, W/8)
        return out


class _GuidanceDecoder(nn.Module):
    """The reference's SPN ``Decoder``: back to full size with skip connections; 12 nf gate channels out."""

    def __init__(self, nf: int, spn: int = 1) -> None:
        super().__init__()
        self.layer0 = nn.Conv2d(nf * 8, nf * 4, 1, 1, 0)
        self.layer2 = nn.Sequential(nn.Conv2d(nf * 4, nf * 4, 3, 1, 1), nn.ELU(inplace=True))
        self.layer4 = nn.Sequential(nn.Conv2d(nf * 4, nf * 2, 3, 1, 1), nn.ELU(inplace=True))
        self.layer6 = nn.Sequential(nn.Conv2d(nf * 2, nf, 3, 1, 1), nn.ELU(inplace=True))
        self.layer7 = nn.Conv2d(nf, nf * (12 if spn == 1 else 24), 3, 1, 1)

    @staticmethod
    def _up(x: torch.Tensor) -> torch.Tensor:
        # the reference's nn.Upsample(scale_factor=2, mode="bilinear"), whose align_corners is False since torch 0.4
        return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)

    def forward(self, f: dict[str, torch.Tensor]) -> torch.Tensor:
        x = self.layer2(self._up(self.layer0(f["conv4"]))) + f["conv3"]
        x = self.layer4(self._up(x)) + f["conv2"]
        x = self.layer6(self._up(x)) + f["conv1"]
        return self.layer7(x)  # (N, 12 nf, H, W)


class SPN(nn.Module):
    """The reference's spatial propagation network (``libs/SPN.py``), key-compatible with ``r41_spn.pth``.

    ``forward(x, rgb)``: ``x`` ``(N, 3, H, W)`` the image to filter (the stylised result), ``rgb`` ``(N, 3, H, W)``
    the guide (the content photo), H and W multiples of 8. Returns ``(N, 3, H, W)``. :meth:`guidance` gives the
    12 gate maps (``(N, nf, H, W)`` each) and :meth:`propagate_all` the four directional passes merged by maximum.
    """

    def __init__(self, nf: int = 32, spn: int = 1) -> None:
        super().__init__()
        self.nf = nf
        self.mask_conv = nn.Conv2d(3, nf, 3, 1, 1)
        self.encoder = _GuidanceEncoder(nf)
        self.decoder = _GuidanceDecoder(nf, spn)
        self.left_right = SPNBlock(horizontal=True, reverse=False)
        self.right_left = SPNBlock(horizontal=True, reverse=True)
        self.top_down = SPNBlock(horizontal=False, reverse=False)
        self.down_top = SPNBlock(horizontal=False, reverse=True)
        self.post = nn.Conv2d(nf, 3, 3, 1, 1)

    def guidance(self, rgb: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The guide image ``(N, 3, H, W)`` -> 12 gate tensors ``(N, nf, H, W)`` (G1..G3 of each direction)."""
        return torch.split(self.decoder(self.encoder(rgb)), self.nf, dim=1)

    def propagate_all(self, feat: torch.Tensor, g: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """``(N, nf, H, W)`` -> the elementwise maximum of the four directional propagations."""
        out = self.left_right(feat, g[0], g[1], g[2])
        out = torch.max(out, self.right_left(feat, g[3], g[4], g[5]))
        out = torch.max(out, self.top_down(feat, g[6], g[7], g[8]))
        return torch.max(out, self.down_top(feat, g[9], g[10], g[11]))

    def forward(self, x: torch.Tensor, rgb: torch.Tensor) -> torch.Tensor:
        return self.post(self.propagate_all(self.mask_conv(x), self.guidance(rgb)))
