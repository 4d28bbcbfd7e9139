"""BigGAN-deep generator, inference only (Brock, Donahue and Simonyan, "Large Scale GAN Training for High Fidelity
Natural Image Synthesis", ICLR 2019).

The module tree and parameter names follow pytorch-pretrained-BigGAN's published PyTorch checkpoints, so that a
converted state dict has the same keys, with one difference: spectral normalisation is *folded*. Those checkpoints
store each normalised weight as ``weight_orig`` plus the power-iteration vectors ``weight_u``/``weight_v`` and divide
by ``sigma = u . (W v)`` on every call; here ``weight`` already holds ``weight_orig / sigma`` (the conversion is in
``impasto.zoo.biggan_format``). At inference sigma never changes, so computing it once is exact and free.

Where this departs from the reference computation (all exact up to float rounding unless marked):
- BN + ReLU are one affine ``x * a + b`` with per-sample ``a``, ``b`` (N, C) computed once per call in float32.
- A 2x nearest upsample followed by a 3x3 conv is computed on the small input: one 2x2 conv with 4x the output
  channels gives the four output phases (16/36 of the multiply-adds), interleaved afterwards; the upsampled tensor
  is never built.
- ``conv_to_rgb`` computes only the 3 channels that are kept (the reference computes ``channel_width`` and drops
  the rest).
- Self-attention: theta/phi/g are one 1x1 conv; ``scaled_dot_product_attention`` with scale 1 (the reference's
  unscaled softmax), q and k zero-padded to v's width so the fused kernel applies; ``gamma`` folded into the
  output 1x1 conv.
- Derived kernels (cast, folded, phase-split, in the activations' memory layout) are cached per module and rebuilt
  when a parameter changes; 1x1 convs on channels_last activations are one GEMM.
- Batch-norm statistics for a truncation: see ``stat_weights`` - the reference's rule is matched by default,
  including its quirks, and a plain linear interpolation is available with ``bn_stats="linear"``.
- Low precision (bf16/fp16) is used only for convolutions and attention; conditioning and the BN coefficients stay
  in float32, and the output is float32.

This module does no I/O: build it from a ``BigGANConfig`` and load a state dict in the folded layout.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, WeightsError

Layer = tuple[bool, int, int]  # (upsample 2x?, input channels / channel_width, output channels / channel_width)

_LAYERS_128: tuple[Layer, ...] = (
    (False, 16, 16), (True, 16, 16), (False, 16, 16), (True, 16, 8), (False, 8, 8),
    (True, 8, 4), (False, 4, 4), (True, 4, 2), (False, 2, 2), (True, 2, 1),
)  # fmt: skip
_LAYERS_256: tuple[Layer, ...] = (
    (False, 16, 16), (True, 16, 16), (False, 16, 16), (True, 16, 8), (False, 8, 8), (True, 8, 8),
    (False, 8, 8), (True, 8, 4), (False, 4, 4), (True, 4, 2), (False, 2, 2), (True, 2, 1),
)  # fmt: skip
_LAYERS_512: tuple[Layer, ...] = _LAYERS_256 + ((False, 1, 1), (True, 1, 1))

BN_STATS_MODES = ("reference", "linear")


@dataclass(frozen=True)
class BigGANConfig:
    """The fields of pytorch-pretrained-BigGAN's ``config.json``, with the same names and defaults (128 px)."""

    output_dim: int = 128  # image side in pixels; must equal 4 * 2**(number of upsampling layers)
    z_dim: int = 128  # noise width; the class embedding has this width too (cond vector = 2 * z_dim)
    class_embed_dim: int = 128  # stored by the reference but unused there (it embeds to z_dim); kept for round trips
    channel_width: int = 128  # "ch" of the paper; layer widths below are multiples of it
    num_classes: int = 1000
    layers: tuple[Layer, ...] = _LAYERS_128
    attention_layer_position: int = 8  # self-attention goes *before* the layer with this index (none if outside)
    eps: float = 1e-4  # batch-norm epsilon (the reference also uses it as spectral-norm epsilon)
    n_stats: int = 51  # stored BN statistic sets, for truncation 0, 1/(n_stats-1), ..., 1

    def __post_init__(self) -> None:
        layers = tuple((bool(u), int(i), int(o)) for u, i, o in self.layers)
        object.__setattr__(self, "layers", layers)
        problems = []
        if not layers:
            problems.append("layers is empty")
        for idx, (_up, cin, cout) in enumerate(layers):
            if cout > cin:
                problems.append(f"layer {idx} widens {cin}->{cout} (BigGAN-deep blocks keep or narrow channels)")
            if (cin * self.channel_width) % 4:
                problems.append(f"layer {idx} input width {cin * self.channel_width} is not divisible by 4")
        if layers and layers[0][1] != 16:
            problems.append(f"the first layer must take 16 * channel_width channels (got {layers[0][1]})")
        for a, b in zip(layers, layers[1:], strict=False):
            if a[2] != b[1]:
                problems.append(f"layer widths do not chain ({a} then {b})")
                break
        if layers and layers[-1][2] != 1:
            problems.append("the last layer must output channel_width channels (multiplier 1)")
        ups = sum(1 for u, _, _ in layers if u)
        if self.output_dim != 4 * 2**ups:
            problems.append(f"output_dim {self.output_dim} does not match {ups} upsampling layers ({4 * 2**ups})")
        if 0 <= self.attention_layer_position < len(layers):
            width = layers[self.attention_layer_position][1] * self.channel_width
            if width % 8:
                problems.append(f"attention width {width} is not divisible by 8")
        if self.channel_width < 3:
            problems.append("channel_width must be at least 3 (conv_to_rgb keeps 3 of its channels)")
        if self.n_stats < 2:
            problems.append("n_stats must be at least 2")
        if min(self.z_dim, self.num_classes) < 1 or self.eps <= 0:
            problems.append("z_dim, num_classes and eps must be positive")
        if problems:
            raise WeightsError("invalid BigGAN config: " + "; ".join(problems))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> BigGANConfig:
        """Build from a ``config.json`` mapping; unknown or mistyped fields raise WeightsError."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise WeightsError(f"BigGAN config has unknown field(s) {unknown}; known: {sorted(known)}")
        kwargs: dict[str, Any] = {}
        try:
            for k, v in d.items():
                if k == "layers":
                    kwargs[k] = tuple((bool(a), int(b), int(c)) for a, b, c in v)
                elif k == "eps":
                    kwargs[k] = float(v)
                else:
                    kwargs[k] = int(v)
        except (TypeError, ValueError) as exc:
            raise WeightsError(f"BigGAN config field {k!r} has a bad value {v!r}: {exc}") from None
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """The ``config.json`` mapping (layers as lists, as the reference writes them)."""
        d = asdict(self)
        d["layers"] = [list(layer) for layer in self.layers]
        return d


BIGGAN_DEEP_128 = BigGANConfig(output_dim=128, layers=_LAYERS_128)
BIGGAN_DEEP_256 = BigGANConfig(output_dim=256, layers=_LAYERS_256)
BIGGAN_DEEP_512 = BigGANConfig(output_dim=512, layers=_LAYERS_512)
PUBLISHED_CONFIGS = {128: BIGGAN_DEEP_128, 256: BIGGAN_DEEP_256, 512: BIGGAN_DEEP_512}


def stat_weights(truncation: float, n_stats: int, mode: str = "reference") -> tuple[tuple[int, float], ...]:
    """Which stored BN statistic sets to mix for ``truncation``, as ``((index, weight), ...)``.

    Set ``i`` was measured at truncation ``i / (n_stats - 1)``. ``mode="reference"`` reproduces
    pytorch-pretrained-BigGAN exactly: with ``coef, i = modf(t / step)`` it takes ``coef * S[i] + (1 - coef) *
    S[i + 1]``. That weights the *farther* grid point more (t = 0.405 mixes 25 % of S[20] (0.40) and 75 % of
    S[21] (0.42)), and float rounding makes some grid values land on a neighbour: 0.14, 0.28 and 0.56 use the
    statistics of 0.16, 0.30 and 0.58, and 0.58 and 0.94 use those of 0.56 and 0.92. Published samples were
    made this way, so it is the default. ``mode="linear"`` is the textbook interpolation (weight ``1 - frac`` on
    the lower point, grid values snapped to their own set).
    """
    if mode not in BN_STATS_MODES:
        raise ConfigError(f"unknown bn_stats mode {mode!r}; use one of {', '.join(BN_STATS_MODES)}")
    step = 1.0 / (n_stats - 1)
    if mode == "reference":
        coef, start_f = math.modf(truncation / step)
        start = int(start_f)
        if coef == 0.0:
            return ((min(start, n_stats - 1), 1.0),)
        return ((start, coef), (min(start + 1, n_stats - 1), 1.0 - coef))
    pos = truncation * (n_stats - 1)
    nearest = round(pos)
    if abs(pos - nearest) < 1e-6:
        return ((min(int(nearest), n_stats - 1), 1.0),)
    lo = int(math.floor(pos))
    frac = pos - lo
    return ((lo, 1.0 - frac), (min(lo + 1, n_stats - 1), frac))


def _mix(stats: torch.Tensor, weights: tuple[tuple[int, float], ...]) -> torch.Tensor:
    """Weighted sum of rows of ``stats`` (n_stats, C) -> (C,), in the reference's order of operations."""
    out = stats[weights[0][0]]
    if len(weights) == 1:
        return out
    out = out * weights[0][1]
    for idx, w in weights[1:]:
        out = out + stats[idx] * w
    return out


