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
  evaluation at 512 px.

The image, the optimiser, the TV loss, the targets and every reported loss value stay fp32. What it costs in
accuracy (the final loss re-evaluated in exact fp32, compared with an fp32 run of the same seed and length) is
measured by ``benchmarks/paint.py`` and tested in ``tests/test_gatys_extras.py``.

On a device where bf16 does not pay (``devices.fast_dtype`` is None, e.g. a CPU without AVX-512-BF16/AMX) the copy
stays fp32 and only the layout and fused losses change. Half precision (fp16) is never used: VGG activations of
0-255 Caffe inputs overflow its range.
"""

from __future__ import annotations

import copy
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


class _ConvReLU(torch.autograd.Function):
    """``relu(conv2d(x, w, b))`` as one oneDNN call (ReLU as the convolution's post-op: no separate pass over the
    output); backward: the ReLU mask from the saved output, then the convolution's input gradient only (the
    weights are frozen). Values and gradients equal ``F.relu(F.conv2d(...))``'s."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, conv: torch.nn.Conv2d) -> torch.Tensor:  # noqa: ANN001
        pad, stride, dil = list(conv.padding), list(conv.stride), list(conv.dilation)  # type: ignore[arg-type]
        y = torch.ops.mkldnn._convolution_pointwise(x, conv.weight, conv.bias, pad, stride, dil, 1, "relu", [None], "")
        ctx.save_for_backward(x, y)
        ctx.conv = conv
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # noqa: ANN001
        x, y = ctx.saved_tensors
        conv = ctx.conv
        g = torch.ops.aten.threshold_backward(grad, y, 0)
        gx = torch.ops.aten.convolution_backward(
            g, x, conv.weight, None, list(conv.stride), list(conv.padding), list(conv.dilation), False, [0, 0], 1,
            [True, False, False],
        )[0]  # fmt: skip
        return gx, None


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

    def iter_features(self, x: torch.Tensor, names: Any) -> Any:  # noqa: ANN401
        """``(name, activation)`` in network order, as :meth:`TappedNet.iter_features` yields them."""
        import torch.nn.functional as F

        net = self.net
        wanted = set(names)
        net.check_names(wanted)
        if not wanted:
            return
        layers = net.layers
        last = max(net.depth_of(n) for n in wanted)
        i = 0
        while i <= last:
            layer = layers[i]
            nxt = layers[i + 1] if i + 1 <= last else None
            after = layers[i + 2] if i + 2 <= last else None
            if layer.kind == "conv" and nxt is not None and nxt.kind == "relu" and layer.name not in wanted:
                conv = net.convs[layer.name]
                if after is not None and after.kind == "pool" and after.mode == "max" and nxt.name not in wanted:
                    pooled = F.max_pool2d(conv(x), after.kernel, after.stride, 0, ceil_mode=after.ceil_mode)
                    x = F.relu(pooled, inplace=True)
                    if after.name in wanted:
                        yield after.name, x
                    i += 3
                    continue
                x = _ConvReLU.apply(x, conv)
                if nxt.name in wanted:
                    yield nxt.name, x
                i += 2
                continue
            x = net.apply_layer(i, x, wanted)
            if layer.name in wanted:
                yield layer.name, x
            i += 1

    def features(self, x: torch.Tensor, names: Any) -> dict[str, torch.Tensor]:  # noqa: ANN401
        return dict(self.iter_features(x, names))


def _pixels(f: torch.Tensor) -> torch.Tensor:
    """(1, C, H, W) -> (H*W, C); a view (no copy) when ``f`` is channels_last."""
    _, c, h, w = f.shape
    return f.permute(0, 2, 3, 1).reshape(h * w, c)


class StyleLoss(torch.autograd.Function):
    """``weight * mean((G - A)^2)`` with ``G = F F^T / (C H W)`` in fp32 (see :mod:`impasto.gatys.losses`).

    ``f``: (1, C, H, W) any float dtype (bf16 channels_last on the fast path); ``target``: (C, C) fp32. Returns a
    0-d fp32 loss. Backward: ``dL/dF = weight * 4 / (C^2 * CHW) * (G - A) F`` -- G and A are symmetric -- computed as
    ``(H*W, C) @ (C, C)`` in ``f``'s dtype and layout.
    """

    @staticmethod
    def forward(ctx, f: torch.Tensor, target: torch.Tensor, weight: float) -> torch.Tensor:  # noqa: ANN001
        _, c, h, w = f.shape
        x = _pixels(f)  # (H*W, C), a view of the NHWC activation
        # F^T F in the activation's dtype: oneDNN's bf16 matmul accumulates in fp32 and rounds the (C, C) result to
        # bf16 once (relative error <= 2^-9 per entry); the rest of the loss is fp32. This skips an fp32 copy of
        # every style activation and runs the matmul on AMX: -9% per step at 512 px, loss unchanged to ~1e-5.
        gram = torch.mm(x.t(), x).float().div_(c * h * w)  # (C, C) fp32
        diff = gram.sub_(target)  # (C, C)
        ctx.save_for_backward(f, diff)
        ctx.weight = weight
        return diff.pow(2).mean().mul(weight)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:  # noqa: ANN001
        f, diff = ctx.saved_tensors
        _, c, h, w = f.shape
        scale = grad.float() * (ctx.weight * 4.0 / (c * c * c * h * w))
        m = (diff * scale).to(f.dtype)  # (C, C)
        gx = torch.mm(_pixels(f), m)  # (H*W, C), i.e. (1, C, H, W) channels_last
        return gx.view(1, h, w, c).permute(0, 3, 1, 2), None, None


class ContentLoss(torch.autograd.Function):
    """``weight * mean((F - P)^2)`` in fp32; ``f`` (1, C, H, W) any float dtype, ``target`` the same shape fp32.

    Backward: ``dL/dF = 2 * weight * (F - P) / numel`` returned in ``f``'s dtype.
    """

    @staticmethod
    def forward(ctx, f: torch.Tensor, target: torch.Tensor, weight: float) -> torch.Tensor:  # noqa: ANN001
        diff = f.float() - target
        ctx.save_for_backward(diff)
        ctx.weight = weight
        ctx.dtype = f.dtype
        return diff.pow(2).mean().mul(weight)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:  # noqa: ANN001
        (diff,) = ctx.saved_tensors
        return (diff * (grad.float() * (2.0 * ctx.weight / diff.numel()))).to(ctx.dtype), None, None
