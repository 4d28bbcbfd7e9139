"""Images into and out of a feature network's input space, per preprocessing contract, and neural-style-pt sizing.

Contracts (see :mod:`impasto.zoo.registry`):

* ``caffe-bgr``: RGB -> BGR, x255, minus the mean pixel (103.939, 116.779, 123.68) in BGR order;
* ``torch-rgb``: RGB in [0, 1] minus ImageNet mean (0.485, 0.456, 0.406), divided by std (0.229, 0.224, 0.225);
* ``rgb-01``: RGB in [0, 1] as it is.

The Caffe path repeats neural-style-pt's float32 operations in its order (``u8 / 255 * 255``, channel swap, minus
mean), so the network sees bit-identical inputs.
"""

from __future__ import annotations

import torch
from PIL import Image

from ..errors import ConfigError
from ..imaging import pil_to_tensor
from ..zoo.registry import CAFFE_BGR, TORCH_RGB, UNIT_RGB

__all__ = ["deprocess", "neural_style_size", "preprocess", "resize_like_neural_style", "truncate_to_8bit"]

CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _column(values: tuple[float, ...], like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(values, dtype=like.dtype, device=like.device).view(1, 3, 1, 1)


def preprocess(x: torch.Tensor, contract: str) -> torch.Tensor:
    """(1, 3, H, W) RGB float in [0, 1] -> the network's input space for ``contract``."""
    if contract == CAFFE_BGR:
        x = x * 255
        x = x[:, [2, 1, 0]]  # RGB -> BGR
        return x - _column(CAFFE_MEAN_BGR, x)
    if contract == TORCH_RGB:
        return (x - _column(IMAGENET_MEAN, x)) / _column(IMAGENET_STD, x)
    if contract == UNIT_RGB:
        return x.clone()
    raise ConfigError(f"unknown preprocessing contract {contract!r}; known: {CAFFE_BGR}, {TORCH_RGB}, {UNIT_RGB}")


def deprocess(x: torch.Tensor, contract: str) -> torch.Tensor:
    """Inverse of :func:`preprocess`: (1, 3, H, W) -> RGB float in [0, 1] (clamped), on the CPU."""
    x = x.detach().float().cpu()
    if contract == CAFFE_BGR:
        x = (x + _column(CAFFE_MEAN_BGR, x))[:, [2, 1, 0]] / 255
    elif contract == TORCH_RGB:
        x = x * _column(IMAGENET_STD, x) + _column(IMAGENET_MEAN, x)
    elif contract != UNIT_RGB:
        raise ConfigError(f"unknown preprocessing contract {contract!r}")
    return x.clamp(0, 1)


def truncate_to_8bit(x: torch.Tensor) -> torch.Tensor:
    """Values in [0, 1] snapped down to k/255, as torchvision's ToPILImage (``mul(255).byte()``) truncates.

    impasto's own saving rounds to the nearest level; neural-style compatibility mode truncates like upstream.
    """
    return torch.floor(x.clamp(0, 1) * 255) / 255


def neural_style_size(size: tuple[int, int], longest: int) -> tuple[int, int]:
    """(W, H) of an image of ``size`` (W, H) scaled to longest side ``longest``, truncated like neural-style-pt."""
    w, h = size
    scale = float(longest) / max(w, h)
    return int(scale * w), int(scale * h)


def resize_like_neural_style(img: Image.Image, size: tuple[int, int]) -> torch.Tensor:
    """PIL image -> (1, 3, H, W) in [0, 1] at ``size`` (W, H), resampled like torchvision's Resize (PIL bilinear)."""
    if min(size) < 1:
        raise ConfigError(f"image would be resized to {size[0]}x{size[1]} pixels; use a larger size")
    if img.size != tuple(size):
        img = img.resize((size[0], size[1]), Image.Resampling.BILINEAR)
    return pil_to_tensor(img)