class _Prepared:
    """Cache of tensors derived from parameters (cast, folded, re-laid-out), rebuilt when a source changes.

    Keyed on the target dtype and each source tensor's storage and version counter, so ``load_state_dict``,
    ``.to()`` or an in-place edit all invalidate it. With autograd on, nothing is cached (results stay
    differentiable and tied to the live parameters).
    """

    def __init__(self) -> None:
        self._store: dict[Any, tuple[Any, torch.Tensor]] = {}

    def get(  # noqa: ANN001 - make(*sources) -> Tensor
        self, name: str, sources: Iterable[torch.Tensor], dtype: torch.dtype, make, channels_last: bool = False
    ) -> torch.Tensor:
        """``make(*sources)`` cast to ``dtype`` (4-D results laid out channels_last when asked: convolutions on
        channels_last inputs would otherwise re-lay the kernel out on every call)."""
        sources = tuple(sources)
        fmt = torch.channels_last if channels_last else torch.contiguous_format

        def build() -> torch.Tensor:
            t = make(*sources).to(dtype)
            return t.contiguous(memory_format=fmt) if t.dim() == 4 else t

        if torch.is_grad_enabled():
            return build()
        # inference tensors (a model loaded under inference_mode) have no version counter: key on storage only
        versions = tuple((s.data_ptr(), -1 if s.is_inference() else s._version, s.device) for s in sources)
        key = (dtype, channels_last, torch.is_inference_mode_enabled(), versions)
        hit = self._store.get(name)
        if hit is not None and hit[0] == key:
            return hit[1]
        value = build()
        self._store[name] = (key, value)
        return value


