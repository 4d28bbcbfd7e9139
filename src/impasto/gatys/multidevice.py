"""Multi-device layer splitting (neural-style-pt's ``-gpu 0,1,c -multidevice_strategy 3,6``).

Successive layer ranges of the feature network run on successive devices; the activation moves to the next
device at each boundary. Losses are computed where their layer's activation lives and summed on the first device
(neural-style-pt's "backward device"), so the result is the same as on one device.

``multidevice_strategy`` counts as neural-style-pt does: indices into its loss-augmented module list -- the TV
module first (when ``tv_weight > 0``), then every network layer, each followed by its content loss and then its
style loss module when that layer is tapped -- and a split after index ``i`` keeps modules ``0..i`` on the current
device. impasto also accepts layer names (split after that layer), which are easier to read.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch
from torch import nn

from ..devices import resolve_device
from ..errors import ConfigError

__all__ = ["SplitFeatureNet", "parse_devices", "split_boundaries"]


def parse_devices(spec: str) -> list[torch.device]:
    """``"auto"``, ``"c"``, ``"0"`` or a list ``"0,1,c"`` -> devices (ConfigError for one that does not exist)."""
    items = [s.strip() for s in str(spec).split(",")]
    if any(not s for s in items):
        raise ConfigError(f"gpu {spec!r} has an empty entry; use e.g. 0,1,c")
    if len(items) > 1 and "auto" in (s.lower() for s in items):
        raise ConfigError(f"gpu {spec!r}: 'auto' cannot be part of a device list")
    return [resolve_device(s) for s in items]


def _augmented(layer_names: Sequence[str], content: Iterable[str], style: Iterable[str], tv: bool) -> list[int]:
    """For each module of neural-style-pt's augmented net: how many network layers run up to and including it."""
    content_set, style_set = set(content), set(style)
    out: list[int] = [0] if tv else []
    for j, name in enumerate(layer_names):
        out.append(j + 1)
        if name in content_set:
            out.append(j + 1)
        if name in style_set:
            out.append(j + 1)
    return out


def split_boundaries(
    strategy: str,
    layer_names: Sequence[str],
    n_devices: int,
    *,
    content_layers: Iterable[str] = (),
    style_layers: Iterable[str] = (),
    tv: bool = True,
) -> list[int]:
    """Layer boundaries ``[0, b1, ..., len(layer_names)]``: device ``d`` runs layers ``b[d] .. b[d+1]-1``.

    ``layer_names``: the network's built layers in order (up to the deepest tapped one). Raises ConfigError when
    the strategy does not have ``n_devices - 1`` entries, is not increasing, or reaches past the network.
    """
    items = [s.strip() for s in str(strategy).split(",") if s.strip()]
    if len(items) != n_devices - 1:
        raise ConfigError(
            f"multidevice_strategy {strategy!r} has {len(items)} split point(s) but {n_devices} devices need "
            f"{n_devices - 1}"
        )
    augmented = _augmented(layer_names, content_layers, style_layers, tv)
    bounds = [0]
    last_index = -1
    for item in items:
        if item.isdigit():
            index = int(item)
            if index >= len(augmented):
                raise ConfigError(
                    f"multidevice_strategy index {index} is past the end of the network, whose modules (layers and "
                    f"loss modules, as neural-style-pt counts them) are numbered 0..{len(augmented) - 1}"
                )
            if index <= last_index:
                raise ConfigError(f"multidevice_strategy {strategy!r} must be increasing")
            last_index = index
            bounds.append(augmented[index])
        elif item in layer_names:
            b = list(layer_names).index(item) + 1
            if b < bounds[-1]:
                raise ConfigError(f"multidevice_strategy {strategy!r} must follow the network's layer order")
            bounds.append(b)
        else:
            raise ConfigError(
                f"multidevice_strategy entry {item!r} is neither a module index nor a layer of this network "
                f"({', '.join(layer_names)})"
            )
    bounds.append(len(layer_names))
    return bounds


class SplitFeatureNet(nn.Module):
    """A feature network (with ``run_range``) whose layer ranges live on different devices.

    Same API as the wrapped network: ``layer_names`` and ``features(x, names)``; each returned activation is on
    the device of the layer that made it.
    """

    def __init__(self, net: Any, devices: Sequence[torch.device], bounds: Sequence[int]) -> None:
        super().__init__()
        if not hasattr(net, "apply_layer"):
            raise ConfigError("this feature network cannot be split over several devices; use one device")
        if len(bounds) != len(devices) + 1:
            raise ValueError("need one boundary more than devices")
        self.net = net
        self.devices = list(devices)
        self.bounds = list(bounds)
        self.layer_names = net.layer_names
        for d, device in enumerate(self.devices):
            for layer in net.layers[self.bounds[d] : self.bounds[d + 1]]:
                if layer.kind == "conv":
                    net.convs[layer.name].to(device)

    def device_of(self, name: str) -> torch.device:
        """The device that computes layer ``name``."""
        i = self.net.depth_of(name)
        for d in range(len(self.devices)):
            if self.bounds[d] <= i < self.bounds[d + 1]:
                return self.devices[d]
        return self.devices[-1]

    def iter_features(self, x: torch.Tensor, names: Iterable[str]) -> Iterator[tuple[str, torch.Tensor]]:
        """``(name, activation)`` in network order, moving ``x`` to the next device at each boundary."""
        wanted = set(names)
        self.net.check_names(wanted)
        if not wanted:
            return
        device_at = {self.bounds[d]: dev for d, dev in enumerate(self.devices)}
        for i in range(max(self.net.depth_of(n) for n in wanted) + 1):
            if i in device_at:
                x = x.to(device_at[i])
            x = self.net.apply_layer(i, x, wanted)
            name = self.net.layers[i].name
            if name in wanted:
                yield name, x

    def features(self, x: torch.Tensor, names: Iterable[str]) -> dict[str, torch.Tensor]:
        return dict(self.iter_features(x, names))
