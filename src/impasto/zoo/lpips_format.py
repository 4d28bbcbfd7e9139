"""LPIPS weight files: format checks and the loader of :class:`impasto.nets.lpips.LPIPS`.

Formats read (plain state dicts, ``torch.load(weights_only=True)`` through :func:`impasto.zoo.store.read_tensors`):

* ``lpips-linear``: the reference ``lpips`` package's ``weights/v0.1/{alex,vgg}.pth``: five keys
  ``lin{i}.model.1.weight`` of shape (1, C_i, 1, 1) (``model.0`` is a Dropout, so the conv is ``model.1``),
  C = 64, 192, 384, 256, 256 for AlexNet and 64, 128, 256, 512, 512 for VGG-16.
* ``torch-alexnet-torchvision``: torchvision's ``alexnet-owt-7be5be79.pth``: ``features.{0,3,6,8,10}.weight|bias``
  with torchvision's shapes, and ``classifier.{1,4,6}.weight|bias`` (allowed by name, unused: LPIPS needs no
  classifier, so their shapes are not checked).

The VGG-16 trunk (``vgg16.torch``, torchvision's file) goes through :mod:`impasto.zoo.torch_formats`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch

from ..errors import ConfigError, WeightsError
from ..nets.lpips import (
    ALEX_CHANNELS,
    ALEX_CONV_INDICES,
    ALEX_KERNELS,
    ALEX_TAPS,
    LPIPS,
    VGG_CHANNELS,
    VGG_TAPS,
    AlexNet,
)
from . import registry
from .registry import WeightSet
from .store import read_tensors

__all__ = [
    "NETS",
    "check_alexnet",
    "check_lin",
    "check_weight_set",
    "load_lpips",
    "load_lpips_files",
    "missing_message",
    "missing_sets",
]

NETS = ("alex", "vgg")
_LIN_CHANNELS = {"alexnet": ALEX_CHANNELS, "vgg16": VGG_CHANNELS}
_CLASSIFIER_KEYS = {f"classifier.{i}.{p}" for i in (1, 4, 6) for p in ("weight", "bias")}


def _lin_key(i: int) -> str:
    return f"lin{i}.model.1.weight"


def check_lin(sd: Mapping[str, torch.Tensor], channels: tuple[int, ...], source: str) -> list[torch.Tensor]:
    """The five linear weights (1, C_i, 1, 1) of an LPIPS lin file, every key and shape checked."""
    out: list[torch.Tensor] = []
    for i, c in enumerate(channels):
        key = _lin_key(i)
        if key not in sd:
            raise WeightsError(f"{source}: key {key!r} is missing; an LPIPS v0.1 file has lin0..lin4.model.1.weight")
        w = sd[key]
        if tuple(w.shape) != (1, c, 1, 1):
            raise WeightsError(f"{source}: key {key!r} has shape {tuple(w.shape)}; expected (1, {c}, 1, 1)")
        if not w.is_floating_point():
            raise WeightsError(f"{source}: key {key!r} holds {w.dtype} values; expected floating point")
        out.append(w.float())
    unknown = [k for k in sd if k not in {_lin_key(i) for i in range(len(channels))}]
    if unknown:
        raise WeightsError(f"{source}: unexpected key {unknown[0]!r} for an LPIPS v0.1 file ({len(unknown)} in all)")
    return out


def check_alexnet(sd: Mapping[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """torchvision AlexNet ``features.*`` checked key by key -> :class:`AlexNet`'s own keys (``N.weight|bias``)."""
    out: dict[str, torch.Tensor] = {}
    in_ch = 3
    for pos, k, c in zip(ALEX_CONV_INDICES, ALEX_KERNELS, ALEX_CHANNELS, strict=True):
        for part, shape in (("weight", (c, in_ch, k, k)), ("bias", (c,))):
            key = f"features.{pos}.{part}"
            if key not in sd:
                raise WeightsError(f"{source}: key {key!r} is missing; expected torchvision's AlexNet layout")
            if tuple(sd[key].shape) != shape:
                raise WeightsError(f"{source}: key {key!r} has shape {tuple(sd[key].shape)}; expected {shape}")
            if not sd[key].is_floating_point():
                raise WeightsError(f"{source}: key {key!r} holds {sd[key].dtype} values; expected floating point")
            out[f"{pos}.{part}"] = sd[key].float()
        in_ch = c
    unknown = [k for k in sd if k.removeprefix("features.") not in out and k not in _CLASSIFIER_KEYS]
    if unknown:
        raise WeightsError(f"{source}: unexpected key {unknown[0]!r} for torchvision's AlexNet ({len(unknown)} in all)")
    return out


