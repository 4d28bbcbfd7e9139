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

The Wasserstein-2 style loss (``style_loss="w2"``, an impasto extra after crowsonkb's style-transfer-pytorch):
each layer's features, flattened to (C, H*W), are taken as samples of a Gaussian with mean ``mu`` (C,) and
covariance ``S = (F - mu)(F - mu)^T / (H W)`` (C, C); the style target is ``(mu_s, S_s)`` and

* W2 style: ``w * (|mu - mu_s|^2 + tr(S + S_s - 2 (S_s^1/2 S S_s^1/2)^1/2)) / C``

the squared 2-Wasserstein distance between the two Gaussians, divided by ``C`` (a mean over channels, as
style-transfer-pytorch does) so a layer's loss does not grow with its width. Its units are those of the features
squared (a Gram loss is in features to the fourth), so the same ``style_weight`` does not give the same balance
against the content loss under both losses: choose the weight for the loss. ``S_s^1/2`` is computed once per
target (:func:`gaussian_stats`, ``eigh`` in float64); the cross term is ``sum sqrt(max(eig(M), eps))`` of the
symmetric PSD ``M = S_s^1/2 S S_s^1/2`` (``eigvalsh`` in float64, whose gradient ``V diag(g) V^T`` is defined
even for repeated eigenvalues; eigenvalues below ``eps`` -- zero up to rounding -- get no gradient).

Several styles are blended as a mixture of their features (what style-transfer-pytorch does, by blending the mean
and the second raw moment): ``mu = sum_i w_i mu_i``, ``S = sum_i w_i (S_i + mu_i mu_i^T) - mu mu^T``. This is the
mean and covariance of all the styles' features pooled with weights ``w_i``; for one style it is that style's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = [
    "GaussianStats",
    "blend_gaussians",
    "blend_grams",
    "gaussian_stats",
    "mean_cov",
    "content_loss",
    "gram_matrix",
    "normalized_weight",
    "scale_gradients",
    "style_loss",
    "tv_loss",
    "w2_distance",
    "w2_style_loss",
    "w2_style_loss_of",
    "weighted",
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


def weighted(loss: torch.Tensor, weight: float, normalize_gradients: bool = False) -> torch.Tensor:
    """``weight * loss`` for a 0-d layer loss, through :func:`scale_gradients` with ``normalize_gradients``.

    Every layer loss here ends this way; the tiled pass (:mod:`impasto.gatys.tiled`) applies it to a loss made from
    whole-image statistics accumulated tile by tile, so both see the same weighting and gradient scaling.
    """
    if normalize_gradients:
        loss = scale_gradients(loss, weight)
    return loss * weight


def content_loss(
    features: torch.Tensor, target: torch.Tensor, weight: float, normalize_gradients: bool = False
) -> torch.Tensor:
    """``weight * mean((features - target)^2)``, both (1, C, H, W); a 0-d fp32 tensor."""
    return weighted(F.mse_loss(features.float(), target.float()), weight, normalize_gradients)


def style_loss(
    gram: torch.Tensor, target: torch.Tensor, weight: float, normalize_gradients: bool = False
) -> torch.Tensor:
    """``weight * mean((gram - target)^2)``, both (C, C) from :func:`gram_matrix`; a 0-d fp32 tensor."""
    return weighted(F.mse_loss(gram, target), weight, normalize_gradients)


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


# --- the Wasserstein-2 style loss (style_loss="w2") ------------------------------------------------------------

W2_EPS = 1e-8  # eigenvalues of S_s^1/2 S S_s^1/2 (features^4) below this count as eps: no gradient there


@dataclass(frozen=True)
class GaussianStats:
    """A style target for :func:`w2_style_loss`: ``mean`` (C,) and ``cov`` (C, C) fp32, ``cov_sqrt`` (C, C) float64."""

    mean: torch.Tensor
    cov: torch.Tensor
    cov_sqrt: torch.Tensor

    @property
    def shape(self) -> torch.Size:
        """The covariance's shape (C, C): what ``normalize_weights`` divides by, as for a Gram target."""
        return self.cov.shape


def mean_cov(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (C,) and covariance ``(F - mu)(F - mu)^T / (H W)`` (C, C) of features (1, C, H, W), fp32."""
    b, c, h, w = features.shape
    if b != 1:
        raise ValueError(f"mean_cov takes one image (1, C, H, W), got batch {b}")
    flat = features.float().reshape(c, h * w)  # (C, H*W)
    mean = flat.mean(dim=1)  # (C,)
    centred = flat - mean[:, None]  # (C, H*W)
    return mean, torch.mm(centred, centred.t()).div(h * w)  # (C,), (C, C)


def _psd_sqrt(cov: torch.Tensor) -> torch.Tensor:
    """``cov^1/2`` (C, C) float64 of a symmetric PSD matrix (eigenvalues clamped at 0)."""
    c64 = cov.double()
    vals, vecs = torch.linalg.eigh((c64 + c64.t()) / 2)  # (C,), (C, C)
    return (vecs * vals.clamp(min=0).sqrt()) @ vecs.t()


def gaussian_stats(mean: torch.Tensor, cov: torch.Tensor) -> GaussianStats:
    """A :class:`GaussianStats` target from a mean (C,) and covariance (C, C) (its square root computed once)."""
    return GaussianStats(mean.float(), cov.float(), _psd_sqrt(cov))


def blend_gaussians(stats: Sequence[tuple[torch.Tensor, torch.Tensor]], weights: Sequence[float]) -> GaussianStats:
    """The mean and covariance of the styles' features pooled with ``weights`` (see the module docstring)."""
    mean: torch.Tensor | None = None  # (C,) float64
    second: torch.Tensor | None = None  # (C, C) float64, the second raw moment
    for (m, s), w in zip(stats, weights, strict=True):
        m64 = m.double()
        term = (s.double() + torch.outer(m64, m64)) * w
        mean = m64 * w if mean is None else mean + m64 * w
        second = term if second is None else second + term
    if mean is None or second is None:
        raise ValueError("blend_gaussians needs at least one style")
    return gaussian_stats(mean, second - torch.outer(mean, mean))


def w2_distance(mean: torch.Tensor, cov: torch.Tensor, target: GaussianStats) -> torch.Tensor:
    """``|mu - mu_s|^2 + tr(S + S_s - 2 (S_s^1/2 S S_s^1/2)^1/2)``, a 0-d float64 tensor (differentiable)."""
    root = target.cov_sqrt.to(cov.device)
    m = root @ cov.double() @ root  # (C, C) symmetric PSD
    eig = torch.linalg.eigvalsh((m + m.t()) / 2)  # (C,)
    cross = eig.clamp(min=W2_EPS).sqrt().sum()
    mean_term = (mean.double() - target.mean.to(mean.device).double()).pow(2).sum()
    return mean_term + torch.diagonal(cov).double().sum() + torch.diagonal(target.cov).double().sum() - 2 * cross


def w2_style_loss(
    features: torch.Tensor, target: GaussianStats, weight: float, normalize_gradients: bool = False
) -> torch.Tensor:
    """``weight * W2^2((mu, S) of features, target) / C`` for features (1, C, H, W); a 0-d fp32 tensor."""
    mean, cov = mean_cov(features)
    return w2_style_loss_of(mean, cov, target, weight, normalize_gradients)


def w2_style_loss_of(
    mean: torch.Tensor, cov: torch.Tensor, target: GaussianStats, weight: float, normalize_gradients: bool = False
) -> torch.Tensor:
    """:func:`w2_style_loss` from the features' mean (C,) and covariance (C, C) already computed; 0-d fp32."""
    loss = w2_distance(mean, cov, target).div(mean.numel()).float()
    return weighted(loss, weight, normalize_gradients)
