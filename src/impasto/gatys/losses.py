"""The three losses of Gatys et al. (2016), computed exactly as neural-style-pt computes them.

Notation: ``F`` a feature map (1, C, H, W) of the image being painted, ``P`` the content target of the same shape,
``G = F F^T / (C H W)`` the Gram matrix of ``F`` flattened to (C, H*W), ``A`` the (blended) style target Gram,
``x`` the image in the network's input space (1, 3, H, W), ``w`` a layer's weight ("strength").

* content:  ``w * mean((F - P)^2)``                        (mean over 1*C*H*W elements)
* style:    ``w * mean((G - A)^2)``                        (mean over C*C elements; G divided by C*H*W)
* TV:       ``w * (sum|x[:, :, 1:, :] - x[:, :, :-1, :]| + sum|x[:, :, :, 1:] - x[:, :, :, :-1]|)``  (anisotropic L1,
  a sum, not a mean, over the preprocessed image -- so its scale depends on the preprocessing contract)

Departure from the paper, kept for compatibility: Gatys et al. use sums with ``1/(4 N^2 M^2)``; neural-style-pt
(like Johnson's neural-style before it) uses the means above.

``normalize_gradients`` -- what neural-style-pt's code does, not what its README says: the layer loss ``L`` goes
through an identity whose backward divides the incoming gradient by its own L2 norm (plus 1e-8) and multiplies it
by ``w^2``. The incoming gradient is the scalar ``w`` (from ``w * L``), so its norm is ``|w|`` and the gradient
reaching ``L`` becomes ``w^2 * w / (|w| + 1e-8)`` instead of ``w``: every layer's gradient is scaled by about
``w^2`` while the reported loss value stays ``w * L``. Nothing is normalised per layer.

``normalize_weights``: each layer's weight is divided by the largest dimension of its target (``max(C, H, W)`` of
the content target (1, C, H, W); ``C`` for a style target (C, C)).

Gram matrices and losses are computed in fp32 whatever the feature dtype.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "blend_grams",
    "content_loss",
    "gram_matrix",
    "normalized_weight",
    "scale_gradients",
    "style_loss",
    "tv_loss",
]


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """``F F^T / (C H W)`` of features (1, C, H, W) -> (C, C) fp32."""
    b, c, h, w = features.shape
    if b != 1:
        raise ValueError(f"gram_matrix takes one image (1, C, H, W), got batch {b}")
    flat = features.float().reshape(c, h * w)  # (C, H*W)
    return torch.mm(flat, flat.t()).div(features.nelement())  # (C, C)


class _ScaleGradients(torch.autograd.Function):
    """Identity forward; backward ``g / (||g|| + 1e-8) * w^2`` (neural-style-pt's ScaleGradients)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: float) -> torch.Tensor:  # noqa: ANN001
        ctx.weight = weight
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # noqa: ANN001
        g = grad.clone()
        g = g / (torch.norm(g, keepdim=True) + 1e-8)
        return g * ctx.weight * ctx.weight, None


def scale_gradients(loss: torch.Tensor, weight: float) -> torch.Tensor:
    """``loss`` unchanged in value; in the backward pass the gradient is normalised then scaled by ``weight^2``."""
    return _ScaleGradients.apply(loss, weight)


def content_loss(
    features: torch.Tensor, target: torch.Tensor, weight: float, normalize_gradients: bool = False
) -> torch.Tensor:
    """``weight * mean((features - target)^2)``, both (1, C, H, W); a 0-d fp32 tensor."""
    loss = F.mse_loss(features.float(), target.float())
    if normalize_gradients:
        loss = scale_gradients(loss, weight)
    return loss * weight


def style_loss(
    gram: torch.Tensor, target: torch.Tensor, weight: float, normalize_gradients: bool = False
) -> torch.Tensor:
    """``weight * mean((gram - target)^2)``, both (C, C) from :func:`gram_matrix`; a 0-d fp32 tensor."""
    loss = F.mse_loss(gram, target)
    if normalize_gradients:
        loss = scale_gradients(loss, weight)
    return weight * loss


def tv_loss(x: torch.Tensor, weight: float) -> torch.Tensor:
    """``weight * (sum |vertical differences| + sum |horizontal differences|)`` of x (N, C, H, W); 0-d fp32."""
    x = x.float()
    dv = x[:, :, 1:, :] - x[:, :, :-1, :]  # (N, C, H-1, W)
    dh = x[:, :, :, 1:] - x[:, :, :, :-1]  # (N, C, H, W-1)
    return weight * (torch.sum(torch.abs(dv)) + torch.sum(torch.abs(dh)))


def blend_grams(grams: Sequence[torch.Tensor], weights: Sequence[float]) -> torch.Tensor:
    """``sum_i weights[i] * grams[i]``, accumulated in neural-style-pt's order (first ``G*w``, then ``T + w*G``)."""
    target = grams[0].mul(weights[0])
    for g, w in zip(grams[1:], weights[1:], strict=True):
        target = target.add(g, alpha=w)
    return target


def normalized_weight(weight: float, target_shape: Sequence[int]) -> float:
    """``weight / max(target_shape)`` (neural-style-pt's ``-normalize_weights``)."""
    return weight / max(target_shape)
