"""The painting loss tile by tile, exactly, and gradient checkpointing through the feature network.

Why it is exact. Every loss term is a sum over feature positions: the content loss ``w * sum (F - P)^2 / N``, the
Gram matrix ``G = sum_p f_p f_p^T / (C H W)``, and the W2 loss's mean ``sum_p f_p / (H W)`` and second moment
``sum_p f_p f_p^T / (H W)`` (covariance ``M2 - mu mu^T``). So the image is cut into tiles, and each tile's
**interior** -- the feature positions it owns at every tapped layer -- is computed from a **crop** of the input
wide enough that those positions equal the untiled network's:

* the crop reaches past the interior by the receptive field of the deepest tap (``Geometry.left``/``right``,
  from each conv/pool's kernel, stride and padding), so no position of the interior sees the crop's own zero
  padding -- where the crop ends at the image's edge the padding is the image's and nothing is lost;
* crop origins are multiples of the total stride ``T`` of the tapped part of the network, so every pool and
  strided conv samples the same grid as the untiled pass; and the crop's length is congruent to the image's
  modulo ``T``, so padding that depends on the size (the MobileNetV2's TensorFlow "SAME" padding: one pixel
  before or none, by parity) is the untiled network's too.

The interiors partition every tapped layer's positions, so sums over interiors are the whole-image sums.

Two passes (:func:`evaluate_tiled`):

1. under ``no_grad``, each crop's features give the interior's sums (squared content error, Gram sums, first and
   second moments); from the whole-image statistics the loss terms are computed by the same functions as the
   untiled loss (:mod:`impasto.gatys.losses`, through leaf tensors), and autograd gives ``dL/dstatistic``;
2. each crop runs forward again with grad; ``dL/dF`` of its interior is written from the statistics' gradients
   (content ``dL/dmse * 2 (F - P) / N``; Gram ``(dG + dG^T) F / (C H W)``; W2
   ``dmu / (H W) + (dM2 + dM2^T) F / (H W)``) and back-propagated to the crop, whose gradient adds into the image's.

TV is cheap and computed on the whole image. The loss returned carries the precomputed gradient, so a caller's
``loss.backward()`` fills ``img.grad`` as the untiled loss would (fp32; tests/test_tiled_paint.py checks equality to
float tolerance). Halo pixels are computed twice (once per tile that needs them): a tile of side ``t`` with halo
``h`` costs ``((t + 2h) / t)^2`` of its area, plus the first pass's forward.

Gradient checkpointing (:func:`iter_features`): the network runs in segments between tapped layers, each under
``torch.utils.checkpoint``; only the taps are kept for the backward pass, a segment's inner activations are
recomputed then. Same values, bit for bit.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from ..errors import ConfigError
from ..nets import magenta
from ..nets.vgg import TappedNet
from . import losses as L
from .fastpath import unfused

__all__ = ["Geometry", "Tile", "evaluate_tiled", "geometry", "iter_features", "tile_grid", "tiled_features"]


# --- geometry: receptive fields and strides of the tapped layers ----------------------------------------------


@dataclass(frozen=True)
class _Op:
    """One spatial op: square ``kernel``, ``stride``, the left padding's least and largest value (in its input)."""

    name: str
    kernel: int = 1
    stride: int = 1
    pad_min: int = 0
    pad_max: int = 0


def _ops(net: Any) -> list[_Op]:
    """The spatial ops of a feature network in order, each named by the tap that follows it."""
    net = unfused(net)
    if isinstance(net, TappedNet):
        out = []
        for layer in net.layers:
            if layer.kind == "conv":
                out.append(_Op(layer.name, layer.kernel, layer.stride, layer.padding, layer.padding))
            elif layer.kind == "pool":
                out.append(_Op(layer.name, layer.kernel, layer.stride))
            else:
                out.append(_Op(layer.name))
        return out
    if isinstance(net, magenta.StylePredictor):
        out = [_Op("conv0", 3, 2, 0, 1)]  # "SAME": 0 or 1 pixel before, by the size's parity
        block: Any
        for i, block in enumerate(net.blocks):
            if block.expand is not None:
                out.append(_Op(f"block{i}_expand"))
            pad = (1, 1) if block.stride == 1 else (0, 1)
            out.append(_Op(f"block{i}_depthwise", 3, block.stride, *pad))
            out.append(_Op(f"block{i}_project"))
        out.append(_Op("conv_last"))
        return out
    raise ConfigError(
        f"the tiled loss pass does not know the geometry of {type(net).__name__}; use tile_size=-1 (no tiles)"
    )


