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
* ReLUs run in place where no tap needs the pre-activation (the network already does this).

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

__all__ = ["ContentLoss", "StyleLoss", "fast_network"]


def fast_network(net: Any, device: torch.device) -> tuple[Any, torch.dtype]:
    """A frozen copy of ``net`` in the fast dtype (bf16 where it pays, else fp32) and channels_last, and that dtype."""
    dtype = devices.fast_dtype(device)
    if dtype is not torch.bfloat16:
        dtype = torch.float32
    fast = copy.deepcopy(net).to(dtype)
    if device.type in ("cpu", "cuda"):
        fast = fast.to(memory_format=torch.channels_last)
    return fast.requires_grad_(False).eval(), dtype


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
