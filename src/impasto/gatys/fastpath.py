"""The fast path for painting (``PaintConfig.fast``): the feature network in bf16 and channels_last, losses in fp32.

What it changes, and why each piece pays on a CPU with AMX/AVX-512-BF16 (and on CUDA):

* a **bf16 copy of the network** in channels_last (NHWC) memory, made once per run: oneDNN/cuDNN run bf16 NHWC
  convolutions several times faster than fp32, and a copy (instead of ``torch.autocast``) casts each weight once,
  not on every forward pass (autocast re-casts frozen weights each call; that and the fp32<->bf16 copies of every
  activation cost about as much as the convolutions themselves);
* the image is cast to bf16 NHWC once per evaluation and every activation stays bf16 NHWC: no layout round-trips;
* **fused Gram/style and content losses** (:class:`StyleLoss`, :class:`ContentLoss`): the Gram matrix is a bf16
  matmul with fp32 accumulation (its (C, C) result rounded to bf16 once, then fp32), the losses are fp32, and the
  backward pass writes the activation's gradient straight in bf16 NHWC from one ``(H*W, C) @ (C, C)`` matmul -- no
  fp32 copy of the activation is made or saved, and autograd's cast-back copies disappear;
* ReLUs run in place where no tap needs the pre-activation (the network already does this); on a CPU with oneDNN
  (:class:`FusedTaps`) each ReLU rides on its convolution as a post-op, and one followed by a max-pool runs after
  the pool on a quarter of the pixels (max and ReLU commute): bit-identical values and gradients, -15% per
  evaluation at 512 px;
* on that CPU path the whole network and its tap losses are **one autograd node** (:meth:`FusedTaps.tap_losses`)
  with a hand-written backward: each tap's Gram gradient is added into the gradient coming down (one ``addmm_``),
  and nothing autograd would save but the backward never reads is kept;
* convolution weights are **packed once per input size** into oneDNN's blocked layout (:class:`_Convs`), and a
  stride-1 convolution's input gradient is the forward convolution of the gradient with the flipped, transposed
  kernel (packed the same way) -- bit-identical to ``convolution_backward`` and faster; a non-overlapping max-pool's
  is ``max_unpool2d`` (:func:`_max_pool_input_grad`).

Together at 512 px (VGG-19, L-BFGS, 2 cores with AMX) one iteration takes 0.176 s against neural-style-pt's 1.19 s
(``benchmarks/compare_neural_style_pt.py``), the loss matching the layer-by-layer fast path to bf16 rounding.

The image, the optimiser, the TV loss, the targets and every reported loss value stay fp32. What it costs in
accuracy (the final loss re-evaluated in exact fp32, compared with an fp32 run of the same seed and length) is
measured by ``benchmarks/paint.py`` and tested in ``tests/test_gatys_extras.py``.

On a device where bf16 does not pay (``devices.fast_dtype`` is None, e.g. a CPU without AVX-512-BF16/AMX) the copy
stays fp32 and only the layout and fused losses change. Half precision (fp16) is never used: VGG activations of
0-255 Caffe inputs overflow its range.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch

from .. import devices

__all__ = ["ContentLoss", "FusedTaps", "StyleLoss", "fast_network", "unfused"]


def fast_network(net: Any, device: torch.device) -> tuple[Any, torch.dtype]:
    """A frozen copy of ``net`` in the fast dtype (bf16 where it pays, else fp32) and channels_last, and that dtype.

    On a CPU with oneDNN a conv/relu/pool chain (VGG, NIN) is wrapped in :class:`FusedTaps`: the same values and
    gradients with fewer passes over memory."""
    dtype = devices.fast_dtype(device)
    if dtype is not torch.bfloat16:
        dtype = torch.float32
    fast = copy.deepcopy(net).to(dtype)
    if device.type in ("cpu", "cuda"):
        fast = fast.to(memory_format=torch.channels_last)
    fast = fast.requires_grad_(False).eval()
    if device.type == "cpu" and FusedTaps.supported(fast):
        return FusedTaps(fast), dtype
    return fast, dtype


def unfused(net: Any) -> Any:  # noqa: ANN401
    """The layer-by-layer network under a :class:`FusedTaps` (``net`` itself otherwise), for code that runs it
    layer by layer (the tiled pass, checkpointed segments)."""
    return net.net if isinstance(net, FusedTaps) else net


def _ints(padding: Any) -> tuple[int, ...]:
    """A convolution's numeric padding (the fast path's networks never use ``padding="same"``)."""
    return tuple(int(p) for p in padding)


class _Convs:
    """The fast network's convolutions on oneDNN, with weights packed once per input size.

    * :meth:`run`: ``conv(x)`` (ReLU optional, as a post-op) through ``mkldnn._convolution_pointwise``; for inputs
      of 64 channels or more the weight is reordered once into oneDNN's blocked layout for this input size (a dense
      weight is reordered on every call: conv1_2 at 512 px 13.8 -> 8.9 ms, conv5_1 6.0 -> 5.2 ms, same values);
    * :meth:`input_grad`: dL/dx of a stride-1 convolution as the forward convolution of the gradient with the
      flipped, transposed kernel (padding ``k - 1 - p``), packed the same way: bit-identical to
      ``convolution_backward``'s input gradient, and faster (conv1_2 12.3 -> 7.8 ms, 512 channels 6.7 -> 5.5 ms).
      Other convolutions (strided, dilated, grouped) use ``convolution_backward``.

    Each conv keeps the packed weights of the last input size it saw (a new size, e.g. the next scale, replaces
    them). Weights are frozen: the packs are never invalidated.
    """

    PACK_MIN_CHANNELS = 64  # below this (the 3-channel image) oneDNN's dense-weight path is as fast or faster

    def __init__(self) -> None:
        # (conv, "run" | "grad") -> (the input shape packed for, the packed weight or None where packing failed)
        self._packs: dict[tuple[int, str], tuple[tuple[int, ...], torch.Tensor | None]] = {}
        self._flipped: dict[int, torch.Tensor] = {}  # conv -> its flipped, transposed kernel (input gradients)

    def _packed(self, conv: torch.nn.Conv2d, kind: str, x: torch.Tensor) -> torch.Tensor:
        key, shape = (id(conv), kind), tuple(x.shape)
        hit = self._packs.get(key)
        if hit is not None and hit[0] == shape:
            return hit[1] if hit[1] is not None else self._dense(conv, kind)
        weight = self._dense(conv, kind)
        packed: torch.Tensor | None = None
        if x.shape[1] >= self.PACK_MIN_CHANNELS:
            try:
                packed = torch._C._nn.mkldnn_reorder_conv2d_weight(  # type: ignore[call-arg]
                    weight.to_mkldnn(), self._padding(conv, kind), [1, 1] if kind == "grad" else list(conv.stride),
                    list(conv.dilation), conv.groups, list(shape),
                )  # fmt: skip
            except (RuntimeError, NotImplementedError, AttributeError):  # an older/other oneDNN build: dense weight
                packed = None
        self._packs[key] = (shape, packed)
        return packed if packed is not None else weight

    def _dense(self, conv: torch.nn.Conv2d, kind: str) -> torch.Tensor:
        if kind == "run":
            return conv.weight
        flipped = self._flipped.get(id(conv))
        if flipped is None:
            flipped = conv.weight.flip(2, 3).transpose(0, 1).contiguous(memory_format=torch.channels_last)
            self._flipped[id(conv)] = flipped
        return flipped

    @staticmethod
    def _padding(conv: torch.nn.Conv2d, kind: str) -> list[int]:
        if kind == "run":
            return list(_ints(conv.padding))
        return [k - 1 - p for k, p in zip(conv.kernel_size, _ints(conv.padding), strict=True)]

    @staticmethod
    def _transposable(conv: torch.nn.Conv2d) -> bool:
        return (
            tuple(conv.stride) == (1, 1) and tuple(conv.dilation) == (1, 1) and conv.groups == 1
            and all(k - 1 - p >= 0 for k, p in zip(conv.kernel_size, _ints(conv.padding), strict=True))
        )  # fmt: skip

    def run(self, x: torch.Tensor, conv: torch.nn.Conv2d, relu: bool) -> torch.Tensor:
        """``conv(x)``, then ReLU when ``relu`` (one oneDNN call); no autograd."""
        return torch.ops.mkldnn._convolution_pointwise(
            x, self._packed(conv, "run", x), conv.bias, list(conv.padding), list(conv.stride), list(conv.dilation),
            conv.groups, "relu" if relu else "none", [None], "",
        )  # fmt: skip

    def input_grad(self, g: torch.Tensor, x: torch.Tensor, conv: torch.nn.Conv2d) -> torch.Tensor:
        """dL/dx of ``conv(x)`` from dL/d(output) ``g``; the (frozen) weights' and bias' gradients not computed."""
        if self._transposable(conv):
            return torch.ops.mkldnn._convolution_pointwise(
                g, self._packed(conv, "grad", g), None, self._padding(conv, "grad"), [1, 1], [1, 1], 1, "none",
                [None], "",
            )  # fmt: skip
        return torch.ops.aten.convolution_backward(
            g, x, conv.weight, None, list(conv.stride), list(conv.padding), list(conv.dilation), False, [0, 0],
            conv.groups, [True, False, False],
        )[0]  # fmt: skip


class _ConvReLU(torch.autograd.Function):
    """``relu(conv2d(x, w, b))`` as one oneDNN call (ReLU as the convolution's post-op: no separate pass over the
    output); backward: the ReLU mask from the saved output, then the convolution's input gradient only (the
    weights are frozen). Values and gradients equal ``F.relu(F.conv2d(...))``'s."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, conv: torch.nn.Conv2d, convs: _Convs) -> torch.Tensor:  # noqa: ANN001
        y = convs.run(x, conv, relu=True)
        ctx.save_for_backward(x, y)
        ctx.conv, ctx.convs = conv, convs
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:  # noqa: ANN001
        x, y = ctx.saved_tensors
        gx = ctx.convs.input_grad(torch.ops.aten.threshold_backward(grad, y, 0), x, ctx.conv)
        return gx, None, None


