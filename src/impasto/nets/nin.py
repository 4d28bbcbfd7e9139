"""Network-in-Network (ImageNet, Caffe model zoo) with neural-style-pt's layer names.

Layer order and names follow neural-style-pt's CaffeLoader: convs ``conv1, cccp1, cccp2, conv2, cccp3, cccp4,
conv3, cccp5, cccp6, conv4-1024, cccp7-1024, cccp8-1024``; ReLUs ``relu0 relu1 relu2 relu3 relu5 relu6 relu7
relu8 relu9 relu10 relu11 relu12`` (there is no ``relu4``); pools ``pool1..pool3`` (3x3, stride 2, ceil mode,
max or avg per ``pooling``) and ``pool4`` (the final 6x6 average pool). The dropout before ``conv4-1024`` and the
softmax at the end are not part of the feature network (neural-style-pt skips them too).

Input ``(N, 3, H, W)`` Caffe-preprocessed (BGR, 0-255, mean subtracted). No I/O here.
"""

from __future__ import annotations

from collections.abc import Sequence

from .vgg import Layer, TappedNet

__all__ = ["NIN", "NIN_CHANNELS", "NIN_DEFAULT_CONTENT_LAYERS", "NIN_DEFAULT_STYLE_LAYERS", "nin_layers"]

# Output channels of the 12 convs of the ImageNet NIN.
NIN_CHANNELS: tuple[int, ...] = (96, 96, 96, 256, 256, 256, 384, 384, 384, 1024, 1024, 1000)
NIN_CONV_NAMES = (
    "conv1", "cccp1", "cccp2", "conv2", "cccp3", "cccp4", "conv3", "cccp5", "cccp6",
    "conv4-1024", "cccp7-1024", "cccp8-1024",
)  # fmt: skip
NIN_RELU_NAMES = (
    "relu0", "relu1", "relu2", "relu3", "relu5", "relu6", "relu7", "relu8", "relu9", "relu10", "relu11", "relu12",
)  # fmt: skip
# (kernel, stride, padding) per conv
NIN_CONV_GEOMETRY = (
    (11, 4, 0), (1, 1, 0), (1, 1, 0),
    (5, 1, 2), (1, 1, 0), (1, 1, 0),
    (3, 1, 1), (1, 1, 0), (1, 1, 0),
    (3, 1, 1), (1, 1, 0), (1, 1, 0),
)  # fmt: skip

# neural-style-pt's README example for NIN uses the same layers for content and style; impasto's defaults for
# NIN take the style layers from there and one mid-level content layer.
NIN_DEFAULT_CONTENT_LAYERS: tuple[str, ...] = ("relu7",)
NIN_DEFAULT_STYLE_LAYERS: tuple[str, ...] = ("relu0", "relu3", "relu7", "relu12")


def nin_layers(channels: Sequence[int] = NIN_CHANNELS, pooling: str = "max") -> list[Layer]:
    """The named layer list of NIN; ``channels`` are the 12 conv widths (tests use tiny ones)."""
    if len(channels) != 12:
        raise ValueError(f"NIN has 12 convolutions, got {len(channels)} channel counts")
    layers: list[Layer] = []
    in_ch = 3
    for i, (name, relu, out_ch, (k, s, p)) in enumerate(
        zip(NIN_CONV_NAMES, NIN_RELU_NAMES, channels, NIN_CONV_GEOMETRY, strict=True)
    ):
        layers.append(Layer(name, "conv", in_ch, int(out_ch), kernel=k, stride=s, padding=p))
        layers.append(Layer(relu, "relu"))
        in_ch = int(out_ch)
        if i in (2, 5, 8):
            layers.append(Layer(f"pool{i // 3 + 1}", "pool", kernel=3, stride=2, ceil_mode=True, mode=pooling))
    layers.append(Layer("pool4", "pool", kernel=6, stride=1, ceil_mode=True, mode="avg"))
    return layers


class NIN(TappedNet):
    """Network-in-Network with neural-style-pt's layer names; ``channels`` default to the ImageNet model's."""

    family = "NIN"
    default_content_layers = NIN_DEFAULT_CONTENT_LAYERS
    default_style_layers = NIN_DEFAULT_STYLE_LAYERS

    def __init__(self, channels: Sequence[int] = NIN_CHANNELS, pooling: str = "max", upto: str | None = None) -> None:
        self.channels = tuple(channels)
        super().__init__(nin_layers(self.channels, pooling), pooling=pooling, upto=upto)
