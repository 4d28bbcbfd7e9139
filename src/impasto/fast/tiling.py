"""Fast stylisation at any size: exact tiled inference, and upsampling guided by the full-size photo.

**Exact tiles.** A feed-forward stylisation network is written here as a flat list of *ops* (convs with their own
reflect or zero padding and stride, nearest 2x upsampling, 2x2 max-pools, pointwise functions, residual skips and
*global* ops: instance norms and the linear method's mean/covariance transform). To compute a box of any op's
output, the box is carried backwards through the ops to the input box each one needs (a k x k conv with stride s and
padding p needs ``[s*o0 - p, s*(o1 - 1) - p + k)``, clipped to the image), and the chain runs forward on that crop,
padding a side by reflection (or zeros) only where the crop touches the image border -- exactly what the untiled
network does there. So a tile's interior is the untiled output to float rounding, for any tile size, however the
tiles fall, and there is no overlap blending at all: the halo is exactly what each output pixel depends on.

Instance norms take their mean and variance from the WHOLE image: one pass per global op, in network order,
accumulates the statistics of its input tile by tile (sum and sum of squares in float64 over each position once),
with every earlier global op already fixed; the last pass renders the output tiles. Where a cheap low-resolution
activation sits between stages (Magenta's residual trunk, 32 channels at 1/4 resolution: 1/3 of the photo's own
float size) it is kept whole (a *cache* point), so the later passes start there instead of at the photo.
Memory: the tiles' activations, the caches, the photo (uint8) and the output (uint8); no full-resolution activation
of many channels is ever held.

**Working size (the stroke-size control).** A network's strokes have a fixed size in pixels, so at 4000 px its
result is a colour filter with pin-sized texture. :func:`guided_upsample` lets it paint at a working size and brings
the result to the full size with the fast guided filter (He & Sun 2015, arXiv:1505.00996; the guided filter of He,
Sun and Tang, ECCV 2010): per channel c of the low-resolution result p, with the photo's luminance I at the same
size as the guide, ``a = cov(I, p) / (var(I) + eps)`` over (2r+1)^2 windows, box-averaged again and upsampled
bilinearly to the full size (A), scales the photo's full-size detail: ``q = up(p) + A (I - up(I_low))``.
(The guided filter proper outputs ``A I + B``, which box-filters p twice: that blurred the strokes, see
:func:`guided_upsample`.) Strokes keep their look (up(p) carries them) and the photo's edges come back sharp where
the stylised result followed them (A). Computed tile by tile: the full-size memory is the photo and the output.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_TILE",
    "DEFAULT_WORKING_SIZE",
    "TILE_ABOVE",
    "GlobalOp",
    "Op",
    "guided_upsample",
    "photo_fetch",
    "run_tiled",
    "tiles",
]

DEFAULT_TILE = 768  # output tile side in input pixels; deeper levels scale it down with their resolution
TILE_ABOVE = 2048 * 2048  # pixels: images up to this size run untiled (the plain forward is then faster)
DEFAULT_WORKING_SIZE = 1024  # long side the network paints at by default (see docs/stroke-size.jpg)

Box = tuple[int, int, int, int]  # (y0, y1, x0, x1), half-open, in one level's coordinates
Size = tuple[int, int]  # (H, W)


# ---------------------------------------------------------------------------------------------------------------
# Ops: how a box of an op's output depends on its input, and how to compute it from exactly that input crop
# ---------------------------------------------------------------------------------------------------------------


class Op:
    """An identity-shaped op (pointwise). Subclasses change the geometry."""

    def out_size(self, size: Size) -> Size:
        return size

    def needed(self, box: Box, size: Size) -> Box:
        """The input box (in the op's input level, of size ``size``) that output ``box`` depends on."""
        return box

    def apply(self, x: torch.Tensor, in_box: Box, out_box: Box, size: Size, ctx: _Context) -> torch.Tensor:
        """``x``: (1, C, h, w) for ``in_box`` -> (1, C', h', w') for ``out_box``."""
        return x


@dataclass
class Pointwise(Op):
    fn: Callable[[torch.Tensor], torch.Tensor]

    def apply(self, x: torch.Tensor, in_box: Box, out_box: Box, size: Size, ctx: _Context) -> torch.Tensor:
        return self.fn(x)


@dataclass
class Conv(Op):
    """``conv2d(pad(x, p), weight, bias, stride)`` with reflect or zero padding ``p`` on every side."""

    weight: torch.Tensor  # (C_out, C_in, k, k)
    bias: torch.Tensor | None
    pad: int
    stride: int = 1
    mode: str = "reflect"  # or "zeros"

    def out_size(self, size: Size) -> Size:
        k = self.weight.shape[-1]
        return tuple((n + 2 * self.pad - k) // self.stride + 1 for n in size)  # type: ignore[return-value]

    def _axis(self, o0: int, o1: int) -> tuple[int, int]:
        k = self.weight.shape[-1]
        return self.stride * o0 - self.pad, self.stride * (o1 - 1) - self.pad + k  # unclipped

    def needed(self, box: Box, size: Size) -> Box:
        (a0, a1), (b0, b1) = self._axis(box[0], box[1]), self._axis(box[2], box[3])
        return max(a0, 0), min(a1, size[0]), max(b0, 0), min(b1, size[1])

    def apply(self, x: torch.Tensor, in_box: Box, out_box: Box, size: Size, ctx: _Context) -> torch.Tensor:
        (a0, a1), (b0, b1) = self._axis(out_box[0], out_box[1]), self._axis(out_box[2], out_box[3])
        pads = (in_box[2] - b0, b1 - in_box[3], in_box[0] - a0, a1 - in_box[1])  # left, right, top, bottom
        if any(pads):
            x = _pad(x, pads, reflect=self.mode == "reflect")
        return F.conv2d(x, self.weight, self.bias, self.stride)


def _pad(x: torch.Tensor, pads: tuple[int, int, int, int], reflect: bool) -> torch.Tensor:
    """``F.pad(x, (left, right, top, bottom), mode="reflect" | "constant")`` in one allocation and thin copies
    (the stock reflect kernel is slow on channels_last and bf16 CPU tensors; see nets.magenta.reflect_pad)."""
    left, right, top, bottom = pads
    n, c, h, w = x.shape
    fmt = torch.channels_last if not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last) else None
    shape = (n, c, h + top + bottom, w + left + right)
    out = torch.empty(shape, dtype=x.dtype, device=x.device, memory_format=fmt or torch.contiguous_format)
    if not reflect:
        out.zero_()
    out[:, :, top : top + h, left : left + w] = x
    if not reflect:
        return out
    for k in range(1, top + 1):  # padded row top - k mirrors input row k (the edge row is not repeated)
        out[:, :, top - k, left : left + w] = x[:, :, k]
    for k in range(1, bottom + 1):
        out[:, :, top + h - 1 + k, left : left + w] = x[:, :, h - 1 - k]
    for k in range(1, left + 1):  # then columns, over the full padded height
        out[:, :, :, left - k] = out[:, :, :, left + k]
    for k in range(1, right + 1):
        out[:, :, :, left + w - 1 + k] = out[:, :, :, left + w - 1 - k]
    return out


class Upsample2(Op):
    """Nearest-neighbour 2x upsampling (ONNX ``Resize(nearest, asymmetric, floor)`` / ``UpsamplingNearest2d``)."""

    def out_size(self, size: Size) -> Size:
        return 2 * size[0], 2 * size[1]

    def needed(self, box: Box, size: Size) -> Box:
        return box[0] // 2, (box[1] - 1) // 2 + 1, box[2] // 2, (box[3] - 1) // 2 + 1

    def apply(self, x: torch.Tensor, in_box: Box, out_box: Box, size: Size, ctx: _Context) -> torch.Tensor:
        n, c, h, w = x.shape
        x = x[:, :, :, None, :, None].expand(n, c, h, 2, w, 2).reshape(n, c, 2 * h, 2 * w)
        dy, dx = out_box[0] - 2 * in_box[0], out_box[2] - 2 * in_box[2]
        return x[:, :, dy : dy + out_box[1] - out_box[0], dx : dx + out_box[3] - out_box[2]]


class MaxPool2(Op):
    """``max_pool2d(x, 2, 2)`` (odd sizes floored)."""

    def out_size(self, size: Size) -> Size:
        return size[0] // 2, size[1] // 2

    def needed(self, box: Box, size: Size) -> Box:
        return 2 * box[0], 2 * box[1], 2 * box[2], 2 * box[3]

    def apply(self, x: torch.Tensor, in_box: Box, out_box: Box, size: Size, ctx: _Context) -> torch.Tensor:
        return F.max_pool2d(x, 2, 2)


@dataclass
class PadBottomRight(Op):
    """Pad the bottom/right by ``(ph, pw)``: by reflection (the edge row not repeated) or by replication."""

    ph: int
    pw: int
    mode: str = "reflect"

    def out_size(self, size: Size) -> Size:
        return size[0] + self.ph, size[1] + self.pw

    def _map(self, o0: int, o1: int, n: int) -> torch.Tensor:
        idx = torch.arange(o0, o1)
        over = idx >= n
        idx[over] = (2 * (n - 1) - idx[over]) if self.mode == "reflect" else n - 1
        return idx

    def needed(self, box: Box, size: Size) -> Box:
        ys, xs = self._map(box[0], box[1], size[0]), self._map(box[2], box[3], size[1])
        return int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1

    def apply(self, x: torch.Tensor, in_box: Box, out_box: Box, size: Size, ctx: _Context) -> torch.Tensor:
        if out_box[1] <= size[0] and out_box[3] <= size[1]:
            return x  # inside the image: the box is its own input
        ys = self._map(out_box[0], out_box[1], size[0]) - in_box[0]
        xs = self._map(out_box[2], out_box[3], size[1]) - in_box[2]
        return x.index_select(2, ys.to(x.device)).index_select(3, xs.to(x.device))


@dataclass
class Crop(Op):
    """Keep ``[0, h) x [0, w)`` (the padded network's result cropped back to the photo's size)."""

    h: int
    w: int

    def out_size(self, size: Size) -> Size:
        return self.h, self.w


class Mark(Op):
    """Remember the current tensor for a residual skip (see :class:`AddMark`)."""

    def apply(self, x: torch.Tensor, in_box: Box, out_box: Box, size: Size, ctx: _Context) -> torch.Tensor:
        ctx.skips.append((x, in_box))
        return x


class AddMark(Op):
    """``x + skip``, the skip cropped to this box (residual blocks keep the size, so it is a plain crop)."""

    def apply(self, x: torch.Tensor, in_box: Box, out_box: Box, size: Size, ctx: _Context) -> torch.Tensor:
        skip, box = ctx.skips.pop()
        y0, x0 = out_box[0] - box[0], out_box[2] - box[2]
        return x + skip[:, :, y0 : y0 + x.shape[2], x0 : x0 + x.shape[3]]


class Cache(Op):
    """A point where the whole activation is kept (computed tile by tile once); later passes start there."""


class GlobalOp(Op):
    """An op whose arithmetic needs statistics of the WHOLE input at its level (same size out as in).

    ``extension``: ops run on the input before accumulating (none for a norm); :meth:`accumulate` is called once
    per tile of the extension's output level, each position in exactly one tile; :meth:`finish` then fixes the
    statistics, after which :meth:`apply` is pointwise in position.
    """

    extension: Sequence[Op] = ()
    ready: bool = False

    def accumulate(self, t: torch.Tensor) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def finish(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError


class Moments(GlobalOp):
    """Accumulates per-channel mean and variance of (1, C, h, w) tiles: each tile's in fp32 (``var_mean``),
    merged in float64 by Chan et al.'s pairwise formula (no sum-of-squares cancellation)."""

    def __init__(self) -> None:
        self.mean: torch.Tensor | None = None
        self.m2: torch.Tensor | None = None  # sum of squared deviations from the mean
        self.count = 0
        self.ready = False

    def accumulate(self, t: torch.Tensor) -> None:
        var_b, mean_b = torch.var_mean(t.float(), dim=(0, 2, 3), correction=0)
        n_b = t.shape[0] * t.shape[2] * t.shape[3]
        mean_b, m2_b = mean_b.double(), var_b.double() * n_b
        if self.mean is None or self.m2 is None:
            self.mean, self.m2, self.count = mean_b, m2_b, n_b
            return
        n = self.count + n_b
        delta = mean_b - self.mean
        self.mean = self.mean + delta * (n_b / n)
        self.m2 = self.m2 + m2_b + delta * delta * (self.count * n_b / n)
        self.count = n

    def mean_var(self) -> tuple[torch.Tensor, torch.Tensor]:
        assert self.mean is not None and self.m2 is not None
        return self.mean, self.m2 / self.count  # biased, as instance norm


class Norm(Moments):
    """Instance norm with a fixed affine: ``gamma (x - mean) / sqrt(var + eps) + beta``, statistics whole-image.

    ``gamma``, ``beta``: (C,) float. The result is float32 (as ``batch_norm``'s under autocast is not: the next conv
    casts it again).
    """

    def __init__(self, gamma: torch.Tensor, beta: torch.Tensor, eps: float) -> None:
        super().__init__()
        self.gamma, self.beta, self.eps = gamma.float().flatten(), beta.float().flatten(), eps
        self.scale: torch.Tensor | None = None
        self.shift: torch.Tensor | None = None

    def finish(self) -> None:
        mean, var = self.mean_var()
        scale = self.gamma.double() / torch.sqrt(var + self.eps)
        self.scale = scale.float().reshape(1, -1, 1, 1)
        self.shift = (self.beta.double() - mean * scale).float().reshape(1, -1, 1, 1)
        self.ready = True

    def apply(self, x: torch.Tensor, in_box: Box, out_box: Box, size: Size, ctx: _Context) -> torch.Tensor:
        assert self.shift is not None and self.scale is not None
        return torch.addcmul(self.shift, x.float(), self.scale)


class SubtractMean(Moments):
    """``x - mean(x)`` per channel over the whole image (``value``, (1, C, 1, 1): later ops may add it back)."""

    def finish(self) -> None:
        self.value = self.mean_var()[0].float().reshape(1, -1, 1, 1)
        self.ready = True

    def apply(self, x: torch.Tensor, in_box: Box, out_box: Box, size: Size, ctx: _Context) -> torch.Tensor:
        return x.float() - self.value


@dataclass
class _Context:
    skips: list[tuple[torch.Tensor, Box]] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------------------------
# The runner
# ---------------------------------------------------------------------------------------------------------------

Fetch = Callable[[Box], torch.Tensor]  # box of a level -> (1, C, h, w) tensor of it


def tiles(size: Size, tile: int) -> Iterator[Box]:
    """Row-major boxes of side ``tile`` covering (H, W); the last row/column may be smaller."""
    h, w = size
    for y in range(0, h, tile):
        for x in range(0, w, tile):
            yield y, min(y + tile, h), x, min(x + tile, w)


def _compute(ops: Sequence[Op], sizes: Sequence[Size], box: Box, fetch: Fetch) -> torch.Tensor:
    """Run ``ops`` (whose input levels have ``sizes[i]``) for output ``box``, reading the input through ``fetch``."""
    boxes = [box]
    for op, size in zip(reversed(ops), reversed(sizes), strict=True):
        boxes.append(op.needed(boxes[-1], size))
    boxes.reverse()  # boxes[i]: input box of ops[i]; boxes[-1] == box
    ctx = _Context()
    x = fetch(boxes[0])
    for i, op in enumerate(ops):
        x = op.apply(x, boxes[i], boxes[i + 1], sizes[i], ctx)
    return x


def _level_tile(tile: int, level: Size, base: Size) -> int:
    """A level's tile side: ``tile`` input pixels at the level's resolution (at least 16)."""
    return max(16, round(tile * max(level[0] / base[0], level[1] / base[1])))


def tensor_fetch(t: torch.Tensor) -> Fetch:
    """Boxes of a whole (1, C, H, W) tensor."""
    return lambda b: t[:, :, b[0] : b[1], b[2] : b[3]]


def photo_fetch(photo: np.ndarray, device: torch.device | str = "cpu") -> Fetch:
    """Boxes of an (H, W, 3) uint8 photo as (1, 3, h, w) float32 in [0, 1] (``pil_to_tensor``'s arithmetic)."""

    def fetch(b: Box) -> torch.Tensor:
        crop = np.asarray(photo[b[0] : b[1], b[2] : b[3]], dtype=np.float32) / 255.0
        return torch.from_numpy(crop).permute(2, 0, 1).unsqueeze(0).contiguous().to(device)

    return fetch


def run_tiled(
    ops: Sequence[Op],
    size: Size,
    fetch: Fetch,
    emit: Callable[[Box, torch.Tensor], None],
    tile: int = DEFAULT_TILE,
    check: Callable[[], None] | None = None,
) -> None:
    """Run the network ``ops`` on an input of ``size`` (H, W) read through ``fetch``, tile by tile, exactly.

    Every :class:`GlobalOp` gets its statistics from the whole image (a pass each, in order); each :class:`Cache`
    keeps that level whole; then ``emit(box, out)`` receives the final output tile by tile (``out``: (1, C, h, w)
    for ``box`` of the last level). ``check`` (e.g. a cancel token's) is called before every tile.
    """
    sizes = [size]
    for op in ops:
        sizes.append(op.out_size(sizes[-1]))
    start, source = 0, fetch
    for i, op in enumerate(ops):
        if isinstance(op, GlobalOp) and not op.ready:
            chain = list(ops[start:i]) + list(op.extension)
            chain_sizes = sizes[start : i + 1]
            for ext in op.extension:
                chain_sizes.append(ext.out_size(chain_sizes[-1]))
            level = chain_sizes[-1]
            for box in tiles(level, _level_tile(tile, level, size)):
                if check is not None:
                    check()
                op.accumulate(_compute(chain, chain_sizes[:-1], box, source))
            op.finish()
        elif isinstance(op, Cache):
            level = sizes[i]
            whole: torch.Tensor | None = None
            for box in tiles(level, _level_tile(tile, level, size)):
                if check is not None:
                    check()
                t = _compute(ops[start:i], sizes[start:i], box, source)
                if whole is None:
                    whole = t.new_empty((1, t.shape[1], *level))
                whole[:, :, box[0] : box[1], box[2] : box[3]] = t
            assert whole is not None
            start, source = i + 1, tensor_fetch(whole)  # the previous cache (if any) is freed here
            del whole
    level = sizes[-1]
    for box in tiles(level, _level_tile(tile, level, size)):
        if check is not None:
            check()
        emit(box, _compute(ops[start:], sizes[start:-1], box, source))


# ---------------------------------------------------------------------------------------------------------------
# Output assembly
# ---------------------------------------------------------------------------------------------------------------

Finish = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (out tile, photo tile) -> out tile, both (1,3,h,w)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(1, 3, h, w) float -> (h, w, 3) uint8, as ``media.tensor_to_pil`` rounds (clamped, +0.5, truncated)."""
    return (x[0].detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255.0 + 0.5).astype(np.uint8)


def writer(out: np.ndarray, fetch: Fetch, finish: Finish | None) -> Callable[[Box, torch.Tensor], None]:
    """An ``emit`` for :func:`run_tiled` that finishes each tile with the photo's tile and writes it into ``out``."""

    def emit(box: Box, t: torch.Tensor) -> None:
        t = t.float()
        if finish is not None:
            t = finish(t, fetch(box))
        out[box[0] : box[1], box[2] : box[3]] = to_uint8(t)

    return emit


# ---------------------------------------------------------------------------------------------------------------
# Guided upsampling (fast guided filter)
# ---------------------------------------------------------------------------------------------------------------


def _luma(x: torch.Tensor) -> torch.Tensor:
    """(1, 3, h, w) RGB -> (1, 1, h, w) BT.601 luma (the Y of ``imaging.rgb_to_ycbcr``)."""
    return 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]


def _box(x: torch.Tensor, r: int) -> torch.Tensor:
    """Mean over (2r+1)^2 windows, the window cut at the image border (divided by the pixels it holds)."""
    return F.avg_pool2d(x, 2 * r + 1, stride=1, padding=r, count_include_pad=False)


def _bilinear_axis(o0: int, o1: int, n_in: int, n_out: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``F.interpolate(mode="bilinear", align_corners=False, size=...)``'s source rows for outputs o0..o1-1."""
    src = ((torch.arange(o0, o1, dtype=torch.float64) + 0.5) * (n_in / n_out) - 0.5).clamp_min(0)
    i0 = src.floor().long().clamp_max(n_in - 1)
    i1 = (i0 + 1).clamp_max(n_in - 1)
    return i0, i1, (src - i0).float()


def _upsample_box(x: torch.Tensor, box: Box, full: Size) -> torch.Tensor:
    """Box ``box`` of ``x`` (1, C, h, w) upsampled bilinearly to ``full`` (H, W), without making the whole of it."""
    h, w = x.shape[-2:]
    y0, y1, wy = _bilinear_axis(box[0], box[1], h, full[0])
    x0, x1, wx = _bilinear_axis(box[2], box[3], w, full[1])
    rows = torch.lerp(x[:, :, y0], x[:, :, y1], wy.view(1, 1, -1, 1))  # (1, C, bh, w)
    return torch.lerp(rows[:, :, :, x0], rows[:, :, :, x1], wx.view(1, 1, 1, -1))


def guided_upsample(
    low: torch.Tensor,
    guide_low: torch.Tensor,
    full: Size,
    fetch: Fetch,
    *,
    radius: int = 2,
    eps: float = 1e-3,
    tile: int = 1024,
    finish: Finish | None = None,
    check: Callable[[], None] | None = None,
) -> np.ndarray:
    """Bring a low-resolution result to full size, guided by the full-size photo (fast guided filter).

    ``low``: (1, 3, h, w) float in [0, 1], the network's result at the working size; ``guide_low``: (1, 3, h, w)
    the photo at that size; ``full``: (H, W); ``fetch(box)``: the full-size photo's (1, 3, bh, bw) float box.
    ``radius`` (in working-size pixels) and ``eps`` (on [0, 1] luma) are the filter's window and smoothing: a
    larger eps copies fewer of the photo's edges. ``finish(out, photo)`` post-processes each full-size tile
    (strength mix, colour preservation). Returns the (H, W, 3) uint8 result.
    """
    low, guide = low.float(), _luma(guide_low.float())
    mean_i = _box(guide, radius)
    var_i = _box(guide * guide, radius) - mean_i * mean_i
    mean_p = _box(low, radius)
    cov_ip = _box(guide * low, radius) - mean_i * mean_p
    a = _box(cov_ip / (var_i + eps), radius)  # (1, 3, h, w)
    # Departure from the guided filter's q = A I + B, B = box(mean_p - a mean_I): the same linear model applied to
    # the photo's detail only, q = up(p) + A (I - up(I_low)), so the result's strokes are not box-filtered twice
    # (at the default working size that smoothing blurred them away) while the photo's edges still come back.
    base = torch.cat([a, low, guide], dim=1)  # (1, 7, h, w): A, p, I_low, upsampled together per tile
    out = np.empty((*full, 3), dtype=np.uint8)
    for box in tiles(full, tile):
        if check is not None:
            check()
        photo = fetch(box)
        up = _upsample_box(base, box, full)
        q = up[:, 3:6] + up[:, :3] * (_luma(photo) - up[:, 6:7])
        if finish is not None:
            q = finish(q.clamp(0, 1), photo)
        out[box[0] : box[1], box[2] : box[3]] = to_uint8(q)
    return out


def working_shape(size: tuple[int, int], working_size: int | None) -> tuple[int, int] | None:
    """(W, H) the network paints at for an output of ``size`` (W, H), or None to paint at the output size."""
    if working_size is None or max(size) <= working_size:
        return None
    s = working_size / max(size)
    return max(1, round(size[0] * s)), max(1, round(size[1] * s))


def needs_tiles(size: tuple[int, int], tile_above: int | None = None) -> bool:
    """Whether a (W, H) image is large enough to run tile by tile."""
    return math.prod(size) > (TILE_ABOVE if tile_above is None else tile_above)


# ---------------------------------------------------------------------------------------------------------------
# The networks as ops
# ---------------------------------------------------------------------------------------------------------------


def _relu(x: torch.Tensor) -> torch.Tensor:
    return F.relu(x)


def _sigmoid(x: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(x)


def _reflect_conv(conv: torch.nn.Conv2d) -> list[Op]:
    """impasto.nets.magenta's ``_ReflectConv`` (optionally 2x nearest upsampling first)."""
    ops: list[Op] = [Upsample2()] if getattr(conv, "upsample", False) else []
    return [*ops, Conv(conv.weight, conv.bias, conv.reflect, conv.stride[0])]  # type: ignore[arg-type]


def magenta_ops(net: torch.nn.Module, style: torch.Tensor, size: Size) -> list[Op]:
    """A :class:`~impasto.nets.magenta.StyleTransformer` with style vector ``style`` (1, 100), for an (H, W) input,
    as ops: pad to a multiple of 4, encoder, [cache], residual blocks (a cache after each), decoder, crop."""
    net_: Any = net  # a StyleTransformer: its submodules' attributes, not nn.Module's
    h, w = size
    m = net_.multiple
    style = style.reshape(1, -1).float()
    eps = net_.config.eps

    def norm(layer: Any) -> Norm:
        with torch.autocast(style.device.type, enabled=False):
            return Norm(layer.gamma(style)[0], layer.beta(style)[0], eps)

    ops: list[Op] = [PadBottomRight((-h) % m, (-w) % m)]
    for conv in net_.contract:
        ops += [*_reflect_conv(conv), Pointwise(_relu)]
    ops.append(Cache())
    for block in net_.residual:
        ops += [Mark(), *_reflect_conv(block.conv1), norm(block.norm1), Pointwise(_relu)]
        ops += [*_reflect_conv(block.conv2), norm(block.norm2), AddMark(), Cache()]
    last = len(net_.expand) - 1
    for i, (conv, layer) in enumerate(zip(net_.expand, net_.expand_norms, strict=True)):
        ops += [*_reflect_conv(conv), norm(layer), Pointwise(_sigmoid if i == last else _relu)]
    return [*ops, Crop(h, w)]


def multistyle_ops(net: torch.nn.Module, weights: torch.Tensor, size: Size) -> list[Op]:
    """A :class:`~impasto.nets.magenta.MultiStyleTransformer` with (26,) style ``weights``, for an (H, W) input."""
    net_: Any = net  # a MultiStyleTransformer: its submodules' attributes, not nn.Module's
    h, w = size
    m = net_.multiple
    weights = weights.reshape(1, -1).float()
    eps = net_.config.eps

    def layer(mix: Any) -> list[Op]:
        with torch.autocast(weights.device.type, enabled=False):
            gamma, beta = weights @ mix.norm.gamma.float(), weights @ mix.norm.beta.float()  # (1, C)
        return [*_reflect_conv(mix.conv), Norm(gamma[0], beta[0], eps)]

    ops: list[Op] = [SubtractMean(), PadBottomRight((-h) % m, (-w) % m)]
    for mix in net_.contract:
        ops += [*layer(mix), Pointwise(_relu)]
    ops.append(Cache())
    for first, second in net_.residual:
        ops += [Mark(), *layer(first), Pointwise(_relu), *layer(second), AddMark(), Cache()]
    last = len(net_.expand) - 1
    for i, mix in enumerate(net_.expand):
        ops += [*layer(mix), Pointwise(_sigmoid if i == last else _relu)]
    return [*ops, Crop(h, w)]


class LinearTransform(GlobalOp):
    """The linear method's transformation (``impasto.nets.linear.Transform.transform``) with whole-image statistics.

    Input: the content features minus their whole-image mean (:class:`SubtractMean` ``centre`` before it).
    The covariance of ``cnet.convs(centred)`` (zero-padded 3x3 convs: :attr:`extension`) is accumulated over every
    position, ``T = S cnet.fc(cov)``, and each position becomes ``unzip(T compress(c)) + mu_s``, mixed with the
    content's own features ``c + mean`` by ``strength``.
    """

    trans: Any  # impasto.nets.linear.Transform: its submodules' attributes, not nn.Module's

    def __init__(
        self, trans: torch.nn.Module, matrix: torch.Tensor, mean: torch.Tensor, centre: SubtractMean, strength: float
    ) -> None:
        cnet: Any = trans.cnet
        ext: list[Op] = []
        for mod in cnet.convs:
            if isinstance(mod, torch.nn.Conv2d):
                ext.append(Conv(mod.weight, mod.bias, cast(int, mod.padding[0]), mod.stride[0], mode="zeros"))
            else:
                ext.append(Pointwise(_relu))
        self.extension = ext
        self.trans, self.s_matrix, self.s_mean, self.centre, self.strength = trans, matrix, mean, centre, strength
        self.gram: torch.Tensor | None = None
        self.count = 0
        self.ready = False

    def accumulate(self, t: torch.Tensor) -> None:
        z = t.double().reshape(t.shape[1], -1)  # (32, h*w)
        g = z @ z.T
        self.gram = g if self.gram is None else self.gram + g
        self.count += z.shape[1]

    def finish(self) -> None:
        assert self.gram is not None
        cov = (self.gram / self.count).float().unsqueeze(0)  # (1, 32, 32)
        self.t = torch.bmm(self.s_matrix.float(), self.trans.cnet.matrix(cov))  # (1, 32, 32)
        self.ready = True

    def apply(self, x: torch.Tensor, in_box: Box, out_box: Box, size: Size, ctx: _Context) -> torch.Tensor:
        z = self.trans.compress(x)
        n, k, h, w = z.shape
        z = torch.bmm(self.t, z.reshape(n, k, h * w)).reshape(n, k, h, w)  # (1, 32, h, w)
        f = self.trans.unzip(z) + self.s_mean
        if self.strength < 1.0:
            f = self.strength * f + (1.0 - self.strength) * (x + self.centre.value)
        return f


def linear_ops(
    encoder: torch.nn.Module, trans: torch.nn.Module, decoder: torch.nn.Module, decoder_dtype: torch.dtype,
    matrix: torch.Tensor, mean: torch.Tensor, strength: float, pad: tuple[int, int, str], size: Size,
) -> list[Op]:  # fmt: skip
    """The linear method (``impasto.fast.linear.LinearStylizer.render``) for an (H, W) input, as ops: pad
    (``(ph, pw, mode)``), encoder, whole-image centring and transform, decoder (its weights' dtype), crop."""
    enc: Any = encoder  # impasto.nets.linear's encoder and decoder: their own attributes, not nn.Module's
    dec: Any = decoder
    h, w = size
    ops: list[Op] = [PadBottomRight(*pad), Conv(enc.conv1.weight, enc.conv1.bias, 0)]
    for key, _cin, _cout, _tap, pool in enc._convs:
        conv = getattr(encoder, key)
        ops += [Conv(conv.weight, conv.bias, 1), Pointwise(_relu)]
        if pool and key != enc._convs[-1][0]:
            ops.append(MaxPool2())
    centre = SubtractMean()
    ops += [centre, LinearTransform(trans, matrix, mean, centre, strength)]
    ops.append(Pointwise(lambda x: x.to(decoder_dtype)))
    last = len(dec._convs) - 1
    for i, (key, _cin, _cout, up) in enumerate(dec._convs):
        conv = getattr(decoder, key)
        ops.append(Conv(conv.weight, conv.bias, 1))
        if i < last:
            ops.append(Pointwise(_relu))
        if up:
            ops.append(Upsample2())
    return [*ops, Pointwise(lambda x: x.float()), Crop(h, w)]
