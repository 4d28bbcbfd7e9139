"""VGG-16/19 feature networks with neural-style-pt's layer names (``conv1_1``, ``relu1_1``, ..., ``pool1``, ...).

A network is a straight list of named layers (conv / relu / pool) and a :meth:`TappedNet.features` call that runs
only as deep as the deepest name asked for and returns those activations. Only the layers up to ``upto`` are
built, every weight is frozen (``requires_grad_(False)``), and the module is in eval mode.

In-place ReLU saves memory, but a ReLU that runs in place overwrites the convolution output before it: when a
``conv*`` layer is tapped its ReLU runs out of place, so a tapped activation is never changed by a later layer.
(neural-style-pt always uses in-place ReLUs, so choosing ``conv*`` layers there fails in the backward pass.)

Images: ``(N, 3, H, W)`` float, already preprocessed for the weights (Caffe BGR 0-255 minus mean, or torchvision
RGB normalised); the preprocessing belongs to the caller. No I/O here.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError

__all__ = [
    "Layer",
    "TappedNet",
    "VGG",
    "VGG16_CHANNELS",
    "VGG19_CHANNELS",
    "VGG_DEFAULT_CONTENT_LAYERS",
    "VGG_DEFAULT_STYLE_LAYERS",
    "vgg_layers",
]

# Channel lists as neural-style-pt's CaffeLoader writes them: a number is a 3x3 conv (+ ReLU), "P" a 2x2 pool.
VGG16_CHANNELS: tuple[int | str, ...] = (
    64, 64, "P", 128, 128, "P", 256, 256, 256, "P", 512, 512, 512, "P", 512, 512, 512, "P",
)  # fmt: skip
VGG19_CHANNELS: tuple[int | str, ...] = (
    64, 64, "P", 128, 128, "P", 256, 256, 256, 256, "P", 512, 512, 512, 512, "P", 512, 512, 512, 512, "P",
)  # fmt: skip

# neural-style-pt's defaults (Gatys et al. 2016).
VGG_DEFAULT_CONTENT_LAYERS: tuple[str, ...] = ("relu4_2",)
VGG_DEFAULT_STYLE_LAYERS: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


@dataclass(frozen=True)
class Layer:
    """One named layer. ``kind``: "conv", "relu" or "pool".

    conv: ``in_ch -> out_ch``, square ``kernel``, ``stride``, ``padding``; pool: ``kernel``, ``stride``,
    ``ceil_mode`` and ``mode`` ("max" or "avg").
    """

    name: str
    kind: str
    in_ch: int = 0
    out_ch: int = 0
    kernel: int = 0
    stride: int = 1
    padding: int = 0
    ceil_mode: bool = False
    mode: str = "max"


def vgg_layers(channels: Sequence[int | str], pooling: str = "max") -> list[Layer]:
    """The named layer list of a VGG given its channel list (see :data:`VGG19_CHANNELS`)."""
    layers: list[Layer] = []
    block, index, in_ch = 1, 1, 3
    for c in channels:
        if c == "P":
            layers.append(Layer(f"pool{block}", "pool", kernel=2, stride=2, mode=pooling))
            block, index = block + 1, 1
        else:
            out_ch = int(c)
            layers.append(Layer(f"conv{block}_{index}", "conv", in_ch, out_ch, kernel=3, padding=1))
            layers.append(Layer(f"relu{block}_{index}", "relu"))
            index, in_ch = index + 1, out_ch
    return layers


class TappedNet(nn.Module):
    """A frozen chain of named conv/relu/pool layers with a named-activation API.

    ``layers``: the whole architecture (its names are :attr:`all_layer_names`); only ``layers[: upto + 1]`` are
    built (:attr:`layer_names`). Parameters live in ``self.convs[<conv name>]`` (``nn.Conv2d``).
    """

    family = "net"

    def __init__(self, layers: Sequence[Layer], pooling: str = "max", upto: str | None = None) -> None:
        super().__init__()
        if pooling not in ("max", "avg"):
            raise ConfigError(f"pooling must be 'max' or 'avg', not {pooling!r}")
        self.pooling = pooling
        self.all_layer_names: tuple[str, ...] = tuple(layer.name for layer in layers)
        stop = len(layers)
        if upto is not None:
            if upto not in self.all_layer_names:
                raise ConfigError(self._unknown_message([upto], self.all_layer_names))
            stop = self.all_layer_names.index(upto) + 1
        self.layers: tuple[Layer, ...] = tuple(layers[:stop])
        self.layer_names: tuple[str, ...] = tuple(layer.name for layer in self.layers)
        self._depth = {name: i for i, name in enumerate(self.layer_names)}
        self.convs = nn.ModuleDict()
        for layer in self.layers:
            if layer.kind == "conv":
                self.convs[layer.name] = nn.Conv2d(
                    layer.in_ch, layer.out_ch, layer.kernel, stride=layer.stride, padding=layer.padding
                )
        self.requires_grad_(False)
        self.eval()

    def _unknown_message(self, unknown: Iterable[str], valid: Sequence[str]) -> str:
        names = ", ".join(repr(n) for n in unknown)
        return f"unknown {self.family} layer(s) {names}; valid: {', '.join(valid)}"

    def check_names(self, names: Iterable[str]) -> None:
        """Raise ConfigError (listing the valid names) unless every name is a built layer."""
        unknown = [n for n in dict.fromkeys(names) if n not in self._depth]
        if not unknown:
            return
        foreign = [n for n in unknown if n not in self.all_layer_names]
        if foreign:
            raise ConfigError(self._unknown_message(foreign, self.all_layer_names))
        raise ConfigError(
            f"layer(s) {', '.join(map(repr, unknown))} lie beyond {self.layer_names[-1]!r}, the deepest "
            "layer this network was built for"
        )

    def depth_of(self, name: str) -> int:
        """Position of a built layer in :attr:`layer_names`."""
        self.check_names([name])
        return self._depth[name]

    def apply_layer(self, i: int, x: torch.Tensor, wanted: set[str]) -> torch.Tensor:
        """Built layer ``i`` applied to ``x``; ``wanted`` (the tapped names) decides whether a ReLU may run in place."""
        layer = self.layers[i]
        if layer.kind == "conv":
            return self.convs[layer.name](x)
        if layer.kind == "relu":
            # In place unless the conv output just before is tapped (it would be overwritten).
            return F.relu(x, inplace=i > 0 and self.layers[i - 1].name not in wanted)
        if layer.mode == "max":
            return F.max_pool2d(x, layer.kernel, layer.stride, 0, ceil_mode=layer.ceil_mode)
        return F.avg_pool2d(x, layer.kernel, layer.stride, 0, ceil_mode=layer.ceil_mode)

    def run_range(
        self, x: torch.Tensor, start: int, stop: int, wanted: set[str], out: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        """Run built layers ``start .. stop-1`` on ``x``, storing the activations named in ``wanted`` in ``out``."""
        for i in range(start, stop):
            x = self.apply_layer(i, x, wanted)
            if self.layers[i].name in wanted:
                out[self.layers[i].name] = x
        return x

    def iter_features(self, x: torch.Tensor, names: Iterable[str]) -> Iterator[tuple[str, torch.Tensor]]:
        """``(name, activation)`` for ``names`` in network order, each yielded as soon as it is computed.

        A caller that builds its loss on each activation before asking for the next one creates the autograd
        graph in the same order as a network with loss modules between its layers (neural-style-pt's).
        """
        wanted = set(names)
        self.check_names(wanted)
        if not wanted:
            return
        for i in range(max(self._depth[n] for n in wanted) + 1):
            x = self.apply_layer(i, x, wanted)
            if self.layers[i].name in wanted:
                yield self.layers[i].name, x

    def features(self, x: torch.Tensor, names: Iterable[str]) -> dict[str, torch.Tensor]:
        """Activations ``{name: (N, C, h, w)}`` of ``x`` (N, 3, H, W) for ``names``; runs only as deep as needed.

        Raises ConfigError listing the valid names when one is unknown.
        """
        return dict(self.iter_features(x, names))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The activation of the deepest built layer."""
        return self.features(x, [self.layer_names[-1]])[self.layer_names[-1]]


class VGG(TappedNet):
    """VGG-16 or VGG-19 (or a channel-pruned variant) as neural-style-pt builds it: 3x3 convs, 2x2 pools.

    ``channels``: :data:`VGG19_CHANNELS`, :data:`VGG16_CHANNELS` or another list of the same shape.
    """

    family = "VGG"

    def __init__(
        self, channels: Sequence[int | str] = VGG19_CHANNELS, pooling: str = "max", upto: str | None = None
    ) -> None:
        self.channels = tuple(channels)
        super().__init__(vgg_layers(self.channels, pooling), pooling=pooling, upto=upto)

    default_content_layers = VGG_DEFAULT_CONTENT_LAYERS
    default_style_layers = VGG_DEFAULT_STYLE_LAYERS
