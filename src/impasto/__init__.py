"""impasto: a toolkit for making art with neural networks.

The stable entry points are in :mod:`impasto.api` (``stylize``, ``stylize_each``, ``preset_sheet``, ``photoreal``,
``video``, ``paint``, ``compare_optimizers``, ``generate``, ``interpolate``, ``classes``, ``train_linear``,
``train_spn``, ``models``); the ``impasto`` command calls only those.
"""

__version__ = "0.1.0"

from . import api, imaging  # noqa: E402
from .api import (  # noqa: E402
    classes,
    compare_optimizers,
    generate,
    interpolate,
    models,
    paint,
    photoreal,
    preset_sheet,
    release_models,
    stylize,
    stylize_each,
    train_linear,
    train_spn,
    video,
)
from .errors import Cancelled, ConfigError, ImageError, ImpastoError, UnknownModelError, WeightsError  # noqa: E402
from .events import CancelToken, Finished, Preview, Progress, Started  # noqa: E402
from .modelcache import ModelCache  # noqa: E402

__all__ = [
    "__version__",
    "api",
    "imaging",
    "stylize",
    "stylize_each",
    "preset_sheet",
    "photoreal",
    "video",
    "train_linear",
    "train_spn",
    "models",
    "ModelCache",
    "release_models",
    "paint",
    "compare_optimizers",
    "generate",
    "interpolate",
    "classes",
    "ImpastoError",
    "ConfigError",
    "UnknownModelError",
    "WeightsError",
    "ImageError",
    "Cancelled",
    "CancelToken",
    "Started",
    "Progress",
    "Preview",
    "Finished",
]