class FusedTaps:
    """The fast path's view of a conv/relu/pool :class:`~impasto.nets.vgg.TappedNet` (everything else is the
    wrapped net's): :meth:`iter_features` runs

    * ``conv -> relu`` as one fused oneDNN call (:class:`_ConvReLU`) when the conv's own output is not tapped;
    * ``conv -> relu -> maxpool`` as ``conv -> maxpool -> relu`` when the ReLU's output is not tapped: max and ReLU
      commute (ReLU is monotonic), so the values are the same and the gradient reaches the same element, while the
      ReLU and its backward touch a quarter of the pixels.
    """

    def __init__(self, net: Any) -> None:
        self.net = net
        self._programs: dict[frozenset[str], tuple[_Step, ...]] = {}
        self._convs = _Convs()
        self._nhwc_targets: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    @staticmethod
    def supported(net: Any) -> bool:  # noqa: ANN401
        layers = getattr(net, "layers", None) or ()
        return (
            bool(layers)
            and all(getattr(layer, "kind", None) in ("conv", "relu", "pool") for layer in layers)
            and hasattr(torch.ops.mkldnn, "_convolution_pointwise")
            and torch.backends.mkldnn.is_available()
        )

    def __getattr__(self, name: str) -> Any:  # noqa: ANN401 - everything but iter_features is the net's
        return getattr(self.net, name)

    def program(self, names: Any) -> tuple[_Step, ...]:  # noqa: ANN401
        """The steps that compute the activations ``names`` (up to the deepest), fused where nothing is tapped
        between: ``conv -> relu`` as "convrelu", ``conv -> relu -> maxpool`` as "convpoolrelu"."""
        wanted = frozenset(names)
        cached = self._programs.get(wanted)
        if cached is not None:
            return cached
        net = self.net
        net.check_names(wanted)
        steps: list[_Step] = []
        layers = net.layers
        last = max((net.depth_of(n) for n in wanted), default=-1)
        i = 0
        while i <= last:
            layer = layers[i]
            nxt = layers[i + 1] if i + 1 <= last else None
            after = layers[i + 2] if i + 2 <= last else None
            if layer.kind == "conv" and nxt is not None and nxt.kind == "relu" and layer.name not in wanted:
                conv = net.convs[layer.name]
                if after is not None and after.kind == "pool" and after.mode == "max" and nxt.name not in wanted:
                    steps.append(_Step("convpoolrelu", after.name, conv, after))
                    i += 3
                else:
                    steps.append(_Step("convrelu", nxt.name, conv))
                    i += 2
                continue
            if layer.kind == "conv":
                steps.append(_Step("conv", layer.name, conv=net.convs[layer.name]))
            elif layer.kind == "relu":
                steps.append(_Step("relu", layer.name))
            else:
                steps.append(_Step("maxpool" if layer.mode == "max" else "avgpool", layer.name, pool=layer))
            i += 1
        self._programs[wanted] = program = tuple(steps)
        return program

    def iter_features(self, x: torch.Tensor, names: Any) -> Any:  # noqa: ANN401
        """``(name, activation)`` in network order, as :meth:`TappedNet.iter_features` yields them."""
        import torch.nn.functional as F

        wanted = set(names)
        previous = ""
        for step in self.program(wanted):
            if step.op == "convrelu":
                x = _ConvReLU.apply(x, step.conv, self._convs)
            elif step.op == "convpoolrelu":
                p = step.pool
                x = F.relu(F.max_pool2d(step.conv(x), p.kernel, p.stride, 0, ceil_mode=p.ceil_mode), inplace=True)
            elif step.op == "conv":
                x = step.conv(x)
            elif step.op == "relu":
                x = F.relu(x, inplace=bool(previous) and previous not in wanted)
            elif step.op == "maxpool":
                x = F.max_pool2d(x, step.pool.kernel, step.pool.stride, 0, ceil_mode=step.pool.ceil_mode)
            else:
                x = F.avg_pool2d(x, step.pool.kernel, step.pool.stride, 0, ceil_mode=step.pool.ceil_mode)
            previous = step.name
            if step.name in wanted:
                yield step.name, x

    def tap_losses(self, x: torch.Tensor, losses: Any) -> tuple[torch.Tensor, ...]:  # noqa: ANN401
        """One 0-d fp32 loss per :class:`TapLoss` (``weight * mean(diff^2)``), the network's forward and backward
        as one node (:class:`_TapLosses`). Content targets are kept in the activations' layout (NHWC)."""
        losses = tuple(losses)
        fixed = []
        for loss in losses:
            if loss.kind == "content":
                key = id(loss.target)
                hit = self._nhwc_targets.get(key)
                if hit is None or hit[0] is not loss.target:
                    hit = self._nhwc_targets[key] = (loss.target, _nhwc(loss.target.float()))
                loss = TapLoss(loss.kind, loss.layer, hit[1], loss.weight)
            fixed.append(loss)
        return _TapLosses.apply(x, self._convs, self.program({t.layer for t in losses}), tuple(fixed))

    def features(self, x: torch.Tensor, names: Any) -> dict[str, torch.Tensor]:  # noqa: ANN401
        return dict(self.iter_features(x, names))


