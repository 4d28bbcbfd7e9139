"""impasto: a toolkit for making art with neural networks.

The stable entry points are in :mod:`impasto.api` (``stylize``, ``preset_sheet``, ``paint``,
``compare_optimizers``, ``generate``, ``interpolate``, ``classes``); the ``impasto`` command calls only those.
"""

__version__ = "0.1.0"

from . import api, imaging  # noqa: E402
from .api import classes, compare_optimizers, generate, interpolate, paint, preset_sheet, stylize  # noqa: E402
from .errors import Cancelled, ConfigError, ImageError, ImpastoError, UnknownModelError, WeightsError  # noqa: E402
from .events import CancelToken, Finished, Preview, Progress, Started  # noqa: E402

__all__ = [
    "__version__",
    "api",
    "imaging",
    "stylize",
    "preset_sheet",
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
