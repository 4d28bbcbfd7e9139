"""impasto: a toolkit for making art with neural networks."""

__version__ = "0.1.0"

from .errors import Cancelled, ConfigError, ImageError, ImpastoError, UnknownModelError, WeightsError  # noqa: E402
from .events import CancelToken, Finished, Preview, Progress, Started  # noqa: E402
from . import imaging  # noqa: E402

__all__ = [
    "__version__",
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
