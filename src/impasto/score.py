"""Quality scores for ranking results: content fidelity, style distance and colour distance.

Every function takes tensors and returns numbers; nothing here reads files or loads networks (``impasto.api.score``
does that). Images are (1, 3, H, W) RGB float in [0, 1].

* Content fidelity (:func:`content_scores`): SSIM and PSNR (torchmetrics, ``data_range=1``) on the BT.601 luminance
  ``Y = 0.299 R + 0.587 G + 0.114 B`` of the output and of the content photo resized to the output's size.
  Identical images give SSIM 1 and PSNR ``inf`` (``10 log10(1 / MSE)`` with MSE 0).
* Style distance in a feature network's style layers (:func:`style_scores`), averaged over the layers:

  - ``gram``: ``mean((G_out - G_style)^2)`` with ``G = F F^T / (C H W)`` (the Gram of the painting loss,
    :func:`impasto.gatys.losses.gram_matrix`): Gatys et al.'s style loss without its weight;
  - ``w2``: the squared Wasserstein-2 distance between Gaussians fitted to the features (channel mean and
    covariance over positions), :func:`gaussian_w2`.

* Colour distance (:func:`color_swd`): the sliced Wasserstein-1 distance of the pixel colours, RGB in [0, 1].
* Perceptual distance (:func:`lpips_distance`): LPIPS v0.1 (Zhang et al., CVPR 2018) of the output and the
  content photo resized to the output's size, with a loaded :class:`impasto.nets.lpips.LPIPS` (AlexNet or VGG-16
  trunk; 0 for identical images, larger is less alike).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import torch
import torch.nn.functional as F

__all__ = [
    "MAX_COLOR_PIXELS",
    "color_swd",
    "content_scores",
    "feature_stats",
    "gaussian_w2",
    "gram_distance",
    "lpips_distance",
    "luminance",
    "projection_directions",
    "style_scores",
]

# the colour distance samples at most this many pixels of an image (seeded), so a 4K image costs what 256 px does
MAX_COLOR_PIXELS = 1 << 16


def _check_image(x: torch.Tensor, what: str) -> None:
    if x.dim() != 4 or x.shape[0] != 1 or x.shape[1] != 3:
        raise ValueError(f"{what} must be (1, 3, H, W), got {tuple(x.shape)}")


def luminance(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB in [0, 1] -> (N, 1, H, W) BT.601 luma ``0.299 R + 0.587 G + 0.114 B``."""
    return (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)