def _identity(w: torch.Tensor) -> torch.Tensor:
    return w


# Rows of a 3x3 kernel that land on the same input row after a 2x nearest upsample, per output phase:
# phase 0 (even output row 2i) reads input rows i-1 (kernel row 0) and i (rows 1+2);
# phase 1 (odd row 2i+1) reads rows i (kernel rows 0+1) and i+1 (row 2). Same for columns.
_PHASE = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]], [[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]])  # (phase, 2, 3)


def _phase_kernels(w: torch.Tensor) -> torch.Tensor:
    """(O, I, 3, 3) kernel -> (4*O, I, 2, 2): phase (a, b) = divmod(k, 2) in output rows k*O..(k+1)*O - 1."""
    p = _PHASE.to(w)
    k = torch.einsum("apk,bql,oikl->aboipq", p, p, w)  # (2, 2, O, I, 2, 2)
    return k.reshape(4 * w.shape[0], w.shape[1], 2, 2)


def upsample_conv3x3(x: torch.Tensor, kernels: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``conv3x3(nearest_upsample_2x(x), padding=1)`` without building the upsampled tensor.

    x: (N, I, H, W); kernels: (4*O, I, 2, 2) from ``_phase_kernels``; bias: (4*O,) (the bias repeated per phase).
    One 2x2 conv over the zero-padded input computes all four phases on an (H+1, W+1) grid; phase (a, b) is its
    window starting at (a, b), which lands on output pixels (2i + a, 2j + b). Returns (N, O, 2H, 2W) in x's
    memory format. 16/36 of the multiply-adds of the direct computation.
    """
    n, _, h, w = x.shape
    o = kernels.shape[0] // 4
    y = F.conv2d(F.pad(x, (1, 1, 1, 1)), kernels, bias)  # (N, 4*O, H+1, W+1); padding here = padding after upsample
    fmt = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous() else None
    out = torch.empty(
        (n, o, 2 * h, 2 * w), dtype=y.dtype, device=y.device, memory_format=fmt or torch.contiguous_format
    )
    six = out.view(n, o, h, 2, w, 2)  # (N, O, H, a, W, b)
    for k in range(4):
        a, b = divmod(k, 2)
        six[:, :, :, a, :, b] = y[:, k * o : (k + 1) * o, a : a + h, b : b + w]
    return out


def conv1x1(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    """A 1x1 convolution; on a channels_last x it is one GEMM over the (N*H*W, C) pixel matrix, which avoids the
    slow generic path PyTorch takes for 1x1 kernels at batch size 1."""
    if not _is_nhwc(x):
        return F.conv2d(x, w, b)
    out = F.linear(x.permute(0, 2, 3, 1), w.reshape(w.shape[0], w.shape[1]), b)  # (N, H, W, O)
    return out.permute(0, 3, 1, 2)  # (N, O, H, W), channels_last


def _is_nhwc(x: torch.Tensor) -> bool:
    """True for a channels_last (and not also NCHW-contiguous) activation."""
    return x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


class ConditionalBatchNorm(nn.Module):
    """Batch norm with stored statistics per truncation and a class/noise-conditional gain and bias, then ReLU.

    ``y = relu((x - mean) / sqrt(var + eps) * (1 + scale(cond)) + offset(cond))``, computed as ``x * a + b``.
    """

    running_means: torch.Tensor  # (n_stats, C) buffer
    running_vars: torch.Tensor  # (n_stats, C) buffer

    def __init__(self, num_features: int, cond_dim: int, n_stats: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.register_buffer("running_means", torch.zeros(n_stats, num_features))
        self.register_buffer("running_vars", torch.ones(n_stats, num_features))
        self.scale = nn.Linear(cond_dim, num_features, bias=False)
        self.offset = nn.Linear(cond_dim, num_features, bias=False)

    def coefficients(self, cond: torch.Tensor, weights: tuple[tuple[int, float], ...]) -> tuple[torch.Tensor, ...]:
        """cond (N, cond_dim) float32 -> a, b each (N, C) float32 with ``bn(x) = x * a + b``."""
        mean = _mix(self.running_means, weights).float()
        var = _mix(self.running_vars, weights).float()
        gain = 1.0 + F.linear(cond, self.scale.weight.float())  # (N, C)
        bias = F.linear(cond, self.offset.weight.float())  # (N, C)
        a = gain * torch.rsqrt(var + self.eps)
        return a, bias - mean * a

    def forward(self, x: torch.Tensor, cond: torch.Tensor, weights: tuple[tuple[int, float], ...]) -> torch.Tensor:
        a, b = self.coefficients(cond, weights)
        a = a.to(x.dtype)[:, :, None, None]  # (N, C, 1, 1)
        b = b.to(x.dtype)[:, :, None, None]
        return torch.addcmul(b, x, a).relu_()


class BatchNorm(nn.Module):
    """Plain (unconditional) batch norm with stored statistics per truncation, then ReLU."""

    running_means: torch.Tensor  # (n_stats, C) buffer
    running_vars: torch.Tensor  # (n_stats, C) buffer

    def __init__(self, num_features: int, n_stats: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.register_buffer("running_means", torch.zeros(n_stats, num_features))
        self.register_buffer("running_vars", torch.ones(n_stats, num_features))
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))

    def forward(self, x: torch.Tensor, weights: tuple[tuple[int, float], ...]) -> torch.Tensor:
        mean = _mix(self.running_means, weights).float()
        var = _mix(self.running_vars, weights).float()
        a = self.weight.float() * torch.rsqrt(var + self.eps)  # (C,)
        b = self.bias.float() - mean * a
        return torch.addcmul(b.to(x.dtype)[:, None, None], x, a.to(x.dtype)[:, None, None]).relu_()


class SelfAttention(nn.Module):
    """SAGAN self-attention: queries at full resolution, keys/values 2x2 max-pooled; ``x + gamma * o(attn)``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.snconv1x1_theta = nn.Conv2d(channels, channels // 8, 1, bias=False)
        self.snconv1x1_phi = nn.Conv2d(channels, channels // 8, 1, bias=False)
        self.snconv1x1_g = nn.Conv2d(channels, channels // 2, 1, bias=False)
        self.snconv1x1_o_conv = nn.Conv2d(channels // 2, channels, 1, bias=False)
        self.gamma = nn.Parameter(torch.zeros(1))
        self._prepared = _Prepared()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        c8, c2 = c // 8, c // 2
        qkv_w = self._prepared.get(
            "qkv",
            (self.snconv1x1_theta.weight, self.snconv1x1_phi.weight, self.snconv1x1_g.weight),
            x.dtype,
            lambda a, b, g: torch.cat([a, b, g]),
            _is_nhwc(x),
        )
        o_w = self._prepared.get(
            "o", (self.snconv1x1_o_conv.weight, self.gamma), x.dtype, lambda o, gamma: o * gamma, _is_nhwc(x)
        )
        qkv = conv1x1(x, qkv_w)  # (N, C/8 + C/8 + C/2, H, W): theta, phi, g in one 1x1 conv
        theta = qkv[:, :c8]
        kv = F.max_pool2d(qkv[:, c8:], 2)  # (N, C/8 + C/2, H/2, W/2)
        q = theta.flatten(2).transpose(1, 2)[:, None]  # (N, 1, HW, C/8): one head (4-D takes the fused kernel)
        k = kv[:, :c8].flatten(2).transpose(1, 2)[:, None]  # (N, 1, HW/4, C/8)
        v = kv[:, c8:].flatten(2).transpose(1, 2).contiguous()[:, None]  # (N, 1, HW/4, C/2), rows contiguous
        # Zero-pad q and k to v's width: dot products are unchanged, and equal widths let PyTorch use its fused
        # (flash) kernel instead of materialising the (HW, HW/4) attention matrix (2-3x faster on the CPU).
        q, k = F.pad(q, (0, c2 - c8)), F.pad(k, (0, c2 - c8))  # (N, 1, L, C/2)
        o = F.scaled_dot_product_attention(q, k, v, scale=1.0)  # (N, 1, HW, C/2); softmax(q k^T) v, unscaled
        o = o[:, 0].transpose(1, 2).reshape(n, c2, h, w)  # (N, C/2, H, W), laid out as channels_last
        fmt = torch.contiguous_format if x.is_contiguous() else torch.channels_last
        # keep x's layout: left to itself the 1x1 conv may answer in NCHW, and every later block would then run
        # (several times slower in bf16) in the wrong layout
        return conv1x1(o.contiguous(memory_format=fmt), o_w).contiguous(memory_format=fmt).add_(x)


class GenBlock(nn.Module):
    """BigGAN-deep residual block: 4x (cond-BN, ReLU, conv) with a 1x1 / 3x3 / 3x3 / 1x1 bottleneck.

    The skip path drops the last channels when the block narrows and is upsampled with the main path.
    """

    def __init__(self, in_size: int, out_size: int, cond_dim: int, up_sample: bool, n_stats: int, eps: float) -> None:
        super().__init__()
        self.up_sample = up_sample
        self.out_size = out_size
        mid = in_size // 4  # channel reduction factor 4
        self.bn_0 = ConditionalBatchNorm(in_size, cond_dim, n_stats, eps)
        self.conv_0 = nn.Conv2d(in_size, mid, 1)
        self.bn_1 = ConditionalBatchNorm(mid, cond_dim, n_stats, eps)
        self.conv_1 = nn.Conv2d(mid, mid, 3, padding=1)
        self.bn_2 = ConditionalBatchNorm(mid, cond_dim, n_stats, eps)
        self.conv_2 = nn.Conv2d(mid, mid, 3, padding=1)
        self.bn_3 = ConditionalBatchNorm(mid, cond_dim, n_stats, eps)
        self.conv_3 = nn.Conv2d(mid, out_size, 1)
        self._prepared = _Prepared()

    def _w(self, conv: nn.Conv2d, name: str, dtype: torch.dtype, nhwc: bool) -> tuple[torch.Tensor, torch.Tensor]:
        w = self._prepared.get(name + ".w", (conv.weight,), dtype, _identity, nhwc)
        b = self._prepared.get(name + ".b", (cast(torch.Tensor, conv.bias),), dtype, _identity)  # built with bias=True
        return w, b

    def forward(self, x: torch.Tensor, cond: torch.Tensor, weights: tuple[tuple[int, float], ...]) -> torch.Tensor:
        dt, nhwc = x.dtype, _is_nhwc(x)
        h = self.bn_0(x, cond, weights)
        h = conv1x1(h, *self._w(self.conv_0, "conv_0", dt, nhwc))  # (N, in/4, H, W)
        h = self.bn_1(h, cond, weights)
        if self.up_sample:
            k = self._prepared.get("conv_1.phases", (self.conv_1.weight,), dt, _phase_kernels, nhwc)
            b = self._prepared.get("conv_1.b4", (cast(torch.Tensor, self.conv_1.bias),), dt, lambda t: t.repeat(4))
            h = upsample_conv3x3(h, k, b)  # (N, in/4, 2H, 2W)
        else:
            h = F.conv2d(h, *self._w(self.conv_1, "conv_1", dt, nhwc), padding=1)
        h = self.bn_2(h, cond, weights)
        h = F.conv2d(h, *self._w(self.conv_2, "conv_2", dt, nhwc), padding=1)
        h = self.bn_3(h, cond, weights)
        h = conv1x1(h, *self._w(self.conv_3, "conv_3", dt, nhwc))  # (N, out, H', W')
        skip = x[:, : self.out_size]  # the reference keeps the first in/2 channels when a block narrows
        if not self.up_sample:
            return h.add_(skip)
        if h.is_contiguous():
            n, c, hh, ww = h.shape
            # nearest-upsampled skip added by broadcasting: (N, C, H, 1, W, 1) onto (N, C, H, 2, W, 2)
            h.view(n, c, hh // 2, 2, ww // 2, 2).add_(skip[:, :, :, None, :, None])
            return h
        return h.add_(F.interpolate(skip, scale_factor=2, mode="nearest"))


class Generator(nn.Module):
    """The synthesis network: linear -> 4x4 -> GenBlocks (+ self-attention) -> BN, ReLU, conv -> tanh."""

    def __init__(self, config: BigGANConfig) -> None:
        super().__init__()
        self.config = config
        ch = config.channel_width
        cond_dim = 2 * config.z_dim  # [z, class embedding]
        self.gen_z = nn.Linear(cond_dim, 4 * 4 * 16 * ch)
        layers: list[nn.Module] = []
        for i, (up, cin, cout) in enumerate(config.layers):
            if i == config.attention_layer_position:
                layers.append(SelfAttention(ch * cin))
            layers.append(GenBlock(ch * cin, ch * cout, cond_dim, up, config.n_stats, config.eps))
        self.layers = nn.ModuleList(layers)
        self.bn = BatchNorm(ch, config.n_stats, config.eps)
        self.conv_to_rgb = nn.Conv2d(ch, ch, 3, padding=1)  # only channels 0..2 are used
        self._prepared = _Prepared()

    def forward(
        self,
        cond: torch.Tensor,
        weights: tuple[tuple[int, float], ...],
        dtype: torch.dtype,
        channels_last: bool = False,
    ) -> torch.Tensor:
        """cond (N, 2*z_dim) float32 -> (N, 3, H, W) float32 in [-1, 1]."""
        ch = self.config.channel_width
        h = F.linear(cond, self.gen_z.weight.float(), self.gen_z.bias.float())  # (N, 4*4*16ch)
        h = h.view(-1, 4, 4, 16 * ch).permute(0, 3, 1, 2)  # stored in TF's NHWC order -> (N, 16ch, 4, 4)
        h = h.to(dtype).contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        for layer in self.layers:
            h = layer(h, cond, weights) if isinstance(layer, GenBlock) else layer(h)
        h = self.bn(h, weights)
        w = self._prepared.get("rgb.w", (self.conv_to_rgb.weight,), dtype, lambda t: t[:3], channels_last)
        b = self._prepared.get("rgb.b", (cast(torch.Tensor, self.conv_to_rgb.bias),), dtype, lambda t: t[:3])
        h = F.conv2d(h, w, b, padding=1)  # (N, 3, H, W): the other channel_width - 3 outputs are never used
        return torch.tanh(h.float()).contiguous()


@dataclass
class Precision:
    """How ``BigGANDeep.forward`` computes: ``dtype`` for convs/attention (None = the parameters' dtype)."""

    dtype: torch.dtype | None = None
    channels_last: bool = False
    bn_stats: str = "reference"  # see stat_weights


class BigGANDeep(nn.Module):
    """BigGAN-deep: ``model(z, class_vector, truncation) -> (N, 3, H, W)`` float32 in [-1, 1].

    z: (N, z_dim) float, normally ``truncation * TruncatedNormal(-2, 2)``; class_vector: (N, num_classes), one-hot
    or any mixture; truncation: float in (0, 1] (selects the stored batch-norm statistics).
    """

    def __init__(self, config: BigGANConfig, precision: Precision | None = None) -> None:
        super().__init__()
        self.config = config
        self.precision = precision or Precision()
        self.embeddings = nn.Linear(config.num_classes, config.z_dim, bias=False)
        self.generator = Generator(config)

    @property
    def resolution(self) -> int:
        return self.config.output_dim

    def embed(self, class_vector: torch.Tensor) -> torch.Tensor:
        """(N, num_classes) -> class embedding (N, z_dim) float32 (linear, so mixtures embed to mixtures)."""
        if class_vector.dim() != 2 or class_vector.shape[1] != self.config.num_classes:
            raise ConfigError(
                f"class_vector must have shape (N, {self.config.num_classes}); got {tuple(class_vector.shape)}"
            )
        w = self.embeddings.weight
        return F.linear(class_vector.to(device=w.device, dtype=torch.float32), w.float())

    def synthesize(self, z: torch.Tensor, class_embedding: torch.Tensor, truncation: float) -> torch.Tensor:
        """(N, z_dim) noise and (N, z_dim) class embedding -> (N, 3, H, W) float32 in [-1, 1]."""
        t = float(truncation)
        if not 0.0 < t <= 1.0:
            raise ConfigError(f"truncation must be in (0, 1]; got {t}")
        if z.dim() != 2 or z.shape[1] != self.config.z_dim:
            raise ConfigError(f"z must have shape (N, {self.config.z_dim}); got {tuple(z.shape)}")
        if class_embedding.shape != z.shape:
            raise ConfigError(f"class embedding shape {tuple(class_embedding.shape)} does not match z {tuple(z.shape)}")
        p = self.precision
        device = self.embeddings.weight.device
        dtype = p.dtype or self.embeddings.weight.dtype
        cond = torch.cat([z.to(device=device, dtype=torch.float32), class_embedding.to(device, torch.float32)], 1)
        weights = stat_weights(t, self.config.n_stats, p.bn_stats)
        return self.generator(cond, weights, dtype, p.channels_last)  # (N, 3, H, W)

    def forward(self, z: torch.Tensor, class_vector: torch.Tensor, truncation: float) -> torch.Tensor:
        """See the class docstring; same call as pytorch-pretrained-BigGAN's ``BigGAN``."""
        return self.synthesize(z, self.embed(class_vector), truncation)

    def load_weights(
        self, state_dict: Mapping[str, torch.Tensor], source: str = "state dict", assign: bool = False
    ) -> None:
        """Load a state dict in the folded layout, checking every key and shape first.

        Raises WeightsError with one sentence naming the missing, unexpected or mis-shaped keys. ``assign=True``
        adopts the given tensors (no copy; use it on a model built on the meta device).
        """
        expected = {k: tuple(v.shape) for k, v in self.state_dict().items()}
        check_keys(expected, {k: tuple(v.shape) for k, v in state_dict.items()}, source)
        self.load_state_dict(dict(state_dict), strict=True, assign=assign)


def check_keys(expected: Mapping[str, tuple[int, ...]], got: Mapping[str, tuple[int, ...]], source: str) -> None:
    """Compare key -> shape maps; WeightsError listing (a few of) the missing/unexpected/mis-shaped keys."""
    missing = [k for k in expected if k not in got]
    unexpected = [k for k in got if k not in expected]
    shapes = [f"{k} {list(got[k])} (expected {list(s)})" for k, s in expected.items() if k in got and got[k] != s]
    if not (missing or unexpected or shapes):
        return

    def few(items: list[str]) -> str:
        return ", ".join(items[:4]) + (f" and {len(items) - 4} more" if len(items) > 4 else "")

    parts = []
    if missing:
        parts.append(f"{len(missing)} missing key(s): {few(missing)}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected key(s): {few(unexpected)}")
    if shapes:
        parts.append(f"{len(shapes)} wrong shape(s): {few(shapes)}")
    raise WeightsError(f"{source} does not match the BigGAN config: " + "; ".join(parts))