def _trunk_kind(ws: WeightSet) -> str:
    return registry.get(ws.extra["trunk"]).kind


def check_weight_set(ws: WeightSet, paths: list[Path]) -> None:
    """Format check for ``impasto models import/verify`` of an LPIPS lin file or the AlexNet trunk."""
    for p in paths:
        sd = read_tensors(p)
        if ws.kind == "alexnet":
            check_alexnet(sd, p.name)
        else:
            check_lin(sd, _LIN_CHANNELS[_trunk_kind(ws)], p.name)


def _check_net(net: str) -> None:
    if net not in NETS:
        raise ConfigError(f"LPIPS network must be one of {', '.join(NETS)}, not {net!r}")


def missing_sets(net: str = "alex") -> list[str]:
    """The weight sets LPIPS with ``net`` needs that are not installed: ``lpips.<net>`` and its trunk."""
    from .store import is_installed

    _check_net(net)
    lin = f"lpips.{net}"
    return [n for n in (lin, registry.get(lin).extra["trunk"]) if not is_installed(n)]


def missing_message(net: str = "alex") -> str:
    """One sentence naming the missing sets and the commands that install them ("" when none is missing)."""
    missing = missing_sets(net)
    if not missing:
        return ""
    downloads = " and ".join(f"'impasto models download {n}'" for n in missing)
    return (
        f"LPIPS ({net}) needs weight set(s) {' and '.join(missing)}, not installed; run {downloads} on a connected "
        "machine, or 'impasto models import NAME FILE' with copies you already have"
    )


def load_lpips_files(
    net: str, trunk_file: str | os.PathLike[str], lin_file: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> LPIPS:
    """A frozen, eval-mode LPIPS from a trunk file (torchvision AlexNet or VGG-16) and a v0.1 lin file."""
    _check_net(net)
    trunk: torch.nn.Module
    if net == "alex":
        trunk = AlexNet()
        trunk.load_state_dict(check_alexnet(read_tensors(trunk_file), str(trunk_file)), strict=True)
        taps, channels = ALEX_TAPS, ALEX_CHANNELS
    else:
        from .torch_formats import build_net, read_weights

        weights = read_weights(trunk_file, weight_set="vgg16.torch")
        if weights.widths != (64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512):
            raise WeightsError(f"{trunk_file}: a VGG-16 with conv widths {weights.widths}, not torchvision's")
        trunk = build_net(weights, upto="relu5_3")
        taps, channels = VGG_TAPS, VGG_CHANNELS
    lins = check_lin(read_tensors(lin_file), channels, str(lin_file))
    return LPIPS(trunk, taps, lins).to(device).requires_grad_(False).eval()


def load_lpips(net: str = "alex", device: str | torch.device = "cpu") -> LPIPS:
    """LPIPS v0.1 with ``net`` ("alex" or "vgg") from the installed weight sets.

    WeightsError naming the missing sets and the commands that install them when ``lpips.<net>`` or its trunk
    (``alexnet.torch`` / ``vgg16.torch``) is not installed.
    """
    from .store import files_for

    message = missing_message(net)
    if message:
        raise WeightsError(message)
    lin = registry.get(f"lpips.{net}")
    return load_lpips_files(net, files_for(lin.extra["trunk"])[0], files_for(lin)[0], device)