@dataclass(frozen=True)
class Geometry:
    """How the tapped layers see the input: total ``stride`` T, reach ``left``/``right`` (input px), per-tap stride."""

    stride: int
    left: int
    right: int
    strides: dict[str, int]


def geometry(net: Any, layers: Iterable[str]) -> Geometry:
    """The :class:`Geometry` of ``layers`` in ``net`` (a VGG/NIN :class:`TappedNet` or the MobileNetV2).

    Per tap: receptive field ``R = 1 + sum (k - 1) S_in``, stride ``S = prod s`` and left padding ``P = sum p S_in``
    (``S_in`` the stride before the op). Interior positions ``[x0 / S, x1 / S)`` need input ``[x0 - P_max,
    x1 - S - P_min + R)``; the reach is the largest over the taps.
    """
    wanted = set(layers)
    if "pool" in wanted:
        raise ConfigError("the MobileNetV2's global 'pool' layer cannot be tiled; use tile_size=-1 (no tiles)")
    rf, stride, pmin, pmax = 1, 1, 0, 0
    left = right = 0
    strides: dict[str, int] = {}
    for op in _ops(net):
        rf += (op.kernel - 1) * stride
        pmin += op.pad_min * stride
        pmax += op.pad_max * stride
        stride *= op.stride
        if op.name in wanted:
            strides[op.name] = stride
            left = max(left, pmax)
            right = max(right, rf - stride - pmin)
            if len(strides) == len(wanted):
                break
    missing = sorted(wanted - set(strides))
    if missing:
        raise ConfigError(f"layer(s) {', '.join(missing)} are not in the tiled network")
    return Geometry(stride=max(strides.values()), left=left, right=right, strides=strides)


# --- tiles ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tile:
    """A tile: interior ``[y0, y1) x [x0, x1)`` and the crop computed for it ``[cy0, cy1) x [cx0, cx1)``, input px."""

    y0: int
    y1: int
    x0: int
    x1: int
    cy0: int
    cy1: int
    cx0: int
    cx1: int
    last_row: bool
    last_col: bool


