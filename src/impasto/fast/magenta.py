"""Magenta arbitrary stylisation and the 26-style network, on impasto's PyTorch ports of the ONNX models.

Arbitrary style: a style image -> 100-d style vector (predictor) -> the transformer renders the content with it.
Blending several styles interpolates their vectors; ``strength`` interpolates between the content's own style
vector and the target's (Ghiasi et al. 2017, section 4.3). Presets: the 26-style network's conditional
instance-norm parameters are blended by the preset weights; ``strength`` there mixes output and photo pixels,
since a photo has no vector in that space (departure: documented in docs and the CLI help).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import torch
from PIL import Image

from ..devices import resolve_device
from ..errors import ConfigError, UnknownModelError
from ..events import CancelToken
from ..imaging import pil_to_tensor, resize, transfer_luminance
from ..media import tensor_to_pil
from ..modelcache import ModelCache
from .tiling import DEFAULT_TILE

log = logging.getLogger(__name__)

NUM_PRESETS = 26
STYLE_SIZE = 256  # the style predictor was trained on 256x256 style images


MIN_WORKING_SIZE = 64  # below this the networks' 9x9 convs and 1/4-resolution trunk have nothing to paint


@dataclass(frozen=True)
class StylizeOptions:
    """What to do to each content image. ``size``: longest side of the output in px (None: keep the input's).

    ``working_size``: the stroke-size control, the longest side in px the network paints at (``api.stylize`` and
    the CLI default to :data:`~impasto.fast.tiling.DEFAULT_WORKING_SIZE`). A larger output is painted at this size
    and upsampled guided by the full-size photo (:func:`~impasto.fast.tiling.guided_upsample`), so the strokes keep
    their look at any output size (smaller: bigger strokes). None (this class's default, so video frames and other
    internal callers stay as they were): paint at the output size itself ("native": the network's own stroke size,
    pin-sized on a large photo), tile by tile and exactly when the image is large. ``tile``: the
    tile side in px for those runs. Both apply to PIL images (``with_vector``/``with_preset``/``stylize``), not to
    the tensor methods (video frames are used as given).
    """

    size: int | None = None
    strength: float = 1.0
    preserve_color: bool = False
    working_size: int | None = None
    tile: int = DEFAULT_TILE

    def validate(self) -> None:
        if not 0.0 <= self.strength <= 1.0:
            raise ConfigError(f"strength must be between 0 and 1, got {self.strength}")
        if self.size is not None and self.size < 16:
            raise ConfigError(f"size must be at least 16 px, got {self.size}")
        if self.working_size is not None and self.working_size < MIN_WORKING_SIZE:
            raise ConfigError(
                f"working size must be at least {MIN_WORKING_SIZE} px (or native), got {self.working_size}"
            )
        if self.tile < 64:
            raise ConfigError(f"tile must be at least 64 px, got {self.tile}")


def parse_presets(spec: str) -> torch.Tensor:
    """``"7"`` or ``"3:0.5,12:0.5"`` -> (26,) float weights summing to 1."""
    w = torch.zeros(NUM_PRESETS)
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        idx_text, _, wt_text = part.partition(":")
        try:
            idx = int(idx_text)
            wt = float(wt_text) if wt_text else 1.0
        except ValueError:
            raise ConfigError(f"bad preset {part!r} in {spec!r}; use e.g. 7 or 3:0.5,12:0.5") from None
        if not 0 <= idx < NUM_PRESETS:
            raise UnknownModelError(f"unknown preset {idx}; presets are numbered 0 to {NUM_PRESETS - 1}")
        if wt < 0 or wt != wt:
            raise ConfigError(f"preset weight must be a non-negative number, got {wt_text!r}")
        w[idx] += wt
    if float(w.sum()) <= 0:
        raise ConfigError(f"preset weights in {spec!r} must add up to more than 0")
    return w / w.sum()


def normalise_weights(weights: Sequence[float] | None, count: int) -> list[float]:
    """Blend weights for ``count`` styles, normalised to sum 1 (equal when None)."""
    if weights is None:
        return [1.0 / count] * count
    ws = [float(w) for w in weights]
    if len(ws) != count:
        raise ConfigError(f"got {len(ws)} style weights for {count} style images; give one weight per style")
    if any(w < 0 or w != w for w in ws):
        raise ConfigError(f"style weights must be non-negative, got {ws}")
    total = sum(ws)
    if total <= 0:
        raise ConfigError(f"style weights {ws} must add up to more than 0")
    return [w / total for w in ws]


# The fast-inference recipe, measured against fp32 on the ONNX-equivalent modules (see impasto.nets.magenta):
# the predictor stays fp32 (bf16 moves the style vector ~3%); the transformer runs bf16 where the hardware has
# it (mean output change 0.003 < 1/255); the 26-style network stays fp32 (bf16 drifts up to 0.28 on some
# styles). All run channels_last, which oneDNN/cuDNN convolve fastest, in both recipes: the exact one is fp32 all
# the same (max |diff| from NCHW 2.5e-5 of the 0-1 range) and 1.4x faster with it on a 2-core CPU at 256 px.
BF16_OK = {"predictor": False, "transformer": True, "multistyle": False}


MODEL_NAMES = {
    "predictor": "magenta.predictor",
    "transformer": "magenta.transformer",
    "multistyle": "magenta.multistyle26",
}


def _load_model(which: str, device: str) -> torch.nn.Module:
    """A loaded, frozen fp32 module (weights only, never a run's state), channels_last on ``device``."""
    from ..devices import prepare_for_inference
    from ..zoo import magenta_onnx

    loader = {
        "predictor": magenta_onnx.load_predictor,
        "transformer": magenta_onnx.load_transformer,
        "multistyle": magenta_onnx.load_multistyle,
    }[which]
    return prepare_for_inference(loader(), device, fast=True)  # channels_last: both recipes (see BF16_OK)


class Stylized(NamedTuple):
    """One finished image of a stylize run: ``input`` as the caller gave it (a path or a PIL image) and
    ``image``, the result as an RGB PIL image."""

    input: Any
    image: Image.Image


@dataclass(frozen=True)
class StylizeResult:
    """What a stylize run made: the ``Finished`` event's result, and ``Cancelled.partial``.

    ``images``: the results in input order as RGB PIL images -- every one for ``api.stylize``, none for
    ``api.stylize_each`` (which hands each over as it is made and keeps nothing). ``count``: images made;
    ``total``: images asked for (0 when the input was an iterator of unknown length); ``elapsed`` in seconds;
    ``info``: ``model`` (the registry names of the networks used) and ``device``.
    """

    images: tuple[Image.Image, ...]
    count: int
    total: int
    elapsed: float = 0.0
    info: Mapping[str, Any] = field(default_factory=dict)

    def pictures(self) -> list[Image.Image]:
        """The images kept, as a list (the same objects)."""
        return list(self.images)


def _square_crop(img: Image.Image, side: int) -> Image.Image:
    s = min(img.size)
    left, top = (img.width - s) // 2, (img.height - s) // 2
    return resize(img.crop((left, top, left + s, top + s)), (side, side))


class MagentaStylizer:
    """Arbitrary-style and preset stylisation on one device. Holds no models itself: they live in ``models``
    (a :class:`ModelCache` the caller owns; a private one when None), keyed by network and device."""

    def __init__(
        self, device: str | torch.device = "auto", fast: bool = True, models: ModelCache | None = None,
        cancel: CancelToken | None = None,
    ) -> None:  # fmt: skip
        self.device = resolve_device(device)
        self.fast = fast
        self.models = models if models is not None else ModelCache()
        # checked before every tile of a large image (native tiles and guided upsampling): Cancelled mid-image
        self._check = cancel.check if cancel is not None else None

    def network(self, which: str) -> torch.nn.Module:
        """``"predictor"``, ``"transformer"`` or ``"multistyle"``, loaded once per cache (the same fp32 module for
        both recipes: they differ only in the autocast around it)."""
        key = ("magenta", which, str(self.device))
        return self.models.get(key, lambda: _load_model(which, str(self.device)))

    def _run(self, which: str, *args: torch.Tensor) -> torch.Tensor:
        """Run one network: channels_last input; with the fast recipe, bf16 autocast where it keeps quality."""
        from ..devices import autocast

        net = self.network(which)
        x, *rest = args
        if self.device.type in ("cpu", "cuda"):
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(self.device, enabled=self.fast and BF16_OK[which]):
            return net(x, *rest).float()

    # -- style vectors ----------------------------------------------------------------------------------
    @torch.inference_mode()
    def style_vector(self, style: Image.Image) -> torch.Tensor:
        """A style image (any size; centre square used) -> (1, 100) style vector."""
        x = pil_to_tensor(_square_crop(style, STYLE_SIZE)).to(self.device)  # (1, 3, 256, 256)
        return self._run("predictor", x).reshape(1, -1)

    def blend(self, styles: Sequence[Image.Image], weights: Sequence[float] | None = None) -> torch.Tensor:
        """Weighted mean of the styles' vectors: (1, 100)."""
        ws = normalise_weights(weights, len(styles))
        return sum(w * self.style_vector(s) for w, s in zip(ws, styles, strict=True))  # type: ignore[return-value]

    # -- rendering --------------------------------------------------------------------------------------
    def _prepare(self, content: Image.Image, opts: StylizeOptions) -> Image.Image:
        from ..imaging import fit_size

        return resize(content, fit_size(content.size, opts.size))

    def _finish(self, out: torch.Tensor, photo: torch.Tensor, opts: StylizeOptions, mix: bool) -> torch.Tensor:
        out = out.float().clamp(0, 1)
        if opts.preserve_color:
            out = transfer_luminance(out, photo)
        if mix and opts.strength < 1.0:
            out = opts.strength * out + (1.0 - opts.strength) * photo
        return out

    @torch.inference_mode()
    def render_vector(
        self, content: torch.Tensor, vector: torch.Tensor, opts: StylizeOptions | None = None
    ) -> torch.Tensor:
        """Stylise a batch with a style vector: ``(N, 3, H, W)`` float RGB in [0, 1] (any H, W >= 8) and ``(1, 100)``
        (shared) or ``(N, 100)`` -> ``(N, 3, H, W)`` fp32 in [0, 1], in one forward of the transformer.

        ``opts.strength`` < 1 moves each frame's vector toward that frame's own style vector (one predictor run
        per frame); ``opts.preserve_color`` applies; ``opts.size`` does not (the tensor is used as given).
        """
        opts = opts or StylizeOptions()
        opts.validate()
        photo = content.to(self.device, torch.float32)
        vec = vector.to(self.device).reshape(vector.shape[0], -1)  # (1 or N, 100)
        if opts.strength < 1.0:
            own = torch.cat([self.style_vector(tensor_to_pil(frame)) for frame in photo])  # (N, 100)
            vec = opts.strength * vec + (1.0 - opts.strength) * own
        return self._finish(self._run("transformer", photo, vec), photo, opts, mix=False)

    @torch.inference_mode()
    def render_preset(
        self, content: torch.Tensor, weights: torch.Tensor, opts: StylizeOptions | None = None
    ) -> torch.Tensor:
        """Stylise a batch with a ``(26,)`` blend of the built-in styles: ``(N, 3, H, W)`` float RGB in [0, 1] ->
        ``(N, 3, H, W)`` fp32 in [0, 1], in one forward. ``opts.strength`` mixes each result with its photo."""
        opts = opts or StylizeOptions()
        opts.validate()
        photo = content.to(self.device, torch.float32)
        out = self._run("multistyle", photo, weights.to(self.device))
        return self._finish(out, photo, opts, mix=True)

    def with_vector(self, content: Image.Image, vector: torch.Tensor, opts: StylizeOptions) -> Image.Image:
        """Render ``content`` with a (1, 100) style vector; strength moves it toward the photo's own vector.

        Any size in bounded memory: see ``opts.working_size`` and ``opts.tile`` (:class:`StylizeOptions`).
        """
        opts.validate()
        img = self._prepare(content, opts)
        vec = vector.to(self.device).reshape(1, -1)
        if opts.strength < 1.0:  # the photo's own vector, from its centre square at 256 px as for a style image
            vec = opts.strength * vec + (1.0 - opts.strength) * self.style_vector(img)
        return self._any_size(img, "transformer", vec, opts, mix=False)

    def with_preset(self, content: Image.Image, weights: torch.Tensor, opts: StylizeOptions) -> Image.Image:
        """Render ``content`` with a (26,) blend of the built-in styles; strength mixes with the photo (at the
        output size). Any size in bounded memory, as :meth:`with_vector`."""
        opts.validate()
        img = self._prepare(content, opts)
        return self._any_size(img, "multistyle", weights.to(self.device), opts, mix=True)

    @torch.inference_mode()
    def _any_size(
        self, img: Image.Image, which: str, cond: torch.Tensor, opts: StylizeOptions, mix: bool
    ) -> Image.Image:
        """Paint ``img`` (already at the output size) at the working size, or natively (tiled when large)."""
        from .tiling import guided_upsample, needs_tiles, photo_fetch, working_shape

        def finish(out: torch.Tensor, photo: torch.Tensor) -> torch.Tensor:
            return self._finish(out, photo.to(out.device), opts, mix)

        work = working_shape(img.size, opts.working_size)
        if work is None and not needs_tiles(img.size):
            photo = pil_to_tensor(img).to(self.device)
            return tensor_to_pil(finish(self._run(which, photo, cond), photo))
        if work is None:
            log.info("painting %dx%d natively in %d-px tiles", *img.size, opts.tile)
            return self._tiled(img, which, cond, finish, opts.tile)
        small = resize(img, work)
        if needs_tiles(work):
            low = pil_to_tensor(self._tiled(small, which, cond, None, opts.tile))
        else:
            low = self._run(which, pil_to_tensor(small).to(self.device), cond).clamp(0, 1)
        log.info("painted at %dx%d; guided upsampling to %dx%d", *work, *img.size)
        fetch = photo_fetch(np.asarray(img.convert("RGB")))
        out = guided_upsample(
            low.cpu(), pil_to_tensor(small), (img.height, img.width), fetch, finish=finish, check=self._check
        )
        return Image.fromarray(out)

    def _tiled(
        self, img: Image.Image, which: str, cond: torch.Tensor,
        finish: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None, tile: int,
    ) -> Image.Image:  # fmt: skip
        """The exact tiled forward (whole-image instance-norm statistics) -> an RGB PIL image."""
        from ..devices import autocast
        from .tiling import magenta_ops, multistyle_ops, photo_fetch, run_tiled, writer

        photo = np.asarray(img.convert("RGB"))
        size = photo.shape[:2]
        net = self.network(which)
        ops = (magenta_ops if which == "transformer" else multistyle_ops)(net, cond, size)
        out = np.empty((*size, 3), dtype=np.uint8)
        fetch = photo_fetch(photo, self.device)
        with autocast(self.device, enabled=self.fast and BF16_OK[which]):
            run_tiled(ops, size, fetch, writer(out, fetch, finish), tile=tile, check=self._check)
        return Image.fromarray(out)


def stylized_start(
    content: Image.Image,
    styles: Sequence[Image.Image],
    weights: Sequence[float] | None,
    size: int,
    device: str | torch.device = "auto",
    models: ModelCache | None = None,
) -> Image.Image:
    """The start of a painting with ``init="stylized"``: the arbitrary network applied to ``content`` at ``size``
    (longest side), the styles' vectors blended by ``weights``; an RGB PIL image, deterministic for given inputs
    on a given device. A resumed run does not make it again (its checkpoint holds the painting so far, and its
    fingerprint the settings this is made from). The networks stay in ``models``."""
    stylizer = MagentaStylizer(device=device, models=models)
    vector = stylizer.blend(list(styles), weights)  # (1, 100)
    return stylizer.with_vector(content, vector, StylizeOptions(size=size))


def contact_sheet(
    stylizer: MagentaStylizer, photo: Image.Image, tile: int = 256, columns: int = 7, *,
    on_tile: Callable[[int], None] | None = None, cancel: CancelToken | None = None,
) -> Image.Image:  # fmt: skip
    """The photo and all 26 presets as labelled tiles on one white sheet.

    ``on_tile(n)`` is called after the n-th preset tile (1..26); ``cancel`` is checked before each tile and raises
    ``Cancelled`` (no partial sheet).
    """
    from PIL import ImageDraw

    from ..imaging import fit_size

    small = resize(photo, fit_size(photo.size, tile))
    tw, th = small.size
    label_h, pad = 18, 6
    tiles = [("photo", small)]
    for i in range(NUM_PRESETS):
        if cancel is not None:
            cancel.check()
        w = torch.zeros(NUM_PRESETS)
        w[i] = 1.0
        tiles.append((f"preset {i}", stylizer.with_preset(small, w, StylizeOptions())))
        if on_tile is not None:
            on_tile(i + 1)
    rows = -(-len(tiles) // columns)
    sheet = Image.new("RGB", (pad + columns * (tw + pad), pad + rows * (th + label_h + pad)), "white")
    draw = ImageDraw.Draw(sheet)
    for n, (label, im) in enumerate(tiles):
        r, c = divmod(n, columns)
        x, y = pad + c * (tw + pad), pad + r * (th + label_h + pad)
        draw.text((x + 2, y + 3), label, fill=(0, 0, 0))
        sheet.paste(im, (x, y + label_h))
    return sheet
