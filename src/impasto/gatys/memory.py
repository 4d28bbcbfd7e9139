"""The memory plan of a painting: how much a run will need at its size, and how to make it fit.

:func:`estimate` adds up a run's peak memory from what it holds:

* **image-sized buffers** (``n = 3 H W`` floats): the image, its gradient, the start, the optimiser's work
  vectors (L-BFGS: flat gradient, previous gradient, direction, step; Adam: two moments), TV's differences, the
  moving average (``average``), the gradient buffer of the tiled pass -- about ``BUFFERS * n * 4`` bytes -- plus the
  L-BFGS history ``2 m n`` values (fp32 or bf16: ``lbfgs_history_dtype``);
* the **content targets** (each content layer's activation, fp32) and the network's weights (twice on the fast
  path: the fp32 one and its bf16 copy);
* the **activations kept for the backward pass**: every conv/ReLU/pool output the network makes up to its
  deepest tap (max-pool indices as int64), or only the taps and the largest segment between two taps with
  network checkpointing, and the backward pass's working gradients (``TRANSIENT`` times the largest activation);
  with tiles all of it at the size of one crop (tile + halo) instead of the image;
* the **targets**, computed before the loop with a ``no_grad`` forward pass at the content's and each style's size.

The constants were calibrated against measured peaks (``ru_maxrss`` of a fresh process; see the report in
benchmarks/paint.py ``--print-size``): the estimate is meant to be on the safe side by 10-30 %.

:func:`choose` tries, in order, until the estimate fits the memory there is (``max_memory`` caps it): the plain
run; network checkpointing; tiles, the largest that fits; the L-BFGS history in bf16; a shorter history. Options
the user set (``tile_size``, ``network_checkpointing``, ``lbfgs_history_dtype``) are kept as given. When nothing
fits it raises one ConfigError naming the largest size that fits and the flags that would make this one fit.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import ConfigError
from ..nets import magenta
from ..nets.vgg import TappedNet
from . import tiled
from .config import PaintConfig, parse_memory

log = logging.getLogger(__name__)

__all__ = ["Plan", "Profile", "available_memory", "choose", "estimate", "profile"]

BUFFERS = 12  # image-sized fp32 buffers besides the history (see the module docstring)
TRANSIENT = 3  # working gradients of the backward pass, in units of the largest activation
BASE = 450 * 2**20  # the process itself: torch's libraries, allocator slack, the decoded images (measured ~0.4 GB)
SAFETY = 0.9  # of the free memory, what a plan may use
TILE_SIDES = (4096, 3072, 2048, 1536, 1024, 768, 512, 384, 256, 192, 128)
MIN_HISTORY = 5


# --- what a network makes per input pixel ---------------------------------------------------------------------


@dataclass(frozen=True)
class Profile:
    """A network's activations up to its deepest tap, per input pixel (in values; the dtype is the run's).

    ``layers``: ``(name, new values per input px, int64 index values per input px, tapped, size)`` in order
    (``new``: the memory the layer adds -- 0 for a ReLU in place; ``size``: its activation's values per input px);
    ``weights``: parameter bytes in fp32; ``geometry``: the tiled pass's (None when the net cannot be tiled).
    """

    layers: tuple[tuple[str, float, float, bool, float], ...]
    weights: int
    geometry: tiled.Geometry | None

    def kept(self, checkpointed: bool) -> tuple[float, float]:
        """(activation values, index values) per input px held for the backward pass."""
        if not checkpointed:
            return sum(v for _, v, _, _, _ in self.layers), sum(i for _, _, i, _, _ in self.layers)
        segment = best = 0.0
        index = seg_index = best_index = 0.0
        for _, v, i, t, _ in self.layers:
            segment += v
            seg_index += i
            if t:
                if segment > best:
                    best, best_index = segment, seg_index
                segment = seg_index = 0.0
        return self.taps + best, index + best_index

    @property
    def largest(self) -> float:
        return max((size for *_, size in self.layers), default=0.0)

    @property
    def taps(self) -> float:
        return sum(size for _, _, _, t, size in self.layers if t)


def profile(net: Any, order: Sequence[str]) -> Profile:
    """The :class:`Profile` of ``net`` tapped at ``order`` (VGG/NIN, the MobileNetV2, or a split network)."""
    wanted = set(order)
    inner = getattr(net, "net", net)  # a SplitFeatureNet wraps the TappedNet
    weights = sum(p.numel() * 4 for p in inner.parameters())
    layers: list[tuple[str, float, float, bool, float]] = []
    if isinstance(inner, TappedNet):
        s, ch = 1, 3
        last = max(inner.depth_of(n) for n in wanted)
        for i, layer in enumerate(inner.layers[: last + 1]):
            tapped = layer.name in wanted
            if layer.kind == "conv":
                s *= layer.stride
                ch = layer.out_ch
                layers.append((layer.name, ch / s**2, 0.0, tapped, ch / s**2))
            elif layer.kind == "relu":
                in_place = i > 0 and inner.layers[i - 1].name not in wanted
                layers.append((layer.name, 0.0 if in_place else ch / s**2, 0.0, tapped, ch / s**2))
            else:
                s *= layer.stride
                idx = ch / s**2 if layer.mode == "max" else 0.0
                layers.append((layer.name, ch / s**2, idx, tapped, ch / s**2))
    elif isinstance(inner, magenta.StylePredictor):
        # no in-place ops there: a conv's output and its ReLU6's are both kept, and the "SAME"-padded copies
        stem = inner.config.stem_channels
        layers.append(("conv0", 3 + 2 * stem / 4, 0.0, "conv0" in wanted, stem / 4))
        s = 2
        block: Any
        for i, block in enumerate(inner.blocks):
            hidden = block.depthwise.in_channels
            if block.expand is not None:
                layers.append((f"block{i}_expand", 2 * hidden / s**2, 0.0, f"block{i}_expand" in wanted, hidden / s**2))
            pad = hidden / s**2 if block.stride != 1 else 0.0
            s *= block.stride
            size = hidden / s**2
            layers.append((f"block{i}_depthwise", 2 * size + pad, 0.0, f"block{i}_depthwise" in wanted, size))
            size = block.project.out_channels / s**2
            out = size * (2 if block.residual else 1)
            layers.append((f"block{i}_project", out, 0.0, f"block{i}_project" in wanted, size))
        size = inner.config.last_channels / s**2
        layers.append(("conv_last", 2 * size, 0.0, "conv_last" in wanted, size))
    else:
        raise ConfigError(f"the memory plan does not know {type(inner).__name__}")
    while layers and not layers[-1][3]:
        layers.pop()
    geo = None
    if not hasattr(net, "devices"):
        try:
            geo = tiled.geometry(inner, order)
        except ConfigError:
            geo = None
    return Profile(tuple(layers), weights, geo)


# --- the memory there is --------------------------------------------------------------------------------------


def available_memory(device: torch.device) -> int:
    """Bytes free for a run on ``device``: CUDA ``mem_get_info`` (plus torch's own cache), CPU ``MemAvailable``."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
    try:
        import psutil  # type: ignore[import-not-found]

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    pages = os.sysconf("SC_AVPHYS_PAGES") if hasattr(os, "sysconf") else 0
    return int(pages * os.sysconf("SC_PAGE_SIZE")) if pages else 8 * 2**30


# --- the estimate ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """How a run at ``size`` spends memory, and about how much it needs (``estimate``) of ``budget`` bytes."""

    size: tuple[int, int]  # (H, W)
    tile: int  # tile side in px (0: untiled)
    tiles: int
    checkpointing: bool
    optimizer: str
    history: int  # L-BFGS history length (0 with Adam)
    history_dtype: str  # "float32" | "bfloat16"
    estimate: int
    budget: int
    device: str

    @property
    def fits(self) -> bool:
        return self.estimate <= self.budget

    def describe(self) -> str:
        """The plan's pieces: ``tiles 1024 px (12), checkpointed, L-BFGS history 100 in bf16``."""
        parts = [f"tiles {self.tile} px ({self.tiles})" if self.tile else "untiled"]
        if self.checkpointing:
            parts.append("checkpointed")
        if self.optimizer == "lbfgs":
            parts.append(f"L-BFGS history {self.history} in {'bf16' if self.history_dtype == 'bfloat16' else 'fp32'}")
        else:
            parts.append(self.optimizer)
        return ", ".join(parts)

    def line(self, scales: int = 1) -> str:
        """``memory plan: 4016×2213, tiles 1024 px (12), checkpointed, L-BFGS history 100 in bf16 - about 13.2 GiB of
        20.1 GiB``; with ``scales`` > 1 the size reads ``4016×2213 (the last of 7 scales)``."""
        h, w = self.size
        size = f"{w}×{h}" + (f" (the last of {scales} scales)" if scales > 1 else "")
        return f"memory plan: {size}, {self.describe()} - about {_gb(self.estimate)} of {_gb(self.budget)}"


def _gb(n: int) -> str:
    """Bytes in GiB, the unit ``--max-memory 8G`` means (config.parse_memory: G = 2^30)."""
    return f"{n / 2**30:.1f} GiB"


def estimate(
    prof: Profile,
    size: tuple[int, int],
    *,
    tile: int = 0,
    checkpointing: bool = False,
    optimizer: str = "lbfgs",
    history: int = 100,
    history_dtype: str = "float32",
    fast: bool = False,
    average: bool = False,
    content_layers: Sequence[str] = (),
    style_sizes: Sequence[tuple[int, int]] = (),
) -> int:
    """Peak bytes of a run at ``size`` (H, W) with these settings (see the module docstring for the terms)."""
    h, w = size
    px = h * w
    n = 3 * px
    history_bytes = 2 if history_dtype == "bfloat16" else 4
    buffers = (BUFFERS + (1 if average else 0) + (1 if tile else 0)) * n * 4
    if optimizer == "lbfgs":
        buffers += 2 * history * n * history_bytes
    targets = sum(size for name, _, _, _, size in prof.layers if name in set(content_layers)) * px * 4
    weights = prof.weights * (2 if fast else 1)
    # the fast path's first L-BFGS steps run in exact fp32 (optimize.FAST_LBFGS_EXACT_STEPS): its peak is fp32's
    act_bytes = 2 if (fast and optimizer != "lbfgs") else 4

    def backward_peak(area: int, ckpt: bool) -> float:
        values, index = prof.kept(ckpt)
        return (values * act_bytes + index * 8 + TRANSIENT * prof.largest * act_bytes) * area

    def forward_peak(area: int) -> float:  # no_grad: a layer's input and output, and the taps made so far
        return (2 * prof.largest + prof.taps) * area * 4

    if tile and prof.geometry is not None:
        geo = prof.geometry
        reach = geo.left + geo.right + 2 * geo.stride
        crop = min(h, tile + reach) * min(w, tile + reach)
        loop = max(forward_peak(crop), backward_peak(crop, checkpointing) + 2 * prof.taps * crop * 4)
    else:
        loop = backward_peak(px, checkpointing)
    if tile and prof.geometry is not None:  # the targets are computed tile by tile too (tiled.targets)
        target_phase = targets + forward_peak(crop)
    else:
        target_phase = max([forward_peak(px)] + [forward_peak(a * b) for a, b in style_sizes])
    return int(BASE + weights + buffers + targets + max(loop, target_phase - targets))


# --- choosing a plan ------------------------------------------------------------------------------------------


def _tile_count(size: tuple[int, int], tile: int, geo: tiled.Geometry | None) -> int:
    if not tile or geo is None:
        return 0
    return len(tiled.tile_grid(size[0], size[1], tile, geo))


def choose(
    config: PaintConfig,
    prof: Profile,
    size: tuple[int, int],
    device: torch.device,
    *,
    content_layers: Sequence[str] = (),
    style_sizes: Sequence[tuple[int, int]] = (),
    budget: int | None = None,
) -> Plan:
    """The first plan that fits (plain, checkpointed, tiled, bf16 history, shorter history); ConfigError if none.

    ``config`` resolved; ``size`` (H, W) of the painting; ``budget`` bytes (default: :func:`available_memory`
    times ``SAFETY``, capped by ``config.max_memory``).
    """
    if budget is None:
        budget = int(available_memory(device) * SAFETY)
        if config.max_memory is not None:
            budget = min(budget, parse_memory(config.max_memory))
    elif config.max_memory is not None:
        budget = min(budget, parse_memory(config.max_memory))
    candidates = _candidates(config, prof, size)
    plans = [_plan(config, prof, size, device, budget, c, content_layers, style_sizes) for c in candidates]
    for p in plans:
        if p.fits:
            return p
    raise ConfigError(_refusal(config, prof, size, device, budget, plans[-1], content_layers, style_sizes))


def _candidates(config: PaintConfig, prof: Profile, size: tuple[int, int]) -> list[tuple[int, bool, int, str]]:
    """``(tile, checkpointing, history, history_dtype)`` in the order the plan tries them; the last is the leanest.

    plain -> network checkpointing -> tiles (largest first) -> the history in bf16 -> a shorter history (halved
    down to ``MIN_HISTORY``); options the user set stay as set.
    """
    lbfgs = config.optimizer == "lbfgs"
    m = config.lbfgs_num_correction if lbfgs else 0

    def ck(wanted: bool) -> bool:
        return wanted if config.network_checkpointing == "auto" else config.network_checkpointing == "on"

    if config.tile_size > 0 and prof.geometry is None:
        raise ConfigError(
            "tile_size needs one device and a VGG/NIN/MobileNetV2 network tapped at conv/ReLU/pool layers; "
            "use tile_size=0 or -1"
        )
    untiled = config.tile_size <= 0
    if config.tile_size > 0:
        sides = [config.tile_size]
    elif config.tile_size < 0 or prof.geometry is None:
        sides = []
    else:
        sides = [t for t in TILE_SIDES if t < max(size)]
    # a bf16 history is impasto.gatys.lbfgs.LBFGS's, which runs without a line search: with strong_wolfe (the
    # MobileNetV2's default) torch's optimiser keeps fp32, so "auto" does not count on bf16 there
    dtypes = ["float32", "bfloat16"] if config.lbfgs_line_search in (None, "none") else ["float32"]
    if config.lbfgs_history_dtype != "auto":
        dtypes = [config.lbfgs_history_dtype]
    if not lbfgs:
        dtypes = ["float32"]
    histories = [m]
    while lbfgs and histories[-1] > MIN_HISTORY:
        histories.append(max(MIN_HISTORY, histories[-1] // 2))

    def stage(hist: int, dtype: str, plain: bool) -> list[tuple[int, bool, int, str]]:
        out = [(0, ck(False), hist, dtype)] if (plain and untiled) else []
        out += [(0, ck(True), hist, dtype)] if untiled else []
        return out + [(t, ck(True), hist, dtype) for t in sides]

    order = stage(m, dtypes[0], True)
    for dtype in dtypes[1:]:
        order += stage(m, dtype, False)
    for hist in histories[1:]:
        order += stage(hist, dtypes[-1], False)
    return list(dict.fromkeys(order))


def _plan(config: PaintConfig, prof: Profile, size: tuple[int, int], device: torch.device, budget: int,
          candidate: tuple[int, bool, int, str], content_layers: Sequence[str],
          style_sizes: Sequence[tuple[int, int]]) -> Plan:  # fmt: skip
    tile, ck, hist, dtype = candidate
    est = estimate(
        prof, size, tile=tile, checkpointing=ck, optimizer=config.optimizer, history=hist, history_dtype=dtype,
        fast=config.fast, average=config.average, content_layers=content_layers, style_sizes=style_sizes,
    )  # fmt: skip
    return Plan(size, tile, _tile_count(size, tile, prof.geometry), ck, config.optimizer, hist, dtype, est, budget,
                str(device))  # fmt: skip


def _scaled(size: tuple[int, int], longest: int) -> tuple[int, int]:
    h, w = size
    f = longest / max(h, w)
    return max(1, int(h * f)), max(1, int(w * f))


def _refusal(config: PaintConfig, prof: Profile, size: tuple[int, int], device: torch.device, budget: int,
             leanest: Plan, content_layers: Sequence[str], style_sizes: Sequence[tuple[int, int]]) -> str:  # fmt: skip
    """One line: what it needs, what there is, the largest size that fits, the flags that would make it fit."""
    lo, hi = 16, max(size)
    f = 1.0
    while lo < hi:  # the largest longest side whose leanest plan fits
        mid = (lo + hi + 1) // 2
        f = mid / max(size)
        smaller = _scaled(size, mid)
        styles = [(max(1, int(a * f)), max(1, int(b * f))) for a, b in style_sizes]
        c = _candidates(config, prof, smaller)[-1]
        if _plan(config, prof, smaller, device, budget, c, content_layers, styles).fits:
            lo = mid
        else:
            hi = mid - 1
    h, w = size
    fixes = [f"--image-size {lo}"] if lo > 16 else []
    need = math.ceil(leanest.estimate / 2**30 * 1.05)
    if config.max_memory is not None and parse_memory(config.max_memory) < available_memory(device) * SAFETY:
        fixes.append(f"--max-memory {need}G")
    if config.optimizer == "lbfgs":
        adam = _plan(config.replace(optimizer="adam"), prof, size, device, budget,
                     (leanest.tile, leanest.checkpointing, 0, "float32"), content_layers, style_sizes)  # fmt: skip
        if adam.fits:
            fixes.append("--optimizer adam")
    if config.tile_size < 0 and prof.geometry is not None:
        fixes.append("--tile-size 0")
    if config.network_checkpointing == "off":
        fixes.append("--network-checkpointing auto")
    if config.lbfgs_history_dtype == "float32" and config.optimizer == "lbfgs":
        fixes.append("--lbfgs-history-dtype auto")
    hint = " or ".join(fixes) if fixes else "a smaller --image-size"
    return (
        f"a {w}×{h} painting needs about {_gb(leanest.estimate)} even with {leanest.describe()}, but "
        f"{_gb(budget)} is available on {device}; try {hint}"
    )


def with_plan(config: PaintConfig, plan: Plan) -> PaintConfig:
    """``config`` with the L-BFGS history the plan chose (what the optimiser reads); unchanged when the plan kept it.

    ``lbfgs_history_dtype="auto"`` stays "auto" (meaning float32) unless the plan chose bfloat16.
    """
    if config.optimizer != "lbfgs":
        return config
    dtype = config.lbfgs_history_dtype
    if plan.history_dtype == "bfloat16":
        dtype = "bfloat16"
    if (plan.history, dtype) == (config.lbfgs_num_correction, config.lbfgs_history_dtype):
        return config
    return dataclasses.replace(config, lbfgs_num_correction=plan.history, lbfgs_history_dtype=dtype)


def plan_paint(
    config: PaintConfig,
    net: Any,
    order: Sequence[str],
    content_layers: Sequence[str],
    content_size: tuple[int, int],
    style_sizes: Sequence[tuple[int, int]],
    device: torch.device,
    budget: int | None = None,
) -> Plan | None:
    """The plan of one scale of a painting: ``config`` resolved (its ``image_size`` is the scale's), ``net`` built.

    ``content_size`` and ``style_sizes`` are the PIL images' (W, H); the painting and the styles are sized as
    :func:`impasto.gatys.preprocess.neural_style_size` sizes them. None for a network split over several devices
    (each holds a part; not estimated) -- tiles are refused there in one line.
    """
    from .preprocess import neural_style_size

    if hasattr(net, "devices"):
        if config.tile_size > 0:
            raise ConfigError("tile_size works on one device; give one device in gpu or drop tile_size")
        return None
    w, h = neural_style_size(content_size, config.image_size)
    style_size = int(config.image_size * config.style_scale)
    styles = [neural_style_size(s, style_size)[::-1] for s in style_sizes]
    prof = profile(net, order)
    return choose(config, prof, (h, w), device, content_layers=content_layers, style_sizes=styles, budget=budget)
