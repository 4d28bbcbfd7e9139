"""Photo-realistic transfer: linear r31/r41 transfer, region to region, then the SPN filter and affine smoothing.

The reference's ``TestPhotoReal.py`` pipeline (LinearStyleTransfer, Li et al., CVPR 2019, section 5):

1. **Transfer.** Encoder features of the content and style; the transformation module (:class:`Transform`) maps
   the content's; the decoder renders. With segmentation masks (``libs/MatrixTest.py``'s ``MulLayer``) each
   colour region of the content takes the statistics of the same-coloured region of the style: region means are
   removed before the covariance CNNs (run on the whole image), each region's covariance of the squeezed features
   goes through the fully connected layer, ``T = S_region @ C_region`` transforms the compressed features of that
   region and the style region's mean is added back.
2. **SPN filter.** :class:`impasto.nets.linear.SPN` ``(stylised, guide)`` with the guide the ZCA-whitened content
   (the reference's ``LoaderPhotoReal`` feeds ``whiten(content)``), then clamped to [0, 1].
3. **Smoothing** (optional): the reference's ``libs/smooth_filter.py`` (``smooth_local_affine`` from
   deep-photo-styletransfer-tf, a CUDA kernel) in plain PyTorch: a best local affine colour model of the output
   in the content's colours per 3x3 patch, those 12 coefficients filtered by a joint bilateral filter guided by the
   content (radius ``f_radius`` = 15, spatial sigma ``f_radius / 3``, range sigma ``f_edge`` = 0.1 on the mean
   squared colour difference), and the output rebuilt as each pixel's filtered affine map of the content's colour.
   One pass, not an iteration: the kernel runs each of its three steps once.

Masks are colour-labelled images like the reference's ``data/photo_real/*Seg/``: pure colours name the regions.
Departures from the reference, each chosen for users and noted at its line:

- A pixel's label is the nearest of the 8 pure colours (each channel thresholded at 128): black, blue, green,
  light blue (cyan), red, purple (magenta), yellow, white. The reference's ``MaskHelper`` takes a channel as 0
  below 0.1 and as 1 above 0.9 and leaves any other pixel (antialiased edges, JPEG noise) in no region, where its
  features are neither centred nor transformed; its ninth colour, "grey", has the thresholds of black.
- A content region whose colour is missing from the style mask (or covers fewer than 10 style feature pixels) is
  transferred with the whole style image's statistics; the reference leaves it untransformed, with no style mean
  (which decodes to a dark, flat patch). A region with fewer than 10 feature pixels of its own (the reference's
  threshold for usable statistics) uses the whole image's statistics on that side.
- Sizes: the pipeline runs at the output size rounded down to multiples of 8 (the SPN and the r41 encoder need
  them; the reference resizes to such sizes) and, when that differs, the result is resized to the exact output
  size before smoothing, which then rebuilds it from the content at full resolution. The reference also
  truncates the SPN output to 8 bits before smoothing; here it stays float.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..devices import prepare_for_inference, resolve_device
from ..errors import Cancelled, ConfigError
from ..events import CancelToken
from ..imaging import fit_size, pil_to_tensor, resize
from ..media import tensor_to_pil
from ..modelcache import ModelCache
from ..nets.linear import SPN, Transform

log = logging.getLogger(__name__)

__all__ = [
    "LAYERS",
    "MIN_REGION",
    "MODEL_NAMES",
    "PALETTE",
    "STAGES",
    "PhotorealOptions",
    "PhotorealStylizer",
    "best_local_affine",
    "bilateral_affine",
    "mask_labels",
    "masked_transform",
    "region_pairs",
    "smooth_local_affine",
    "whiten",
]

LAYERS = ("r41", "r31")
MODEL_NAMES = {"r31": "linear.r31", "r41": "linear.r41", "spn": "linear.spn"}
SPN_FILE = "r41_spn.pth"  # the reference ships one SPN and TestPhotoReal.py uses it with either layer
STAGES = ("transfer", "spn", "smooth")
MULTIPLE = 8  # the SPN's three 2x poolings (and the r41 encoder's) need sides divisible by 8
MIN_SIDE = 16
MIN_REGION = 10  # the reference's: a region needs 10 feature pixels for its mean and covariance to be used

# Label = 4 r + 2 g + b with each channel 0 or 1 (the colour's nearest corner of the RGB cube).
PALETTE = ("black", "blue", "green", "light blue", "red", "purple", "yellow", "white")


@dataclass(frozen=True)
class PhotorealOptions:
    """``layer``: ``r41`` or ``r31``; ``size``: longest output side in px (None keeps the content's); ``smooth``:
    run the affine smoothing; ``f_radius`` and ``f_edge``: its filter radius (px) and range sigma (the reference's
    ``smooth_filter(..., f_radius=15, f_edge=1e-1)``)."""

    layer: str = "r41"
    size: int | None = None
    smooth: bool = True
    f_radius: int = 15
    f_edge: float = 0.1

    def validate(self) -> None:
        if self.layer not in LAYERS:
            raise ConfigError(f"unknown layer {self.layer!r}; use one of {', '.join(LAYERS)}")
        if self.size is not None and self.size < MIN_SIDE:
            raise ConfigError(f"size must be at least {MIN_SIDE} px, got {self.size}")
        if self.f_radius < 1:
            raise ConfigError(f"the smoothing radius must be at least 1 px, got {self.f_radius}")
        if not self.f_edge > 0:
            raise ConfigError(f"the smoothing edge sigma must be above 0, got {self.f_edge}")


# --- masks --------------------------------------------------------------------------------------------------------


def mask_labels(mask: Image.Image, size: tuple[int, int]) -> torch.Tensor:
    """A colour-labelled mask -> ``(H, W)`` int64 labels 0..7 (indices into :data:`PALETTE`) at ``size`` (W, H).

    A mask of another size is resized nearest-neighbour (labels are never blended). Each pixel takes the nearest
    pure colour (departure: the reference's 0.1/0.9 thresholds leave in-between pixels unlabelled).
    """
    rgb = mask.convert("RGB")
    w, h = size
    if rgb.size != (w, h):
        rgb = rgb.resize((w, h), Image.Resampling.NEAREST)
    on = np.asarray(rgb) >= 128  # (H, W, 3) bool
    labels = on[..., 0].astype(np.int64) * 4 + on[..., 1] * 2 + on[..., 2]
    return torch.from_numpy(labels)


def _at(labels: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """``(H, W)`` labels at feature size ``(h, w)``, nearest (``floor(i * H / h)``: cv2.INTER_NEAREST, as the
    reference resizes its masks)."""
    if tuple(labels.shape) == (h, w):
        return labels
    return F.interpolate(labels[None, None].float(), size=(h, w), mode="nearest")[0, 0].long()


def _regions(labels: torch.Tensor) -> dict[int, torch.Tensor]:
    """Label -> boolean ``(h*w,)`` pixel mask, for every label present."""
    flat = labels.reshape(-1)
    return {int(v): flat == v for v in torch.unique(flat).tolist()}


def region_pairs(
    content_labels: torch.Tensor, style_labels: torch.Tensor, min_pixels: int = MIN_REGION
) -> dict[str, str]:
    """What each content colour is transferred from: colour name -> ``"<colour> region"`` or ``"whole style"``
    (the colour is missing from the style mask or covers fewer than ``min_pixels`` there). Counts are taken on
    the labels as given: pass them at feature size (image size / 4 at r31, / 8 at r41) for the pipeline's choice."""
    s_big = {v for v, m in _regions(style_labels).items() if int(m.sum()) >= min_pixels}
    return {PALETTE[v]: f"{PALETTE[v]} region" if v in s_big else "whole style" for v in _regions(content_labels)}


def masked_transform(
    transform: Transform,
    cF: torch.Tensor,
    sF: torch.Tensor,
    content_labels: torch.Tensor,
    style_labels: torch.Tensor,
    min_pixels: int = MIN_REGION,
) -> torch.Tensor:
    """The region-to-region linear transform (the reference's ``MatrixTest.MulLayer``).

    ``cF`` ``(1, C, h, w)`` and ``sF`` ``(1, C, hs, ws)`` encoder features; ``content_labels`` ``(H, W)`` and
    ``style_labels`` ``(Hs, Ws)`` int labels at image or feature size (resized nearest to the features). Returns the
    transformed content features ``(1, C, h, w)``. With one label covering both images this is exactly
    :meth:`Transform.forward`.
    """
    if cF.shape[0] != 1 or sF.shape[0] != 1:
        raise ValueError("masked_transform takes one content and one style image at a time")
    _, c, h, w = cF.shape
    _, _, hs, ws = sF.shape
    c_reg = _regions(_at(content_labels, h, w))
    s_reg = _regions(_at(style_labels, hs, ws))
    c_big = {v for v, m in c_reg.items() if int(m.sum()) >= min_pixels}
    s_big = {v for v, m in s_reg.items() if int(m.sum()) >= min_pixels}
    c_flat = cF.reshape(c, h * w)  # (C, h*w)
    s_flat = sF.reshape(c, hs * ws)

    def centred(flat: torch.Tensor, regions: dict[int, torch.Tensor], big: set[int]) -> torch.Tensor:
        # each usable region minus its own mean; pixels of regions too small for statistics minus the image's
        # mean (departure: the reference leaves those uncentred)
        out = flat - flat.mean(1, keepdim=True)
        for v in big:
            m = regions[v]
            out[:, m] = flat[:, m] - flat[:, m].mean(1, keepdim=True)
        return out

    c_cent = centred(c_flat, c_reg, c_big)
    s_cent = centred(s_flat, s_reg, s_big)
    zc = transform.cnet.convs(c_cent.reshape(1, c, h, w)).reshape(transform.matrix_size, h * w)  # (32, h*w)
    zs = transform.snet.convs(s_cent.reshape(1, c, hs, ws)).reshape(transform.matrix_size, hs * ws)

    def region_matrix(net: torch.nn.Module, z: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        zr = z[:, m]  # (32, n)
        cov = zr @ zr.t() / zr.shape[1]  # (32, 32): the reference's covMatrix, no mean removed after the convs
        return net.matrix(cov[None])[0]  # type: ignore[operator]

    whole_content: torch.Tensor | None = None
    whole_style = transform.style(sF) if any(v not in s_big for v in c_reg) else None
    z = transform.compress(c_cent.reshape(1, c, h, w)).reshape(transform.matrix_size, h * w)  # (32, h*w)
    out_z = z.clone()
    mean_map = torch.empty_like(c_flat)  # (C, h*w): the style mean each content pixel gets
    for v, m in c_reg.items():
        if v in c_big:
            c_matrix = region_matrix(transform.cnet, zc, m)
        else:  # too few pixels for a covariance: the whole content's matrix
            if whole_content is None:
                whole_content = transform.cnet(cF - cF.mean(dim=(2, 3), keepdim=True))[0]
            c_matrix = whole_content
        if v in s_big:
            s_matrix = region_matrix(transform.snet, zs, s_reg[v])
            s_mean = s_flat[:, s_reg[v]].mean(1, keepdim=True)  # of the raw style features, as the reference
        else:  # departure: the reference leaves such a region untransformed and without a style mean
            assert whole_style is not None
            s_matrix, s_mean = whole_style.matrix[0], whole_style.mean.reshape(c, 1)
        out_z[:, m] = (s_matrix @ c_matrix) @ z[:, m]
        mean_map[:, m] = s_mean
    return transform.unzip(out_z.reshape(1, -1, h, w)) + mean_map.reshape(1, c, h, w)


# --- the SPN's guide ---------------------------------------------------------------------------------------------


def whiten(x: torch.Tensor) -> torch.Tensor:
    """ZCA whitening of an image's colours, the SPN's guide (the reference's ``libs/utils.whiten``).

    ``(1, 3, H, W)`` RGB -> ``(1, 3, H, W)``: ``V diag(e)^-1/2 V^T (x - mean)`` with ``V, e`` the eigenvectors and
    eigenvalues of ``cov(x) + I`` (covariance over pixels with ``n - 1``; the identity as in the reference keeps
    every eigenvalue >= 1, so its cut-off below 1e-5 never applies). Computed in float64.
    """
    f = x[0].reshape(x.shape[1], -1).double()
    f = f - f.mean(1, keepdim=True)
    cov = f @ f.t() / max(1, f.shape[1] - 1) + torch.eye(f.shape[0], dtype=f.dtype, device=f.device)
    e, v = torch.linalg.eigh(cov)  # the reference's SVD of this symmetric positive definite matrix
    return (v @ torch.diag(e.rsqrt()) @ v.t() @ f).to(x.dtype).reshape(x.shape)


# --- affine smoothing (libs/smooth_filter.py) --------------------------------------------------------------------


def best_local_affine(output: torch.Tensor, guide: torch.Tensor, radius: int = 1, reg: float = 1e-3) -> torch.Tensor:
    """Per pixel, the affine colour map ``A`` (3 x 4) that best takes the guide's colours to the output's in the
    ``(2 radius + 1)^2`` patch around it (``best_local_affine_kernel``; the reference's patch is 3, radius 1).

    ``output``, ``guide``: ``(3, H, W)`` RGB in [0, 1]. With ``M`` the patch's rows ``[r g b 1]`` of the guide
    (pixels outside the image left out) and ``S`` the output's: ``A^T = (M^T M + reg diag(1, 1, 1, 0))^-1 M^T S``
    (the kernel hard-codes reg = 1e-3 and ignores its ``epsilon`` argument); ``A = 0`` where the 4x4 matrix's
    determinant is below 1e-9 (the kernel's failed inverse). Returns ``(12, H, W)`` float64, ``A`` row-major.
    """
    g, o = guide.double(), output.double()
    _, h, w = g.shape
    m = torch.cat([g, torch.ones_like(g[:1])])  # (4, H, W): r, g, b, 1
    products = torch.cat([(m[:, None] * m[None]).reshape(16, h, w), (o[:, None] * m[None]).reshape(12, h, w)])
    k = 2 * radius + 1
    sums = F.avg_pool2d(products[None], k, 1, radius, count_include_pad=True)[0] * (k * k)  # zero outside: skipped
    mtm = sums[:16].permute(1, 2, 0).reshape(h * w, 4, 4)
    mtm = mtm + torch.diag(torch.tensor([reg, reg, reg, 0.0], dtype=mtm.dtype, device=mtm.device))
    mts = sums[16:].permute(1, 2, 0).reshape(h * w, 3, 4)  # (HW, 3, 4): output channel x [r g b 1]
    ok = torch.linalg.det(mtm).abs() >= 1e-9
    eye = torch.eye(4, dtype=mtm.dtype, device=mtm.device)
    inv = torch.linalg.inv(torch.where(ok[:, None, None], mtm, eye))
    a = (mts @ inv.transpose(1, 2)) * ok[:, None, None]  # A[c, j] = sum_k inv[j, k] mts[c, k]
    return a.reshape(h * w, 12).t().reshape(12, h, w)


def bilateral_affine(
    affine: torch.Tensor, guide: torch.Tensor, radius: int = 15, sigma_edge: float = 0.1
) -> torch.Tensor:
    """The joint bilateral filter of the affine coefficients (``bilateral_smooth_kernel``).

    ``affine`` ``(K, H, W)``; ``guide`` ``(3, H, W)`` RGB in [0, 1]. Over the ``(2 radius + 1)^2`` square window
    (pixels inside the image), weights ``exp(-(dx^2 + dy^2) / (2 s1^2)) * exp(-d / (2 s2^2))`` with ``s1 = radius /
    3``, ``s2 = sigma_edge`` and ``d`` the mean over channels of the squared guide difference; returns the weighted
    mean ``(K, H, W)`` float32. Vectorised over pixels: one pass per window offset, each pair of opposite offsets
    sharing its weights (they are symmetric). Accumulates in float32 (the kernel: float weights, double sums;
    measured difference below 3e-6).
    """
    k, h, w = affine.shape
    g = guide.float()
    acc = torch.cat([affine.float(), torch.ones_like(affine[:1], dtype=torch.float32)])  # last channel: the weights
    src = acc.clone()
    s1 = radius / 3.0
    coef = -1.0 / (3.0 * 2.0 * sigma_edge * sigma_edge)  # the mean over 3 channels, then / (2 s2^2)
    for dy in range(0, min(radius, h - 1) + 1):
        for dx in range(-min(radius, w - 1), min(radius, w - 1) + 1):
            if dy == 0 and dx <= 0:
                continue  # (0, 0) is the initial value (weight 1); (0, -dx) is handled with (0, dx)
            spatial = math.exp(-(dx * dx + dy * dy) / (2.0 * s1 * s1))
            yp, yq = slice(0, h - dy), slice(dy, h)  # pixel p and its neighbour q = p + (dy, dx)
            xp, xq = slice(max(0, -dx), w - max(0, dx)), slice(max(0, dx), w - max(0, -dx))
            diff = g[:, yq, xq] - g[:, yp, xp]
            weight = torch.exp((diff * diff).sum(0) * coef).mul_(spatial)  # (h', w'): the same for p->q and q->p
            acc[:, yp, xp].addcmul_(weight, src[:, yq, xq])
            acc[:, yq, xq].addcmul_(weight, src[:, yp, xp])
    return acc[:k] / acc[k:]


def smooth_local_affine(
    output: torch.Tensor, content: torch.Tensor, f_radius: int = 15, f_edge: float = 0.1
) -> torch.Tensor:
    """The reference's ``smooth_filter``: ``output`` rebuilt from ``content`` through locally affine colour maps.

    ``output``, ``content``: ``(1, 3, H, W)`` (or ``(3, H, W)``) RGB in [0, 1], the same size. Returns the same
    shape, float32, not clamped (the reference clamps when it converts to 8 bits). Edges of the content stay sharp
    (each pixel's colour is an affine function of the content's there) while noise of the output within a region is
    averaged away by the edge-aware filter of the maps.
    """
    batched = output.dim() == 4
    o = output[0] if batched else output
    g = content[0] if batched else content
    if o.shape != g.shape or o.shape[0] != 3:
        raise ValueError(
            f"smooth_local_affine needs two RGB images of one size, got {tuple(o.shape)}, {tuple(g.shape)}"
        )
    affine = bilateral_affine(best_local_affine(o, g), g, f_radius, f_edge)  # (12, H, W)
    m = torch.cat([g.float(), torch.ones_like(g[:1], dtype=torch.float32)])  # (4, H, W)
    out = (affine.reshape(3, 4, *g.shape[1:]) * m[None]).sum(1)  # (3, H, W): reconstruction_best_kernel
    return out[None] if batched else out


# --- the pipeline ------------------------------------------------------------------------------------------------


def _work_size(size: tuple[int, int]) -> tuple[int, int]:
    w, h = size
    ww, hh = w // MULTIPLE * MULTIPLE, h // MULTIPLE * MULTIPLE
    if min(ww, hh) < MIN_SIDE:
        raise ConfigError(f"photo-realistic transfer needs at least {MIN_SIDE}x{MIN_SIDE} px, got {w}x{h}")
    return ww, hh


StageCallback = Callable[[int, str, torch.Tensor], None]


class PhotorealStylizer:
    """The photo-realistic pipeline on one device. Networks live in ``models`` (the caller's :class:`ModelCache`;
    a private one when None): the ``linear.<layer>`` set shares its cache entry with
    :class:`impasto.fast.linear.LinearStylizer`, the SPN is kept under ``("linear", "spn", device)``."""

    def __init__(self, layer: str = "r41", device: str | torch.device = "auto", models: ModelCache | None = None):
        if layer not in LAYERS:
            raise ConfigError(f"unknown layer {layer!r}; use one of {', '.join(LAYERS)}")
        self.layer = layer
        self.device = resolve_device(device)
        self.models = models if models is not None else ModelCache()

    def networks(self) -> tuple[torch.nn.Module, torch.nn.Module, Transform]:
        """(encoder, decoder, transformation module) of ``linear.<layer>``; WeightsError saying how to get them."""
        from .linear import LinearStylizer

        enc, dec, trans = LinearStylizer(self.layer, self.device, fast=True, models=self.models).networks()
        assert isinstance(trans, Transform)
        return enc, dec, trans

    def spn(self) -> SPN:
        """The SPN (``linear.spn``), loaded once per cache; WeightsError saying how to get it."""

        def load() -> SPN:
            from ..zoo import linear_format, store

            (path,) = store.files_for(MODEL_NAMES["spn"])
            net = linear_format.load_file(path, SPN_FILE)
            assert isinstance(net, SPN)
            # fp32, standard layout: the propagation is a long recurrence (rounding would accumulate), and its
            # row slices are contiguous only in NCHW
            return prepare_for_inference(net, str(self.device), fast=False)  # type: ignore[return-value]

        return self.models.get(("linear", "spn", str(self.device)), load)

    def _conv(self, net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        if self.device.type in ("cpu", "cuda"):
            x = x.contiguous(memory_format=torch.channels_last)  # the nets are channels_last (LinearStylizer's)
        return net(x).float().contiguous()  # fp32 throughout: departure from the artistic fast recipe's bf16

    @torch.inference_mode()
    def render(
        self,
        content: torch.Tensor,
        style: torch.Tensor,
        content_labels: torch.Tensor | None = None,
        style_labels: torch.Tensor | None = None,
        *,
        smooth: bool = True,
        f_radius: int = 15,
        f_edge: float = 0.1,
        out_size: tuple[int, int] | None = None,
        smooth_content: torch.Tensor | None = None,
        on_stage: StageCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> torch.Tensor:
        """Tensors in, tensor out: ``content`` ``(1, 3, H, W)`` and ``style`` ``(1, 3, Hs, Ws)`` RGB in [0, 1],
        H, W multiples of 8; labels ``(H, W)`` / ``(Hs, Ws)`` int (both or neither). Returns ``(1, 3, H', W')`` in
        [0, 1], ``(H', W') = out_size`` (W, H order as PIL) when given (the filtered image is resized bilinearly to
        it, and smoothed with ``smooth_content`` of that size), else ``(H, W)``.

        ``on_stage(i, name, image)`` after each stage (``STAGES[i]``); ``cancel`` checked before each, raising
        ``Cancelled`` whose ``partial`` is the latest stage's ``(1, 3, ., .)`` image (None before the first).
        """
        if (content_labels is None) != (style_labels is None):
            raise ConfigError("give both a content mask and a style mask, or neither")
        if content.shape[-1] % MULTIPLE or content.shape[-2] % MULTIPLE:
            raise ConfigError(f"the content's sides must be multiples of {MULTIPLE}, got {tuple(content.shape[-2:])}")
        enc, dec, trans = self.networks()
        photo = content.to(self.device, torch.float32)
        latest: torch.Tensor | None = None

        def stage(i: int, image: torch.Tensor) -> None:
            nonlocal latest
            latest = image
            if on_stage is not None:
                on_stage(i, STAGES[i], image)

        def check() -> None:
            if cancel is not None:
                cancel.check(partial=latest)

        check()
        cF = self._conv(enc, photo)
        sF = self._conv(enc, style.to(self.device, torch.float32))
        if content_labels is None or style_labels is None:
            feature = trans(cF, sF)
        else:
            feature = masked_transform(trans, cF, sF, content_labels.to(self.device), style_labels.to(self.device))
        transfer = self._conv(dec, feature)  # unclamped into the SPN, as TestPhotoReal.py
        stage(0, transfer.clamp(0, 1))
        check()
        filtered = self.spn()(transfer, whiten(photo)).clamp(0, 1)
        if out_size is not None and (filtered.shape[-1], filtered.shape[-2]) != tuple(out_size):
            # departure: back to the exact output size (the reference keeps its multiple-of-8 size)
            filtered = F.interpolate(filtered, size=(out_size[1], out_size[0]), mode="bilinear", align_corners=False)
            filtered = filtered.clamp(0, 1)
        stage(1, filtered)
        if not smooth:
            return filtered
        check()
        guide = photo if smooth_content is None else smooth_content.to(self.device, torch.float32)
        if guide.shape != filtered.shape:
            raise ValueError(f"smooth_content is {tuple(guide.shape)}, the image {tuple(filtered.shape)}")
        smoothed = smooth_local_affine(filtered, guide, f_radius, f_edge).clamp(0, 1)
        stage(2, smoothed)
        return smoothed

    def stylize(
        self,
        content: Image.Image,
        style: Image.Image,
        content_mask: Image.Image | None = None,
        style_mask: Image.Image | None = None,
        opts: PhotorealOptions | None = None,
        *,
        on_stage: StageCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> Image.Image:
        """PIL in, PIL out (RGB, the content's size or ``opts.size`` on the longest side).

        The style is used with its longest side equal to the content's working size (as the reference, which
        resizes both to ``fineSize``); masks of another size than their image are resized nearest-neighbour.
        """
        opts = opts or PhotorealOptions(layer=self.layer)
        opts.validate()
        if opts.layer != self.layer:
            raise ConfigError(f"options for {opts.layer} given to a {self.layer} stylizer")
        if (content_mask is None) != (style_mask is None):
            raise ConfigError("give both a content mask and a style mask, or neither")
        out_size = fit_size(content.size, opts.size)
        work = _work_size(out_size)
        s_work = _work_size(fit_size(style.size, max(work)))
        c_labels = s_labels = None
        if content_mask is not None and style_mask is not None:
            c_labels, s_labels = mask_labels(content_mask, work), mask_labels(style_mask, s_work)
        full = resize(content, out_size)
        try:
            result = self.render(
                pil_to_tensor(resize(full, work)),
                pil_to_tensor(resize(style, s_work)),
                c_labels,
                s_labels,
                smooth=opts.smooth,
                f_radius=opts.f_radius,
                f_edge=opts.f_edge,
                out_size=out_size,
                smooth_content=pil_to_tensor(full),
                on_stage=on_stage,
                cancel=cancel,
            )
        except Cancelled as exc:  # hand over the latest stage's picture as a PIL image
            partial = exc.partial
            raise Cancelled(str(exc), partial=None if partial is None else tensor_to_pil(partial)) from None
        return tensor_to_pil(result)
