"""Learned linear style transfer (Li et al., CVPR 2019) on the reference's checkpoints (``linear.r31``/``linear.r41``).

Per style, once: the encoder's features ``sF`` -> the style side of the transformation module, a ``(32, 32)`` matrix
``S = snet(sF - mean)`` and the per-channel mean ``mu_s`` (:class:`LinearStyle`). Per content image (or video
frame): ``cF = encoder(content)``, ``T = S @ cnet(cF - mean)``, ``f = unzip(T @ compress(cF - mean)) + mu_s``, the
decoder renders ``f``; the result is clamped to [0, 1] as the reference does before saving.

Several styles are blended by the weighted mean of their ``S`` and ``mu_s`` (weights normalised to sum 1). ``snet``
ends in a fully connected layer applied to the covariance of its squeezed features, so its output is affine in
that covariance and the blend is exactly the matrix of the blended covariance; and ``unzip`` is affine, so the
transformed features are the same weighted mean of each style's transformed features. One matrix product per frame
whatever the number of styles, no style image kept, and a blend of two styles moves smoothly from one to the other.

``strength`` mixes the transformed features with the content's own before decoding (``s f + (1 - s) cF``, as AdaIN
and WCT do): 0 gives the autoencoder's reconstruction of the photo, and the decoder sees features on the segment
between the two it was trained on, instead of a pixel mix that would show two images on top of each other.

Sizes: the encoder pools 2 (r31) or 3 (r41) times and the decoder upsamples as often, so the image is padded by
reflection to a multiple of 4 or 8 and the result cropped back: any size and aspect comes out at its own size.
(The reference takes only such sizes; padding adds at most 7 mirrored pixels, which the content statistics see.)
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..devices import fast_dtype, prepare_for_inference, resolve_device
from ..errors import ConfigError
from ..imaging import fit_size, pil_to_tensor, resize, transfer_luminance
from ..media import tensor_to_pil
from ..modelcache import ModelCache
from ..nets.linear import Decoder, Encoder, StyleStats, Transform
from .magenta import StylizeOptions, normalise_weights

log = logging.getLogger(__name__)

__all__ = [
    "LAYERS", "METHODS", "METHOD_ENV", "MODEL_NAMES", "STYLE_SIDE", "LinearStyle", "LinearStylizer", "default_method",
    "installed", "require_weights",
]  # fmt: skip

LAYERS = ("r41", "r31")
MODEL_NAMES = {"r31": "linear.r31", "r41": "linear.r41"}
STYLE_SIDE = 256  # the style image's shorter side, as TestArtistic.py's loader (Resize(256)) and training use
_MULTIPLE = {"r31": 4, "r41": 8}

# The fast recipe: the decoder in bf16 (fp16 on a GPU without bf16), where the device has fast bf16. Measured
# against fp32 at 256x256 on random reference-format weights (mean |diff| on 0-255, r31 / r41): decoder in bf16
# 0.29 / 0.49; encoder in bf16 0.50 / 0.93 (its rounding goes through the product of two learned matrices, which
# amplifies it: each encoder conv moved to bf16 adds about 0.05, from the first one on); both 0.57 / 1.05, over the
# 1-level fidelity budget. The 32x32 matrices, means and covariances always run in fp32. Both recipes run
# channels_last (NHWC), which oneDNN/cuDNN convolve fastest: still fp32 arithmetic, max |diff| from NCHW 3e-8 of
# the 0-1 range, and 20-30 % less time on a CPU. The fast decoder is a copy of the fp32 one cast to bf16 once, not
# an autocast region: the same arithmetic (autocast casts the same weights to bf16 on every call and runs the
# nearest-neighbour upsampling in fp32, a lossless round trip) without the per-call casts and copies (r31 at 512 px:
# 30 % less time for the whole render on a 2-core CPU).
BF16_OK = {"encoder": False, "decoder": True}


@dataclass(frozen=True)
class LinearStyle:
    """A style (or blend of styles) ready to render with: computed once, reused for every image or frame.

    ``matrix`` ``(1, 32, 32)`` and ``mean`` ``(1, C, 1, 1)`` fp32 on ``device``; ``layer`` the transform layer.
    """

    layer: str
    matrix: torch.Tensor
    mean: torch.Tensor
    device: str


def _pad_to(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, int, int]:
    """Pad ``(N, C, H, W)`` on the bottom/right to multiples of ``multiple``, and at least twice it (the deepest
    features need 2 px for the networks' reflection padding), by reflection (replicate when the image is too
    small to reflect that far). Returns the padded tensor and the original H, W."""
    h, w = x.shape[-2:]
    ph, pw = max(-h % multiple, 2 * multiple - h), max(-w % multiple, 2 * multiple - w)
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, h, w


class LinearStylizer:
    """Linear style transfer at ``layer`` (``r41`` or ``r31``) on one device.

    The networks live in ``models`` (a :class:`ModelCache` the caller owns; a private one when None), keyed by
    layer and device (the fast recipe's low-precision decoder beside them); ``fast``: the recipe of
    :data:`BF16_OK` (False: fp32 throughout, the reference's arithmetic).
    For video: :meth:`prepare_style` once, then :meth:`render` on batches of frames.
    """

    def __init__(
        self,
        layer: str = "r41",
        device: str | torch.device = "auto",
        fast: bool = True,
        models: ModelCache | None = None,
        style_side: int = STYLE_SIDE,
    ) -> None:
        if layer not in LAYERS:
            raise ConfigError(f"unknown layer {layer!r}; use one of {', '.join(LAYERS)}")
        self.layer = layer
        self.style_side = style_side
        self.device = resolve_device(device)
        self.fast = fast
        self.models = models if models is not None else ModelCache()

    # -- networks ---------------------------------------------------------------------------------------
    def networks(self) -> tuple[Encoder, Decoder, Transform]:
        """(encoder, decoder, transformation module) in fp32, channels_last on a CPU or CUDA device, loaded once per
        cache and shared by both recipes; WeightsError naming how to get them."""

        def load() -> tuple[Encoder, Decoder, Transform]:
            from ..zoo.linear_format import load_layer

            enc, dec, trans = load_layer(self.layer)
            dev = str(self.device)
            for net in (enc, dec, trans):
                prepare_for_inference(net, dev, fast=True)  # in place; channels_last: fp32 either way (see BF16_OK)
            return enc, dec, trans

        return self.models.get(("linear", self.layer, str(self.device)), load)

    def _net(self, which: str) -> tuple[Encoder | Decoder, torch.dtype]:
        """The ``"encoder"`` or ``"decoder"`` the recipe runs, and its dtype: the fp32 one, or (fast recipe, where
        :data:`BF16_OK` allows it and the device has fast low precision) a copy of it cast to that dtype once, kept
        in the cache beside the fp32 set."""
        enc, dec, _ = self.networks()
        net = enc if which == "encoder" else dec
        dtype = fast_dtype(self.device) if self.fast and BF16_OK[which] else None
        if dtype is None:
            return net, torch.float32
        key = ("linear", self.layer, str(self.device), which, str(dtype))
        return self.models.get(key, lambda: copy.deepcopy(net).to(dtype)), dtype

    def _run(self, which: str, x: torch.Tensor) -> torch.Tensor:
        net, dtype = self._net(which)
        if self.device.type in ("cpu", "cuda"):
            x = x.contiguous(memory_format=torch.channels_last)
        return net(x.to(dtype)).float()

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        return self._run("encoder", x)

    def _decode(self, f: torch.Tensor) -> torch.Tensor:
        return self._run("decoder", f)

    # -- style side -------------------------------------------------------------------------------------
    @torch.inference_mode()
    def style_of(self, style: Image.Image) -> LinearStyle:
        """One style image (any size: its shorter side is scaled to ``style_side``, default :data:`STYLE_SIDE`)
        -> :class:`LinearStyle`."""
        w, h = style.size
        scale = self.style_side / min(w, h)
        img = resize(style, (max(1, round(w * scale)), max(1, round(h * scale))))
        x, _, _ = _pad_to(pil_to_tensor(img).to(self.device), _MULTIPLE[self.layer])
        stats = self.networks()[2].style(self._encode(x))
        return LinearStyle(self.layer, stats.matrix.float(), stats.mean.float(), str(self.device))

    def prepare_style(self, styles: Sequence[Image.Image], weights: Sequence[float] | None = None) -> LinearStyle:
        """Several style images blended by ``weights`` (normalised; equal when None) -> one :class:`LinearStyle`.

        The blend is the weighted mean of the style matrices and means (see the module docstring for why).
        """
        if not styles:
            raise ConfigError("give at least one style image")
        ws = normalise_weights(weights, len(styles))
        parts = [self.style_of(s) for s in styles]
        matrix = sum(w * p.matrix for w, p in zip(ws, parts, strict=True))
        mean = sum(w * p.mean for w, p in zip(ws, parts, strict=True))
        return LinearStyle(self.layer, matrix, mean, str(self.device))  # type: ignore[arg-type]

    # -- rendering --------------------------------------------------------------------------------------
    @torch.inference_mode()
    def render(self, content: torch.Tensor, style: LinearStyle, opts: StylizeOptions | None = None) -> torch.Tensor:
        """Stylise a batch: ``(N, 3, H, W)`` float RGB in [0, 1] (any H, W) -> ``(N, 3, H, W)`` in [0, 1].

        ``opts.strength`` and ``opts.preserve_color`` apply (``opts.size`` does not: the tensor is used as given).
        The frames of a batch share ``style``; each gets its own content statistics, as in the reference.
        """
        opts = opts or StylizeOptions()
        opts.validate()
        if style.layer != self.layer:
            raise ConfigError(f"this style was prepared for {style.layer}, not {self.layer}")
        photo = content.to(self.device, torch.float32)
        x, h, w = _pad_to(photo, _MULTIPLE[self.layer])
        cF = self._encode(x)
        trans = self.networks()[2]
        stats = StyleStats(style.matrix.to(self.device), style.mean.to(self.device))
        f = trans.transform(cF, stats)
        if opts.strength < 1.0:
            f = opts.strength * f + (1.0 - opts.strength) * cF  # departure: the reference has no strength
        out = self._decode(f)[..., :h, :w].clamp(0, 1)
        if opts.preserve_color:
            out = transfer_luminance(out, photo)
        return out

    def stylize(self, content: Image.Image, style: LinearStyle, opts: StylizeOptions) -> Image.Image:
        """One PIL image (resized to ``opts.size`` when set) -> the stylised RGB PIL image.

        Any size in bounded memory: painted at ``opts.working_size`` and upsampled guided by the photo, or natively
        (``working_size=None``) -- tile by tile above :data:`~impasto.fast.tiling.TILE_ABOVE` pixels, with the
        content mean and covariance of the whole image (two encoder passes for the statistics, one to render).
        """
        from .tiling import guided_upsample, needs_tiles, photo_fetch, working_shape

        opts.validate()
        img = resize(content, fit_size(content.size, opts.size))

        def finish(out: torch.Tensor, photo: torch.Tensor) -> torch.Tensor:
            out = out.clamp(0, 1)
            return transfer_luminance(out, photo.to(out.device)) if opts.preserve_color else out

        plain = StylizeOptions(strength=opts.strength)  # colour preservation happens at the output size
        work = working_shape(img.size, opts.working_size)
        if work is None and not needs_tiles(img.size):
            return tensor_to_pil(self.render(pil_to_tensor(img), style, opts))
        if work is None:
            log.info("painting %dx%d natively in %d-px tiles", *img.size, opts.tile)
            return self._tiled(img, style, opts.strength, finish, opts.tile)
        small = resize(img, work)
        if needs_tiles(work):
            low = pil_to_tensor(self._tiled(small, style, opts.strength, None, opts.tile))
        else:
            low = self.render(pil_to_tensor(small), style, plain)
        log.info("painted at %dx%d; guided upsampling to %dx%d", *work, *img.size)
        fetch = photo_fetch(np.asarray(img.convert("RGB")))
        out = guided_upsample(low.cpu(), pil_to_tensor(small), (img.height, img.width), fetch, finish=finish)
        return Image.fromarray(out)

    @torch.inference_mode()
    def _tiled(
        self, img: Image.Image, style: LinearStyle, strength: float,
        finish: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None, tile: int,
    ) -> Image.Image:  # fmt: skip
        """The exact tiled render (whole-image content statistics) -> an RGB PIL image."""
        from .tiling import linear_ops, photo_fetch, run_tiled, writer

        if style.layer != self.layer:
            raise ConfigError(f"this style was prepared for {style.layer}, not {self.layer}")
        photo = np.asarray(img.convert("RGB"))
        h, w = photo.shape[:2]
        m = _MULTIPLE[self.layer]
        ph, pw = max(-h % m, 2 * m - h), max(-w % m, 2 * m - w)
        mode = "reflect" if ph < h and pw < w else "replicate"  # as _pad_to
        enc, _, trans = self.networks()
        dec, dtype = self._net("decoder")
        matrix, mean = style.matrix.to(self.device), style.mean.to(self.device)
        ops = linear_ops(enc, trans, dec, dtype, matrix, mean, strength, (ph, pw, mode), (h, w))
        out = np.empty((h, w, 3), dtype=np.uint8)
        fetch = photo_fetch(photo, self.device)
        run_tiled(ops, (h, w), fetch, writer(out, fetch, finish), tile=tile)
        return Image.fromarray(out)


# -- which method, and whether its weights are there -------------------------------------------------------------

METHODS = ("magenta", "linear")
METHOD_ENV = "IMPASTO_STYLIZE_METHOD"  # "linear" or "magenta": the default method when none is asked for


def installed(layer: str = "r41") -> bool:
    """Whether the ``linear.<layer>`` weight set is in the cache."""
    from ..zoo import store

    return store.is_installed(MODEL_NAMES[layer])


def require_weights(layer: str = "r41") -> None:
    """WeightsError in one line saying how to get ``linear.<layer>`` when it is not installed."""
    from ..errors import WeightsError

    if layer not in LAYERS:
        raise ConfigError(f"unknown layer {layer!r}; use one of {', '.join(LAYERS)}")
    if not installed(layer):
        name = MODEL_NAMES[layer]
        raise WeightsError(
            f"--method linear needs the {name} weights, which are not installed: run 'impasto models download "
            f"{name}' on a connected machine, or 'impasto models import {name} PATH/models.zip' (the reference's "
            "zip, its unzipped folder or one file)"
        )


def default_method(env: str | None, layer: str = "r41", preset: bool = False) -> str:
    """The method when none is asked for: ``env`` (the value of :data:`METHOD_ENV`) when set, else linear once
    ``linear.<layer>`` is installed, else magenta (the offline default). Presets are Magenta's: always magenta."""
    if env:
        choice = env.strip().lower()
        if choice not in METHODS:
            raise ConfigError(f"{METHOD_ENV}={env!r} is not a method; use one of {', '.join(METHODS)}")
        return "magenta" if preset else choice
    if preset:
        return "magenta"
    return "linear" if layer in LAYERS and installed(layer) else "magenta"