def _at_output_size(
    output: torch.Tensor, content: torch.Tensor, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """Both images checked, detached and in ``dtype``; ``content`` resized to the output's size (bicubic,
    antialiased, clamped to [0, 1]) when the sizes differ."""
    _check_image(output, "output")
    _check_image(content, "content")
    out = output.detach().to(dtype)
    ref = content.detach().to(dtype)
    if ref.shape[-2:] != out.shape[-2:]:
        ref = F.interpolate(ref, size=out.shape[-2:], mode="bicubic", antialias=True, align_corners=False)
        ref = ref.clamp(0, 1)
    return out, ref


def content_scores(output: torch.Tensor, content: torch.Tensor) -> dict[str, float]:
    """``{"ssim", "psnr"}`` of ``output``'s luminance against ``content``'s, both (1, 3, H, W) in [0, 1].

    ``content`` is resized to the output's size first (bicubic, antialiased, clamped to [0, 1]) when the sizes
    differ. SSIM: 11 x 11 Gaussian window (sigma 1.5), ``data_range=1``; PSNR ``10 log10(1 / MSE)`` in dB (``inf``
    for identical images). Computed in float32 (see the note in the code).
    """
    from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

    # float32: torch's float64 CPU convolution goes through im2col (121 values per pixel for SSIM's window: 43 GB
    # at 4016x2213); float32 takes oneDNN's direct path (3.5 GB there) and agrees with float64 to ~1e-7
    out, ref = _at_output_size(output, content, torch.float32)
    y_out, y_ref = luminance(out), luminance(ref)  # (1, 1, H, W)
    # SSIM's Gaussian window must fit the image: shrink it (odd, at least 3) for tiny images
    side = min(out.shape[-2:])
    kernel = 11 if side >= 11 else max(3, side - (1 - side % 2))
    ssim = structural_similarity_index_measure(y_out, y_ref, data_range=1.0, kernel_size=kernel)
    mse = float(torch.mean((y_out - y_ref) ** 2))
    psnr = math.inf if mse == 0.0 else float(peak_signal_noise_ratio(y_out, y_ref, data_range=1.0))
    return {"ssim": float(ssim), "psnr": psnr}  # type: ignore[arg-type]


def lpips_distance(model: torch.nn.Module, output: torch.Tensor, content: torch.Tensor) -> float:
    """LPIPS of ``output`` against ``content`` ((1, 3, H, W) in [0, 1]) with ``model``
    (:class:`impasto.nets.lpips.LPIPS`), in float32 on the model's device.

    ``content`` is resized to the output's size first exactly as in :func:`content_scores` (bicubic, antialiased,
    clamped to [0, 1]).
    """
    out, ref = _at_output_size(output, content, torch.float64)
    device = next(model.parameters()).device
    with torch.no_grad():
        d = model(out.to(device, torch.float32), ref.to(device, torch.float32))  # (1,)
    return float(d[0])


def gram_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """``mean((G_a - G_b)^2)`` for features (1, C, H, W) and (1, C, H', W'), ``G = F F^T / (C H W)``."""
    from .gatys.losses import gram_matrix

    return float(torch.mean((gram_matrix(a).double() - gram_matrix(b).double()) ** 2))


def feature_stats(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (C,) and covariance (C, C) over the H*W positions of (1, C, H, W) features, float64.

    The covariance divides by the number of positions (the Gaussian's maximum-likelihood fit).
    """
    _, c, h, w = features.shape
    flat = features.detach().to(torch.float64).reshape(c, h * w)  # (C, H*W)
    mu = flat.mean(dim=1)  # (C,)
    centred = flat - mu[:, None]
    return mu, centred @ centred.t() / (h * w)  # (C,), (C, C)


def _sqrt_psd(m: torch.Tensor) -> torch.Tensor:
    """The symmetric square root of a symmetric positive semi-definite matrix (eigendecomposition, float64)."""
    vals, vecs = torch.linalg.eigh((m + m.t()) / 2)
    return (vecs * vals.clamp_min(0).sqrt()) @ vecs.t()


def gaussian_w2(mu1: torch.Tensor, cov1: torch.Tensor, mu2: torch.Tensor, cov2: torch.Tensor) -> float:
    """Squared Wasserstein-2 distance between N(mu1, cov1) and N(mu2, cov2), in float64:

    ``|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2)``. Both square roots come from eigendecompositions
    (negative round-off eigenvalues clamped to 0); the result is clamped at 0.
    """
    mu1, mu2 = mu1.to(torch.float64), mu2.to(torch.float64)
    s1, s2 = cov1.to(torch.float64), cov2.to(torch.float64)
    root1 = _sqrt_psd(s1)
    middle = root1 @ s2 @ root1
    vals = torch.linalg.eigvalsh((middle + middle.t()) / 2)
    cross = vals.clamp_min(0).sqrt().sum()  # tr((S1^1/2 S2 S1^1/2)^1/2)
    mean_term = torch.sum((mu1 - mu2) ** 2)
    return max(0.0, float(mean_term + torch.trace(s1) + torch.trace(s2) - 2 * cross))


def style_scores(
    output_features: Mapping[str, torch.Tensor], style_features: Mapping[str, torch.Tensor], layers: Iterable[str]
) -> dict[str, float]:
    """``{"gram", "w2"}``: :func:`gram_distance` and :func:`gaussian_w2` of the features in ``layers``, averaged
    over the layers. Features are (1, C, H, W) per layer name; the two images may differ in size."""
    names = list(layers)
    if not names:
        raise ValueError("style_scores needs at least one layer")
    gram = w2 = 0.0
    for n in names:
        a, b = output_features[n], style_features[n]
        gram += gram_distance(a, b)
        w2 += gaussian_w2(*feature_stats(a), *feature_stats(b))
    return {"gram": gram / len(names), "w2": w2 / len(names)}


def projection_directions(n: int = 64, seed: int = 0) -> torch.Tensor:
    """``n`` random unit vectors in RGB space, (n, 3) float64, from a seeded torch.Generator (normal, normalised)."""
    gen = torch.Generator().manual_seed(seed)
    theta = torch.randn(n, 3, generator=gen, dtype=torch.float64)
    return theta / theta.norm(dim=1, keepdim=True)


def _pixels(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """(1, 3, H, W) -> (P, 3) float64 pixel colours, at most MAX_COLOR_PIXELS of them (a seeded random subset)."""
    flat = x.detach().to(torch.float64).reshape(3, -1).t().cpu()  # (H*W, 3)
    if flat.shape[0] > MAX_COLOR_PIXELS:
        flat = flat[torch.randperm(flat.shape[0], generator=gen)[:MAX_COLOR_PIXELS]]
    return flat


def _quantiles(sorted_values: torch.Tensor, q: int) -> torch.Tensor:
    """(K, P) rows sorted ascending -> (K, q): each row's values at the probabilities (k + 0.5) / q (linear)."""
    p = sorted_values.shape[1]
    if q == p:
        return sorted_values  # the probabilities (k + 0.5) / p fall exactly on the sorted values
    pos = ((torch.arange(q, dtype=torch.float64) + 0.5) / q * p - 0.5).clamp(0, p - 1)  # in index units
    lo = pos.floor().long()
    hi = (lo + 1).clamp_max(p - 1)
    frac = pos - lo.to(torch.float64)
    return sorted_values[:, lo] * (1 - frac) + sorted_values[:, hi] * frac


def color_swd(
    a: torch.Tensor, b: torch.Tensor, *, projections: int = 64, seed: int = 0, directions: torch.Tensor | None = None
) -> float:
    """Sliced Wasserstein-1 distance between the pixel colours of ``a`` and ``b`` ((1, 3, H, W) RGB in [0, 1]).

    ``SWD = mean_theta mean_k |Qa_theta(k) - Qb_theta(k)|``: the colours are projected on ``projections`` unit
    directions theta (:func:`projection_directions` with ``seed``, or ``directions`` (K, 3) as given) and each
    projection's quantiles are compared at a common number of points, ``min(pixels of a, pixels of b)``
    (probabilities (k + 0.5) / q, linear interpolation). A constant shift d of one channel c gives
    ``mean_theta |theta_c| * d``. Images over MAX_COLOR_PIXELS pixels are sampled (seeded by ``seed``).
    """
    _check_image(a, "first image")
    _check_image(b, "second image")
    theta = projection_directions(projections, seed) if directions is None else directions.to(torch.float64)
    gen = torch.Generator().manual_seed(seed)
    pa, pb = _pixels(a, gen), _pixels(b, gen)
    q = min(pa.shape[0], pb.shape[0])
    qa = _quantiles(torch.sort(theta @ pa.t(), dim=1).values, q)  # (K, q)
    qb = _quantiles(torch.sort(theta @ pb.t(), dim=1).values, q)
    return float((qa - qb).abs().mean())