def _pixels(f: torch.Tensor) -> torch.Tensor:
    """(1, C, H, W) -> (H*W, C); a view (no copy) when ``f`` is channels_last."""
    _, c, h, w = f.shape
    return f.permute(0, 2, 3, 1).reshape(h * w, c)


def _gram_diff(f: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``G - A`` (C, C) fp32 with ``G = F^T F / (C H W)`` of ``f`` (1, C, H, W).

    F^T F runs in the activation's dtype: oneDNN's bf16 matmul accumulates in fp32 and rounds the (C, C) result to
    bf16 once (relative error <= 2^-9 per entry); the rest of the loss is fp32. This skips an fp32 copy of every
    style activation and runs the matmul on AMX: -9% per step at 512 px, loss unchanged to ~1e-5."""
    _, c, h, w = f.shape
    x = _pixels(f)  # (H*W, C), a view of the NHWC activation
    return torch.mm(x.t(), x).float().div_(c * h * w).sub_(target)


def _gram_grad_matrix(f: torch.Tensor, diff: torch.Tensor, scale: torch.Tensor | float) -> torch.Tensor:
    """The (C, C) matrix ``m`` in ``dL/dF = F m`` for ``L = scale * mean(diff^2)`` (``diff`` symmetric), in ``f``'s
    dtype: ``scale * 4 / (C^2 * CHW) * diff``."""
    _, c, h, w = f.shape
    return (diff * (scale * (4.0 / (c * c * c * h * w)))).to(f.dtype)


class StyleLoss(torch.autograd.Function):
    """``weight * mean((G - A)^2)`` with ``G = F F^T / (C H W)`` in fp32 (see :mod:`impasto.gatys.losses`).

    ``f``: (1, C, H, W) any float dtype (bf16 channels_last on the fast path); ``target``: (C, C) fp32. Returns a
    0-d fp32 loss. Backward: ``dL/dF = weight * 4 / (C^2 * CHW) * (G - A) F`` -- G and A are symmetric -- computed as
    ``(H*W, C) @ (C, C)`` in ``f``'s dtype and layout.
    """

    @staticmethod
    def forward(ctx, f: torch.Tensor, target: torch.Tensor, weight: float) -> torch.Tensor:  # noqa: ANN001
        diff = _gram_diff(f, target)  # (C, C)
        ctx.save_for_backward(f, diff)
        ctx.weight = weight
        return diff.pow(2).mean().mul(weight)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:  # noqa: ANN001
        f, diff = ctx.saved_tensors
        _, c, h, w = f.shape
        gx = torch.mm(_pixels(f), _gram_grad_matrix(f, diff, grad.float() * ctx.weight))  # (H*W, C) = NHWC
        return gx.view(1, h, w, c).permute(0, 3, 1, 2), None, None


class ContentLoss(torch.autograd.Function):
    """``weight * mean((F - P)^2)`` in fp32; ``f`` (1, C, H, W) any float dtype, ``target`` the same shape fp32.

    Backward: ``dL/dF = 2 * weight * (F - P) / numel`` returned in ``f``'s dtype.
    """

    @staticmethod
    def forward(ctx, f: torch.Tensor, target: torch.Tensor, weight: float) -> torch.Tensor:  # noqa: ANN001
        diff = torch.sub(f, target)  # fp32: bf16 -> fp32 is exact, and this is one pass where f.float() - target is 3
        ctx.save_for_backward(diff)
        ctx.weight = weight
        ctx.dtype = f.dtype
        return diff.pow(2).mean().mul(weight)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:  # noqa: ANN001
        (diff,) = ctx.saved_tensors
        return (diff * (grad.float() * (2.0 * ctx.weight / diff.numel()))).to(ctx.dtype), None, None


# --- the whole network and its tap losses as one autograd node (FusedTaps.tap_losses) ---------------------------


@dataclass(frozen=True)
class _Step:
    """One step of a :class:`FusedTaps` program: ``op`` on the running activation, ending at layer ``name``.

    ops: "convrelu" (conv + ReLU post-op), "convpoolrelu" (conv, max-pool, ReLU), "conv", "relu", "maxpool",
    "avgpool"; ``conv`` the conv module of the conv ops, ``pool`` the pool layer of the pool ops."""

    op: str
    name: str
    conv: Any = None
    pool: Any = None


@dataclass(frozen=True)
class TapLoss:
    """A loss on one tapped activation: ``kind`` "content" (``target`` (1, C, H, W) fp32) or "style" (``target`` the
    Gram (C, C) fp32), ``weight`` its layer weight."""

    kind: str
    layer: str
    target: torch.Tensor
    weight: float


def _nhwc(t: torch.Tensor) -> torch.Tensor:
    return t if t.is_contiguous(memory_format=torch.channels_last) else t.contiguous(memory_format=torch.channels_last)


def _max_pool_input_grad(g: torch.Tensor, x: torch.Tensor, pool: Any, indices: torch.Tensor) -> torch.Tensor:
    """dL/dx of ``max_pool2d(x)`` (no padding) from dL/d(output) ``g`` and the pool's ``indices``.

    Windows that do not overlap (kernel = stride: VGG's 2x2/2) send each output's gradient to one input of its own:
    that is ``max_unpool2d``, a scatter into zeros -- bit-identical to ``max_pool2d_with_indices_backward`` and 2.5 to
    3.6 times faster on bf16 channels_last (pool1 at 512 px: 4.6 vs 11.6 ms). Overlapping windows (NIN's 3x3/2) may
    send two gradients to one input, which must add: the backward op."""
    if pool.kernel == pool.stride:
        return torch.nn.functional.max_unpool2d(g, indices, pool.kernel, pool.stride, output_size=x.shape[-2:])
    return torch.ops.aten.max_pool2d_with_indices_backward(
        g, x, [pool.kernel] * 2, [pool.stride] * 2, [0, 0], [1, 1], pool.ceil_mode, indices
    )  # fmt: skip


class _TapLosses(torch.autograd.Function):
    """Every tap loss of one forward pass of a :class:`FusedTaps` program as one autograd node.

    Forward: the program's steps (as :meth:`FusedTaps.iter_features` runs them) and, at each tapped activation, its
    losses (:class:`StyleLoss`'s and :class:`ContentLoss`'s arithmetic); returns one 0-d fp32 loss per
    :class:`TapLoss`. Backward, by hand, layer by layer from the deepest tap: each tap's loss gradient is summed
    into the gradient arriving from above in the same pass that makes it (``addmm_`` for a Gram loss: ``G += F m``
    with fp32 accumulation, one rounding; ``add_`` for a content loss), where autograd would write it to a new
    tensor and add the two in another pass over the activation (-40% of the backward's element-wise time at the
    full-resolution layers). Values equal the layer-by-layer path's; gradients to bf16 rounding.
    """

    @staticmethod
    def forward(  # noqa: ANN001
        ctx, x: torch.Tensor, convs: _Convs, steps: tuple[_Step, ...], losses: tuple[TapLoss, ...]
    ) -> tuple[torch.Tensor, ...]:
        import torch.nn.functional as F

        by_layer: dict[str, list[int]] = {}
        for i, loss in enumerate(losses):
            by_layer.setdefault(loss.layer, []).append(i)
        saved: list[tuple[Any, ...]] = []  # per step: (input, output, extra...)
        values: list[torch.Tensor | None] = [None] * len(losses)
        diffs: list[torch.Tensor | None] = [None] * len(losses)
        for step in steps:
            inp = x
            if step.op == "convrelu":
                x = convs.run(inp, step.conv, relu=True)
                saved.append((inp, x))
            elif step.op == "convpoolrelu":
                p = step.pool
                z = convs.run(inp, step.conv, relu=False)
                pooled, idx = F.max_pool2d(z, p.kernel, p.stride, 0, ceil_mode=p.ceil_mode, return_indices=True)
                x = F.relu(pooled, inplace=True)
                saved.append((inp, x, z, idx))
            elif step.op == "conv":
                x = convs.run(inp, step.conv, relu=False)
                saved.append((inp, x))
            elif step.op == "relu":
                x = F.relu(inp)
                saved.append((inp, x))
            elif step.op == "maxpool":
                p = step.pool
                x, idx = F.max_pool2d(inp, p.kernel, p.stride, 0, ceil_mode=p.ceil_mode, return_indices=True)
                saved.append((inp, x, idx))
            else:  # avgpool
                p = step.pool
                x = F.avg_pool2d(inp, p.kernel, p.stride, 0, ceil_mode=p.ceil_mode)
                saved.append((inp, x))
            for i in by_layer.get(step.name, ()):
                loss = losses[i]
                if loss.kind == "style":
                    diffs[i] = _gram_diff(x, loss.target)
                else:
                    diffs[i] = torch.sub(x, loss.target)  # fp32 (one pass; x.float() - target is three)
                values[i] = diffs[i].pow(2).mean().mul(loss.weight)  # type: ignore[union-attr]
        ctx.steps, ctx.losses, ctx.saved, ctx.diffs, ctx.by_layer = steps, losses, saved, diffs, by_layer
        ctx.convs = convs
        return tuple(values)  # type: ignore[arg-type]

    @staticmethod
    def backward(ctx, *grads: torch.Tensor) -> tuple[Any, ...]:  # noqa: ANN001
        g: torch.Tensor | None = None  # dL/d(the current step's output)
        for step, saved in zip(reversed(ctx.steps), reversed(ctx.saved), strict=True):
            out = saved[1]
            for i in ctx.by_layer.get(step.name, ()):
                loss, diff, scale = ctx.losses[i], ctx.diffs[i], grads[i].float() * ctx.losses[i].weight
                if loss.kind == "style":
                    _, c, h, w = out.shape
                    m = _gram_grad_matrix(out, diff, scale)  # (C, C)
                    if g is None:
                        g = torch.mm(_pixels(out), m).view(1, h, w, c).permute(0, 3, 1, 2)
                    else:
                        g = _nhwc(g)
                        g.permute(0, 2, 3, 1).view(h * w, c).addmm_(_pixels(out), m)
                elif g is None:
                    g = (diff * (scale * (2.0 / diff.numel()))).to(out.dtype)
                else:  # in bf16: an in-place bf16 += fp32 add is a slow (unvectorised) kernel, 10x this
                    g = g.add_((diff * (scale * (2.0 / diff.numel()))).to(g.dtype))
            if g is None:
                continue
            inp = saved[0]
            if step.op in ("convrelu", "convpoolrelu", "relu"):
                g = torch.ops.aten.threshold_backward(g, out, 0)
            if step.op == "convpoolrelu":
                g = _max_pool_input_grad(g, saved[2], step.pool, saved[3])
            elif step.op == "maxpool":
                g = _max_pool_input_grad(g, inp, step.pool, saved[2])
            elif step.op == "avgpool":
                p = step.pool
                g = torch.ops.aten.avg_pool2d_backward(
                    g, inp, [p.kernel] * 2, [p.stride] * 2, [0, 0], p.ceil_mode, True, None
                )  # noqa: E501
            if step.op in ("convrelu", "convpoolrelu", "conv"):
                g = ctx.convs.input_grad(g, inp, step.conv)
        ctx.saved = ctx.diffs = None
        return g, None, None, None