def _spans(n: int, tile: int, geo: Geometry) -> list[tuple[int, int, int, int]]:
    """Along one axis of length ``n``: ``(interior start, end, crop start, end)`` per tile."""
    t = geo.stride
    out = []
    for a in range(0, n, tile):
        b = min(a + tile, n)
        c0 = max(0, (a - geo.left) // t * t)  # aligned down to the total stride
        c1 = b + geo.right
        if c1 >= n:
            c1 = n
        else:
            c1 = min(n, c1 + (n - c1) % t)  # crop length congruent to n modulo T ("SAME" padding as untiled)
        out.append((a, b, c0, c1))
    return out


def tile_grid(height: int, width: int, tile: int, geo: Geometry) -> list[Tile]:
    """Tiles of side ``tile`` (rounded up to a multiple of the total stride) covering an (H, W) image, row by row."""
    tile = max(geo.stride, -(-int(tile) // geo.stride) * geo.stride)
    rows, cols = _spans(height, tile, geo), _spans(width, tile, geo)
    return [
        Tile(y0, y1, x0, x1, cy0, cy1, cx0, cx1, y1 == height, x1 == width)
        for (y0, y1, cy0, cy1) in rows
        for (x0, x1, cx0, cx1) in cols
    ]


def _interior(f: torch.Tensor, tile: Tile, stride: int) -> tuple[slice, slice, int, int]:
    """The interior of a crop's activation ``f`` (1, C, h, w): local row/column slices and its global offset."""
    h, w = f.shape[-2:]
    oy, ox = tile.cy0 // stride, tile.cx0 // stride  # the crop's origin at this layer (crop origins are aligned)
    ya, xa = min(tile.y0 // stride - oy, h), min(tile.x0 // stride - ox, w)
    yb = h if tile.last_row else min(tile.y1 // stride - oy, h)
    xb = w if tile.last_col else min(tile.x1 // stride - ox, w)
    return slice(ya, yb), slice(xa, xb), oy + ya, ox + xa


# --- running the network: plain or checkpointed ---------------------------------------------------------------


def _predictor_steps(net: magenta.StylePredictor) -> list[tuple[str, Callable[..., tuple[torch.Tensor, torch.Tensor]]]]:
    """The MobileNetV2's trunk as named steps on a state ``(x, h)`` (block input, current value; the tap is h).

    Mirrors :meth:`impasto.nets.magenta.StylePredictor._run` (tests/test_tiled_paint.py checks equality).
    """

    def conv0(x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = F.relu6(net.conv0(magenta._same_pad(h, 3, 2)))
        return y, y

    steps: list[tuple[str, Callable[..., tuple[torch.Tensor, torch.Tensor]]]] = [("conv0", conv0)]
    for i, block in enumerate(net.blocks):
        if block.expand is not None:
            steps.append((f"block{i}_expand", lambda x, h, b=block: (x, F.relu6(b.expand(x)))))

        def depthwise(x: torch.Tensor, h: torch.Tensor, b: Any = block) -> tuple[torch.Tensor, torch.Tensor]:
            if b.stride != 1:
                h = magenta._same_pad(h, 3, b.stride)
            return x, F.relu6(b.depthwise(h))

        def project(x: torch.Tensor, h: torch.Tensor, b: Any = block) -> tuple[torch.Tensor, torch.Tensor]:
            y = b.project(h)
            y = y + x if b.residual else y
            return y, y

        steps += [(f"block{i}_depthwise", depthwise), (f"block{i}_project", project)]

    def last(x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = F.relu6(net.conv_last(x))
        return y, y

    steps.append(("conv_last", last))
    return steps


def iter_features(
    net: Any, x: torch.Tensor, names: Sequence[str], checkpointed: bool = False
) -> Iterator[tuple[str, torch.Tensor]]:
    """``(name, activation)`` for ``names`` in network order, like ``net.iter_features``; optionally checkpointed.

    ``checkpointed``: each segment between two taps runs under ``torch.utils.checkpoint`` (when grad is on), so the
    backward pass keeps only the taps and recomputes the rest.
    """
    wanted = set(names)
    if not wanted:
        return
    ckpt = checkpointed and torch.is_grad_enabled()
    net = unfused(net)  # segments run layer by layer
    if isinstance(net, TappedNet):
        net.check_names(wanted)
        stops = sorted(net.depth_of(n) for n in wanted)
        start = 0
        for stop in stops:

            def segment(t: torch.Tensor, a: int = start, b: int = stop + 1) -> torch.Tensor:
                return net.run_range(t, a, b, wanted, {})

            x = checkpoint(segment, x, use_reentrant=False) if ckpt else segment(x)
            yield net.layer_names[stop], x
            start = stop + 1
        return
    if isinstance(net, magenta.StylePredictor):
        steps = _predictor_steps(net)
        index = {name: i for i, (name, _) in enumerate(steps)}
        unknown = sorted(wanted - set(index))
        if unknown:
            raise ConfigError(f"layer(s) {', '.join(unknown)} cannot be tapped by the tiled or checkpointed pass")
        state = (x, x)
        start = 0
        for stop in sorted(index[n] for n in wanted):

            def run(a: torch.Tensor, b: torch.Tensor, lo: int = start, hi: int = stop + 1) -> Any:
                s = (a, b)
                for _, fn in steps[lo:hi]:
                    s = fn(*s)
                return s

            state = checkpoint(run, *state, use_reentrant=False) if ckpt else run(*state)
            yield steps[stop][0], state[1]
            start = stop + 1
        return
    if checkpointed:
        raise ConfigError(f"network checkpointing does not support {type(net).__name__}; use network_checkpointing=off")
    yield from net.features(x, names).items() if not hasattr(net, "iter_features") else net.iter_features(x, names)


def _net_input(problem: Any, crop: torch.Tensor) -> torch.Tensor:
    """A crop of the image as the network takes it (bf16 channels_last on the fast path)."""
    if problem.fast_net is None:
        return crop
    x = crop.to(problem.fast_dtype)
    if crop.device.type in ("cpu", "cuda"):
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def tiled_features(
    net: Any, x: torch.Tensor, names: Sequence[str], tile: int
) -> dict[str, torch.Tensor]:  # fmt: skip
    """The untiled ``net.features(x, names)`` of (1, 3, H, W) assembled from tiles (no grad); for targets and tests."""
    geo = geometry(net, names)
    out: dict[str, torch.Tensor] = {}
    pieces: dict[str, dict[tuple[int, int], torch.Tensor]] = {n: {} for n in names}
    with torch.no_grad():
        for t in tile_grid(x.shape[-2], x.shape[-1], tile, geo):
            for n, f in iter_features(net, x[..., t.cy0 : t.cy1, t.cx0 : t.cx1], list(names)):
                ys, xs, gy, gx = _interior(f, t, geo.strides[n])
                pieces[n][(gy, gx)] = f[..., ys, xs]
    for n, parts in pieces.items():
        rows: dict[int, list[tuple[int, torch.Tensor]]] = {}
        for (gy, gx), p in parts.items():
            rows.setdefault(gy, []).append((gx, p))
        stripes = [torch.cat([p for _, p in sorted(r, key=lambda e: e[0])], -1) for _, r in sorted(rows.items())]
        out[n] = torch.cat(stripes, -2)  # (1, C, h, w)
    return out


# --- the two-pass tiled loss ----------------------------------------------------------------------------------


class _WithGradient(torch.autograd.Function):
    """``value`` in the forward pass; ``grad_output * gradient`` to ``img`` in the backward pass."""

    @staticmethod
    def forward(ctx, img: torch.Tensor, value: torch.Tensor, gradient: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
        ctx.save_for_backward(gradient)
        return value.clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:  # noqa: ANN001
        (gradient,) = ctx.saved_tensors
        return gradient * grad, None, None


@dataclass
class _Sums:
    """Whole-image sums of one tapped layer over the interiors seen so far."""

    shape: tuple[int, int, int] = (0, 0, 0)  # (C, h, w) of the untiled activation
    sq_err: torch.Tensor | None = None  # content: sum (F - P)^2, 0-d float64
    gram: torch.Tensor | None = None  # Gram: sum f f^T (C, C) fp32
    first: torch.Tensor | None = None  # W2: sum f (C,) float64
    second: torch.Tensor | None = None  # W2: sum f f^T (C, C) float64


def _add(a: torch.Tensor | None, b: torch.Tensor) -> torch.Tensor:
    return b if a is None else a + b


def evaluate_tiled(problem: Any, img: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """:func:`impasto.gatys.optimize.evaluate` computed tile by tile (``problem.tile_size`` px), exactly.

    ``img`` (1, 3, H, W) network space with ``requires_grad``. Returns the total (0-d, its backward puts the
    gradient into ``img.grad``) and the terms under the same labels. Uses ``problem.fast_net`` when set and
    ``problem.checkpointing`` for each tile's backward pass.
    """
    from .optimize import loss_labels  # the one definition of the labels (optimize imports this module lazily)

    config = problem.config
    ng = config.normalize_gradients
    w2 = bool(problem.style_stats)
    net = problem.fast_net if problem.fast_net is not None else problem.net
    order = list(problem.order)
    geo = geometry(net, order)
    height, width = img.shape[-2:]
    tiles = tile_grid(height, width, problem.tile_size, geo)
    base = img.detach()
    sums = {n: _Sums() for n in order}

    # pass 1: whole-image statistics from the interiors
    with torch.no_grad():
        for t in tiles:
            x = _net_input(problem, base[..., t.cy0 : t.cy1, t.cx0 : t.cx1])
            for n, f in iter_features(net, x, order):
                ys, xs, gy, gx = _interior(f, t, geo.strides[n])
                part = f[..., ys, xs].float()  # (1, C, hi, wi)
                c, hi, wi = part.shape[1:]
                s = sums[n]
                if t.y0 == 0 and t.x0 == 0:
                    s.shape = (c, 0, 0)
                if t.y0 == 0:
                    s.shape = (c, s.shape[1], s.shape[2] + wi)
                if t.x0 == 0:
                    s.shape = (c, s.shape[1] + hi, s.shape[2])
                if n in problem.content_targets:
                    target = problem.content_targets[n][..., gy : gy + hi, gx : gx + wi].float()
                    s.sq_err = _add(s.sq_err, (part - target).pow(2).sum().double())
                if n in problem.style_targets:
                    flat = part.reshape(c, hi * wi)  # (C, hi*wi)
                    if w2:
                        s.first = _add(s.first, flat.sum(1).double())
                        s.second = _add(s.second, torch.mm(flat, flat.t()).double())
                    else:
                        s.gram = _add(s.gram, torch.mm(flat, flat.t()))
            del x

    # the loss terms from whole-image statistics, by losses.py's own functions; their gradients by autograd
    leaves: dict[tuple[str, str], torch.Tensor] = {}
    content_terms: dict[str, torch.Tensor] = {}
    style_terms: dict[str, torch.Tensor] = {}
    with torch.enable_grad():
        for n in order:
            s = sums[n]
            c, h, w = s.shape
            if n in problem.content_targets:
                assert s.sq_err is not None  # set in pass 1 for every content layer
                mse = (s.sq_err / problem.content_targets[n].numel()).float().requires_grad_(True)
                leaves[(n, "mse")] = mse
                content_terms[n] = L.weighted(mse, problem.content_weights[n], ng).to(problem.device)
            if n in problem.style_targets:
                if w2:
                    assert s.first is not None and s.second is not None  # set in pass 1
                    mean = (s.first / (h * w)).float().requires_grad_(True)  # (C,)
                    second = (s.second / (h * w)).requires_grad_(True)  # (C, C) float64
                    leaves[(n, "mean")], leaves[(n, "second")] = mean, second
                    cov = (second - torch.outer(mean.double(), mean.double())).float()
                    term = L.w2_style_loss_of(mean, cov, problem.style_stats[n], problem.style_weights[n], ng)
                else:
                    assert s.gram is not None  # set in pass 1
                    gram = (s.gram / (c * h * w)).requires_grad_(True)  # (C, C)
                    leaves[(n, "gram")] = gram
                    term = L.style_loss(gram, problem.style_targets[n], problem.style_weights[n], ng)
                style_terms[n] = term.to(problem.device)
        stat_terms = [content_terms[n] for n in order if n in content_terms]
        stat_terms += [style_terms[n] for n in order if n in style_terms]
        keys = list(leaves)
        grads = torch.autograd.grad(cast(torch.Tensor, sum(stat_terms)), [leaves[k] for k in keys]) if keys else ()
    dstat = {k: g.detach() for k, g in zip(keys, grads, strict=True)}

    # pass 2: each crop's forward with grad, its interior's dL/dF, back to the crop's pixels
    gradient = torch.zeros_like(base)
    for t in tiles:
        crop = base[..., t.cy0 : t.cy1, t.cx0 : t.cx1].clone().requires_grad_(True)
        with torch.enable_grad():
            x = _net_input(problem, crop)
            outs: list[torch.Tensor] = []
            outgrads: list[torch.Tensor] = []
            for n, f in iter_features(net, x, order, checkpointed=problem.checkpointing):
                ys, xs, gy, gx = _interior(f, t, geo.strides[n])
                part = f[..., ys, xs].detach().float()  # (1, C, hi, wi)
                c, hi, wi = part.shape[1:]
                if hi == 0 or wi == 0:
                    continue
                ch, hh, ww = sums[n].shape
                g = torch.zeros_like(part)
                if n in problem.content_targets:
                    target = problem.content_targets[n][..., gy : gy + hi, gx : gx + wi].float()
                    numel = problem.content_targets[n].numel()
                    g += (part - target) * (2.0 * dstat[(n, "mse")] / numel)
                if n in problem.style_targets:
                    flat = part.reshape(c, hi * wi)  # (C, hi*wi)
                    if w2:
                        dm, d2 = dstat[(n, "mean")], dstat[(n, "second")].float()
                        gf = dm[:, None] / (hh * ww) + torch.mm(d2 + d2.t(), flat) / (hh * ww)
                    else:
                        dg = dstat[(n, "gram")]
                        gf = torch.mm(dg + dg.t(), flat) / (ch * hh * ww)
                    g += gf.reshape(1, c, hi, wi)
                full = torch.zeros_like(f)
                full[..., ys, xs] = g.to(f.dtype)
                outs.append(f)
                outgrads.append(full)
                del part, g
            if outs:
                torch.autograd.backward(outs, outgrads)
        if crop.grad is not None:
            gradient[..., t.cy0 : t.cy1, t.cx0 : t.cx1] += crop.grad
        del crop, x, outs, outgrads

    tv_weight = float(config.tv_weight or 0.0)
    tv = L.tv_loss(img, tv_weight) if tv_weight > 0 else None
    terms = [content_terms[n].detach() for n in order if n in content_terms]
    terms += [style_terms[n].detach() for n in order if n in style_terms]
    value = torch.stack(terms).sum() if terms else torch.zeros((), device=img.device)
    loss = _WithGradient.apply(img, value.to(img.device), gradient)
    if tv is not None:
        terms.append(tv.detach())
        loss = loss + tv
    values = torch.stack([t.float() for t in terms] + [loss.detach().float()]).tolist()
    return loss, dict(zip(loss_labels(problem), values, strict=True))


def crop_cost(tile: int, geo: Geometry) -> float:
    """How much larger a crop is than its tile, in area: ``((t + reach) / t)^2`` (the compute overhead)."""
    t = max(geo.stride, math.ceil(tile / geo.stride) * geo.stride)
    reach = geo.left + geo.right + 2 * geo.stride
    return ((t + reach) / t) ** 2


def untiled(problem: Any) -> Any:
    """``problem`` without tiles (for code that must see the untiled loss)."""
    return dataclasses.replace(problem, tile_size=0)


# --- targets tile by tile (what optimize._targets computes, for a run the memory plan tiles) --------------------


def style_statistics(
    net: Any, x: torch.Tensor, names: Sequence[str], tile: int, w2: bool
) -> dict[str, Any]:  # fmt: skip
    """Per layer the Gram matrix (C, C) of ``net``'s features of ``x`` (1, 3, H, W), or with ``w2`` its
    ``(mean (C,), covariance (C, C))``, accumulated over tiles (no grad); equal to
    :func:`impasto.gatys.losses.gram_matrix` / :func:`~impasto.gatys.losses.mean_cov` of the untiled features."""
    geo = geometry(net, names)
    sums: dict[str, list[Any]] = {}
    with torch.no_grad():
        for t in tile_grid(x.shape[-2], x.shape[-1], tile, geo):
            for n, f in iter_features(net, x[..., t.cy0 : t.cy1, t.cx0 : t.cx1], list(names)):
                ys, xs, _, _ = _interior(f, t, geo.strides[n])
                part = f[..., ys, xs].float()
                c = part.shape[1]
                flat = part.reshape(c, -1)  # (C, positions)
                s = sums.setdefault(n, [0, None, None])
                s[0] += flat.shape[1]
                if w2:
                    s[1] = _add(s[1], flat.sum(1).double())
                    s[2] = _add(s[2], torch.mm(flat, flat.t()).double())
                else:
                    s[2] = _add(s[2], torch.mm(flat, flat.t()))
    out: dict[str, Any] = {}
    for n, (count, first, second) in sums.items():
        c = second.shape[0]
        if w2:
            mean = first / count
            out[n] = (mean.float(), (second / count - torch.outer(mean, mean)).float())
        else:
            out[n] = second / (c * count)
    return out


def targets(
    net: Any, config: Any, content_in: torch.Tensor, content_layers: Sequence[str], style_layers: Sequence[str],
    styles_in: Sequence[torch.Tensor], tile: int,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, L.GaussianStats]]:  # fmt: skip
    """:func:`impasto.gatys.optimize._targets` tile by tile: content activations (stitched from the interiors) and
    the blended style Grams (or W2 means and covariances) of the preprocessed ``styles_in``, same blending."""
    content = tiled_features(net, content_in, list(content_layers), tile)
    content_targets = {n: content[n].detach() for n in content_layers}
    w2 = config.style_loss == "w2"
    blend = config.blend_weights(len(styles_in))
    per_style = [style_statistics(net, s, list(style_layers), tile, w2) for s in styles_in]
    if w2:
        stats = {n: L.blend_gaussians([p[n] for p in per_style], blend) for n in style_layers}
        return content_targets, {n: s.cov for n, s in stats.items()}, stats
    return content_targets, {n: L.blend_grams([p[n] for p in per_style], blend) for n in style_layers}, {}
