"""Key converters for the PyTorch ``.pth`` feature networks neural-style-pt uses, and the feature-net loader.

Formats read (all plain state dicts, read with ``torch.load(weights_only=True)``):

* neural-style-pt's Caffe conversions ``vgg19-d01eb7cb.pth`` / ``vgg16-00b39a1b.pth``: keys
  ``features.N.weight|bias`` at the conv positions of ``nn.Sequential(conv, relu, ..., pool)`` plus optional
  ``classifier.*``; Caffe preprocessing (BGR, 0-255, mean subtracted).
* torchvision's ``vgg19-dcbb9e9d.pth``: the same key layout, RGB [0, 1] with ImageNet mean/std.
* ``nin_imagenet.pth`` (ProGamerGov/pytorch-nin): ``features.N`` at NIN's conv positions (a dropout sits at 21).

The architecture is recognised from the keys and shapes, never from the file name; every key and shape is checked
and an error names the one that is wrong. The two VGG-19 files share one key layout, so the preprocessing
contract comes from the registry name when one is given, else from the file's sha256 matching a registry
entry's published prefix, else Caffe (what neural-style-pt assumes for every file).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError, WeightsError
from ..nets.nin import NIN, NIN_CONV_GEOMETRY, NIN_CONV_NAMES
from ..nets.vgg import VGG
from . import registry
from .registry import CAFFE_BGR, WeightSet
from .store import read_tensors

log = logging.getLogger(__name__)

__all__ = [
    "ModelLayoutError",
    "LoadedWeights",
    "build_net",
    "check_weight_set",
    "detect_layout",
    "FeatureSource",
    "load_feature_net",
    "open_feature_source",
    "read_state_dict",
    "read_weights",
    "resolve_model",
]

_VGG_BLOCKS = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}
_DISPLAY = {"vgg19": "VGG-19", "vgg16": "VGG-16", "nin": "NIN"}
DEFAULT_VGG = "vgg19.caffe"
OFFLINE_DEFAULT = "mobilenetv2.magenta"


class ModelLayoutError(WeightsError):
    """A model file whose keys/shapes match no network impasto knows: a usage mistake (exit 2)."""

    exit_code = 2


def _vgg_positions(kind: str) -> list[int]:
    """Positions of the convs inside neural-style-pt's / torchvision's ``features`` Sequential."""
    out, i = [], 0
    for n in _VGG_BLOCKS[kind]:
        for _ in range(n):
            out.append(i)
            i += 2  # conv, relu
        i += 1  # pool
    return out


# NIN: conv, relu pairs; pools after the 3rd, 6th, 9th conv; a dropout after the 3rd pool.
_NIN_POSITIONS = [0, 2, 4, 7, 9, 11, 14, 16, 18, 22, 24, 26]
_POSITIONS = {"vgg19": _vgg_positions("vgg19"), "vgg16": _vgg_positions("vgg16"), "nin": _NIN_POSITIONS}


def _conv_names(kind: str) -> list[str]:
    if kind == "nin":
        return list(NIN_CONV_NAMES)
    return [f"conv{b}_{i}" for b, n in enumerate(_VGG_BLOCKS[kind], 1) for i in range(1, n + 1)]


def _kernels(kind: str) -> list[int]:
    return [g[0] for g in NIN_CONV_GEOMETRY] if kind == "nin" else [3] * len(_POSITIONS[kind])


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """A ``.pth`` state dict read with ``weights_only=True``; ModelLayoutError (exit 2) for anything else."""
    return read_tensors(path, ModelLayoutError)


def detect_layout(
    sd: Mapping[str, torch.Tensor], source: str = "the file", *, disable_check: bool = False
) -> tuple[str, tuple[int, ...]]:
    """Recognise the network in a state dict from its keys and shapes: ``(kind, conv output widths)``.

    ``kind`` is ``vgg19``, ``vgg16`` or ``nin``. Checks every ``features.*`` key and shape (chained channel
    counts, kernel sizes, biases); ``classifier.*`` keys are allowed and unused. Unknown keys are an error unless
    ``disable_check`` (then they are ignored with a warning, like neural-style-pt's ``-disable_check``); missing
    layers are always an error, since painting with random weights is never what anyone wants.
    """
    conv_pos: list[int] = []
    for key, value in sd.items():
        parts = key.split(".")
        if len(parts) == 3 and parts[0] == "features" and parts[1].isdigit() and parts[2] == "weight":
            if value.dim() == 4:
                conv_pos.append(int(parts[1]))
    conv_pos.sort()
    kind = next((k for k, pos in _POSITIONS.items() if pos == conv_pos), None)
    if kind is None:
        found = conv_pos if conv_pos else "none"
        raise ModelLayoutError(
            f"cannot recognise the network in {source}: it has 4-d 'features.N.weight' tensors at N = {found}; "
            "impasto reads VGG-19 and VGG-16 (neural-style-pt's Caffe conversions or torchvision's files) and NIN "
            "(nin_imagenet.pth)"
        )
    widths: list[int] = []
    in_ch = 3
    expected_keys: set[str] = set()
    for pos, name, k in zip(_POSITIONS[kind], _conv_names(kind), _kernels(kind), strict=True):
        wkey, bkey = f"features.{pos}.weight", f"features.{pos}.bias"
        expected_keys |= {wkey, bkey}
        w = sd[wkey]
        out_ch = int(w.shape[0])
        if tuple(w.shape) != (out_ch, in_ch, k, k):
            raise WeightsError(
                f"{source}: {wkey} ({name}) has shape {tuple(w.shape)}; expected ({out_ch}, {in_ch}, {k}, {k})"
            )
        if bkey not in sd:
            raise WeightsError(f"{source}: {bkey} ({name} bias) is missing")
        if tuple(sd[bkey].shape) != (out_ch,):
            raise WeightsError(
                f"{source}: {bkey} ({name} bias) has shape {tuple(sd[bkey].shape)}; expected ({out_ch},)"
            )
        for key in (wkey, bkey):
            if not sd[key].is_floating_point():
                raise WeightsError(f"{source}: {key} holds {sd[key].dtype} values; expected floating point")
        widths.append(out_ch)
        in_ch = out_ch
    unknown = [k for k in sd if k not in expected_keys and not k.startswith("classifier.")]
    if unknown:
        message = f"{source}: unexpected key {unknown[0]!r} for a {_DISPLAY[kind]} file ({len(unknown)} in all)"
        if not disable_check:
            raise WeightsError(message + "; pass disable_check to ignore unexpected keys")
        log.warning("%s; ignored (disable_check)", message)
    return kind, tuple(widths)


def _to_impasto_keys(sd: Mapping[str, torch.Tensor], kind: str) -> dict[str, torch.Tensor]:
    """``features.N.weight`` -> ``convs.<layer name>.weight`` (float32)."""
    out: dict[str, torch.Tensor] = {}
    for pos, name in zip(_POSITIONS[kind], _conv_names(kind), strict=True):
        out[f"convs.{name}.weight"] = sd[f"features.{pos}.weight"].float()
        out[f"convs.{name}.bias"] = sd[f"features.{pos}.bias"].float()
    return out


@dataclass(frozen=True)
class LoadedWeights:
    """A recognised, checked feature-network state dict, ready to build from."""

    kind: str  # vgg19 | vgg16 | nin
    widths: tuple[int, ...]  # conv output widths in order
    state: dict[str, torch.Tensor]  # impasto keys: convs.<name>.weight|bias
    preprocessing: str  # a registry contract: caffe-bgr or torch-rgb
    display: str  # e.g. "vgg19.caffe (VGG-19)"
    source: str

    def layer_names(self, pooling: str = "max") -> tuple[str, ...]:
        """Every layer name of this architecture, in order."""
        return _make_net(self.kind, self.widths, pooling, None).all_layer_names


def _make_net(kind: str, widths: Sequence[int], pooling: str, upto: str | None) -> VGG | NIN:
    if kind == "nin":
        return NIN(widths, pooling=pooling, upto=upto)
    channels: list[int | str] = []
    it = iter(widths)
    for n in _VGG_BLOCKS[kind]:
        channels.extend(next(it) for _ in range(n))
        channels.append("P")
    return VGG(channels, pooling=pooling, upto=upto)


def _sha256_contract(path: Path, kind: str) -> WeightSet | None:
    """The registry entry whose published sha256 (or prefix) the file matches, if any."""
    from .store import sha256_of

    candidates = [ws for ws in registry.REGISTRY.values() if ws.kind == kind]
    if not candidates:
        return None
    digest = sha256_of(path)
    for ws in candidates:
        if any(h and digest == h for h in ws.sha256) or any(p and digest.startswith(p) for p in ws.sha256_prefix):
            return ws
    return None


def read_weights(
    path: str | os.PathLike[str], *, weight_set: str | None = None, disable_check: bool = False
) -> LoadedWeights:
    """Read and check a VGG/NIN ``.pth`` file; ``weight_set`` (a registry name) fixes its preprocessing contract."""
    p = Path(path)
    sd = read_state_dict(p)
    kind, widths = detect_layout(sd, str(p), disable_check=disable_check)
    ws = registry.get(weight_set) if weight_set else _sha256_contract(p, kind)
    if ws is not None and ws.kind not in (kind, ""):
        raise WeightsError(f"{p} holds a {_DISPLAY[kind]} but weight set {ws.name!r} is a {ws.kind}")
    contract = ws.preprocessing if ws is not None else CAFFE_BGR
    display = f"{ws.name} ({_DISPLAY[kind]})" if ws is not None else f"{_DISPLAY[kind]} from {p.name} ({contract})"
    return LoadedWeights(kind, widths, _to_impasto_keys(sd, kind), contract, display, str(p))


def build_net(
    weights: LoadedWeights, *, pooling: str = "max", upto: str | None = None, device: str | torch.device = "cpu"
) -> VGG | NIN:
    """The frozen network of ``weights`` built only up to layer ``upto`` (all layers when None)."""
    with torch.device("meta"):  # no throw-away random initialisation of 20M weights
        net = _make_net(weights.kind, weights.widths, pooling, upto)
    wanted = net.state_dict().keys()
    net.load_state_dict({k: weights.state[k].clone() for k in wanted}, strict=True, assign=True)
    return net.to(device).requires_grad_(False).eval()


def resolve_model(model: str | None, model_file: str | None) -> str | None:
    """The registry name a run uses: ``model``; None when only a file is given; else the default.

    Default: ``vgg19.caffe`` when installed (what neural-style-pt users expect), else the offline
    ``mobilenetv2.magenta``.
    """
    if model is not None:
        registry.get(model)  # UnknownModelError listing the names
        return model
    if model_file is not None:
        return None
    from .store import is_installed

    return DEFAULT_VGG if is_installed(DEFAULT_VGG) else OFFLINE_DEFAULT


def _load_mobilenet(device: str | torch.device) -> nn.Module:
    # Lazy: the ONNX converter (and onnx itself) is only needed when this network is used.
    from .magenta_onnx import load_mobilenet

    return load_mobilenet(device)


@dataclass
class FeatureSource:
    """A feature network opened but not yet built: its layer vocabulary, defaults and preprocessing contract.

    Open once (reading and checking the file), resolve the layers a run taps, then :meth:`build` only as deep as
    the deepest of them.
    """

    kind: str  # vgg19 | vgg16 | nin | mobilenetv2
    preprocessing: str
    display: str
    layer_names: tuple[str, ...]
    default_content_layers: tuple[str, ...]
    default_style_layers: tuple[str, ...]
    weights: LoadedWeights | None = None  # None for the MobileNetV2 (built by its own loader)
    # PaintConfig values this network paints best with, for the fields left at "the network's" (None)
    recommended: dict[str, Any] = field(default_factory=dict)

    @property
    def family(self) -> str:
        return _DISPLAY.get(self.kind, "MobileNetV2")

    def check_layers(self, names: Sequence[str], what: str = "layer") -> None:
        """ConfigError listing this network's valid layer names unless every name is one of them."""
        unknown = [n for n in dict.fromkeys(names) if n not in self.layer_names]
        if unknown:
            raise ConfigError(
                f"unknown {self.family} {what}(s) {', '.join(map(repr, unknown))}; valid: {', '.join(self.layer_names)}"
            )

    def build(self, layers: Sequence[str] | None = None, device: str | torch.device = "cpu", pooling: str = "max"):  # noqa: ANN201
        """The frozen network, built only up to the deepest of ``layers`` (all when None)."""
        if self.weights is None:
            if pooling != "max":
                log.warning("pooling=%s has no effect on the MobileNetV2 network", pooling)
            return _load_mobilenet(device)
        upto = None
        if layers:
            self.check_layers(layers)
            upto = max(layers, key=self.layer_names.index)
        return build_net(self.weights, pooling=pooling, upto=upto, device=device)


def open_feature_source(
    model: str | None, model_file: str | os.PathLike[str] | None, *, disable_check: bool = False
) -> FeatureSource:
    """Find, read and check the feature network for a registry name and/or a file (see :func:`resolve_model`)."""
    name = resolve_model(model, None if model_file is None else str(model_file))
    if name is not None and registry.get(name).kind == "mobilenetv2":
        if model_file is not None:
            raise ConfigError(
                "model_file is for VGG/NIN .pth files; the MobileNetV2 network comes from its registry entry"
            )
        from ..nets import magenta

        ws = registry.get(name)
        return FeatureSource(
            "mobilenetv2",
            ws.preprocessing,
            f"{name} (MobileNetV2, not VGG)",
            tuple(magenta.PREDICTOR_LAYERS),
            tuple(magenta.DEFAULT_CONTENT_LAYERS),
            tuple(magenta.DEFAULT_STYLE_LAYERS),
            recommended=dict(getattr(magenta, "PAINT_DEFAULTS", {})),
        )
    if model_file is None:
        from .store import files_for

        path = files_for(str(name))[0]
    else:
        path = Path(model_file)
    weights = read_weights(path, weight_set=name, disable_check=disable_check)
    cls = NIN if weights.kind == "nin" else VGG
    return FeatureSource(
        weights.kind,
        weights.preprocessing,
        weights.display,
        weights.layer_names(),
        tuple(cls.default_content_layers),
        tuple(cls.default_style_layers),
        weights,
    )


def load_feature_net(
    model: str | None,
    model_file: str | os.PathLike[str] | None,
    device: str | torch.device = "cpu",
    *,
    pooling: str = "max",
    layers: Sequence[str] | None = None,
    disable_check: bool = False,
) -> tuple[nn.Module, str, str]:
    """``(net, preprocessing contract, display name)`` for a registry name and/or a file.

    ``layers``: the layers a run will tap; the net is built only up to the deepest of them (all layers when
    None) and unknown names raise ConfigError listing the valid ones.
    """
    source = open_feature_source(model, model_file, disable_check=disable_check)
    return source.build(layers, device, pooling), source.preprocessing, source.display


def check_weight_set(ws: WeightSet, paths: list[Path]) -> None:
    """Format check for ``impasto models import/verify``: the file must be a VGG/NIN of the entry's kind."""
    for p in paths:
        sd = read_state_dict(p)
        kind, _ = detect_layout(sd, p.name)
        if kind != ws.kind:
            raise WeightsError(
                f"{p.name} holds a {_DISPLAY[kind]} but {ws.name!r} is a {_DISPLAY.get(ws.kind, ws.kind)}"
            )
