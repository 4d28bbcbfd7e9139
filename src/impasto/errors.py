"""The error hierarchy. Every error a user can cause is an ImpastoError with one clear sentence.

``exit_code`` is what the CLI returns: 2 for usage mistakes (bad options, unknown names), 1 for the rest.
"""

from __future__ import annotations

from typing import Any


class ImpastoError(Exception):
    """Base of every error impasto raises on purpose."""

    exit_code = 1


class ConfigError(ImpastoError):
    """An option or argument has a value that is not allowed."""

    exit_code = 2


class UnknownModelError(ConfigError):
    """A weight-set, layer, class or preset name that impasto does not know."""


class WeightsError(ImpastoError):
    """A weights file is missing, corrupt, has the wrong checksum or an unexpected layout."""


class ImageError(ImpastoError):
    """An image cannot be read or written."""


class Cancelled(ImpastoError):
    """A run was cancelled (Ctrl-C or a CancelToken); ``partial`` holds the latest result, if any."""

    exit_code = 130

    def __init__(self, message: str = "cancelled", partial: Any = None) -> None:
        super().__init__(message)
        self.partial = partial
