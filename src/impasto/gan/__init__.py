"""BigGAN: class-conditional sampling, the truncation trick, interpolation and animation export.

``BigGAN``, ``one_hot_from_names``, ``one_hot_from_int``, ``truncated_noise_sample``, ``convert_to_images`` and
``save_as_images`` mirror pytorch-pretrained-BigGAN's names and calls (port a notebook by changing the import).
"""

from .classes import ImageNetClass, all_classes, resolve, search
from .export import convert_to_images, save_as_images
from .interpolation import InterpolateConfig, InterpolateResult, interpolate, lerp, slerp
from .model import BigGAN, load_model, resolve_precision
from .noise import one_hot_from_int, one_hot_from_names, truncated_noise_sample, truncated_normal
from .sampling import GenerateConfig, GenerateResult, generate
from .terminal import display_in_terminal

__all__ = [
    "BigGAN",
    "GenerateConfig",
    "GenerateResult",
    "ImageNetClass",
    "InterpolateConfig",
    "InterpolateResult",
    "all_classes",
    "convert_to_images",
    "display_in_terminal",
    "generate",
    "interpolate",
    "lerp",
    "load_model",
    "one_hot_from_int",
    "one_hot_from_names",
    "resolve",
    "resolve_precision",
    "save_as_images",
    "search",
    "slerp",
    "truncated_noise_sample",
    "truncated_normal",
]
