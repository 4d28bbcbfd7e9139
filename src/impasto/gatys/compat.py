"""neural-style-pt's way of turning the painting into 8-bit files, for ``impasto neural-style``.

neural-style-pt saves with torchvision's ToPILImage, which truncates (``mul(255).byte()``) where impasto rounds, and
does ``-original_colors`` on those 8-bit images with PIL's YCbCr, using the content image as it went through the
network's preprocessing and back. :class:`NeuralStylePictures` repeats exactly that, so the compat front end's files
are bit-identical to upstream's on the same weights.
"""

from __future__ import annotations

import torch
from PIL import Image

from ..media import tensor_to_pil
from .preprocess import deprocess, neural_style_size, preprocess, resize_like_neural_style, truncate_to_8bit

__all__ = ["NeuralStylePictures", "content_as_saved", "original_colors_pil"]


def original_colors_pil(content: Image.Image, generated: Image.Image) -> Image.Image:
    """neural-style-pt's colour transfer: Y of ``generated`` with Cb, Cr of ``content`` (PIL's 8-bit YCbCr)."""
    channels = list(content.convert("YCbCr").split())
    channels[0] = generated.convert("YCbCr").split()[0]
    return Image.merge("YCbCr", channels).convert("RGB")


def content_as_saved(content: Image.Image, image_size: int, contract: str) -> Image.Image:
    """The content image as neural-style-pt hands it to the colour transfer: sized, preprocessed, deprocessed, 8-bit."""
    x = resize_like_neural_style(content, neural_style_size(content.size, image_size))
    return tensor_to_pil(truncate_to_8bit(deprocess(preprocess(x, contract), contract)))


class NeuralStylePictures:
    """Callable: a painting (3, H, W) or (1, 3, H, W) float in [0, 1] -> the RGB PIL image neural-style-pt saves.

    ``content``: the content image (RGB PIL), needed only with ``original_colors``; ``contract``: the network's
    preprocessing (``Started.info["preprocessing"]``).
    """

    def __init__(self, content: Image.Image | None, image_size: int, contract: str, original_colors: bool) -> None:
        self.colour_source = content_as_saved(content, image_size, contract) if original_colors and content else None

    def __call__(self, image: torch.Tensor) -> Image.Image:
        pil = tensor_to_pil(truncate_to_8bit(image))
        return original_colors_pil(self.colour_source, pil) if self.colour_source is not None else pil
