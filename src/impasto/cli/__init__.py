"""The ``impasto`` command-line interface; ``main(argv)`` returns an exit code."""

from .main import main

__all__ = ["main"]
