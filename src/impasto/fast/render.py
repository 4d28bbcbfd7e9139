"""One place that turns stylisation settings into a renderer: the CLI/API, the local and Ray image tasks, and the
chunked video workers all build theirs here, so they check the same things and compute the same pixels.

:func:`style_side` checks the settings (method, preset or style images, blend weights, installed weights) and reads
the style images -- loading no network -- and returns a :class:`StyleSide`; its :meth:`~StyleSide.image` and
:meth:`~StyleSide.frames` load the networks and compute the style side once (Magenta's style vector or preset
weights, the linear method's matrices), returning the per-image / per-frame renderer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image

from ..errors import ConfigError
from .magenta import StylizeOptions

ImageRender = Callable[[Image.Image], Image.Image]
FrameRender = Callable[[torch.Tensor], torch.Tensor]  # (N, 3, H, W) in [0, 1] -> same, as fast.video.Renderer


@dataclass(frozen=True)
class StyleSide:
    """A stylizer and what it will apply: ``preset`` (Magenta's parsed weights) or ``styles`` with ``weights``."""

    method: str  # "magenta" or "linear"
    stylizer: Any  # MagentaStylizer | LinearStylizer
    model: str  # the networks' names, for reports
    opts: StylizeOptions
    styles: tuple[Image.Image, ...] = ()
    weights: Sequence[float] | None = None
    preset: torch.Tensor | None = None

    @property
    def device(self) -> str:
        return str(self.stylizer.device)

    def image(self) -> ImageRender:
        """``render(PIL) -> PIL``; the style side computed here, once."""
        st, opts = self.stylizer, self.opts
        if self.method == "linear":
            style = st.prepare_style(list(self.styles), self.weights)  # the style matrices, once for the run
            return lambda img: st.stylize(img, style, opts)
        if self.preset is not None:
            preset = self.preset
            return lambda img: st.with_preset(img, preset, opts)
        vector = st.blend(list(self.styles), self.weights)  # (1, 100), once for the run
        return lambda img: st.with_vector(img, vector, opts)

    def frames(self) -> FrameRender:
        """``render((N, 3, H, W)) -> (N, 3, H, W)`` for video; the style side computed here, once."""
        if self.method == "linear":
            st, opts = self.stylizer, self.opts
            style = st.prepare_style(list(self.styles), self.weights)
            return lambda x: st.render(x, style, opts)
        from ..imaging import pil_to_tensor
        from ..media import tensor_to_pil

        render = self.image()  # Magenta's API is per PIL image: one frame at a time

        def per_frame(x: torch.Tensor) -> torch.Tensor:
            return torch.cat([pil_to_tensor(render(tensor_to_pil(f))) for f in x])

        return per_frame


def style_side(
    *, method: str, layer: str, styles: Sequence[Any], style_weights: Sequence[float] | None, preset: str | None,
    opts: StylizeOptions, device: str, models: Any, read: Callable[[Any], Image.Image], cancel: Any = None,
) -> StyleSide:  # fmt: skip
    """Check the settings (ConfigError / WeightsError in one line) and read the style images with ``read``, in that
    order: a bad option never costs reading an image, and no network is loaded here. ``method`` is the decided one
    ("magenta" or "linear")."""
    from .magenta import normalise_weights

    if (not styles) == (preset is None):
        raise ConfigError("give either style images or a preset, not both and not neither")
    opts.validate()
    if method == "linear":
        from .linear import MODEL_NAMES as LINEAR_NAMES
        from .linear import LinearStylizer, require_weights

        if preset is not None:
            raise ConfigError("--preset is Magenta's (its 26 built-in styles); --method linear takes --style images")
        lin = LinearStylizer(layer=layer, device=device, models=models)
        require_weights(layer)
        normalise_weights(style_weights, len(styles))
        images = tuple(read(s) for s in styles)
        return StyleSide("linear", lin, LINEAR_NAMES[layer], opts, images, style_weights)
    if method != "magenta":
        raise ConfigError(f"unknown method {method!r}; use magenta or linear")
    from .magenta import MODEL_NAMES, MagentaStylizer, parse_presets

    stylizer = MagentaStylizer(device=device, models=models, cancel=cancel)
    if preset is not None:
        return StyleSide("magenta", stylizer, MODEL_NAMES["multistyle"], opts, preset=parse_presets(preset))
    normalise_weights(style_weights, len(styles))  # fail before reading any image or loading any model
    images = tuple(read(s) for s in styles)
    return StyleSide(
        "magenta", stylizer, f"{MODEL_NAMES['predictor']} + {MODEL_NAMES['transformer']}", opts, images, style_weights
    )
